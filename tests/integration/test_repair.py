"""The scheduled repair: every ledger entry's effects and every outbox event's deliveries
happen even if no trigger ever fires for them (in this tier none does: the emulator runs
without a functions endpoint, so every event is lost), exactly once in effect, in
bounded runs; what it cannot apply keeps its reason, and reconciliation names it once it
has stalled."""

from datetime import timedelta

import pytest

from coins import clients, effects, ledger, notify, reconciliation, repair, store
from tests import factories
from tests.conftest import SERVICE_HEADERS
from tests.money import assert_vault_matches_ledger

AGE = timedelta(seconds=601)  # past the default repair age of 600 s


@pytest.fixture(autouse=True)
def _timers(task_queue):
    """Escrow events start and stop timers: the local queue stands in for Cloud Tasks."""


def run(db, *, after=AGE, scheduler_factory=clients.scheduler, batch=repair.config.REPAIR_BATCH_MAX):
    return repair.run(db, clients.app_db(), clients.push, scheduler_factory, now=ledger.now_utc() + after, batch=batch)


def notifications_of(uid):
    from google.cloud.firestore import FieldFilter

    query = clients.app_db().client.collection("notifications").where(filter=FieldFilter("userId", "==", uid))
    return [snapshot.id for snapshot in query.stream()]


def test_what_no_trigger_did_is_repaired_once_it_is_older_than_the_repair_age(api, db, expo):
    client = factories.wallet(api, {"GPC": 2})
    funded = factories.escrow(api, client)
    before = reconciliation.run(db)
    assert before["pending_effects"]["count"] == 2 and before["pending_outbox"]["count"] == 2
    assert before["ok"], "young and pending is no problem"

    assert run(db, after=timedelta(seconds=0)) == {
        "effects": {"repaired": 0, "failed": 0},
        "outbox": {"repaired": 0, "failed": 0},
    }, "younger: the trigger's"
    assert run(db) == {"effects": {"repaired": 2, "failed": 0}, "outbox": {"repaired": 2, "failed": 0}}

    assert_vault_matches_ledger(db)
    assert db.get(store.wallet(client))["stats"]["escrow_lock"]["count"] == 1
    assert len(notifications_of(funded["freelancer_id"])) == 1
    job = clients.app_db().client.collection("jobs").document(funded["job_id"]).get().to_dict()
    assert job["escrowId"] == funded["id"], "the funded escrow is on the app's job"
    after = reconciliation.run(db)
    assert after["ok"], after["problems"]
    assert after["pending_effects"] == {"count": 0, "oldest_age_seconds": 0.0}
    assert after["pending_outbox"] == {"count": 0, "oldest_age_seconds": 0.0}


def test_a_second_run_and_a_late_trigger_change_nothing(api, db, expo):
    client = factories.wallet(api, {"GPC": 1})
    funded = factories.escrow(api, client)
    run(db)
    vault, pushed = effects.read_vault(db), len(expo.sent)
    assert run(db) == {"effects": {"repaired": 0, "failed": 0}, "outbox": {"repaired": 0, "failed": 0}}
    for snapshot in db.collection("ledger").stream():
        assert effects.apply(db, snapshot.id) is False, "the trigger, late: applied already"
    for snapshot in db.collection("outbox").stream():
        assert notify.deliver(db, clients.app_db(), clients.push(), clients.scheduler(), snapshot.id) is False
    assert effects.read_vault(db) == vault
    assert len(expo.sent) == pushed
    assert len(notifications_of(funded["freelancer_id"])) == 1


def test_a_run_is_bounded_and_the_next_one_goes_on(api, db):
    for _ in range(5):
        factories.wallet(api, {"GBC": 1})
    assert run(db, batch=3)["effects"] == {"repaired": 3, "failed": 0}
    assert reconciliation.run(db)["pending_effects"]["count"] == 2
    assert run(db, batch=3)["effects"] == {"repaired": 2, "failed": 0}
    assert reconciliation.run(db)["pending_effects"]["count"] == 0


def test_what_the_repair_cannot_deliver_keeps_its_reason_and_is_a_problem_once_stalled(api, db, expo):
    client = factories.wallet(api, {"GPC": 1})
    funded = factories.escrow(api, client)
    submitted = factories._at(
        api, "coins_escrow_submit", "POST", f"/api/coins/escrow/{funded['id']}/submit", funded["freelancer_id"], {}
    )
    assert submitted.status_code == 200, submitted.get_json()

    class TasksDown:
        def schedule(self, *args):
            raise ConnectionError("Cloud Tasks is unreachable")

        def cancel(self, *args):
            raise ConnectionError("Cloud Tasks is unreachable")

    report = run(db, scheduler_factory=TasksDown)
    assert report["outbox"] == {"repaired": 2, "failed": 1}, "the submission's timer could not be set"
    limit = reconciliation.stall_limit_seconds(600)
    stalled = reconciliation.run(db, now=ledger.now_utc() + timedelta(seconds=limit + 1))
    assert [p["kind"] for p in stalled["problems"]] == ["outbox_stalled"]
    assert stalled["problems"][0]["pending"] == 1
    assert stalled["problems"][0]["reasons"] == [
        {"id": stalled["problems"][0]["reasons"][0]["id"], "reason": "ConnectionError: Cloud Tasks is unreachable"}
    ]

    assert run(db)["outbox"] == {"repaired": 1, "failed": 0}, "the next run, with Cloud Tasks back"
    assert reconciliation.run(db, now=ledger.now_utc() + timedelta(seconds=limit + 1))["ok"]


def test_what_the_repair_never_reached_is_a_problem_with_that_reason(api, db):
    factories.wallet(api, {"GBC": 1})
    limit = reconciliation.stall_limit_seconds(600)
    report = reconciliation.run(db, now=ledger.now_utc() + timedelta(seconds=limit + 1))
    assert sorted(p["kind"] for p in report["problems"]) == ["effects_stalled", "outbox_stalled"]
    for problem in report["problems"]:
        assert problem["reasons"][0]["reason"] == "the repair has not tried it: is the repair job running?"
    run(db)


def test_the_scheduler_runs_it_over_http_with_the_ages_from_the_environment(api, db, monkeypatch):
    factories.wallet(api, {"GBC": 1})
    assert api.call("coins_repair", "POST").status_code == 401, "Cloud Scheduler's token only"
    monkeypatch.setenv("EFFECTS_REPAIR_AFTER_SECONDS", "0")
    monkeypatch.setenv("OUTBOX_REPAIR_AFTER_SECONDS", "3600")
    response = api.call("coins_repair", "POST", headers=SERVICE_HEADERS)
    assert response.status_code == 200
    assert response.get_json() == {"effects": {"repaired": 1, "failed": 0}, "outbox": {"repaired": 0, "failed": 0}}
    run(db)
