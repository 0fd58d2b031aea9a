"""Coin purchases against the real emulator and the Fatora sandbox over HTTP: checkout,
signed webhooks delivered by the sandbox to the functions, verify before issuing,
exactly-once issuance, the sweeper, and the failure modes of the gateway."""

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests

from coins import fatora as fatora_module
from coins import ledger, purchases
from coins.fatora import FatoraClient, sign
from tests.conftest import SERVICE_HEADERS
from tests.money import fresh_id, snapshot_all, wait_for

QAR = 100


def create(api, uid, body, key=None, **kwargs):
    return api.call("coins_purchase_create", "POST", uid=uid, key=key or fresh_id("k"), body=body, **kwargs)


def purchase_doc(db, purchase_id):
    return db.collection("purchases").document(purchase_id).get().to_dict()


def coins_of(db, uid):
    snapshot = db.collection("wallets").document(uid).get()
    return snapshot.get("coins") if snapshot.exists else {}


def issue_entries(db, purchase_id):
    return [s for s in db.collection("ledger").stream() if s.get("refs").get("purchase_id") == purchase_id]


def pay_on_the_hosted_page(checkout_url, decision="pay"):
    """What the payer's browser does: open the page, press a button, follow the redirect."""
    page = requests.get(checkout_url, timeout=10)
    assert page.status_code == 200 and "<button>Pay</button>" in page.text
    token = checkout_url.rsplit("/", 1)[1]
    base = checkout_url.split("/checkout/")[0]
    return requests.post(f"{base}/checkout/{token}/{decision}", allow_redirects=False, timeout=10)


def webhook_body(order_id):
    return json.dumps({"order_id": order_id, "status": "SUCCESS"}).encode()


def post_webhook(functions_server, body, signature=None, content_type="application/json"):
    headers = {"Content-Type": content_type}
    if signature is not None:
        headers[fatora_module.SIGNATURE_HEADER] = signature
    return requests.post(functions_server + "/api/coins/webhook/fatora", data=body, headers=headers, timeout=30)


# Happy paths.


@pytest.mark.parametrize(
    "body, coins, value",
    [
        ({"pack_id": "elite"}, {"GRC": 1}, 500 * QAR),
        ({"pack_id": "starter"}, {"GBC": 1}, 5 * QAR),
        ({"coins": {"GBC": 2, "GPC": 1}}, {"GBC": 2, "GPC": 1}, 110 * QAR),
        ({"amount_dirhams": 655 * QAR}, {"GBC": 1, "GGC": 1, "GPC": 1, "GRC": 1}, 655 * QAR),
    ],
    ids=["pack-elite", "pack-starter", "coins", "custom"],
)
def test_a_paid_checkout_issues_the_coins_once(api, db, fatora, body, coins, value):
    alice = fresh_id()
    created = create(api, alice, body)
    assert created.status_code == 201, created.get_json()
    purchase = created.get_json()
    price = value * 11 // 10
    assert (purchase["status"], purchase["coins"], purchase["value_dirhams"], purchase["price_dirhams"]) == (
        "pending", coins, value, price
    )
    assert purchase["gateway_fee_dirhams"] == (price * 25 + 500) // 1000
    order = fatora.orders[purchase["id"]]
    assert order.amount == f"{price // 100}.{price % 100:02d}" and order.currency == "QAR"

    redirect = pay_on_the_hosted_page(purchase["checkout_url"])
    assert redirect.status_code == 303
    assert redirect.headers["Location"].endswith(f"order_id={purchase['id']}")
    wait_for(lambda: purchase_doc(db, purchase["id"])["status"] == "paid")

    assert coins_of(db, alice) == coins
    stored = purchase_doc(db, purchase["id"])
    assert stored["fatora_transaction_id"] == order.transaction_id
    [entry] = issue_entries(db, purchase["id"])
    assert entry.get("type") == "purchase_issue" and stored["entry_id"] == entry.id


def test_the_buyer_and_an_admin_read_a_purchase_and_nobody_else(api, db, fatora):
    alice, bob = fresh_id(), fresh_id()
    purchase = create(api, alice, {"pack_id": "pro"}).get_json()
    from functions_framework import create_app

    client = create_app(target="coins_purchase_get", source=api.source).test_client()
    from local.tokens import mint

    def get(uid, admin=False, path=None):
        return client.get(path or f"/api/coins/purchase/{purchase['id']}", headers={"Authorization": f"Bearer {mint(uid, admin=admin)}"})

    assert get(alice).get_json() == purchase
    assert get(alice, path=f"/{purchase['id']}").status_code == 200, "under the function's own name too"
    assert get("ops", admin=True).status_code == 200
    stranger = get(bob)
    assert stranger.status_code == 404 and stranger.get_json()["error"]["code"] == "not_found"
    assert get(alice, path="/api/coins/purchase/nope").status_code == 404
    assert get(alice, path="/api/coins/purchase/../wallets").status_code == 404


def test_purchases_are_listed_newest_first_and_only_admins_list_others(api, fatora):
    alice, bob = fresh_id(), fresh_id()
    ids = [create(api, alice, {"pack_id": p}).get_json()["id"] for p in ("starter", "basic", "plus")]
    create(api, bob, {"pack_id": "elite"})
    page = api.call("coins_purchases_list", uid=alice, query={"limit": 2}).get_json()
    assert [p["id"] for p in page["items"]] == ids[::-1][:2]
    rest = api.call("coins_purchases_list", uid=alice, query={"limit": 2, "cursor": page["next_cursor"]}).get_json()
    assert [p["id"] for p in rest["items"]] == ids[:1] and rest["next_cursor"] is None
    as_admin = api.call("coins_purchases_list", uid="ops", admin=True, query={"user_id": alice}).get_json()
    assert len(as_admin["items"]) == 3
    refused = api.call("coins_purchases_list", uid=bob, query={"user_id": alice})
    assert refused.status_code == 403


# The webhook is only a hint.


def test_twenty_concurrent_duplicate_webhooks_issue_the_coins_once(api, db, fatora):
    alice = fresh_id()
    purchase = create(api, alice, {"pack_id": "premium"}).get_json()
    fatora.faults.webhook_copies = 20
    pay_on_the_hosted_page(purchase["checkout_url"])
    wait_for(lambda: len([d for d in fatora.deliveries if d["status"] == 200]) == 20, timeout_seconds=60)
    assert coins_of(db, alice) == {"GDC": 1}
    assert len(issue_entries(db, purchase["id"])) == 1


def test_a_webhook_replayed_later_changes_nothing(api, db, fatora, functions_server):
    alice = fresh_id()
    purchase = create(api, alice, {"pack_id": "plus"}).get_json()
    pay_on_the_hosted_page(purchase["checkout_url"])
    wait_for(lambda: purchase_doc(db, purchase["id"])["status"] == "paid")
    before = snapshot_all(db)
    verifies = len([c for c in fatora.api_calls if c[0] == "/v1/payments/verify"])
    fatora.send_webhook(purchase["id"], wait=True)
    assert fatora.deliveries[-1]["status"] == 200
    assert snapshot_all(db) == before
    assert len([c for c in fatora.api_calls if c[0] == "/v1/payments/verify"]) == verifies, "a paid purchase is not re-verified"


def test_a_form_encoded_webhook_is_accepted(api, db, fatora):
    alice = fresh_id()
    fatora.faults.webhook_form = True
    purchase = create(api, alice, {"pack_id": "basic"}).get_json()
    pay_on_the_hosted_page(purchase["checkout_url"])
    wait_for(lambda: purchase_doc(db, purchase["id"])["status"] == "paid")
    assert coins_of(db, alice) == {"GSC": 1}


@pytest.mark.parametrize("signature", [None, "", "0" * 64, "forged"], ids=["missing", "empty", "zeros", "garbage"])
def test_a_webhook_without_a_valid_signature_is_401_and_issues_nothing(api, db, fatora, functions_server, signature):
    alice = fresh_id()
    fatora.faults.webhooks_enabled = False
    purchase = create(api, alice, {"pack_id": "pro"}).get_json()
    pay_on_the_hosted_page(purchase["checkout_url"])  # paid at Fatora; only the webhook is forged
    response = post_webhook(functions_server, webhook_body(purchase["id"]), signature)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    assert purchase_doc(db, purchase["id"])["status"] == "pending"
    assert coins_of(db, alice) == {}


def test_a_signature_made_for_another_body_is_refused(api, db, fatora, functions_server):
    alice = fresh_id()
    fatora.faults.webhooks_enabled = False
    purchase = create(api, alice, {"pack_id": "pro"}).get_json()
    pay_on_the_hosted_page(purchase["checkout_url"])
    signature = sign(fatora.webhook_secret, webhook_body("someotherorder"))
    assert post_webhook(functions_server, webhook_body(purchase["id"]), signature).status_code == 401
    correct = sign(fatora.webhook_secret, webhook_body(purchase["id"]))
    assert post_webhook(functions_server, webhook_body(purchase["id"]), correct).json() == {"outcome": "paid"}


@pytest.mark.parametrize("status", ["PENDING", "FAILURE"])
def test_a_webhook_is_not_trusted_when_verify_does_not_say_success(api, db, fatora, status):
    alice = fresh_id()
    purchase = create(api, alice, {"pack_id": "pro"}).get_json()
    fatora.faults.verify_status = status
    pay_on_the_hosted_page(purchase["checkout_url"])
    wait_for(lambda: any(d["status"] == 200 for d in fatora.deliveries))
    assert purchase_doc(db, purchase["id"])["status"] == ("pending" if status == "PENDING" else "failed")
    assert coins_of(db, alice) == {}


def test_a_declined_checkout_fails_the_purchase(api, db, fatora):
    alice = fresh_id()
    purchase = create(api, alice, {"pack_id": "pro"}).get_json()
    redirect = pay_on_the_hosted_page(purchase["checkout_url"], decision="decline")
    assert "declined" in redirect.headers["Location"]
    wait_for(lambda: purchase_doc(db, purchase["id"])["status"] == "failed")
    assert coins_of(db, alice) == {}


@pytest.mark.parametrize("fault", [{"verify_amount": "54.99"}, {"verify_amount": "5.5"}, {"verify_currency": "USD"}])
def test_a_payment_for_another_amount_or_currency_issues_nothing_and_is_flagged(api, db, fatora, fault, capsys):
    alice = fresh_id()
    purchase = create(api, alice, {"pack_id": "plus"}).get_json()  # 50 QAR of coins, 55.00 QAR
    for name, value in fault.items():
        setattr(fatora.faults, name, value)
    pay_on_the_hosted_page(purchase["checkout_url"])
    wait_for(lambda: purchase_doc(db, purchase["id"]).get("needs_review"))
    stored = purchase_doc(db, purchase["id"])
    assert stored["status"] == "pending"
    assert "expected 5500 QAR" in stored["review_reason"]
    assert coins_of(db, alice) == {}
    captured = []

    def error_logged():
        # The webhook's thread logs just after the transaction that set the flag.
        captured.extend(json.loads(line) for line in capsys.readouterr().out.splitlines() if '"severity":"ERROR"' in line)
        return any(e["message"] == "fatora payment does not match its purchase" for e in captured)

    wait_for(error_logged)


def test_a_webhook_for_an_unknown_order_is_acknowledged_and_ignored(fatora, functions_server, db):
    body = webhook_body("unknownorder123")
    response = post_webhook(functions_server, body, sign(fatora.webhook_secret, body))
    assert (response.status_code, response.json()) == (200, {"outcome": "unknown_order"})
    assert snapshot_all(db) == {}


@pytest.mark.parametrize(
    "body, content_type",
    [(b"{not json", "application/json"), (b'{"status": "SUCCESS"}', "application/json"), (b'{"order_id": "../x"}', "application/json"),
     (b"order_id=", "application/x-www-form-urlencoded"), (b"[1]", "application/json")],
)
def test_a_malformed_notification_is_400(fatora, functions_server, db, body, content_type):
    response = post_webhook(functions_server, body, sign(fatora.webhook_secret, body), content_type)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


# The gateway fails.


def test_fatora_down_during_the_webhook_answers_503_and_a_later_delivery_succeeds(api, db, fatora):
    alice = fresh_id()
    purchase = create(api, alice, {"pack_id": "pro"}).get_json()
    fatora.faults.fail_next_calls = fatora_module.VERIFY_ATTEMPTS_MAX  # every try of the first verify
    pay_on_the_hosted_page(purchase["checkout_url"])
    # The sandbox records a delivery once it has the answer, after the purchase is paid.
    wait_for(lambda: fatora.deliveries and fatora.deliveries[-1]["status"] == 200)
    assert purchase_doc(db, purchase["id"])["status"] == "paid"
    statuses = [d["status"] for d in fatora.deliveries]
    assert statuses[0] == 503 and statuses[-1] == 200
    assert coins_of(db, alice) == {"GPC": 1}


@pytest.mark.parametrize("status", [500, 429])
def test_fatora_down_during_create_is_502_and_the_purchase_failed(api, db, fatora, status):
    alice = fresh_id()
    fatora.faults.fail_next_calls, fatora.faults.fail_status = 1, status
    first = create(api, alice, {"pack_id": "pro"}, key="buy-1")
    assert first.status_code == 502
    assert first.get_json()["error"]["code"] == "gateway_error"
    purchase_id = first.get_json()["error"]["details"]["purchase_id"]
    stored = purchase_doc(db, purchase_id)
    assert stored["status"] == "failed" and "checkout" in stored["failure_reason"]
    again = create(api, alice, {"pack_id": "pro"}, key="buy-1")
    assert (again.status_code, again.get_json()) == (502, first.get_json())
    fresh = create(api, alice, {"pack_id": "pro"}, key="buy-2")
    assert fresh.status_code == 201 and fresh.get_json()["id"] != purchase_id


def test_fatora_refusing_a_checkout_is_502(api, db, fatora, monkeypatch):
    monkeypatch.setenv("FATORA_API_KEY", "a-wrong-key")
    response = create(api, fresh_id(), {"pack_id": "pro"})
    assert response.status_code == 502
    assert "INVALID_API_KEY" in purchase_doc(db, response.get_json()["error"]["details"]["purchase_id"])["failure_reason"]


# Idempotent create.


def test_a_replayed_create_returns_the_same_purchase(api, db, fatora):
    alice = fresh_id()
    first = create(api, alice, {"pack_id": "pro"}, key="same")
    second = create(api, alice, {"pack_id": "pro"}, key="same")
    assert (second.status_code, second.get_json()) == (201, first.get_json())
    assert len(list(db.collection("purchases").stream())) == 1
    assert len([c for c in fatora.api_calls if c[0] == "/v1/payments/checkout"]) == 1
    reused = create(api, alice, {"pack_id": "elite"}, key="same")
    assert reused.status_code == 422 and reused.get_json()["error"]["code"] == "idempotency_key_reused"


def test_concurrent_creates_with_one_key_open_one_checkout(api, db, fatora):
    alice = fresh_id()
    fatora.faults.delay_seconds = 0.5  # the first request is still at the gateway
    from functions_framework import create_app
    from local.tokens import mint

    def call(_):
        client = create_app(target="coins_purchase_create", source=api.source).test_client()
        headers = {"Authorization": f"Bearer {mint(alice)}", "Idempotency-Key": "burst"}
        response = client.post("/", data=json.dumps({"pack_id": "pro"}), headers=headers, content_type="application/json")
        return response.status_code, response.get_json()

    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(call, range(5)))
    codes = sorted(status for status, _ in results)
    assert codes.count(201) >= 1 and set(codes) <= {201, 409}
    assert all(body["error"]["code"] == "request_in_progress" for status, body in results if status == 409)
    assert len(list(db.collection("purchases").stream())) == 1


# The sweeper.


def sweep(db, fatora, later):
    gateway = FatoraClient(fatora.api_url, fatora.api_key)
    return purchases.reconcile_pending(db, gateway, now=ledger.now_utc() + later)


def test_the_sweeper_recovers_a_paid_purchase_whose_webhook_never_came(api, db, fatora):
    alice = fresh_id()
    fatora.faults.webhooks_enabled = False
    purchase = create(api, alice, {"pack_id": "elite"}).get_json()
    pay_on_the_hosted_page(purchase["checkout_url"])
    assert sweep(db, fatora, timedelta(minutes=5)) == {}, "too early: the webhook may still come"
    assert sweep(db, fatora, timedelta(minutes=16)) == {"paid": 1}
    assert coins_of(db, alice) == {"GRC": 1}
    assert sweep(db, fatora, timedelta(minutes=30)) == {}


def test_the_sweeper_expires_what_was_never_paid_and_a_late_payment_is_still_honoured(api, db, fatora):
    alice = fresh_id()
    purchase = create(api, alice, {"pack_id": "pro"}).get_json()
    assert sweep(db, fatora, timedelta(hours=1)) == {"unchanged": 1}
    assert sweep(db, fatora, timedelta(hours=25)) == {"expired": 1}
    assert purchase_doc(db, purchase["id"])["status"] == "expired"
    pay_on_the_hosted_page(purchase["checkout_url"])
    wait_for(lambda: purchase_doc(db, purchase["id"])["status"] == "paid")
    assert coins_of(db, alice) == {"GPC": 1}


def test_the_sweeper_answers_503_while_fatora_is_down(api, db, fatora):
    create(api, fresh_id(), {"pack_id": "pro"})
    fatora.faults.fail_next_calls = 100
    from coins import errors

    with pytest.raises(errors.Unavailable):
        sweep(db, fatora, timedelta(minutes=16))


def test_the_sweeper_endpoint_takes_only_the_scheduler(api, fatora):
    assert api.call("purchases_reconcile", "POST").status_code == 401
    assert api.call("purchases_reconcile", "POST", uid="ops", admin=True).status_code == 401
    wrong = api.call("purchases_reconcile", "POST", headers={"X-Local-Service-Secret": "guess"})
    assert wrong.status_code == 401
    ok = api.call("purchases_reconcile", "POST", headers=SERVICE_HEADERS)
    assert (ok.status_code, ok.get_json()) == (200, {})


# Bad input.


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "body"),
        ({"pack_id": "elite", "amount_dirhams": 50000}, "body"),
        ({"pack_id": "gold"}, "pack_id"),
        ({"pack_id": 3}, "pack_id"),
        ({"coins": {}}, "coins"),
        ({"coins": {"GBC": -1}}, "coins.GBC"),
        ({"coins": {"GBC": 0}}, "coins.GBC"),
        ({"coins": {"GXC": 1}}, "coins"),
        ({"coins": {"GRC": 11}}, "coins"),
        ({"amount_dirhams": 750}, "amount_dirhams"),
        ({"amount_dirhams": 0}, "amount_dirhams"),
        ({"amount_dirhams": -500}, "amount_dirhams"),
        ({"amount_dirhams": 500_500}, "amount_dirhams"),
        ({"amount_dirhams": "500"}, "amount_dirhams"),
        ({"amount_dirhams": 500, "currency": "USD"}, "currency"),
    ],
)
def test_bad_purchases_are_422_and_reach_neither_firestore_nor_fatora(api, db, fatora, body, field):
    response = create(api, fresh_id(), body)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "validation_failed"
    assert field in [f["field"] for f in response.get_json()["error"]["details"]["fields"]]
    assert snapshot_all(db) == {} and fatora.api_calls == []
