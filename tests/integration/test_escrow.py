"""Job payments through escrow against the real emulator: lock with change, release
90/10 without losing a coin, refund, dispute, races, auto-release by task and sweeper,
and the ledger trigger's effects delivered more than once."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from coins import catalog, effects, escrow, ledger, reconciliation
from coins.domain import PLATFORM_FEES
from tests.conftest import SERVICE_HEADERS
from tests import factories
from tests.money import assert_vault_matches_ledger, document_event, fresh_id, snapshot_all

QAR = 100
ADMIN = "escrow-admin"


def fund(api, uid, coins):
    factories.wallet(api, coins, uid=uid)


def job_payment(api, client, freelancer, amount, job=None, key=None):
    """Pays a job (made for the pair unless given) to its hired freelancer."""
    job = job or factories.job(client, freelancer)
    body = {"job_id": job, "freelancer_id": freelancer, "amount_dirhams": amount}
    return api.call("coins_job_payment", "POST", uid=client, key=key or fresh_id("k"), body=body)


def act(api, action, escrow_id, uid, admin=False, key=None, body=None):
    function = {"get": "coins_escrow_get", "release": "coins_escrow_release", "refund": "coins_escrow_refund",
                "dispute": "coins_escrow_dispute"}[action]
    path = f"/api/coins/escrow/{escrow_id}" + ("" if action == "get" else f"/{action}")
    from local.tokens import mint

    headers = {"Authorization": f"Bearer {mint(uid, admin=admin)}", "Idempotency-Key": key or fresh_id("k")}
    import json

    return api.client(function).open(
        path, method="GET" if action == "get" else "POST", headers=headers,
        data=json.dumps(body) if body is not None else None, content_type="application/json",
    )


def coins_of(db, uid):
    snapshot = db.collection("wallets").document(uid).get()
    return snapshot.get("coins") if snapshot.exists else {}


def platform_fees(db):
    return reconciliation.replay(db).get(PLATFORM_FEES, {})


@pytest.fixture
def parties():
    return fresh_id("client"), fresh_id("free")


# Worked examples.


def test_a_100_qar_job_paid_with_one_platinum_coin_releases_90_to_the_freelancer_and_10_to_the_platform(api, db, parties):
    client, freelancer = parties
    fund(api, client, {"GPC": 1})
    locked = job_payment(api, client, freelancer, 100 * QAR)
    assert locked.status_code == 201
    body = locked.get_json()
    assert (body["status"], body["amount_dirhams"], body["fee_dirhams"], body["coins"]) == ("locked", 10_000, 1_000, {"GPC": 1})
    assert (body["client_id"], body["freelancer_id"]) == (client, freelancer)
    assert coins_of(db, client) == {}

    released = act(api, "release", body["id"], client)
    assert released.status_code == 200 and released.get_json()["status"] == "released"
    freelancer_coins = coins_of(db, freelancer)
    assert catalog.value_dirhams(freelancer_coins) == 90 * QAR
    assert catalog.value_dirhams(platform_fees(db)) == 10 * QAR
    assert db.collection("escrows").document(body["id"]).get().get("coins") == {}


@pytest.mark.parametrize("amount_qar, fee_qar", [(25, 0), (35, 5), (75, 5), (100, 10), (5, 0), (1000, 100)])
def test_the_fee_table_holds_on_release(api, db, parties, amount_qar, fee_qar):
    client, freelancer = parties
    fund(api, client, catalog.fewest_coins(amount_qar * QAR))
    escrow_id = job_payment(api, client, freelancer, amount_qar * QAR).get_json()["id"]
    assert act(api, "release", escrow_id, client).status_code == 200
    assert catalog.value_dirhams(coins_of(db, freelancer)) == (amount_qar - fee_qar) * QAR
    assert catalog.value_dirhams(platform_fees(db)) == fee_qar * QAR


def test_a_payment_needing_change_leaves_the_change_with_the_client(api, db, parties):
    client, freelancer = parties
    fund(api, client, {"GRC": 1})
    body = job_payment(api, client, freelancer, 100 * QAR).get_json()
    assert body["coins"] == {"GPC": 1}
    assert coins_of(db, client) == {"GDC": 2}
    entry = [s.to_dict() for s in db.collection("ledger").stream() if s.get("type") == "escrow_lock"][0]
    assert all(p["change"] for p in entry["postings"]), "the treasury made the change"
    assert entry["parties"] == sorted([client, freelancer])


def test_a_refund_returns_everything_to_the_client(api, db, parties):
    client, freelancer = parties
    fund(api, client, {"GGC": 3})
    escrow_id = job_payment(api, client, freelancer, 150 * QAR).get_json()["id"]
    refunded = act(api, "refund", escrow_id, freelancer)
    assert refunded.status_code == 200 and refunded.get_json()["status"] == "refunded"
    assert coins_of(db, client) == {"GGC": 3}
    assert coins_of(db, freelancer) == {}


# Refusals.


def test_insufficient_funds_is_409_with_the_shortfall(api, db, parties):
    client, freelancer = parties
    fund(api, client, {"GPC": 1})
    job = factories.job(client, freelancer)
    before = snapshot_all(db)
    response = job_payment(api, client, freelancer, 150 * QAR, job=job)
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "insufficient_funds" and error["details"]["shortfall_dirhams"] == 50 * QAR
    assert {k: v for k, v in snapshot_all(db).items() if not k.startswith("idempotency/")} == {
        k: v for k, v in before.items() if not k.startswith("idempotency/")
    }


def test_one_escrow_per_job(api, db, parties):
    client, freelancer = parties
    fund(api, client, {"GPC": 2})
    job = factories.job(client, freelancer)
    assert job_payment(api, client, freelancer, 100 * QAR, job=job).status_code == 201
    second = job_payment(api, client, freelancer, 100 * QAR, job=job)
    assert second.status_code == 409 and second.get_json()["error"]["code"] == "invalid_state"
    assert coins_of(db, client) == {"GPC": 1}


def test_a_client_who_hired_itself_cannot_pay_itself(api, db):
    client = fresh_id()
    fund(api, client, {"GPC": 1})
    response = job_payment(api, client, client, 100 * QAR)
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "invalid_state"


@pytest.mark.parametrize(
    "body, field",
    [({"job_id": "j", "freelancer_id": "f", "amount_dirhams": 450}, "amount_dirhams"),
     ({"job_id": "j", "freelancer_id": "f", "amount_dirhams": 0}, "amount_dirhams"),
     ({"job_id": "j", "freelancer_id": "f", "amount_dirhams": -500}, "amount_dirhams"),
     ({"job_id": "j", "freelancer_id": "f"}, "amount_dirhams"),
     ({"job_id": "j/x", "freelancer_id": "f", "amount_dirhams": 500}, "job_id"),
     ({"job_id": "j", "freelancer_id": "f", "amount_dirhams": 500, "tip": 1}, "tip")],
)
def test_bad_job_payments_are_422(api, db, body, field):
    response = api.call("coins_job_payment", "POST", uid=fresh_id(), key="k", body=body)
    assert response.status_code == 422
    assert field in [f["field"] for f in response.get_json()["error"]["details"]["fields"]]
    assert snapshot_all(db) == {}


def test_who_may_do_what_to_an_escrow(api, db, parties):
    client, freelancer = parties
    stranger = fresh_id()
    fund(api, client, {"GPC": 1})
    escrow_id = job_payment(api, client, freelancer, 100 * QAR).get_json()["id"]
    for action in ("get", "release", "refund", "dispute"):
        response = act(api, action, escrow_id, stranger, body={"reason": "x"} if action == "dispute" else None)
        assert response.status_code == 404, action
    assert act(api, "release", escrow_id, freelancer).status_code == 403
    assert act(api, "refund", escrow_id, client).status_code == 403
    assert act(api, "get", escrow_id, client).status_code == 200
    assert act(api, "get", escrow_id, freelancer).status_code == 200
    assert act(api, "get", escrow_id, ADMIN, admin=True).status_code == 200
    assert act(api, "get", "no-such-escrow", client).status_code == 404
    assert db.collection("escrows").document(escrow_id).get().get("status") == "locked"


def test_a_finished_escrow_answers_409_and_a_replay_the_first_response(api, db, parties):
    client, freelancer = parties
    fund(api, client, {"GPC": 1})
    escrow_id = job_payment(api, client, freelancer, 100 * QAR).get_json()["id"]
    first = act(api, "release", escrow_id, client, key="rel-1")
    replay = act(api, "release", escrow_id, client, key="rel-1")
    assert (replay.status_code, replay.get_json()) == (200, first.get_json())
    again = act(api, "release", escrow_id, client, key="rel-2")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "invalid_state"
    assert act(api, "refund", escrow_id, ADMIN, admin=True).status_code == 409


# Races.


def post_at_once(api, escrow_id, calls):
    """Each (action, uid) from its own thread and test client, released together."""
    from functions_framework import create_app
    from local.tokens import mint

    barrier = threading.Barrier(len(calls))

    def run(call):
        action, uid = call
        client_ = create_app(target=f"coins_escrow_{action}", source=api.source).test_client()
        headers = {"Authorization": f"Bearer {mint(uid)}", "Idempotency-Key": fresh_id("k")}
        barrier.wait()
        return client_.post(f"/{escrow_id}", headers=headers).status_code

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_release_racing_refund_has_exactly_one_effect(api, db, parties):
    client, freelancer = parties
    fund(api, client, {"GPC": 1})
    escrow_id = job_payment(api, client, freelancer, 100 * QAR).get_json()["id"]
    statuses = post_at_once(api, escrow_id, [("release", client), ("refund", freelancer)])
    assert sorted(statuses) == [200, 409]
    status = db.collection("escrows").document(escrow_id).get().get("status")
    entries = [s.get("type") for s in db.collection("ledger").stream() if s.get("refs").get("escrow_id") == escrow_id]
    assert sorted(entries) == sorted(["escrow_lock", "escrow_release" if status == "released" else "escrow_refund"])


def test_five_concurrent_releases_of_one_escrow_pay_once(api, db, parties):
    client, freelancer = parties
    fund(api, client, {"GPC": 1})
    escrow_id = job_payment(api, client, freelancer, 100 * QAR).get_json()["id"]
    statuses = post_at_once(api, escrow_id, [("release", client)] * 5)
    assert sorted(statuses) == [200, 409, 409, 409, 409]
    assert catalog.value_dirhams(coins_of(db, freelancer)) == 90 * QAR


# Disputes and automatic release.


def test_a_dispute_stops_auto_release_and_an_admin_resolves_it(api, db, parties):
    client, freelancer = parties
    fund(api, client, {"GPC": 1})
    escrow_id = job_payment(api, client, freelancer, 100 * QAR).get_json()["id"]
    disputed = act(api, "dispute", escrow_id, freelancer, body={"reason": "scope changed"})
    assert disputed.status_code == 200 and disputed.get_json()["dispute_reason"] == "scope changed"
    assert act(api, "dispute", escrow_id, client, body={"reason": "again"}).status_code == 409
    later = ledger.now_utc() + timedelta(days=4)
    assert escrow.auto_release(db, escrow_id, now=later) == "skipped: disputed"
    assert escrow.sweep(db, now=later) == {}
    assert act(api, "release", escrow_id, client).status_code == 409, "only an admin resolves a dispute"
    assert act(api, "refund", escrow_id, freelancer).status_code == 409
    resolved = act(api, "refund", escrow_id, ADMIN, admin=True)
    assert resolved.status_code == 200 and resolved.get_json()["status"] == "refunded"
    assert coins_of(db, client) == {"GPC": 1}


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "x" * 1001}, {"reason": 5}])
def test_a_dispute_needs_a_reason(api, db, parties, body):
    client, freelancer = parties
    fund(api, client, {"GPC": 1})
    escrow_id = job_payment(api, client, freelancer, 100 * QAR).get_json()["id"]
    assert act(api, "dispute", escrow_id, client, body=body).status_code == 422


def test_the_same_task_delivered_five_times_releases_once(api, db, parties, monkeypatch):
    client, freelancer = parties
    fund(api, client, {"GPC": 1})
    monkeypatch.setenv("ESCROW_AUTO_RELEASE_SECONDS", "0")  # due as soon as it is locked
    escrow_id = job_payment(api, client, freelancer, 100 * QAR).get_json()["id"]
    outcomes = [
        api.call("escrow_auto_release", "POST", headers=SERVICE_HEADERS, body={"escrow_id": escrow_id}).get_json()["outcome"]
        for _ in range(5)
    ]
    assert outcomes == ["released"] + ["skipped: released"] * 4
    assert catalog.value_dirhams(coins_of(db, freelancer)) == 90 * QAR


def test_a_task_before_its_time_or_after_a_manual_release_does_nothing(api, db, parties):
    client, freelancer = parties
    fund(api, client, {"GPC": 1})
    escrow_id = job_payment(api, client, freelancer, 100 * QAR).get_json()["id"]
    early = api.call("escrow_auto_release", "POST", headers=SERVICE_HEADERS, body={"escrow_id": escrow_id})
    assert early.get_json() == {"outcome": "skipped: not due"}
    act(api, "release", escrow_id, client)
    late = api.call("escrow_auto_release", "POST", headers=SERVICE_HEADERS, body={"escrow_id": escrow_id})
    assert late.get_json() == {"outcome": "skipped: released"}
    unknown = api.call("escrow_auto_release", "POST", headers=SERVICE_HEADERS, body={"escrow_id": "gone"})
    assert unknown.get_json() == {"outcome": "skipped: unknown escrow"}


@pytest.mark.parametrize("headers", [{}, {"X-Local-Service-Secret": "guess"}, {"Authorization": "Bearer x"}])
def test_the_task_target_refuses_callers_without_the_tasks_credentials(api, db, parties, headers, monkeypatch):
    client, freelancer = parties
    fund(api, client, {"GPC": 1})
    monkeypatch.setenv("ESCROW_AUTO_RELEASE_SECONDS", "0")
    escrow_id = job_payment(api, client, freelancer, 100 * QAR).get_json()["id"]
    response = api.call("escrow_auto_release", "POST", headers=headers, body={"escrow_id": escrow_id})
    assert response.status_code == 401
    user = api.call("escrow_auto_release", "POST", uid=client, body={"escrow_id": escrow_id})
    assert user.status_code == 401
    assert db.collection("escrows").document(escrow_id).get().get("status") == "locked"


def test_the_sweeper_releases_an_overdue_escrow_whose_task_was_lost(api, db, parties, monkeypatch):
    client, freelancer = parties
    fund(api, client, {"GPC": 2})
    job_payment(api, client, freelancer, 100 * QAR)
    monkeypatch.setenv("ESCROW_AUTO_RELEASE_SECONDS", "0")
    overdue = job_payment(api, client, freelancer, 100 * QAR).get_json()["id"]
    swept = api.call("escrows_sweep", "POST", headers=SERVICE_HEADERS)
    assert (swept.status_code, swept.get_json()) == (200, {"released": 1})
    assert db.collection("escrows").document(overdue).get().get("status") == "released"
    assert api.call("escrows_sweep", "POST", headers=SERVICE_HEADERS).get_json() == {}


# The ledger trigger.


def deliver(api, entry_id):
    headers, body = document_event("ledger", entry_id)
    return api.client("ledger_on_create").post("/", headers=headers, data=body)


def test_the_same_ledger_event_delivered_twice_applies_its_effects_once(api, db, parties, task_queue):
    client, freelancer = parties
    fund(api, client, {"GPC": 1})
    escrow_id = job_payment(api, client, freelancer, 100 * QAR).get_json()["id"]
    act(api, "release", escrow_id, client)
    entries = sorted(db.collection("ledger").stream(), key=lambda s: s.get("created_at"))
    for snapshot in entries:
        assert deliver(api, snapshot.id).status_code == 200
        assert deliver(api, snapshot.id).status_code == 200
    stats = db.collection("wallets").document(freelancer).get().get("stats")
    assert stats == {"escrow_release": {"count": 1, "amount_dirhams": 9000}}
    vault = effects.read_vault(db)
    assert vault["entries"] == {"admin_adjust": 1, "escrow_lock": 1, "escrow_release": 1}
    assert vault["balances"]["platform_fees"] == platform_fees(db)
    day = entries[0].get("created_at").strftime("%Y-%m-%d")
    assert effects.read_vault(db, day)["entries"] == vault["entries"]
    assert_vault_matches_ledger(db)
    assert escrow_id not in task_queue.pending(), "the release cancelled the timer"


def test_locking_schedules_the_timer_and_refunding_cancels_it(api, db, parties, task_queue):
    client, freelancer = parties
    fund(api, client, {"GPC": 1})
    escrow_id = job_payment(api, client, freelancer, 100 * QAR).get_json()["id"]
    lock_entry = [s.id for s in db.collection("ledger").stream() if s.get("type") == "escrow_lock"][0]
    deliver(api, lock_entry)
    assert escrow_id in task_queue.pending()
    act(api, "refund", escrow_id, freelancer)
    refund_entry = [s.id for s in db.collection("ledger").stream() if s.get("type") == "escrow_refund"][0]
    deliver(api, refund_entry)
    assert escrow_id not in task_queue.pending()


def test_a_malformed_event_is_dropped_with_an_error_log(api, capsys):
    response = api.client("ledger_on_create").post("/", headers=document_event("ledger", "x")[0], data=b"\xff\x00garbage")
    assert response.status_code == 200
    assert "ledger trigger got an event it cannot read" in capsys.readouterr().out


def test_many_entries_update_the_sharded_vault_concurrently_without_losing_any(api, db, task_queue):
    uids = [fresh_id() for _ in range(32)]
    for uid in uids:
        fund(api, uid, {"GBC": 1})
    entry_ids = [s.id for s in db.collection("ledger").stream()]
    with ThreadPoolExecutor(16) as pool:
        applied = list(pool.map(lambda entry_id: effects.apply(db, task_queue, entry_id), entry_ids))
    assert applied == [True] * 32
    vault = effects.read_vault(db)
    assert vault["balances"]["users"] == {"GBC": 32}
    assert vault["entries"] == {"admin_adjust": 32}
    assert_vault_matches_ledger(db)
