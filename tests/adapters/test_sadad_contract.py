"""`make sadad-contract`, run against the local SADAD sandbox on 127.0.0.1 (the real SADAD
is not reachable from tests): the signed form is posted and taken (or refused, with a
wrong key), the login and getTransaction's answer are printed field by field, and
without keys it exits 2. The sandbox checks the signature with coins.sadad.sign and
compares it case-insensitively, so these tests show the tool works, not which hex case
the real SADAD takes: that is what running it against SADAD is for."""

import os
import re
import secrets
import subprocess
import sys
from datetime import datetime, timezone

import requests

from coins import sadad
from local.sadad_sandbox import SadadSandbox
from tests.conftest import ROOT

MERCHANT = "7654321"
WEBSITE = "coins.example"


def run(env, tmp_path):
    return subprocess.run(
        [sys.executable, "-m", "deploy.sadad_contract"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        # TMPDIR: the checkout page to pay is written there, not in the system's /tmp.
        env={k: v for k, v in {**os.environ, "TMPDIR": str(tmp_path), **env}.items() if v is not None},
    )


def against(sandbox, secret_key, **more):
    return {
        "SADAD_MERCHANT_ID": MERCHANT,
        "SADAD_SECRET_KEY": secret_key,
        "SADAD_WEBSITE": WEBSITE,
        "SADAD_CHECKOUT_URL": sandbox.checkout_url,
        "SADAD_API_URL": sandbox.api_url,
        "SADAD_CALLBACK_URL": None,
        "SADAD_TRANSACTION_NUMBER": None,
        **more,
    }


def hidden_fields(page: str) -> dict[str, str]:
    return dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page))


def sandbox():
    return SadadSandbox(merchant_id=MERCHANT, secret_key=secrets.token_urlsafe(16), domain=WEBSITE).serve()


def test_without_keys_it_says_what_to_set_and_exits_2(tmp_path):
    result = run({"SADAD_MERCHANT_ID": None, "SADAD_SECRET_KEY": None, "SADAD_WEBSITE": None}, tmp_path)
    assert result.returncode == 2
    assert all(name in result.stderr for name in ("SADAD_MERCHANT_ID", "SADAD_SECRET_KEY", "SADAD_WEBSITE"))
    assert result.stdout == ""


def test_the_signed_form_is_taken_and_the_login_printed_with_what_to_do_next(tmp_path):
    sadad_ = sandbox()
    try:
        result = run(against(sadad_, sadad_.secret_key), tmp_path)
        out = result.stdout
        assert result.returncode == 0, out + result.stderr
        assert sadad_.secret_key not in out + result.stderr
        [order] = sadad_.orders.values()
        assert order.order_id.startswith("contract") and order.amount == "1.00"
        assert f"ORDER_ID       {order.order_id}" in out and f"signature      {order.fields['signature']}" in out
        assert order.fields["signature"] == order.fields["signature"].upper(), "upper-case hex, as W7 shows"
        assert "HTTP 200" in out and "| Pay 1.00 QAR" in out and "the form was taken" in out
        assert "lower case" not in out, "no second form once the first was taken"
        assert "== login: SADAD answered HTTP 200" in out and "accessToken" in out and "not shown" in out
        assert "-> the client logged in" in out and not any(token in out for token in sadad_._tokens)
        # What to do next: the page to pay, which posts a fresh signed form of its own.
        assert "SADAD_TRANSACTION_NUMBER=SD" in out and "pay it in test mode" in out
        [page] = tmp_path.glob("sadad-contract*.html")
        assert str(page) in out and sadad_.secret_key not in page.read_text()
        assert f'action="{sadad_.checkout_url}"' in page.read_text()
        form = hidden_fields(page.read_text())
        assert form["ORDER_ID"] != order.order_id
        assert "Pay 1.00 QAR" in requests.post(sadad_.checkout_url, data=form, timeout=10).text
    finally:
        sadad_.stop()


def test_a_payment_made_in_the_sandbox_is_printed_field_by_field_next_to_what_the_adapter_read(tmp_path):
    sadad_ = sandbox()
    try:
        form = sadad.checkout_form(
            merchant_id=MERCHANT,
            secret_key=sadad_.secret_key,
            order_id="GUILD-0001",
            amount_dirhams=12_100,
            callback_url="https://coins.example/api/coins/purchase/sadad/callback",
            website=WEBSITE,
            email="buyer@example.com",
            mobile_no="97450000000",
            at=datetime.now(timezone.utc),
        )
        assert requests.post(sadad_.checkout_url, data=form, timeout=10).status_code == 200
        # The sandbox's test control pays it, answering the callback page that names the transaction.
        paid = hidden_fields(requests.post(f"{sadad_.base_url}/_sandbox/orders/GUILD-0001/pay", timeout=10).text)
        number = paid["transaction_number"]
        result = run(against(sadad_, sadad_.secret_key, SADAD_TRANSACTION_NUMBER=number), tmp_path)
    finally:
        sadad_.stop()
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert f"== getTransaction {number}: SADAD answered HTTP 200" in out
    section = out[out.index(f"== getTransaction {number}") :]
    for field, value in [
        ("transactionno", number),
        ("website_ref_no", "GUILD-0001"),
        ("amount", "121.0"),
        ("transactionstatus", "Success"),
        ("issandboxmode", "1"),
    ]:
        assert re.search(rf"^   {field} +{re.escape(value)} .*expects: ", section, re.MULTILINE), field
    assert re.search(r"^   amount +121\.0 +Decimal ", section, re.MULTILINE), "the amount is read as Decimal"
    assert re.search(r"^   isRefund +0 +int +expects: -", section, re.MULTILINE), "fields the adapter ignores are shown too"
    assert f"-> the adapter read: {sadad.Transaction(number, 'GUILD-0001', sadad.SUCCESSFUL, 12_100, True)}" in out
    assert "note:" not in out and not list(tmp_path.glob("*.html")), "no page to pay: a payment was given"


def test_a_wrong_secret_key_is_reported_as_a_rejected_form_and_exits_1(tmp_path):
    sadad_ = sandbox()
    wrong = secrets.token_urlsafe(16)
    try:
        result = run(against(sadad_, wrong), tmp_path)
    finally:
        sadad_.stop()
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "HTTP 400" in out and "| Invalid signature" in out
    assert "-> rejected, and the page names the signature" in out
    assert "the signature in lower case" in out and "lower case refused too" in out
    assert "== login: SADAD answered HTTP 401" in out and "-> the client was refused" in out
    assert not sadad_.orders and wrong not in out + result.stderr
