"""Coin purchases through SADAD Web Checkout 2.1, against the local SADAD sandbox over
real HTTP: the signed form posted by the payer's browser (from the app's WebView, or
from our checkout page), SADAD's callback and webhook with their checksums, the
get-transaction API that alone can make a purchase paid, In Progress, refunds made by
hand, and a crash at each step resumed by a retry with the request's key."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from coins import catalog, clients, ledger, purchases, store
from coins import sadad as wire
from coins.auth import Caller
from coins.gateways import Source
from coins.idempotency import Idempotency
from coins.purchases import checkout as opening
from coins.purchases import refunds
from tests.money import fresh_id, snapshot_all, wait_for

QAR = catalog.DIRHAMS_PER_QAR
ADMIN = "sadad-admin"
PAYER = {"email": "buyer@example.com", "mobile_no": "97450000000"}


class Forms(HTMLParser):
    """The forms of a page, as a browser sees them: (action, method, fields)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attrs.get("action"), "method": (attrs.get("method") or "get").upper(), "fields": {}})
        elif tag == "input" and self.forms and attrs.get("name"):
            self.forms[-1]["fields"][attrs["name"]] = attrs.get("value") or ""


def create(api, uid, body=None, key=None, **kwargs):
    body = {"pack_id": "pro", "gateway": "sadad", **PAYER, **(body or {})}
    return api.call("coins_purchase_create", "POST", uid=uid, key=key or fresh_id("k"), body=body, **kwargs)


def purchase_doc(db, purchase_id):
    return db.get(store.purchase(purchase_id))


def coins_of(db, uid):
    return (db.get(store.wallet(uid)) or {}).get("coins", {})


def issues_of(db, purchase_id):
    return [
        s
        for s in db.collection("ledger").stream()
        if s.get("refs").get("purchase_id") == purchase_id and s.get("type") == "purchase_issue"
    ]


def open_sadad(form):
    """The payer's browser posts the signed form to SADAD: its payment page."""
    assert form["method"] == "POST"
    page = requests.post(form["action"], data=form["fields"], timeout=10)
    assert page.status_code == 200, page.text
    return page


def press(payment_page, decision="pay"):
    """Pay or Decline on SADAD's page: the page with the auto-submitting callback form."""
    token = re.search(r"/webpurchase/([^/]+)/pay", payment_page.text).group(1)
    base = payment_page.url.rsplit("/webpurchase", 1)[0]
    answer = requests.post(f"{base}/webpurchase/{token}/{decision}", timeout=10)
    assert answer.status_code == 200
    return answer.text


def submit(page_text):
    """The browser submits the page's (only) form, as its onload script does; our answer
    (a 303 to the app, not followed)."""
    (form,) = Forms(page_text).forms
    assert form["method"] == "POST"
    return requests.post(form["action"], data=form["fields"], allow_redirects=False, timeout=30)


def deep_link(answer):
    assert answer.status_code == 303, (answer.status_code, answer.text)
    parts = urlsplit(answer.headers["Location"])
    return f"{parts.scheme}://{parts.netloc}{parts.path}", parse_qs(parts.query)["status"][0]


def pay(purchase, decision="pay"):
    """The whole browser journey from the app's WebView: form, Pay, callback, deep link."""
    return deep_link(submit(press(open_sadad(purchase["checkout"]), decision)))


def callback_url(functions_server):
    return functions_server + clients.SADAD_CALLBACK_PATH


def signed_callback(sandbox, fields):
    return {**fields, "checksumhash": wire.callback_checksum(sandbox.secret_key, fields)}


def refund(api, purchase_id, key=None):
    from local.tokens import mint

    return api.client("admin_purchase_refund").post(
        f"/api/admin/coins/purchase/{purchase_id}/refund",
        data=json.dumps({"reason": "asked by the buyer"}),
        headers={"Authorization": f"Bearer {mint(ADMIN, admin=True)}", "Idempotency-Key": key or fresh_id("k")},
        content_type="application/json",
    )


def resolve(api, purchase_id, action, note="done in SADAD's panel", key=None):
    from local.tokens import mint

    return api.client("admin_purchase_resolve").post(
        f"/api/admin/coins/purchase/{purchase_id}/resolve",
        data=json.dumps({"action": action, "note": note}),
        headers={"Authorization": f"Bearer {mint(ADMIN, admin=True)}", "Idempotency-Key": key or fresh_id("k")},
        content_type="application/json",
    )


def sweep(db, later):
    return purchases.reconcile_pending(db, clients.gateway, clients.offered_gateways(), now=ledger.now_utc() + later)


@pytest.fixture
def quiet(sadad):
    """No webhooks: the payer's callback alone has to do."""
    sadad.faults.webhooks_enabled = False
    return sadad


# Checkout: the signed form, and our page that posts it.


def test_a_sadad_purchase_answers_the_signed_form_and_our_page_that_posts_it(api, db, sadad, functions_server):
    answer = create(api, fresh_id(), {"pack_id": None, "amount_dirhams": 5 * QAR})
    assert answer.status_code == 201, answer.get_json()
    purchase = answer.get_json()
    form = purchase["checkout"]
    fields = form["fields"]
    assert purchase["gateway"] == "sadad" and purchase["status"] == "pending" and purchase["price_dirhams"] == 550
    assert form["action"] == sadad.checkout_url and form["method"] == "POST"
    assert fields["ORDER_ID"] == purchase["id"] and fields["TXN_AMOUNT"] == "5.50", "the exact price, never a float"
    assert fields["CALLBACK_URL"] == callback_url(functions_server) and fields["merchant_id"] == sadad.merchant_id
    assert (fields["email"], fields["MOBILE_NO"]) == (PAYER["email"], PAYER["mobile_no"])
    assert fields["signature"] == sadad_sign(sadad, fields), "signed as W7 says, upper-case hex"
    assert purchase["checkout_url"] == f"{functions_server}/api/coins/purchase/{purchase['id']}/checkout"
    page = requests.get(purchase["checkout_url"], timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'sha256-" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["Cache-Control"] == "no-store"
    (posted,) = Forms(page.text).forms
    assert posted == {"action": form["action"], "method": "POST", "fields": fields}, "the page posts the very same form"
    assert purchase_doc(db, purchase["id"])["payer"]["email"] == PAYER["email"]


def sadad_sign(sandbox, fields):
    return wire.sign(sandbox.secret_key, {k: v for k, v in fields.items() if k != "signature"})


def test_the_checkout_page_of_a_purchase_no_longer_pending_or_unknown_is_a_page_not_a_form(api, db, quiet, functions_server):
    purchase = create(api, fresh_id()).get_json()
    pay(purchase)
    paid = requests.get(purchase["checkout_url"], timeout=10)
    assert paid.status_code == 409 and "<form" not in paid.text and "paid" in paid.text
    unknown = requests.get(f"{functions_server}/api/coins/purchase/{fresh_id()}/checkout", timeout=10)
    assert unknown.status_code == 404 and unknown.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"email": None}, "email"),
        ({"mobile_no": None}, "mobile_no"),
        ({"email": "not-an-email"}, "email"),
        ({"email": 'a"@b.qa'}, "email"),
        ({"mobile_no": "+974 5000 0000"}, "mobile_no"),
        ({"mobile_no": 97450000000}, "mobile_no"),
        ({"gateway": "paypal"}, "gateway"),
    ],
)
def test_sadad_needs_the_payer_s_email_and_mobile_number_and_a_known_gateway(api, db, sadad, body, field):
    uid = fresh_id()
    sent = {k: v for k, v in {"pack_id": "pro", "gateway": "sadad", **PAYER, **body}.items() if v is not None}
    answer = api.call("coins_purchase_create", "POST", uid=uid, key=fresh_id("k"), body=sent)
    assert answer.status_code == 422, answer.get_json()
    assert [f["field"] for f in answer.get_json()["error"]["details"]["fields"]][0].endswith(field)
    assert db.get(store.limits(uid)) is None and sadad.orders == {}, "nothing recorded, nothing counted"


def test_the_payer_s_contact_comes_from_the_id_token_when_the_request_has_none(api, db, sadad):
    from local.tokens import mint

    token = mint(fresh_id(), email="token@example.com", phone_number="+97455555555")
    answer = api.call(
        "coins_purchase_create", "POST", token=token, key=fresh_id("k"), body={"pack_id": "pro", "gateway": "sadad"}
    )
    assert answer.status_code == 201, answer.get_json()
    fields = answer.get_json()["checkout"]["fields"]
    assert (fields["email"], fields["MOBILE_NO"]) == ("token@example.com", "97455555555"), "E.164 without its +"


def test_a_gateway_that_is_not_configured_is_refused_with_422(api, db, sadad, monkeypatch):
    monkeypatch.delenv("SADAD_SECRET_KEY")
    answer = create(api, fresh_id())
    assert answer.status_code == 422
    assert answer.get_json()["error"]["details"]["fields"][0]["field"] == "gateway"
    catalog_now = api.call("coins_catalog").get_json()
    assert "sadad" not in catalog_now["gateways"]


def test_the_catalog_says_which_gateways_are_offered(api, sadad, fatora):
    described = api.call("coins_catalog").get_json()
    assert described["gateways"] == ["fatora", "sadad"] and described["default_gateway"] == "fatora"


def test_without_a_gateway_named_the_default_is_used(api, db, sadad, fatora, monkeypatch):
    monkeypatch.setenv("PURCHASE_GATEWAY_DEFAULT", "sadad")
    answer = api.call("coins_purchase_create", "POST", uid=fresh_id(), key=fresh_id("k"), body={"pack_id": "pro", **PAYER})
    assert answer.status_code == 201 and answer.get_json()["gateway"] == "sadad"


# Paying: the callback, the webhook, getTransaction.


def test_a_payment_through_the_webview_form_is_issued_once_by_the_callback_and_the_webhook(api, db, sadad):
    buyer = fresh_id()
    purchase = create(api, buyer).get_json()
    assert pay(purchase) == (f"guild://coins/purchase/{purchase['id']}", "paid")
    wait_for(lambda: sadad.webhooks and sadad.webhooks[-1]["status"] == 200)
    stored = purchase_doc(db, purchase["id"])
    assert stored["status"] == "paid" and stored["gateway_reference"] == sadad.order_of(purchase["id"]).transaction_number
    assert coins_of(db, buyer) == {"GPC": 1} and len(issues_of(db, purchase["id"])) == 1
    looked_up = [given for name, given in sadad.api_calls if name == "getTransaction"]
    assert looked_up and all(given == {"transactionno": stored["gateway_reference"]} for given in looked_up)


def test_a_payment_through_our_checkout_page_is_issued_by_the_callback(api, db, quiet):
    """iOS: Safari opens checkout_url; our page posts the form; SADAD calls back."""
    buyer = fresh_id()
    purchase = create(api, buyer).get_json()
    page = requests.get(purchase["checkout_url"], timeout=10)
    (form,) = Forms(page.text).forms
    assert deep_link(submit(press(open_sadad(form)))) == (f"guild://coins/purchase/{purchase['id']}", "paid")
    assert coins_of(db, buyer) == {"GPC": 1}


def test_with_the_callback_lost_the_webhook_alone_issues_the_coins(api, db, sadad):
    buyer = fresh_id()
    purchase = create(api, buyer).get_json()
    press(open_sadad(purchase["checkout"]))  # the browser closes before the callback
    wait_for(lambda: purchase_doc(db, purchase["id"])["status"] == "paid")
    assert coins_of(db, buyer) == {"GPC": 1} and len(issues_of(db, purchase["id"])) == 1


def test_a_declined_payment_is_failed_and_issues_nothing(api, db, sadad):
    buyer = fresh_id()
    purchase = create(api, buyer).get_json()
    assert pay(purchase, "decline")[1] == "failed"
    assert purchase_doc(db, purchase["id"])["status"] == "failed" and coins_of(db, buyer) == {}


def test_a_forged_callback_is_refused_and_issues_nothing(api, db, quiet, functions_server):
    buyer = fresh_id()
    purchase = create(api, buyer).get_json()
    press(open_sadad(purchase["checkout"]))
    number = quiet.order_of(purchase["id"]).transaction_number
    fields = {"ORDERID": purchase["id"], "transaction_number": number, "transaction_status": "3", "STATUS": "TXN_SUCCESS"}
    before = snapshot_all(db)
    for forged in (
        {**fields, "checksumhash": "0" * 64},
        {**fields, "checksumhash": wire.callback_checksum("a-guessed-key", fields)},
        fields,
    ):
        answer = requests.post(callback_url(functions_server), data=forged, allow_redirects=False, timeout=30)
        assert answer.status_code == 401 and answer.headers["Content-Type"].startswith("text/html")
    assert snapshot_all(db) == before and [c for c in quiet.api_calls if c[0] == "getTransaction"] == []


def test_a_correctly_signed_callback_for_an_order_never_paid_issues_nothing(api, db, quiet, functions_server):
    """A checksum proves only that someone with the key signed: getTransaction decides."""
    buyer = fresh_id()
    purchase = create(api, buyer).get_json()
    fields = {
        "ORDERID": purchase["id"],
        "transaction_number": "SD9999999999999",
        "transaction_status": "3",
        "TXNAMOUNT": "110.00",
        "STATUS": "TXN_SUCCESS",
    }
    answer = requests.post(callback_url(functions_server), data=signed_callback(quiet, fields), allow_redirects=False, timeout=30)
    assert deep_link(answer)[1] == "pending"
    assert purchase_doc(db, purchase["id"])["status"] == "pending" and coins_of(db, buyer) == {}
    assert purchase_doc(db, purchase["id"]).get("gateway_reference") is None, "an unverified number is not recorded"


def test_a_signed_callback_naming_another_order_s_paid_transaction_issues_nothing(api, db, quiet, functions_server):
    paid_buyer, other_buyer = fresh_id(), fresh_id()
    paid_purchase = create(api, paid_buyer).get_json()
    pay(paid_purchase)
    other = create(api, other_buyer).get_json()
    number = quiet.order_of(paid_purchase["id"]).transaction_number
    fields = {"ORDERID": other["id"], "transaction_number": number, "transaction_status": "3"}
    answer = requests.post(callback_url(functions_server), data=signed_callback(quiet, fields), allow_redirects=False, timeout=30)
    assert deep_link(answer)[1] == "pending"
    assert purchase_doc(db, other["id"])["status"] == "pending" and coins_of(db, other_buyer) == {}
    assert coins_of(db, paid_buyer) == {"GPC": 1}


def test_a_callback_for_a_fatora_purchase_or_no_purchase_is_404(api, db, quiet, fatora, functions_server):
    fatora_purchase = api.call(
        "coins_purchase_create", "POST", uid=fresh_id(), key=fresh_id("k"), body={"pack_id": "pro"}
    ).get_json()
    for order_id in (fatora_purchase["id"], fresh_id()):
        fields = {"ORDERID": order_id, "transaction_number": "SD1", "transaction_status": "3"}
        answer = requests.post(
            callback_url(functions_server), data=signed_callback(quiet, fields), allow_redirects=False, timeout=30
        )
        assert answer.status_code == 404


@pytest.mark.parametrize(
    "data, content_type",
    [
        (b"", "application/x-www-form-urlencoded"),
        (b"ORDERID=", "application/x-www-form-urlencoded"),
        (b"%ZZ=1&&&", "application/x-www-form-urlencoded"),
        (b"\xff\xfe", "application/x-www-form-urlencoded"),
    ],
)
def test_a_callback_that_is_not_one_is_a_4xx_page(quiet, functions_server, db, data, content_type):
    answer = requests.post(
        callback_url(functions_server), data=data, headers={"Content-Type": content_type}, allow_redirects=False, timeout=30
    )
    assert 400 <= answer.status_code < 500 and answer.headers["Content-Type"].startswith("text/html")


def test_twenty_duplicate_webhooks_issue_the_coins_once(api, db, sadad):
    sadad.faults.webhook_copies = 20
    buyer = fresh_id()
    purchase = create(api, buyer).get_json()
    press(open_sadad(purchase["checkout"]))
    wait_for(lambda: len(sadad.webhooks) == 20)
    wait_for(lambda: purchase_doc(db, purchase["id"])["status"] == "paid")
    assert all(w["status"] in (200,) for w in sadad.webhooks), [w["status"] for w in sadad.webhooks]
    assert coins_of(db, buyer) == {"GPC": 1} and len(issues_of(db, purchase["id"])) == 1


def test_a_webhook_with_a_broken_checksum_is_401_and_changes_nothing(api, db, sadad):
    sadad.faults.break_checksum = True
    buyer = fresh_id()
    purchase = create(api, buyer).get_json()
    callback_page = press(open_sadad(purchase["checkout"]))
    wait_for(lambda: sadad.webhooks)
    assert sadad.webhooks[-1]["status"] == 401
    assert submit(callback_page).status_code == 401, "the callback's checksum is broken too"
    assert purchase_doc(db, purchase["id"])["status"] == "pending" and coins_of(db, buyer) == {}


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b"{", json.dumps({"websiteRefNo": 5}).encode(), json.dumps({"checksumhash": "x"}).encode()],
)
def test_a_webhook_that_is_not_one_is_4xx(functions_server, sadad, db, body):
    answer = requests.post(
        functions_server + "/api/coins/webhook/sadad", data=body, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert answer.status_code in (400, 401), answer.text


def test_a_signed_webhook_for_an_unknown_order_is_acknowledged_and_ignored(functions_server, sadad, db):
    payload = {"websiteRefNo": fresh_id(), "transactionNumber": "SD1", "transactionStatus": 3, "txnAmount": 110}
    payload["checksumhash"] = wire.webhook_checksum(sadad.secret_key, payload)
    answer = requests.post(functions_server + "/api/coins/webhook/sadad", json=payload, timeout=30)
    assert (answer.status_code, answer.json()) == (200, {"outcome": "unknown_order"})


@pytest.mark.parametrize("number", ["SD" + "1" * 200, "SD\n1"])
def test_a_signed_webhook_whose_transaction_number_cannot_be_one_is_400_and_kept_nowhere(functions_server, sadad, db, number):
    payload = {"websiteRefNo": fresh_id(), "transactionNumber": number, "transactionStatus": 3, "txnAmount": 110}
    payload["checksumhash"] = wire.webhook_checksum(sadad.secret_key, payload)
    answer = requests.post(functions_server + "/api/coins/webhook/sadad", json=payload, timeout=30)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_request", answer.text


@pytest.mark.parametrize(
    "fault, reason",
    [({"report_amount": "100.00"}, "SADAD verified 100.00 QAR"), ({"report_amount": "110.005"}, "SADAD verified no amount")],
)
def test_a_payment_of_another_amount_issues_nothing_and_goes_to_review(api, db, quiet, fault, reason):
    for name, value in fault.items():
        setattr(quiet.faults, name, value)
    buyer = fresh_id()
    purchase = create(api, buyer).get_json()
    assert pay(purchase)[1] == "pending"
    stored = purchase_doc(db, purchase["id"])
    assert stored["needs_review"] is True and reason in stored["review_reason"] and coins_of(db, buyer) == {}
    review = api.call("admin_purchases_review", uid=ADMIN, admin=True).get_json()["items"]
    mine = next(p for p in review if p["id"] == purchase["id"])
    assert mine["gateway"] == "sadad" and mine["gateway_reference"] == quiet.order_of(purchase["id"]).transaction_number


def test_in_production_a_sandbox_transaction_never_issues_coins(api, db, quiet, monkeypatch):
    monkeypatch.setenv("SADAD_REQUIRED_MODE", "live")
    buyer = fresh_id()
    purchase = create(api, buyer).get_json()
    assert pay(purchase)[1] == "pending"
    stored = purchase_doc(db, purchase["id"])
    assert stored["needs_review"] and "test mode" in stored["review_reason"] and coins_of(db, buyer) == {}


def test_sadad_s_api_down_at_the_callback_answers_pending_and_the_webhook_settles_later(api, db, sadad):
    sadad.faults.api_down, sadad.faults.webhooks_enabled = True, False
    buyer = fresh_id()
    purchase = create(api, buyer).get_json()
    assert pay(purchase)[1] == "pending"
    assert purchase_doc(db, purchase["id"])["status"] == "pending"
    sadad.faults.api_down, sadad.faults.webhooks_enabled = False, True
    requests.post(f"{sadad.base_url}/_sandbox/orders/{purchase['id']}/webhook", timeout=30)
    assert purchase_doc(db, purchase["id"])["status"] == "paid" and coins_of(db, buyer) == {"GPC": 1}


# In Progress: pending until SADAD says, and the sweeper.


def test_in_progress_stays_pending_and_is_issued_once_after_it_settles(api, db, sadad):
    sadad.faults.in_progress = True
    buyer = fresh_id()
    purchase = create(api, buyer).get_json()
    assert pay(purchase)[1] == "pending"
    wait_for(lambda: sadad.webhooks)
    stored = purchase_doc(db, purchase["id"])
    assert stored["status"] == "pending" and not stored["needs_review"] and coins_of(db, buyer) == {}
    assert stored["gateway_reference"] == sadad.order_of(purchase["id"]).transaction_number, "kept, to ask again"
    assert sweep(db, timedelta(minutes=16)).get("unchanged") == 1
    assert sweep(db, timedelta(hours=30)).get("unchanged") == 1, "In Progress outlives the 24 hours of an unpaid one"
    settled = requests.post(f"{sadad.base_url}/_sandbox/orders/{purchase['id']}/settle", json={"status": 3}, timeout=30)
    assert settled.status_code == 200
    assert purchase_doc(db, purchase["id"])["status"] == "paid"
    assert sweep(db, timedelta(minutes=16)) == {} and len(issues_of(db, purchase["id"])) == 1
    assert coins_of(db, buyer) == {"GPC": 1}


def test_the_sweeper_issues_an_in_progress_payment_whose_webhook_never_came(api, db, quiet):
    quiet.faults.in_progress = True
    buyer = fresh_id()
    purchase = create(api, buyer).get_json()
    assert pay(purchase)[1] == "pending"
    quiet.order_of(purchase["id"]).status = wire.SUCCESSFUL  # SADAD settles it after midnight
    assert sweep(db, timedelta(minutes=16)) == {"paid": 1}
    assert sweep(db, timedelta(minutes=16)) == {}
    assert coins_of(db, buyer) == {"GPC": 1} and len(issues_of(db, purchase["id"])) == 1


def test_in_progress_that_never_settles_goes_to_an_admin_after_48_hours_not_expired(api, db, quiet):
    """It may be paid (the bank has not confirmed): an admin checks SADAD's panel. It
    leaves the sweep, and a success SADAD reports later still issues it, once."""
    quiet.faults.in_progress = True
    buyer = fresh_id()
    purchase = create(api, buyer).get_json()
    pay(purchase)
    assert sweep(db, timedelta(hours=49)) == {"needs_review": 1}
    stored = purchase_doc(db, purchase["id"])
    assert stored["status"] == "pending" and stored["needs_review"] and "In Progress" in stored["review_reason"]
    assert sweep(db, timedelta(hours=50)) == {}, "an admin's now: no place taken in the sweep's batch"
    quiet.order_of(purchase["id"]).status = wire.SUCCESSFUL
    quiet.faults.webhooks_enabled = True
    requests.post(f"{quiet.base_url}/_sandbox/orders/{purchase['id']}/webhook", timeout=30)
    stored = purchase_doc(db, purchase["id"])
    assert stored["status"] == "paid" and not stored["needs_review"] and coins_of(db, buyer) == {"GPC": 1}
    assert len(issues_of(db, purchase["id"])) == 1


def test_a_purchase_whose_payer_never_reached_sadad_expires_after_24_hours(api, db, quiet):
    purchase = create(api, fresh_id()).get_json()
    assert sweep(db, timedelta(minutes=16)) == {"unchanged": 1}
    assert sweep(db, timedelta(hours=25)) == {"expired": 1}
    assert purchase_doc(db, purchase["id"])["status"] == "expired"
    assert [c for c in quiet.api_calls if c[0] == "getTransaction"] == [], "nothing to ask by: no transaction number"


def test_while_sadad_is_down_the_sweeper_still_settles_fatora_purchases(api, db, quiet, fatora):
    quiet.faults.in_progress = True
    sadad_purchase = create(api, fresh_id()).get_json()
    pay(sadad_purchase)
    quiet.faults.api_down = True
    fatora_buyer = fresh_id()
    fatora_purchase = api.call(
        "coins_purchase_create", "POST", uid=fatora_buyer, key=fresh_id("k"), body={"pack_id": "pro"}
    ).get_json()
    fatora.faults.webhooks_enabled = False
    order = requests.get(fatora_purchase["checkout_url"], timeout=10)
    assert order.status_code == 200
    token = fatora_purchase["checkout_url"].rsplit("/", 1)[1]
    requests.post(
        fatora_purchase["checkout_url"].split("/checkout/")[0] + f"/checkout/{token}/pay", allow_redirects=False, timeout=10
    )
    assert sweep(db, timedelta(minutes=16)) == {"gateway_unavailable": 1, "paid": 1}
    assert coins_of(db, fatora_buyer) == {"GPC": 1} and purchase_doc(db, sadad_purchase["id"])["status"] == "pending"


# Refunds: SADAD has no refund API; the coins come back, the money goes by hand.


@pytest.fixture
def paid(api, db, quiet):
    buyer = fresh_id()
    purchase = create(api, buyer).get_json()
    assert pay(purchase)[1] == "paid"
    return buyer, purchase["id"]


def test_an_admin_refund_claws_the_coins_back_and_asks_for_a_refund_in_sadad_s_panel(api, db, quiet, paid):
    buyer, purchase_id = paid
    answer = refund(api, purchase_id)
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    number = quiet.order_of(purchase_id).transaction_number
    assert body["status"] == "refunding" and body["refund"]["status"] == "manual" and body["needs_review"]
    assert number in body["review_reason"] and "110.00 QAR" in body["review_reason"] and "SADAD's panel" in body["review_reason"]
    assert coins_of(db, buyer) == {}, "the coins are back out of the buyer's wallet"
    review = api.call("admin_purchases_review", uid=ADMIN, admin=True).get_json()["items"]
    assert purchase_id in [p["id"] for p in review]
    done = resolve(api, purchase_id, "dismiss")
    assert done.status_code == 200 and done.get_json()["status"] == "refunded" and not done.get_json()["needs_review"]
    assert purchase_doc(db, purchase_id)["status"] == "refunded"
    requests.post(f"{quiet.base_url}/_sandbox/orders/{purchase_id}/webhook", timeout=30)
    assert coins_of(db, buyer) == {}, "a refunded purchase is final"


def test_a_retried_refund_after_a_crash_goes_on_from_where_it_stopped(api, db, quiet, paid):
    """The process died right after the hold: the same request, retried with its key,
    finds the refund held and drives it on; it is never a permanent 409."""
    buyer, purchase_id = paid
    key = fresh_id("k")
    refunds._hold(db, Caller(ADMIN, admin=True), purchase_id, "crashed right after the hold", None)
    answer = refund(api, purchase_id, key=key)
    assert answer.status_code == 200 and answer.get_json()["refund"]["status"] == "manual"
    again = refund(api, purchase_id, key=key)
    assert (again.status_code, again.get_json()) == (answer.status_code, answer.get_json())
    assert coins_of(db, buyer) == {}


# A crash between the steps of opening a purchase.


def test_a_retried_create_after_a_crash_resumes_the_same_purchase_and_counts_it_once(api, db, sadad):
    uid, key = fresh_id(), fresh_id("k")
    body = {"pack_id": "pro", "gateway": "sadad", **PAYER}
    idempotency = Idempotency.of(uid, key, "coins_purchase_create", {"params": {}, "body": body})
    purchase_id = opening.purchase_id_for(idempotency)
    # The process wrote the pending purchase and died before the checkout.
    crashed = {
        "id": purchase_id,
        "user_id": uid,
        "status": "pending",
        "gateway": "sadad",
        "coins": {"GPC": 1},
        "value_dirhams": 100 * QAR,
        "price_dirhams": 110 * QAR,
        "gateway_fee_dirhams": catalog.gateway_fee_dirhams(110 * QAR),
        "currency": "QAR",
        "pack_id": "pro",
        "language": "en",
        "payer": {"name": None, **PAYER},
        "checkout_url": None,
        "checkout": None,
        "needs_review": False,
        "request_fingerprint": idempotency.fingerprint,
    }
    opening._open(db, uid, crashed, None)
    answer = api.call("coins_purchase_create", "POST", uid=uid, key=key, body=body)
    assert answer.status_code == 201 and answer.get_json()["id"] == purchase_id
    assert answer.get_json()["checkout"]["fields"]["ORDER_ID"] == purchase_id
    counted = db.get(store.limits(uid))
    assert json.dumps(counted, default=str).count(purchase_id) == 1, "one purchase, counted once"
    assert [d.id for d in db.collection("purchases").stream() if d.get("user_id") == uid] == [purchase_id]


def test_the_same_key_always_names_the_same_purchase_and_another_body_is_refused(api, db, sadad):
    uid, key = fresh_id(), fresh_id("k")
    first = create(api, uid, key=key).get_json()
    assert create(api, uid, key=key).get_json() == first
    other = create(api, uid, {"pack_id": "elite"}, key=key)
    assert other.status_code == 422 and other.get_json()["error"]["code"] == "idempotency_key_reused"
    assert create(api, fresh_id(), key=key).get_json()["id"] != first["id"], "keys are the caller's own"


def test_the_form_is_the_same_on_every_retry(api, db, sadad):
    """txnDate is the purchase's creation: a retried request signs what the first did."""
    uid, key = fresh_id(), fresh_id("k")
    first = create(api, uid, key=key).get_json()
    stored = purchase_doc(db, first["id"])
    rebuilt = clients.gateway("sadad").checkout(stored)
    assert rebuilt.form == first["checkout"] and rebuilt.url == first["checkout_url"]


def test_urlencode_of_the_callback_keeps_what_sadad_signed(quiet):
    fields = {"ORDERID": "abc", "RESPMSG": "Txn Success & more", "transaction_status": "3"}
    body = urlencode(signed_callback(quiet, fields)).encode()
    notice = clients.gateway("sadad").notice(Source.BROWSER, {}, body, "application/x-www-form-urlencoded")
    assert notice.order_id == "abc"


# What a review of this code found, each tried.


def test_a_payment_whose_refund_is_being_made_by_hand_can_no_longer_be_issued(api, db, quiet):
    buyer = fresh_id()
    purchase = create(api, buyer).get_json()
    assert sweep(db, timedelta(hours=25)) == {"expired": 1}
    pay(purchase)  # paid after it expired: review, nothing issued
    assert purchase_doc(db, purchase["id"])["needs_review"]
    refunded = resolve(api, purchase["id"], "refund", note="paid too late")
    assert refunded.status_code == 200 and refunded.get_json()["refund"]["status"] == "manual"
    issued = resolve(api, purchase["id"], "issue", note="changed my mind")
    assert issued.status_code == 409 and "manual" in issued.get_json()["error"]["message"]
    assert coins_of(db, buyer) == {} and issues_of(db, purchase["id"]) == []
    assert resolve(api, purchase["id"], "dismiss").get_json()["status"] == "refunded"


def test_a_callback_while_sadad_s_api_is_down_and_a_lost_webhook_are_still_issued_by_the_sweeper(api, db, quiet):
    """The transaction number the signed callback named is kept before it is verified:
    the sweeper asks by it once the API is back."""
    buyer = fresh_id()
    purchase = create(api, buyer).get_json()
    quiet.faults.api_down = True
    assert pay(purchase)[1] == "pending"
    assert sweep(db, timedelta(minutes=16)) == {"gateway_unavailable": 1}
    quiet.faults.api_down = False
    assert sweep(db, timedelta(minutes=16)) == {"paid": 1}
    stored = purchase_doc(db, purchase["id"])
    assert stored["gateway_reference"] == quiet.order_of(purchase["id"]).transaction_number
    assert coins_of(db, buyer) == {"GPC": 1}


def test_a_refused_login_is_no_answer_never_an_unpaid_purchase(api, db, quiet, monkeypatch):
    """A rotated key or a blocked merchant says nothing of the payments: they wait."""
    buyer = fresh_id()
    purchase = create(api, buyer).get_json()
    press(open_sadad(purchase["checkout"]))  # paid at SADAD; the callback is lost
    fields = {"ORDERID": purchase["id"], "transaction_number": quiet.order_of(purchase["id"]).transaction_number}
    monkeypatch.setenv("SADAD_MERCHANT_ID", "1000000")  # our configuration now names another merchant
    callback = signed_callback(quiet, fields)
    answer = requests.post(quiet.order_of(purchase["id"]).callback_url, data=callback, allow_redirects=False, timeout=30)
    assert deep_link(answer)[1] == "pending"
    assert sweep(db, timedelta(hours=25)) == {"gateway_unavailable": 1}, "never expired for a login we got wrong"
    monkeypatch.setenv("SADAD_MERCHANT_ID", quiet.merchant_id)
    assert sweep(db, timedelta(hours=25)) == {"paid": 1}
    assert coins_of(db, buyer) == {"GPC": 1}


@pytest.mark.parametrize(
    "body",
    [
        b'{"websiteRefNo": "x", "txnAmount": 1e999999, "checksumhash": "0"}',
        b'{"websiteRefNo": "x", "txnAmount": 1e1000000, "checksumhash": "0"}',
        b'{"websiteRefNo": "x", "txnAmount": NaN, "checksumhash": "0"}',
        b'{"websiteRefNo": "x", "n": ' + b"9" * 5000 + b"}",
        b"[" * 5000 + b"]" * 5000,
        b'{"a": ' * 2000 + b"1" + b"}" * 2000,
    ],
    ids=["huge-exponent", "overflow", "nan", "huge-int", "deep-list", "deep-object"],
)
def test_a_webhook_built_to_hurt_is_a_400_and_costs_nothing(functions_server, sadad, db, body):
    answer = requests.post(
        functions_server + "/api/coins/webhook/sadad", data=body, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_request"


def test_with_sadad_not_configured_fatora_purchases_are_still_swept(api, db, quiet, fatora, monkeypatch):
    for _ in range(3):
        create(api, fresh_id())
    monkeypatch.delenv("SADAD_SECRET_KEY")
    fatora_purchase = api.call("coins_purchase_create", "POST", uid=fresh_id(), key=fresh_id("k"), body={"pack_id": "pro"})
    assert fatora_purchase.status_code == 201
    assert sweep(db, timedelta(hours=25)) == {"expired": 1}, "the Fatora one; the SADAD ones wait, untouched"
    assert [p.get("status") for p in db.collection("purchases").stream() if p.get("gateway") == "sadad"] == ["pending"] * 3


def test_a_mobile_number_with_its_plus_reaches_sadad_as_digits(api, db, sadad):
    answer = create(api, fresh_id(), {"mobile_no": "+97450000000"})
    assert answer.status_code == 201 and answer.get_json()["checkout"]["fields"]["MOBILE_NO"] == "97450000000"


def test_a_pending_purchase_dismissed_in_review_is_failed_and_never_comes_back(api, db, quiet, monkeypatch):
    monkeypatch.setenv("SADAD_REQUIRED_MODE", "live")
    buyer = fresh_id()
    purchase = create(api, buyer).get_json()
    pay(purchase)  # a sandbox payment where live is required: review
    dismissed = resolve(api, purchase["id"], "dismiss", note="a test payment")
    assert dismissed.status_code == 200 and dismissed.get_json()["status"] == "failed"
    assert sweep(db, timedelta(minutes=16)) == {} and not purchase_doc(db, purchase["id"])["needs_review"]
    assert coins_of(db, buyer) == {}
