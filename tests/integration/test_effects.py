"""The triggers and what they cannot fully apply: the effects that can be applied are,
the failure is kept on a document an admin can read (`effect_failures/{id}`), an ERROR
is logged, and reconciliation names it; a redelivery changes nothing. (Found by
fuzzing: an escrow naming freelancer `__fuzz__` failed on every delivery of its event,
so its vault increment was never applied and reconciliation stayed "not ok" for good.)"""

import json

from coins import clients, effects, ledger, notify, postings, reconciliation, store
from coins.domain import Account, EntryType, EventKind
from coins.escrow import facts as escrow_facts
from tests import factories
from tests.money import assert_vault_matches_ledger, fresh_id


def legacy_lock_naming(db, client, freelancer_id):
    """An escrow lock as one could be written before ids were checked at the door."""
    escrow_id = fresh_id("e")

    def operation(reader):
        moved = postings.transfer(Account.user(client), Account.escrow(escrow_id), {"GPC": 1})
        entry = postings.Entry(EntryType.ESCROW_LOCK, moved, refs={"escrow_id": escrow_id}, parties=(client, freelancer_id))
        escrow = {
            "id": escrow_id,
            "status": "funded",
            "version": 1,
            "client_id": client,
            "freelancer_id": freelancer_id,
            "parties": [client, freelancer_id],
            "amount_dirhams": 10_000,
            "released_dirhams": 0,
            "refunded_dirhams": 0,
            "fee_dirhams": 0,
            "timer_due_at": None,
            "job_id": "j",
            "milestone": "1",
            "created_at": reader.now,
        }
        funded = ledger.Event(EventKind.ESCROW_FUNDED, escrow_facts(escrow))
        return ledger.Plan(
            entry=entry,
            documents={store.escrow(escrow_id): escrow},
            events=(funded,),
            respond=lambda outcome: ledger.Response(201, {"entry_id": outcome.entry_id}),
        )

    return ledger.execute(db, operation, actor=client).body["entry_id"]


def error_logs(capsys):
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [line for line in lines if line["severity"] == "ERROR"]


def test_an_event_naming_a_refused_id_notifies_the_others_and_records_the_rest(api, db, task_queue, expo, capsys):
    client = factories.wallet(api, {"GPC": 1})
    entry_id = legacy_lock_naming(db, client, "__fuzz__")
    for snapshot in db.collection("ledger").stream():
        assert effects.apply(db, snapshot.id)
    assert_vault_matches_ledger(db)  # the money side is whole
    capsys.readouterr()

    assert notify.deliver(db, clients.app_db(), clients.push(), task_queue, entry_id) is True
    errors = error_logs(capsys)
    assert [line["message"] for line in errors] == ["outbox effects failed"] and errors[0]["event_id"] == entry_id
    failure = db.get(store.effect_failure(entry_id))
    assert [f["effect"] for f in failure["failures"]] == ["notification:__fuzz__"]
    assert clients.app_db().client.document(f"notifications/{entry_id}_{client}").get().exists, "the client is notified"

    report = reconciliation.run(db)
    assert [(p["kind"], p["source"], p["id"]) for p in report["problems"]] == [("effects_failed", "outbox", entry_id)]
    assert notify.deliver(db, clients.app_db(), clients.push(), task_queue, entry_id) is False, "a redelivery changes nothing"


def test_an_entry_with_malformed_data_is_recorded_not_retried_forever(api, db, task_queue, capsys):
    client = fresh_id()
    entry_id = api.adjust("fx-admin", client, {"GBC": 2}).get_json()["entry_id"]
    # The user record of the entry lacks its amount (as a corrupt entry could).
    db.collection("ledger").document(entry_id).update({"users": {client: {"no_amount": True}}})
    capsys.readouterr()
    assert effects.apply(db, entry_id) is True
    assert [line["message"] for line in error_logs(capsys)] == ["ledger effects failed"]
    failure = db.get(store.effect_failure(entry_id))
    assert [f["effect"] for f in failure["failures"]] == [f"stats:{client}"]
    assert failure["failures"][0]["reason"].startswith("malformed entry: KeyError")
    assert_vault_matches_ledger(db)
    assert [(p["kind"], p["source"]) for p in reconciliation.run(db)["problems"]] == [("effects_failed", "ledger")]
    assert effects.apply(db, entry_id) is False


def test_a_release_to_an_id_firestore_refuses_is_409_not_500(api, db, task_queue):
    client = factories.wallet(api, {"GPC": 1})
    entry_id = legacy_lock_naming(db, client, "__victim__")
    escrow_id = db.get(store.entry(entry_id))["refs"]["escrow_id"]
    from local.tokens import mint

    headers = {"Authorization": f"Bearer {mint(client)}", "Idempotency-Key": fresh_id("k")}
    release = api.client("coins_escrow_release").post(f"/api/coins/escrow/{escrow_id}/release", headers=headers)
    assert release.status_code == 409 and release.get_json()["error"]["code"] == "invalid_state"
    assert db.get(store.escrow(escrow_id))["status"] == "funded"
