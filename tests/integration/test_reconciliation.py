"""A reconciliation operators can trust: the vault is compared only with what the ledger
trigger has applied, effects still on their way are reported, not alarmed on, unless
they have waited longer than the trigger ever should; a vault edited behind the
trigger's back is a problem."""

import time
from datetime import timedelta

from coins import config, effects, ledger, reconciliation
from tests.money import fresh_id


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
