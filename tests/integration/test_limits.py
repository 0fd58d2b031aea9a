"""Velocity limits, at and around each boundary, and at the boundary under concurrency:
exactly the allowed number succeed; a refused or failed request does not count; a
replay does not count twice; an admin lifts a user's limits for a while (audited)."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from coins import catalog, errors, limits, store
from local.tokens import mint
from tests import factories
from tests.money import fresh_id

QAR = catalog.DIRHAMS_PER_QAR


def buy(api, uid, key=None, pack="starter"):
    return api.call("coins_purchase_create", "POST", uid=uid, key=key or fresh_id("k"), body={"pack_id": pack})


def refused_by_limit(response, limit):
    assert response.status_code == 429, response.get_json()
    error = response.get_json()["error"]
    assert (error["code"], error["details"]["limit"]) == ("rate_limited", limit)
    assert int(response.headers["Retry-After"]) == error["details"]["retry_after_seconds"] > 0
    return error["details"]


def test_the_eleventh_purchase_in_a_day_is_429_until_the_first_leaves_the_window(api, db, fatora):
    alice = fresh_id()
    started = time.monotonic()
    for _ in range(10):
        assert buy(api, alice).status_code == 201
    details = refused_by_limit(buy(api, alice), "purchase")
    assert (details["count_max"], details["used_count"]) == (10, 10)
    # The first purchase leaves the window 24 h after it was made, however long the rest took.
    assert 24 * 3600 - (time.monotonic() - started) - 2 <= details["retry_after_seconds"] <= 24 * 3600
    assert len(db.get(store.limits(alice))["purchase"]) == 10, "the refused request is not counted"


def test_the_amount_limit_binds_before_the_count(api, db, fatora, monkeypatch):
    monkeypatch.setenv("LIMIT_PURCHASE_DIRHAMS_PER_DAY", str(1_100 * QAR))  # the elite pack costs 550 QAR
    alice = fresh_id()
    assert buy(api, alice, pack="elite").status_code == 201
    assert buy(api, alice, pack="elite").status_code == 201  # exactly at the limit
    details = refused_by_limit(buy(api, alice, pack="starter"), "purchase")
    assert (details["used_dirhams"], details["amount_max_dirhams"]) == (110_000, 110_000)


def test_a_purchase_whose_checkout_failed_does_not_count(api, db, fatora, monkeypatch):
    monkeypatch.setenv("LIMIT_PURCHASES_PER_DAY", "1")
    alice = fresh_id()
    fatora.faults.fail_next_calls = 1
    assert buy(api, alice).status_code == 502
    assert db.get(store.limits(alice))["purchase"] == []
    assert buy(api, alice).status_code == 201


def test_a_replayed_request_does_not_count_twice(api, db, fatora, monkeypatch):
    monkeypatch.setenv("LIMIT_PURCHASES_PER_DAY", "1")
    alice = fresh_id()
    first = buy(api, alice, key="same")
    assert buy(api, alice, key="same").get_json() == first.get_json()
    refused = buy(api, alice, key="other")
    refused_by_limit(refused, "purchase")
    assert buy(api, alice, key="other").get_json() == refused.get_json(), "the refusal is the key's answer"


def test_withdrawals_are_limited_to_three_a_week_and_20000_qar(api, db, monkeypatch):
    alice = factories.wallet(api, {"GRC": 50}, kyc="verified")
    from local.tokens import mint as token

    def withdraw(amount):
        return api.call(
            "coins_withdrawal_create", "POST", uid=alice, key=fresh_id("k"), body={"amount_dirhams": amount, **factories.BANK}
        )

    def reject(withdrawal_id):
        response = api.client("coins_withdrawal_reject").post(
            f"/api/coins/withdrawal/{withdrawal_id}/reject",
            data=json.dumps({"reason": "test"}),
            content_type="application/json",
            headers={"Authorization": f"Bearer {token('lim-admin', admin=True)}", "Idempotency-Key": fresh_id("k")},
        )
        assert response.status_code == 200

    for amount in (5_000 * QAR, 5_000 * QAR):
        reject(withdraw(amount).get_json()["id"])  # one open at a time; a rejected one still counted
    refused_by_limit(withdraw(10_500 * QAR), "withdrawal")  # 20,500 QAR in the week
    reject(withdraw(10_000 * QAR).get_json()["id"])  # exactly 20,000 QAR: allowed
    refused_by_limit(withdraw(500), "withdrawal")  # a fourth in the week
    too_big = api.call(
        "coins_withdrawal_create",
        "POST",
        uid=factories.wallet(api, {"GRC": 50}, kyc="verified"),
        key=fresh_id("k"),
        body={"amount_dirhams": 20_500 * QAR, **factories.BANK},
    )
    assert too_big.status_code == 422, "more than a week allows at all is never retryable"


def test_concurrent_job_payments_at_the_boundary_let_exactly_the_allowed_number_through(api, db, monkeypatch):
    monkeypatch.setenv("LIMIT_JOB_PAYMENTS_PER_DAY", "3")
    client = factories.wallet(api, {"GPC": 6})
    jobs = [factories.job(client, fresh_id("free")) for _ in range(6)]
    from functions_framework import create_app

    barrier = threading.Barrier(6)

    def pay(job_id):
        test_client = create_app(target="coins_job_payment", source=api.source).test_client()
        barrier.wait()
        return test_client.post(
            "/",
            data=json.dumps({"job_id": job_id, "amount_dirhams": 100 * QAR}),
            content_type="application/json",
            headers={"Authorization": f"Bearer {mint(client)}", "Idempotency-Key": fresh_id("k")},
        ).status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(pay, jobs))
    assert sorted(statuses) == [201, 201, 201, 429, 429, 429]
    assert len(db.get(store.limits(client))["job_payment"]) == 3


def test_an_admin_lifts_a_user_s_limits_for_a_while_and_it_is_audited(api, db, fatora, monkeypatch):
    monkeypatch.setenv("LIMIT_PURCHASES_PER_DAY", "1")
    alice = fresh_id()
    assert buy(api, alice).status_code == 201
    refused_by_limit(buy(api, alice), "purchase")
    lifted = api.client("admin_limits_lift").post(
        f"/api/admin/coins/users/{alice}/limits",
        data=json.dumps({"lift_hours": 2, "reason": "verified business buyer"}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {mint('lim-admin', admin=True)}"},
    )
    assert lifted.status_code == 200 and lifted.get_json()["lifted_until"].endswith("Z")
    assert buy(api, alice).status_code == 201
    [trail] = [s.to_dict() for s in db.collection("audit").stream() if s.get("action") == "limits_lifted"]
    assert (trail["actor"], trail["reason"]) == ("lim-admin", "verified business buyer")


@pytest.mark.parametrize("body", [{"lift_hours": 0, "reason": "r"}, {"lift_hours": 721, "reason": "r"}, {"lift_hours": 2}])
def test_a_lift_is_bounded_and_needs_a_reason(api, body):
    response = api.client("admin_limits_lift").post(
        "/api/admin/coins/users/u1/limits",
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {mint('lim-admin', admin=True)}"},
    )
    assert response.status_code == 422


def test_the_window_rolls(monkeypatch):
    """Pure: what was counted leaves the window when its time is up."""
    now = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)
    document = {
        "job_payment": [{"at": now - timedelta(hours=23, minutes=59), "amount_dirhams": 1, "ref": f"r{i}"} for i in range(50)]
    }
    with pytest.raises(errors.RateLimited) as refused:
        limits.admit(document, limits.Kind.JOB_PAYMENT, 1, "new", now)
    assert refused.value.details["retry_after_seconds"] == 60
    assert (
        len(limits.admit(document, limits.Kind.JOB_PAYMENT, 1, "new", now + timedelta(minutes=1, seconds=1))["job_payment"]) == 1
    )
