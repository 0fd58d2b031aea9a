"""The ledger trigger and an entry it cannot fully apply: the effects that can be applied
are, the failure is kept on a document an admin can read, an ERROR is logged, and
reconciliation names the entry. A redelivery changes nothing. (Found by fuzzing: an
entry naming user `__fuzz__` failed on every delivery, so its vault increment was never
applied and reconciliation stayed "not ok" for good.)"""

import json
from datetime import timedelta

from coins import effects, ledger, postings, reconciliation, store
from coins.domain import Account, EntryType
from tests import factories
from tests.money import assert_vault_matches_ledger, fresh_id


def legacy_lock_naming(db, client, freelancer_id):
    """An escrow lock as one could be written before ids were checked at the door."""
    escrow_id = fresh_id("e")

    def operation(reader):
        moved = postings.transfer(Account.user(client), Account.escrow(escrow_id), {"GPC": 1})
        entry = postings.Entry(EntryType.ESCROW_LOCK, moved, refs={"escrow_id": escrow_id}, parties=(client, freelancer_id))
        escrow = {"id": escrow_id, "status": "locked", "client_id": client, "freelancer_id": freelancer_id,
                  "amount_dirhams": 10_000, "fee_dirhams": 1_000, "auto_release_at": reader.now + timedelta(days=3), "job_id": "j"}
        return ledger.Plan(entry=entry, documents={store.escrow(escrow_id): escrow},
                           respond=lambda outcome: ledger.Response(201, {"entry_id": outcome.entry_id}))

    return ledger.execute(db, operation, actor=client).body["entry_id"]


def test_an_entry_naming_a_refused_id_applies_what_it_can_and_records_the_rest(api, db, task_queue, capsys):
    client = factories.wallet(api, {"GPC": 1})
    entry_id = legacy_lock_naming(db, client, "__fuzz__")
    for earlier in [s.id for s in db.collection("ledger").stream() if s.id != entry_id]:
        assert effects.apply(db, task_queue, earlier)
    capsys.readouterr()

    assert effects.apply(db, task_queue, entry_id) is True
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    errors = [line for line in logged if line["severity"] == "ERROR"]
    assert [line["message"] for line in errors] == ["ledger effects failed"]
    assert errors[0]["entry_id"] == entry_id

    failure = db.get(store.effect_failure(entry_id))
    assert [f["effect"] for f in failure["failures"]] == ["notification:__fuzz__"]
    assert "__fuzz__" in failure["failures"][0]["reason"]
    assert db.get(store.notification(client, entry_id)) is not None, "the client's notification is written"
    assert_vault_matches_ledger(db)  # the vault increment is applied

    report = reconciliation.run(db)
    assert [p["kind"] for p in report["problems"]] == ["effects_failed"]
    assert report["problems"][0]["entry_id"] == entry_id

    assert effects.apply(db, task_queue, entry_id) is False, "a redelivery changes nothing"
    assert_vault_matches_ledger(db)


def test_an_entry_with_malformed_data_is_recorded_not_retried_forever(api, db, task_queue):
    client = fresh_id()
    entry_id = api.adjust("fx-admin", client, {"GBC": 2}).get_json()["entry_id"]
    # A party the entry names without its user record (as a corrupt entry could).
    db.collection("ledger").document(entry_id).update({"users": {client: {"no_amount": True}}})
    assert effects.apply(db, task_queue, entry_id) is True
    failure = db.get(store.effect_failure(entry_id))
    assert sorted(f["effect"] for f in failure["failures"]) == [f"notification:{client}", f"stats:{client}"]
    assert all(f["reason"].startswith("malformed entry: KeyError") for f in failure["failures"])
    assert_vault_matches_ledger(db)
    db.collection("ledger").document(entry_id).update({"users": {}})  # the wallet check after the test reads it


def test_a_release_to_an_id_firestore_refuses_is_409_not_500(api, db, task_queue):
    client = factories.wallet(api, {"GPC": 1})
    entry_id = legacy_lock_naming(db, client, "__victim__")
    escrow_id = db.get(store.entry(entry_id))["refs"]["escrow_id"]
    from local.tokens import mint

    headers = {"Authorization": f"Bearer {mint(client)}", "Idempotency-Key": fresh_id("k")}
    release = api.client("coins_escrow_release").post(f"/api/coins/escrow/{escrow_id}/release", headers=headers)
    assert release.status_code == 409 and release.get_json()["error"]["code"] == "invalid_state"
    assert db.get(store.escrow(escrow_id))["status"] == "locked"
