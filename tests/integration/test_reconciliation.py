"""A reconciliation operators can trust: the vault is compared only with what the ledger
trigger has applied, effects still on their way are reported, not alarmed on, unless
they have waited longer than the trigger ever should; a vault edited behind the
trigger's back is a problem."""

import time
from datetime import timedelta

from coins import config, effects, ledger, reconciliation
from tests.money import RecordedTasks, fresh_id


def burst(api, n):
    users = [fresh_id() for _ in range(n)]
    for uid in users:
        assert api.adjust("rc-admin", uid, {"GBC": 1}).status_code == 200
    return users


def test_a_burst_right_before_a_run_is_ok_with_its_effects_pending(api, db):
    started = time.monotonic()
    burst(api, 30)
    report = reconciliation.run(db)
    assert report["ok"], report["problems"]
    assert report["pending_effects"]["count"] == 30
    assert 0 <= report["pending_effects"]["oldest_age_seconds"] <= time.monotonic() - started + 1
    entries = [s.id for s in db.collection("ledger").stream()]
    for entry_id in entries[:12]:
        effects.apply(db, entry_id)
    half = reconciliation.run(db)
    assert half["ok"] and half["pending_effects"]["count"] == 18
    for entry_id in entries[12:]:
        effects.apply(db, entry_id)
    done = reconciliation.run(db)
    assert done["ok"] and done["pending_effects"] == {"count": 0, "oldest_age_seconds": 0.0}


def test_effects_pending_past_the_repair_and_two_of_its_runs_are_a_problem(api, db):
    burst(api, 2)
    limit = reconciliation.stall_limit_seconds(config.REPAIR_AFTER_SECONDS_DEFAULT)
    assert limit == 600 + 2 * 15 * 60
    assert reconciliation.run(db, now=ledger.now_utc() + timedelta(seconds=limit - 60))["ok"], "the repair's to do"
    report = reconciliation.run(db, now=ledger.now_utc() + timedelta(seconds=limit + 1))
    assert not report["ok"]
    assert sorted(p["kind"] for p in report["problems"]) == ["effects_stalled", "outbox_stalled"]
    assert [p["pending"] for p in report["problems"]] == [2, 2]


def test_a_vault_shard_edited_behind_the_trigger_s_back_is_a_problem(api, db):
    burst(api, 3)
    for snapshot in db.collection("ledger").stream():
        effects.apply(db, snapshot.id)
    assert reconciliation.run(db)["ok"]
    from google.cloud import firestore

    # An increment, not a value: whatever the shard holds, it then holds something else.
    shard = db.collection("vault").document("summary").collection("shards").document("0")
    shard.set({"balances": {"users": {"GBC": firestore.Increment(1)}}}, merge=True)
    report = reconciliation.run(db)
    assert [p["kind"] for p in report["problems"]] == ["vault_differs"]
    assert report["pending_effects"]["count"] == 0
    shard.set({"balances": {"users": {"GBC": firestore.Increment(-1)}}}, merge=True)
    assert reconciliation.run(db)["ok"], "put back as it was"


# Incremental: from a checkpoint, what is new since.


def test_an_incremental_run_reads_only_what_is_new_and_moves_its_checkpoint(api, db, monkeypatch):
    first = burst(api, 4)
    report = reconciliation.incremental(db)
    assert report["ok"], report["problems"]
    assert report["checked"]["entries"] == 4 and report["checked"]["history_entries"] == 0, "younger than the lag"
    # Past the lag (here, none), they are folded into the checkpoint...
    monkeypatch.setattr(config, "RECONCILE_LAG_SECONDS", 0)
    folded = reconciliation.incremental(db)
    assert folded["ok"] and folded["checked"]["history_entries"] == 4
    # ...and a later run reads only the newer entries, on top of it.
    burst(api, 2)
    after = reconciliation.incremental(db)
    assert after["ok"], after["problems"]
    assert (after["checked"]["entries"], after["checked"]["accounts"]) == (2, 3), "two wallets and the treasury"
    state = db.collection("reconciliation_checkpoint").document("current").get().to_dict()
    assert state["entries"] == 6 and state["version"].startswith("current-")
    assert api.adjust("rc-admin", first[0], {"GBC": -1}).status_code == 200  # the wallet emptied: not kept
    emptied = reconciliation.incremental(db)
    assert emptied["ok"] and emptied["checked"]["history_entries"] == 7
    shards = [d.to_dict() for d in db.collection("reconciliation_checkpoint").stream() if d.id.startswith(state["version"][:8])]
    assert not any(f"user:{first[0]}" in shard.get("balances", {}) for shard in shards)
    assert len([d for d in db.collection("reconciliation_checkpoint").stream()]) == 1 + config.CHECKPOINT_SHARDS, "old ones gone"


def test_an_incremental_run_catches_a_corrupted_document_it_touches_and_the_full_replay_every_one(api, db, monkeypatch):
    monkeypatch.setattr(config, "RECONCILE_LAG_SECONDS", 0)
    touched, untouched = burst(api, 2)
    reconciliation.incremental(db)
    db.collection("wallets").document(untouched).update({"coins": {"GBC": 7}, "balance_dirhams": 3500})
    assert api.adjust("rc-admin", touched, {"GSC": 1}).status_code == 200
    db.collection("wallets").document(touched).update({"coins": {"GSC": 9}, "balance_dirhams": 9000})
    report = reconciliation.incremental(db)
    assert [(p["kind"], p["user_id"]) for p in report["problems"]] == [("wallet_differs", touched)]
    full = reconciliation.run(db, vault=False)
    assert sorted(p["user_id"] for p in full["problems"]) == sorted([touched, untouched]), "the full replay sees both"
    db.collection("wallets").document(untouched).update({"coins": {"GBC": 1}, "balance_dirhams": 500})
    db.collection("wallets").document(touched).update({"coins": {"GBC": 1, "GSC": 1}, "balance_dirhams": 1500})


def test_a_second_issue_of_a_purchase_is_caught_by_the_incremental_run(api, db):
    from coins import postings, store
    from coins.domain import EntryType

    buyer = fresh_id()
    db.collection("purchases").document("p-twice").set(
        {"id": "p-twice", "status": "paid", "user_id": buyer, "entry_id": None, "gateway": "sadad"}
    )

    def issue(reader):
        entry = postings.Entry(EntryType.PURCHASE_ISSUE, postings.issue(buyer, {"GBC": 1}), refs={"purchase_id": "p-twice"})
        return ledger.Plan(
            entry=entry,
            documents={store.purchase("p-twice"): {"entry_id": reader.entry_id}},
            respond=lambda outcome: ledger.Response(200, {}),
        )

    ledger.execute(db, issue, actor="test")
    assert reconciliation.incremental(db)["ok"]

    def again(reader):
        entry = postings.Entry(EntryType.PURCHASE_ISSUE, postings.issue(buyer, {"GBC": 1}), refs={"purchase_id": "p-twice"})
        return ledger.Plan(entry=entry, respond=lambda outcome: ledger.Response(200, {}))

    ledger.execute(db, again, actor="test")
    report = reconciliation.incremental(db)
    assert [p["kind"] for p in report["problems"]] == ["purchase_issues"]
    assert reconciliation.run(db, vault=False)["problems"][0]["kind"] == "purchase_issues"
    # Undone for the conservation check that follows: the second issue never happened.
    extra = report["problems"][0]["extra_entry_id"]
    db.collection("ledger").document(extra).delete()
    db.collection("ledger_effects").document(extra).delete()
    db.collection("wallets").document(buyer).update({"coins": {"GBC": 1}, "balance_dirhams": 500})


def test_a_document_is_compared_as_of_its_own_last_entry(api, db):
    """An entry committed after a document was read is no false alarm."""
    from coins.domain import Account

    uid = burst(api, 1)[0]
    wallet = db.collection("wallets").document(uid).get().to_dict()
    newer = (wallet["coins_at"] + timedelta(seconds=1), {"GSC": 1})
    balance_now = {"GBC": 1, "GSC": 1}
    assert reconciliation.as_of(balance_now, [newer], wallet) == {"GBC": 1}
    assert reconciliation.account_problems(Account.user(uid), wallet, reconciliation.as_of(balance_now, [newer], wallet)) == []
    assert reconciliation.account_problems(Account.user(uid), wallet, balance_now), "compared with now, it would differ"


# The full replay in chunks.


# Cloud Tasks for the chain, run one after the other here (the HTTP chain is in
# test_full_replay_over_http_through_the_local_task_queue).
Steps = RecordedTasks


def test_a_full_replay_runs_in_chunks_and_becomes_the_checkpoint(api, db, monkeypatch):
    monkeypatch.setattr(config, "FULL_REPLAY_CHUNK", 3)
    monkeypatch.setattr(config, "RECONCILE_LAG_SECONDS", 0)
    burst(api, 8)
    steps = Steps()
    started = reconciliation.start_full(db, steps, by="rc-admin")
    assert started["status"] == "running" and len(steps.tasks) == 1
    with_chunks = 0
    while steps.tasks:
        task_id, payload = steps.tasks.pop(0)
        progress = reconciliation.full_step(db, steps, payload["run_id"])
        with_chunks += 1
        assert with_chunks < 40
    assert progress["status"] == "done" and progress["ok"], progress["problems"]
    assert progress["entries"] == 8 and progress["documents"] == 8, "eight wallets"
    assert with_chunks >= 8, "three entries, or three documents, a step"
    state = db.collection("reconciliation_checkpoint").document("current").get().to_dict()
    assert state["entries"] == 8
    assert reconciliation.get_run(db, started["id"])["status"] == "done"
    report = reconciliation.incremental(db)
    assert report["ok"] and report["checked"]["entries"] == 0 and report["checked"]["history_entries"] == 8


def test_a_second_full_replay_is_refused_while_one_runs(api, db):
    import pytest

    from coins import errors

    steps = Steps()
    reconciliation.start_full(db, steps, by="a")
    with pytest.raises(errors.InvalidState):
        reconciliation.start_full(db, steps, by="b")


def test_full_replay_over_http_through_the_local_task_queue(api, db, functions_server, monkeypatch):
    """The console's button: 202, then each chunk a task delivered over HTTP to
    reconcile_full_step, until the run is done."""
    from local.stack import configure_reconcile_chain
    from tests.money import wait_for

    monkeypatch.setattr(config, "RECONCILE_LAG_SECONDS", 0)
    monkeypatch.setattr(config, "FULL_REPLAY_CHUNK", 2)
    chain = configure_reconcile_chain(functions_server)
    try:
        burst(api, 3)
        started = api.call("admin_reconciliation_full", "POST", uid="rc-admin", admin=True)
        assert started.status_code == 202, started.get_json()
        run_id = started.get_json()["id"]

        def done():
            answer = api.client("admin_reconciliation_run").get(
                f"/api/admin/coins/reconciliation/runs/{run_id}", headers={"Authorization": f"Bearer {mint_admin()}"}
            )
            return answer.get_json()["status"] == "done" and answer.get_json()

        final = wait_for(done)
        assert final["ok"] and final["entries"] == 3 and final["steps"] >= 5
    finally:
        chain.stop()
        from coins import clients

        clients._installed_schedulers.pop("reconcile_full_step", None)


def mint_admin():
    from local.tokens import mint

    return mint("rc-admin", admin=True)


def test_what_reconcile_now_finds_is_kept_and_told_as_the_daily_run_s_is(api, db, monkeypatch):
    """Its run moves the checkpoint past what it found: seen by the console alone, a
    problem would be forgotten by the next daily run."""
    monkeypatch.setattr(config, "RECONCILE_LAG_SECONDS", 0)
    touched, _ = burst(api, 2)
    reconciliation.incremental(db)
    assert api.adjust("rc-admin", touched, {"GSC": 1}).status_code == 200
    db.collection("wallets").document(touched).update({"coins": {"GSC": 9}, "balance_dirhams": 9000})
    answer = api.call("admin_reconciliation", uid="rc-admin", admin=True)
    assert answer.status_code == 200 and not answer.get_json()["ok"]
    [kept] = [d.to_dict() for d in db.collection("reconciliation").stream() if "-now-" in d.id]
    assert kept["problem_count"] == 1 and kept["problems"][0]["user_id"] == touched
    told = [d.to_dict() for d in db.collection("outbox").stream() if d.id == f"reconciliation-{kept['day']}"]
    assert told and told[0]["facts"]["problem_count"] == 1
    db.collection("wallets").document(touched).update({"coins": {"GBC": 1, "GSC": 1}, "balance_dirhams": 1500})


def test_a_run_that_finds_the_checkpoint_moved_meanwhile_keeps_nothing_and_asks_to_run_again(api, db, monkeypatch):
    import pytest

    from coins import errors, store

    monkeypatch.setattr(config, "RECONCILE_LAG_SECONDS", 0)
    burst(api, 1)
    reconciliation.incremental(db)
    before = db.get(store.reconciliation_checkpoint(reconciliation.CURRENT))
    stale = {**before, "version": "current-gone"}
    with pytest.raises(errors.Unavailable):
        reconciliation.save_balances(db, reconciliation.CURRENT, {}, watermark=before["watermark"], entries=0, previous=stale)
    assert db.get(store.reconciliation_checkpoint(reconciliation.CURRENT))["version"] == before["version"], "left whole"
    with pytest.raises(errors.Unavailable):
        reconciliation.load_balances(db, "current-gone")  # its shards are gone: never read as empty balances
    assert reconciliation.incremental(db)["ok"]


def test_a_full_replay_that_died_is_abandoned_when_the_next_one_starts(api, db):
    from coins import store

    steps = Steps()
    dead = reconciliation.start_full(db, steps, by="a")
    reconciliation.full_step(db, steps, dead["id"])  # one step: it keeps balances of its own
    assert db.get(store.reconciliation_checkpoint(f"run-{dead['id']}")) is not None
    later = ledger.now_utc() + timedelta(seconds=reconciliation.FULL_STEP_STALE_SECONDS + 60)
    started = reconciliation.start_full(db, steps, by="b", now=later)
    assert db.get(store.reconciliation_run(dead["id"]))["status"] == "abandoned"
    assert db.get(store.reconciliation_checkpoint(f"run-{dead['id']}")) is None, "what it kept is deleted"
    assert started["id"] != dead["id"] and started["status"] == "running"
