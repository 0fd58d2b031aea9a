"""Job payments through escrow against the real emulator, milestone by milestone: every
transition of the table with its worked example and its refusals, the fee on whole,
partial and split payments, the review and refund-response windows (Cloud Tasks named
after the escrow's state version, and the sweeper), races that must have exactly one
effect, the lists, and the ledger trigger's effects delivered more than once."""

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from coins import catalog, clients, effects, escrow, ledger, notify, reconciliation, store
from coins.domain import PLATFORM_FEES
from local.tokens import mint
from tests import factories
from tests.conftest import SERVICE_HEADERS
from tests.money import assert_vault_matches_ledger, document_event, fresh_id, snapshot_all

QAR = catalog.DIRHAMS_PER_QAR
ADMIN = "escrow-admin"
FUNCTIONS = {
    "get": ("GET", "coins_escrow_get", ""),
    "submit": ("POST", "coins_escrow_submit", "/submit"),
    "request-changes": ("POST", "coins_escrow_request_changes", "/request-changes"),
    "release": ("POST", "coins_escrow_release", "/release"),
    "request-refund": ("POST", "coins_escrow_request_refund", "/request-refund"),
    "refund": ("POST", "coins_escrow_refund", "/refund"),
    "dispute": ("POST", "coins_escrow_dispute", "/dispute"),
    "resolve": ("POST", "admin_escrow_resolve", "/resolve"),
}
# What each action needs in its body when the test does not say.
BODIES = {
    "request-changes": {"note": "fix the logo"},
    "request-refund": {"reason": "never delivered"},
    "dispute": {"reason": "scope changed"},
    "resolve": {"freelancer_dirhams": 0, "note": "refund"},
}


def fund(api, uid, coins):
    factories.wallet(api, coins, uid=uid)


def job_payment(api, client, freelancer, amount, job=None, key=None, milestone=None):
    """Funds a milestone of a job (made for the pair unless given) for its hired freelancer."""
    job = job or factories.job(client, freelancer)
    body = {
        "job_id": job,
        "freelancer_id": freelancer,
        "amount_dirhams": amount,
        **({"milestone": milestone} if milestone else {}),
    }
    return api.call("coins_job_payment", "POST", uid=client, key=key or fresh_id("k"), body=body)


def act(api, action, escrow_id, uid, admin=False, key=None, body=None):
    method, function, suffix = FUNCTIONS[action]
    base = "/api/admin/coins/escrow/" if action == "resolve" else "/api/coins/escrow/"
    headers = {"Authorization": f"Bearer {mint(uid, admin=admin)}", "Idempotency-Key": key or fresh_id("k")}
    body = body if body is not None else BODIES.get(action)
    return api.client(function).open(
        base + escrow_id + suffix,
        method=method,
        headers=headers,
        data=json.dumps(body) if body is not None else None,
        content_type="application/json",
    )


def ok(response):
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def refused(response, status, code):
    assert (response.status_code, response.get_json()["error"]["code"]) == (status, code), response.get_json()
    return response.get_json()["error"]


def coins_of(db, uid):
    snapshot = db.collection("wallets").document(uid).get()
    return snapshot.get("coins") if snapshot.exists else {}


def value_of(db, uid):
    return catalog.value_dirhams(coins_of(db, uid))


def platform_fees(db):
    return catalog.value_dirhams(reconciliation.replay(db).get(PLATFORM_FEES, {}))


def deliver_outbox(db, task_queue):
    """The outbox trigger, in order: timers (on the local queue), notifications, the job."""
    for snapshot in sorted(db.collection("outbox").stream(), key=lambda s: s.get("at")):
        notify.deliver(db, clients.app_db(), None, task_queue, snapshot.id)


@pytest.fixture
def parties():
    return fresh_id("client"), fresh_id("free")


@pytest.fixture
def funded(api, parties):
    """A 100 QAR milestone paid with one Platinum coin."""
    client, freelancer = parties
    fund(api, client, {"GPC": 1})
    response = job_payment(api, client, freelancer, 100 * QAR)
    assert response.status_code == 201
    return client, freelancer, response.get_json()["id"]


# Worked examples, one per transition.


def test_funding_holds_the_amount_and_nothing_is_paid_or_timed_yet(api, db, funded):
    client, freelancer, escrow_id = funded
    body = ok(act(api, "get", escrow_id, client))
    assert (body["status"], body["milestone"], body["amount_dirhams"], body["held_dirhams"]) == ("funded", "1", 10_000, 10_000)
    assert (body["released_dirhams"], body["refunded_dirhams"], body["fee_dirhams"]) == (0, 0, 0)
    assert (body["coins"], body["review_ends_at"], body["refund_response_ends_at"]) == ({"GPC": 1}, None, None)
    assert coins_of(db, client) == {}


def test_submit_then_release_pays_90_to_the_freelancer_and_10_to_the_platform(api, db, funded):
    client, freelancer, escrow_id = funded
    submitted = ok(act(api, "submit", escrow_id, freelancer, body={"note": "logo attached"}))
    assert (submitted["status"], submitted["submission_note"]) == ("submitted", "logo attached")
    assert submitted["review_ends_at"] is not None
    released = ok(act(api, "release", escrow_id, client))
    assert (released["status"], released["released_dirhams"], released["fee_dirhams"], released["held_dirhams"]) == (
        "released",
        10_000,
        1_000,
        0,
    )
    assert (released["coins"], released["review_ends_at"]) == ({}, None)
    assert value_of(db, freelancer) == 90 * QAR and platform_fees(db) == 10 * QAR


@pytest.mark.parametrize("amount_qar, fee_qar", [(25, 0), (35, 5), (75, 5), (100, 10), (5, 0), (1000, 100)])
def test_the_fee_table_holds_on_a_whole_release(api, db, parties, amount_qar, fee_qar):
    client, freelancer = parties
    fund(api, client, catalog.fewest_coins(amount_qar * QAR))
    escrow_id = job_payment(api, client, freelancer, amount_qar * QAR).get_json()["id"]
    ok(act(api, "release", escrow_id, client))
    assert value_of(db, freelancer) == (amount_qar - fee_qar) * QAR
    assert platform_fees(db) == fee_qar * QAR


def test_a_payment_needing_change_leaves_the_change_with_the_client(api, db, parties):
    client, freelancer = parties
    fund(api, client, {"GRC": 1})
    body = job_payment(api, client, freelancer, 100 * QAR).get_json()
    assert body["coins"] == {"GPC": 1}
    assert coins_of(db, client) == {"GDC": 2}
    entry = [s.to_dict() for s in db.collection("ledger").stream() if s.get("type") == "escrow_lock"][0]
    assert all(p["change"] for p in entry["postings"]), "the treasury made the change"
    assert entry["parties"] == sorted([client, freelancer])


def test_a_partial_release_pays_part_and_keeps_the_rest_funded(api, db, funded):
    client, freelancer, escrow_id = funded
    part = ok(act(api, "release", escrow_id, client, body={"amount_dirhams": 40 * QAR}))
    # 40 QAR: the fee on 40 is 5 (4 rounds to the nearest 5), so 35 to the freelancer.
    assert (part["status"], part["released_dirhams"], part["fee_dirhams"], part["held_dirhams"]) == ("funded", 4_000, 500, 6_000)
    assert catalog.value_dirhams(part["coins"]) == 6_000
    assert value_of(db, freelancer) == 35 * QAR
    rest = ok(act(api, "release", escrow_id, client))
    # The fee is on everything released: 10 on 100, of which 5 were taken already.
    assert (rest["status"], rest["released_dirhams"], rest["fee_dirhams"], rest["held_dirhams"]) == ("released", 10_000, 1_000, 0)
    assert value_of(db, freelancer) == 90 * QAR and platform_fees(db) == 10 * QAR


def test_releasing_in_25_qar_parts_costs_the_same_fee_as_releasing_at_once(api, db, funded):
    """Per payment, 25 QAR would carry no fee at all (2.5 rounds down); on the running
    total the four parts pay 0 + 5 + 0 + 5 = 10, as one release does."""
    client, freelancer, escrow_id = funded
    fees = [ok(act(api, "release", escrow_id, client, body={"amount_dirhams": 25 * QAR}))["fee_dirhams"] for _ in range(4)]
    assert fees == [0, 500, 500, 1_000]
    assert value_of(db, freelancer) == 90 * QAR and platform_fees(db) == 10 * QAR


def test_releasing_more_than_is_held_is_422_and_changes_nothing(api, db, funded):
    client, freelancer, escrow_id = funded
    ok(act(api, "release", escrow_id, client, body={"amount_dirhams": 60 * QAR}))
    before = snapshot_all(db)
    error = refused(act(api, "release", escrow_id, client, body={"amount_dirhams": 45 * QAR}), 422, "validation_failed")
    assert error["details"]["held_dirhams"] == 4_000
    assert {k: v for k, v in snapshot_all(db).items() if not k.startswith("idempotency/")} == {
        k: v for k, v in before.items() if not k.startswith("idempotency/")
    }


@pytest.mark.parametrize("amount", [0, 450, -500, "500", 500.0])
def test_a_release_amount_off_the_grid_is_422(api, db, funded, amount):
    client, freelancer, escrow_id = funded
    refused(act(api, "release", escrow_id, client, body={"amount_dirhams": amount}), 422, "validation_failed")


def test_request_changes_sends_the_work_back_and_stops_the_review_window(api, db, funded):
    client, freelancer, escrow_id = funded
    ok(act(api, "submit", escrow_id, freelancer))
    back = ok(act(api, "request-changes", escrow_id, client, body={"note": "wrong colours"}))
    assert (back["status"], back["changes_note"], back["review_ends_at"]) == ("funded", "wrong colours", None)
    again = ok(act(api, "submit", escrow_id, freelancer, body={"note": "v2"}))
    assert again["status"] == "submitted" and again["changes_note"] is None


def test_a_refund_request_accepted_by_the_freelancer_returns_what_is_held(api, db, funded):
    client, freelancer, escrow_id = funded
    ok(act(api, "release", escrow_id, client, body={"amount_dirhams": 20 * QAR}))
    asked = ok(act(api, "request-refund", escrow_id, client, body={"reason": "stopped replying"}))
    assert (asked["status"], asked["refund_reason"]) == ("refund_requested", "stopped replying")
    assert asked["refund_response_ends_at"] is not None
    done = ok(act(api, "refund", escrow_id, freelancer))
    assert (done["status"], done["refunded_dirhams"], done["released_dirhams"], done["held_dirhams"]) == (
        "refunded",
        8_000,
        2_000,
        0,
    )
    assert value_of(db, client) == 80 * QAR


def test_the_freelancer_may_give_the_money_back_at_any_open_state(api, db, funded):
    client, freelancer, escrow_id = funded
    ok(act(api, "submit", escrow_id, freelancer))
    assert ok(act(api, "refund", escrow_id, freelancer))["status"] == "refunded"
    assert coins_of(db, client) == {"GPC": 1}


def test_declining_a_refund_request_is_a_dispute(api, db, funded):
    client, freelancer, escrow_id = funded
    ok(act(api, "request-refund", escrow_id, client))
    declined = ok(
        act(
            api,
            "dispute",
            escrow_id,
            freelancer,
            body={"reason": "the work was delivered", "evidence_urls": ["https://files.example/proof.png"]},
        )
    )
    assert declined["status"] == "disputed"
    assert declined["dispute"]["declined_refund"] is True
    assert declined["dispute"]["evidence_urls"] == ["https://files.example/proof.png"]
    assert declined["refund_response_ends_at"] is None


@pytest.mark.parametrize(
    "share_qar, status, freelancer_qar, client_qar, fee_qar",
    [(0, "refunded", 0, 100, 0), (100, "released", 90, 0, 10), (60, "split", 55, 40, 5), (5, "split", 5, 95, 0)],
)
def test_an_admin_resolves_a_dispute_with_a_split(api, db, funded, share_qar, status, freelancer_qar, client_qar, fee_qar):
    client, freelancer, escrow_id = funded
    ok(act(api, "dispute", escrow_id, client))
    resolved = ok(
        act(api, "resolve", escrow_id, ADMIN, admin=True, body={"freelancer_dirhams": share_qar * QAR, "note": "half done"})
    )
    assert (resolved["status"], resolved["held_dirhams"], resolved["fee_dirhams"]) == (status, 0, fee_qar * QAR)
    assert resolved["resolution"]["freelancer_dirhams"] == share_qar * QAR
    assert (value_of(db, freelancer), value_of(db, client), platform_fees(db)) == (
        freelancer_qar * QAR,
        client_qar * QAR,
        fee_qar * QAR,
    )
    trail = [s.to_dict() for s in db.collection("audit").stream() if s.get("action") == "escrow_resolve"]
    assert trail[0]["reason"] == "half done" and trail[0]["actor"] == ADMIN


@pytest.mark.parametrize(
    "body",
    [
        {"freelancer_dirhams": 10_500, "note": "x"},
        {"freelancer_dirhams": 450, "note": "x"},
        {"freelancer_dirhams": 500},
        {"freelancer_dirhams": -500, "note": "x"},
    ],
)
def test_a_resolution_off_the_grid_or_above_what_is_held_is_422(api, db, funded, body):
    client, freelancer, escrow_id = funded
    ok(act(api, "dispute", escrow_id, client))
    refused(act(api, "resolve", escrow_id, ADMIN, admin=True, body=body), 422, "validation_failed")
    assert db.get(store.escrow(escrow_id))["status"] == "disputed"


# Refusals.


@pytest.mark.parametrize(
    "path, who, action, expected",
    [
        ([], "client", "submit", (403, "forbidden")),
        ([], "freelancer", "request-changes", (403, "forbidden")),
        ([], "client", "request-changes", (409, "invalid_state")),
        ([], "freelancer", "release", (403, "forbidden")),
        ([], "freelancer", "request-refund", (403, "forbidden")),
        ([], "client", "refund", (403, "forbidden")),
        ([], "client", "resolve", (403, "forbidden")),
        ([], "admin", "resolve", (409, "invalid_state")),
        ([], "admin", "dispute", (403, "forbidden")),
        ([("submit", "freelancer")], "freelancer", "submit", (409, "invalid_state")),
        ([("request-refund", "client")], "client", "request-refund", (409, "invalid_state")),
        ([("request-refund", "client")], "client", "release", (409, "invalid_state")),
        ([("dispute", "client")], "client", "release", (409, "invalid_state")),
        ([("dispute", "client")], "freelancer", "dispute", (409, "invalid_state")),
        ([("dispute", "client")], "client", "request-refund", (409, "invalid_state")),
        ([("release", "client")], "freelancer", "refund", (409, "invalid_state")),
        ([("release", "client")], "admin", "refund", (409, "invalid_state")),
        ([("refund", "freelancer")], "client", "dispute", (409, "invalid_state")),
    ],
)
def test_a_transition_the_table_does_not_allow_is_refused_naming_the_state(api, db, funded, path, who, action, expected):
    client, freelancer, escrow_id = funded
    uids = {"client": client, "freelancer": freelancer, "admin": ADMIN}
    for step, by in path:
        ok(act(api, step, escrow_id, uids[by]))
    before = db.get(store.escrow(escrow_id))
    error = refused(act(api, action, escrow_id, uids[who], admin=who == "admin"), *expected)
    if expected[0] == 409:
        assert error["details"]["status"] == before["status"]
    assert db.get(store.escrow(escrow_id)) == before


def test_a_stranger_learns_nothing_about_an_escrow(api, db, funded):
    client, freelancer, escrow_id = funded
    stranger = fresh_id()
    for action in FUNCTIONS:
        if action != "resolve":
            assert act(api, action, escrow_id, stranger).status_code == 404, action
    assert act(api, "get", escrow_id, ADMIN, admin=True).status_code == 200
    assert act(api, "get", "no-such-escrow", client).status_code == 404


def test_a_finished_escrow_answers_409_and_a_replay_the_first_response(api, db, funded):
    client, freelancer, escrow_id = funded
    first = act(api, "release", escrow_id, client, key="rel-1")
    replay = act(api, "release", escrow_id, client, key="rel-1")
    assert (replay.status_code, replay.get_json()) == (200, first.get_json())
    refused(act(api, "release", escrow_id, client, key="rel-2"), 409, "invalid_state")


def test_insufficient_funds_is_409_with_the_shortfall(api, db, parties):
    client, freelancer = parties
    fund(api, client, {"GPC": 1})
    job = factories.job(client, freelancer)
    before = snapshot_all(db)
    error = refused(job_payment(api, client, freelancer, 150 * QAR, job=job), 409, "insufficient_funds")
    assert error["details"]["shortfall_dirhams"] == 50 * QAR
    assert {k: v for k, v in snapshot_all(db).items() if not k.startswith("idempotency/")} == {
        k: v for k, v in before.items() if not k.startswith("idempotency/")
    }


def test_a_client_who_hired_itself_cannot_pay_itself(api, db):
    client = fresh_id()
    fund(api, client, {"GPC": 1})
    refused(job_payment(api, client, client, 100 * QAR), 409, "invalid_state")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"job_id": "j", "amount_dirhams": 450}, "amount_dirhams"),
        ({"job_id": "j", "amount_dirhams": 0}, "amount_dirhams"),
        ({"job_id": "j", "amount_dirhams": -500}, "amount_dirhams"),
        ({"job_id": "j"}, "amount_dirhams"),
        ({"job_id": "j/x", "amount_dirhams": 500}, "job_id"),
        ({"job_id": "j", "amount_dirhams": 500, "milestone": ""}, "milestone"),
        ({"job_id": "j", "amount_dirhams": 500, "milestone": "x" * 65}, "milestone"),
        ({"job_id": "j", "amount_dirhams": 500, "milestone": "a\nb"}, "milestone"),
        ({"job_id": "j", "amount_dirhams": 500, "tip": 1}, "tip"),
    ],
)
def test_bad_job_payments_are_422(api, db, body, field):
    response = api.call("coins_job_payment", "POST", uid=fresh_id(), key="k", body=body)
    assert response.status_code == 422
    assert field in [f["field"] for f in response.get_json()["error"]["details"]["fields"]]
    assert snapshot_all(db) == {}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"reason": ""},
        {"reason": "x" * 1001},
        {"reason": 5},
        {"reason": "r", "evidence_urls": ["http://plain.example/a"]},
        {"reason": "r", "evidence_urls": ["https://a.example/x"] * 11},
        {"reason": "r", "evidence_urls": ["javascript:alert(1)"]},
        {"reason": "r", "evidence_urls": "https://a.example/x"},
    ],
)
def test_a_dispute_needs_a_reason_and_at_most_ten_https_links(api, db, funded, body):
    client, freelancer, escrow_id = funded
    refused(act(api, "dispute", escrow_id, client, body=body), 422, "validation_failed")


# Milestones.


def test_a_job_has_one_open_escrow_per_milestone_and_may_fund_several(api, db, parties):
    client, freelancer = parties
    fund(api, client, {"GPC": 3})
    job = factories.job(client, freelancer)
    first = job_payment(api, client, freelancer, 100 * QAR, job=job).get_json()
    refused(job_payment(api, client, freelancer, 100 * QAR, job=job, milestone="1"), 409, "invalid_state")
    second = job_payment(api, client, freelancer, 100 * QAR, job=job, milestone="Final delivery").get_json()
    assert (first["milestone"], second["milestone"]) == ("1", "Final delivery")
    ok(act(api, "release", first["id"], client))
    again = job_payment(api, client, freelancer, 100 * QAR, job=job, milestone="1")
    assert again.status_code == 201, "a finished milestone can be funded anew"
    assert coins_of(db, client) == {}


# Timers.


def test_submitting_schedules_the_review_timer_named_after_the_state_version(api, db, funded, task_queue):
    client, freelancer, escrow_id = funded
    deliver_outbox(db, task_queue)
    assert not [t for t in task_queue.pending() if t.startswith(escrow_id)], "nothing is timed at funding"
    ok(act(api, "submit", escrow_id, freelancer))
    deliver_outbox(db, task_queue)
    assert f"{escrow_id}-v2" in task_queue.pending()
    ok(act(api, "request-changes", escrow_id, client))
    deliver_outbox(db, task_queue)
    assert f"{escrow_id}-v2" not in task_queue.pending(), "requesting changes cancels it"
    ok(act(api, "submit", escrow_id, freelancer))
    deliver_outbox(db, task_queue)
    assert f"{escrow_id}-v4" in task_queue.pending()


def test_when_the_review_window_ends_what_is_held_is_released(api, db, funded):
    client, freelancer, escrow_id = funded
    ok(act(api, "release", escrow_id, client, body={"amount_dirhams": 20 * QAR}))
    ok(act(api, "submit", escrow_id, freelancer))
    version = db.get(store.escrow(escrow_id))["version"]
    later = ledger.now_utc() + timedelta(days=4)
    assert escrow.when_window_ends(db, escrow_id, version) == "skipped: not due"
    assert escrow.when_window_ends(db, escrow_id, version, now=later) == "released"
    assert escrow.when_window_ends(db, escrow_id, version, now=later) == "skipped: released"
    assert value_of(db, freelancer) == 90 * QAR


def test_when_the_refund_response_window_ends_what_is_held_goes_back(api, db, funded):
    client, freelancer, escrow_id = funded
    ok(act(api, "request-refund", escrow_id, client))
    version = db.get(store.escrow(escrow_id))["version"]
    assert escrow.when_window_ends(db, escrow_id, version, now=ledger.now_utc() + timedelta(days=4)) == "refunded"
    assert coins_of(db, client) == {"GPC": 1}


def test_a_late_task_for_an_earlier_submission_does_nothing(api, db, funded):
    client, freelancer, escrow_id = funded
    ok(act(api, "submit", escrow_id, freelancer))
    ok(act(api, "request-changes", escrow_id, client))
    ok(act(api, "submit", escrow_id, freelancer))
    later = ledger.now_utc() + timedelta(days=4)
    assert escrow.when_window_ends(db, escrow_id, 2, now=later) == "skipped: superseded"
    assert db.get(store.escrow(escrow_id))["status"] == "submitted"


def test_nothing_moves_merely_because_time_passed_since_funding(api, db, funded):
    client, freelancer, escrow_id = funded
    later = ledger.now_utc() + timedelta(days=30)
    assert escrow.when_window_ends(db, escrow_id, 1, now=later) == "skipped: funded"
    assert escrow.sweep(db, now=later) == {}
    assert db.get(store.escrow(escrow_id))["status"] == "funded"


def test_the_timer_target_over_http_acts_once_however_often_it_is_delivered(api, db, funded, monkeypatch):
    client, freelancer, escrow_id = funded
    monkeypatch.setenv("ESCROW_REVIEW_WINDOW_SECONDS", "0")  # the window ends as soon as it starts
    ok(act(api, "submit", escrow_id, freelancer))
    body = {"escrow_id": escrow_id, "version": 2}
    outcomes = [api.call("escrow_timer", "POST", headers=SERVICE_HEADERS, body=body).get_json()["outcome"] for _ in range(5)]
    assert outcomes == ["released"] + ["skipped: released"] * 4
    unknown = api.call("escrow_timer", "POST", headers=SERVICE_HEADERS, body={"escrow_id": "gone", "version": 1})
    assert unknown.get_json() == {"outcome": "skipped: unknown escrow"}
    assert value_of(db, freelancer) == 90 * QAR


@pytest.mark.parametrize("headers", [{}, {"X-Local-Service-Secret": "guess"}, {"Authorization": "Bearer x"}])
def test_the_timer_target_refuses_callers_without_the_tasks_credentials(api, db, funded, headers, monkeypatch):
    client, freelancer, escrow_id = funded
    monkeypatch.setenv("ESCROW_REVIEW_WINDOW_SECONDS", "0")
    ok(act(api, "submit", escrow_id, freelancer))
    body = {"escrow_id": escrow_id, "version": 2}
    assert api.call("escrow_timer", "POST", headers=headers, body=body).status_code == 401
    assert api.call("escrow_timer", "POST", uid=client, body=body).status_code == 401
    assert db.get(store.escrow(escrow_id))["status"] == "submitted"


def test_the_sweeper_ends_both_windows_when_their_tasks_were_lost(api, db, parties, monkeypatch):
    client, freelancer = parties
    fund(api, client, {"GPC": 3})
    reviewed, asked, untouched = (job_payment(api, client, freelancer, 100 * QAR).get_json()["id"] for _ in range(3))
    monkeypatch.setenv("ESCROW_REVIEW_WINDOW_SECONDS", "0")
    monkeypatch.setenv("ESCROW_REFUND_RESPONSE_SECONDS", "0")
    ok(act(api, "submit", reviewed, freelancer))
    ok(act(api, "request-refund", asked, client))
    swept = api.call("escrows_sweep", "POST", headers=SERVICE_HEADERS)
    assert (swept.status_code, swept.get_json()) == (200, {"released": 1, "refunded": 1})
    assert [db.get(store.escrow(i))["status"] for i in (reviewed, asked, untouched)] == ["released", "refunded", "funded"]
    assert api.call("escrows_sweep", "POST", headers=SERVICE_HEADERS).get_json() == {}


# Races: exactly one wins, nothing is lost.


def post_at_once(api, escrow_id, calls):
    """Each (action, uid, body) from its own thread and test client, released together."""
    from functions_framework import create_app

    barrier = threading.Barrier(len(calls))

    def run(call):
        action, uid, body = call
        method, function, suffix = FUNCTIONS[action]
        client_ = create_app(target=function, source=api.source).test_client()
        headers = {"Authorization": f"Bearer {mint(uid)}", "Idempotency-Key": fresh_id("k")}
        barrier.wait()
        return client_.post(
            f"/{escrow_id}", headers=headers, data=json.dumps(body or {}), content_type="application/json"
        ).status_code

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_a_client_approving_while_the_freelancer_refunds_has_exactly_one_effect(api, db, funded):
    client, freelancer, escrow_id = funded
    ok(act(api, "submit", escrow_id, freelancer))
    statuses = post_at_once(api, escrow_id, [("release", client, None), ("refund", freelancer, None)])
    assert sorted(statuses) == [200, 409]
    status = db.get(store.escrow(escrow_id))["status"]
    entries = [s.get("type") for s in db.collection("ledger").stream() if s.get("refs").get("escrow_id") == escrow_id]
    assert sorted(entries) == sorted(["escrow_lock", "escrow_release" if status == "released" else "escrow_refund"])


def test_two_partial_releases_at_once_are_applied_one_after_the_other(api, db, funded):
    client, freelancer, escrow_id = funded
    statuses = post_at_once(api, escrow_id, [("release", client, {"amount_dirhams": 40 * QAR})] * 2)
    assert statuses == [200, 200]
    state = db.get(store.escrow(escrow_id))
    assert (state["released_dirhams"], state["fee_dirhams"], state["status"]) == (8_000, 1_000, "funded")
    assert value_of(db, freelancer) == 70 * QAR


def test_two_partial_releases_at_once_that_together_exceed_the_escrow_pay_only_one(api, db, funded):
    client, freelancer, escrow_id = funded
    statuses = post_at_once(api, escrow_id, [("release", client, {"amount_dirhams": 60 * QAR})] * 2)
    assert sorted(statuses) == [200, 422]
    assert db.get(store.escrow(escrow_id))["released_dirhams"] == 6_000


def test_a_timer_firing_while_a_dispute_is_opened_lets_exactly_one_win(api, db, funded, monkeypatch):
    client, freelancer, escrow_id = funded
    monkeypatch.setenv("ESCROW_REVIEW_WINDOW_SECONDS", "0")
    ok(act(api, "submit", escrow_id, freelancer))
    barrier = threading.Barrier(2)

    def timer():
        barrier.wait()
        return escrow.when_window_ends(db, escrow_id, 2)

    def dispute():
        barrier.wait()
        return act(api, "dispute", escrow_id, client).status_code

    with ThreadPoolExecutor(2) as pool:
        fired, disputed = pool.submit(timer), pool.submit(dispute)
        outcome, status = fired.result(), disputed.result()
    final = db.get(store.escrow(escrow_id))["status"]
    assert (outcome, status, final) in {
        ("released", 409, "released"),
        ("skipped: disputed", 200, "disputed"),
        ("skipped: superseded", 200, "disputed"),
    }


# Lists.


def test_a_user_lists_their_escrows_as_client_or_freelancer_newest_first(api, db, parties):
    client, freelancer = parties
    fund(api, client, {"GPC": 3})
    job = factories.job(client, freelancer)
    ids = [job_payment(api, client, freelancer, 100 * QAR, job=job, milestone=m).get_json()["id"] for m in ("1", "2")]
    other = job_payment(api, client, freelancer, 100 * QAR).get_json()["id"]
    ok(act(api, "submit", ids[0], freelancer))

    def listed(uid, **query):
        response = api.call("coins_escrows_list", uid=uid, query=query)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    assert [e["id"] for e in listed(client)["items"]] == [other, ids[1], ids[0]]
    assert [e["id"] for e in listed(freelancer, role="freelancer")["items"]] == [other, ids[1], ids[0]]
    assert listed(freelancer, role="client")["items"] == []
    assert [e["id"] for e in listed(client, job_id=job)["items"]] == [ids[1], ids[0]]
    assert [e["id"] for e in listed(client, status="submitted")["items"]] == [ids[0]]
    page = listed(client, limit=2)
    assert len(page["items"]) == 2 and page["next_cursor"]
    assert [e["id"] for e in listed(client, limit=2, cursor=page["next_cursor"])["items"]] == [ids[0]]
    assert listed(fresh_id())["items"] == []
    stranger_cursor = api.call("coins_escrows_list", uid=fresh_id(), query={"cursor": page["next_cursor"]})
    assert stranger_cursor.status_code == 422
    assert api.call("coins_escrows_list", uid=client, query={"role": "boss"}).status_code == 422


def test_admins_see_disputes_oldest_first_with_both_sides(api, db, parties):
    client, freelancer = parties
    fund(api, client, {"GPC": 2})
    first, second = (job_payment(api, client, freelancer, 100 * QAR).get_json()["id"] for _ in range(2))
    ok(act(api, "dispute", second, client, body={"reason": "late", "evidence_urls": ["https://x.example/chat.png"]}))
    ok(act(api, "request-refund", first, client, body={"reason": "not what I asked"}))
    ok(act(api, "dispute", first, freelancer, body={"reason": "it is what was asked"}))
    response = api.call("admin_disputes_list", uid=ADMIN, admin=True)
    items = response.get_json()["items"]
    assert [i["id"] for i in items] == [second, first]
    assert items[0]["dispute"]["evidence_urls"] == ["https://x.example/chat.png"]
    assert (items[1]["refund_reason"], items[1]["dispute"]["reason"]) == ("not what I asked", "it is what was asked")
    assert api.call("admin_disputes_list", uid=client).status_code == 403


# The ledger trigger.


def deliver(api, entry_id):
    headers, body = document_event("ledger", entry_id)
    return api.client("ledger_on_create").post("/", headers=headers, data=body)


def test_the_same_ledger_event_delivered_twice_applies_its_effects_once(api, db, funded):
    client, freelancer, escrow_id = funded
    ok(act(api, "release", escrow_id, client))
    entries = sorted(db.collection("ledger").stream(), key=lambda s: s.get("created_at"))
    for snapshot in entries:
        assert deliver(api, snapshot.id).status_code == 200
        assert deliver(api, snapshot.id).status_code == 200
    stats = db.collection("wallets").document(freelancer).get().get("stats")
    assert stats == {"escrow_release": {"count": 1, "amount_dirhams": 9000}}
    vault = effects.read_vault(db)
    assert vault["entries"] == {"admin_adjust": 1, "escrow_lock": 1, "escrow_release": 1}
    assert catalog.value_dirhams(vault["balances"]["platform_fees"]) == platform_fees(db)
    # Summed over every day the entries fall on: a run may straddle midnight UTC.
    days = {snapshot.get("created_at").strftime("%Y-%m-%d") for snapshot in entries}
    by_day = [Counter(effects.read_vault(db, day)["entries"]) for day in days]
    assert sum(by_day, Counter()) == vault["entries"]
    assert_vault_matches_ledger(db)


def test_a_malformed_event_is_dropped_with_an_error_log(api, capsys):
    response = api.client("ledger_on_create").post("/", headers=document_event("ledger", "x")[0], data=b"\xff\x00garbage")
    assert response.status_code == 200
    assert "ledger trigger got an event it cannot read" in capsys.readouterr().out


def test_many_entries_update_the_sharded_vault_concurrently_without_losing_any(api, db):
    uids = [fresh_id() for _ in range(32)]
    for uid in uids:
        fund(api, uid, {"GBC": 1})
    entry_ids = [s.id for s in db.collection("ledger").stream()]
    with ThreadPoolExecutor(16) as pool:
        applied = list(pool.map(lambda entry_id: effects.apply(db, entry_id), entry_ids))
    assert applied == [True] * 32
    vault = effects.read_vault(db)
    assert vault["balances"]["users"] == {"GBC": 32}
    assert vault["entries"] == {"admin_adjust": 32}
    assert_vault_matches_ledger(db)
