"""The SADAD adapter (coins.sadad) against the local SADAD sandbox over loopback HTTP: the
signed form is accepted and a forged one refused, the callback page and the webhook
carry checksums the adapter verifies, and the server API is read as the adapter expects
(login, getTransaction, a renewed token, In Progress until settled)."""

import json
import re
import secrets
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests

from coins import sadad
from local.sadad_sandbox import SadadSandbox
from tests.money import wait_for

MERCHANT = "7654321"


@pytest.fixture(scope="module")
def receiver():
    """A webhook endpoint of ours, recording what SADAD posts."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"status":"success"}')

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/api/coins/webhook/sadad", received
    server.shutdown()


@pytest.fixture(scope="module")
def sandbox_module(receiver):
    sandbox = SadadSandbox(merchant_id=MERCHANT, secret_key=secrets.token_urlsafe(16), webhook_url=receiver[0]).serve()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def sandbox(sandbox_module, receiver):
    sandbox_module.reset()
    receiver[1].clear()
    return sandbox_module


def form(sandbox, order_id="GUILD-0001", amount_dirhams=550, key=None):
    return sadad.checkout_form(
        merchant_id=MERCHANT,
        secret_key=key or sandbox.secret_key,
        order_id=order_id,
        amount_dirhams=amount_dirhams,
        callback_url="https://coins.example/api/coins/purchase/sadad/callback",
        website="coins.example",
        email="buyer@example.com",
        mobile_no="97450000000",
        at=datetime.now(timezone.utc),
    )


def hidden_fields(page: str) -> dict[str, str]:
    return dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page))


def client(sandbox):
    return sadad.SadadClient(sandbox.api_url, MERCHANT, sandbox.secret_key, "coins.example")


def test_a_signed_form_is_accepted_and_a_forged_or_incomplete_one_refused(sandbox):
    assert "Pay 5.50 QAR" in requests.post(sandbox.checkout_url, data=form(sandbox), timeout=10).text
    forged = {**form(sandbox, "GUILD-0002"), "TXN_AMOUNT": "0.50"}
    answer = requests.post(sandbox.checkout_url, data=forged, timeout=10)
    assert answer.status_code == 400 and "Invalid signature" in answer.text
    other_key = requests.post(sandbox.checkout_url, data=form(sandbox, "GUILD-0003", key="not the key"), timeout=10)
    assert other_key.status_code == 400
    incomplete = {k: v for k, v in form(sandbox, "GUILD-0004").items() if k != "MOBILE_NO"}
    assert "Missing fields: MOBILE_NO" in requests.post(sandbox.checkout_url, data=incomplete, timeout=10).text
    assert list(sandbox.orders) == ["GUILD-0001"]


def test_pay_answers_the_auto_submitting_callback_and_sends_the_webhook_both_verifiable(sandbox, receiver):
    page = requests.post(sandbox.checkout_url, data=form(sandbox), timeout=10).text
    pay = re.search(r'action="(/webpurchase/[^"]+/pay)"', page).group(1)
    callback = requests.post(sandbox.base_url + pay, timeout=10).text
    assert 'action="https://coins.example/api/coins/purchase/sadad/callback"' in callback and "submit()" in callback
    fields = hidden_fields(callback)
    assert sadad.verified(sadad.callback_checksum(sandbox.secret_key, fields), fields["checksumhash"])
    notice = sadad.callback_notice(fields)
    assert (notice.order_id, notice.transaction_number) == ("GUILD-0001", sandbox.orders["GUILD-0001"].transaction_number)

    wait_for(lambda: receiver[1])
    [payload] = receiver[1]
    assert sadad.verified(sadad.webhook_checksum(sandbox.secret_key, payload), payload["checksumhash"])
    assert sadad.webhook_notice(payload) == notice
    assert not sadad.verified(sadad.webhook_checksum("another key", payload), payload["checksumhash"])


def test_the_api_reports_the_payment_as_the_adapter_reads_it(sandbox):
    requests.post(sandbox.checkout_url, data=form(sandbox, amount_dirhams=12_100), timeout=10)
    fields = hidden_fields(requests.post(f"{sandbox.base_url}/_sandbox/orders/GUILD-0001/pay", timeout=10).text)
    read = client(sandbox).transaction(fields["transaction_number"])
    assert read == sadad.Transaction(fields["transaction_number"], "GUILD-0001", sadad.SUCCESSFUL, 12_100, True)
    sandbox.faults.report_amount = "1.00"
    assert client(sandbox).transaction(fields["transaction_number"]).amount_dirhams == 100


def test_in_progress_stays_in_progress_until_sadad_settles_it(sandbox):
    sandbox.faults.in_progress = True
    requests.post(sandbox.checkout_url, data=form(sandbox), timeout=10)
    fields = hidden_fields(requests.post(f"{sandbox.base_url}/_sandbox/orders/GUILD-0001/pay", timeout=10).text)
    assert fields["transaction_status"] == sadad.IN_PROGRESS
    api = client(sandbox)
    assert api.transaction(fields["transaction_number"]).status == sadad.IN_PROGRESS
    settled = requests.post(f"{sandbox.base_url}/_sandbox/orders/GUILD-0001/settle", json={"status": 3}, timeout=10)
    assert settled.status_code == 200
    assert api.transaction(fields["transaction_number"]).status == sadad.SUCCESSFUL


def test_a_token_is_reused_renewed_on_401_and_wrong_credentials_or_an_outage_are_errors(sandbox):
    requests.post(sandbox.checkout_url, data=form(sandbox), timeout=10)
    number = hidden_fields(requests.post(f"{sandbox.base_url}/_sandbox/orders/GUILD-0001/decline", timeout=10).text)[
        "transaction_number"
    ]
    api = client(sandbox)
    assert api.transaction(number).status == sadad.FAILED
    api.transaction(number)
    assert [call for call, _ in sandbox.api_calls].count("login") == 1, "the token is reused"
    sandbox._tokens.clear()  # SADAD forgot it
    assert api.transaction(number).status == sadad.FAILED
    assert [call for call, _ in sandbox.api_calls].count("login") == 2, "renewed once on the 401"
    assert all("secretKey" not in body for _, body in sandbox.api_calls)
    with pytest.raises(sadad.SadadError):
        sadad.SadadClient(sandbox.api_url, MERCHANT, "wrong", "coins.example").transaction(number)
    sandbox.faults.api_down = True
    with pytest.raises(sadad.SadadUnavailable):
        client(sandbox).transaction(number)


def test_a_broken_checksum_is_caught(sandbox):
    sandbox.faults.break_checksum = True
    requests.post(sandbox.checkout_url, data=form(sandbox), timeout=10)
    fields = hidden_fields(requests.post(f"{sandbox.base_url}/_sandbox/orders/GUILD-0001/pay", timeout=10).text)
    assert not sadad.verified(sadad.callback_checksum(sandbox.secret_key, fields), fields["checksumhash"])
