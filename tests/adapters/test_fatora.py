"""The Fatora adapter, on what it sends and how it reads answers, against the local
sandbox over HTTP (loopback; no emulator needed)."""

import hashlib
import hmac

import pytest

from coins import fatora
from coins.fatora import FatoraClient, FatoraRejected, FatoraUnavailable
from local.fatora_sandbox import FatoraSandbox
from local.emulator import free_port

CHECKOUT = dict(
    client={"name": "Alice", "phone": "+97450000000", "email": "a@example.com"},
    language="ar",
    success_url="https://app.example/ok",
    failure_url="https://app.example/ko",
)


@pytest.fixture(scope="module")
def sandbox_module():
    sandbox = FatoraSandbox(api_key="unit-key").serve()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def sandbox(sandbox_module):
    sandbox_module.reset()
    return sandbox_module


@pytest.fixture
def client(sandbox):
    sleeps = []
    gateway = FatoraClient(sandbox.api_url, "unit-key", sleep=sleeps.append, timeouts=(0.5, 0.5))
    gateway.sleeps = sleeps
    return gateway


@pytest.mark.parametrize("dirhams, text", [(550, "5.50"), (5, "0.05"), (55000, "550.00"), (0, "0.00"), (123456789, "1234567.89")])
def test_amounts_are_sent_as_exact_two_decimal_qar_text(dirhams, text):
    assert fatora.qar_text(dirhams) == text
    assert fatora.dirhams_of(text) == dirhams


@pytest.mark.parametrize(
    "amount, dirhams",
    [("5.50", 550), (5.5, 550), (5, 500), ("5.5", 550), ("5.505", None), ("abc", None), (None, None), (True, None),
     ("NaN", None), ("Infinity", None), ([5], None), (0.1 + 0.2, None)],
)
def test_amounts_read_back_must_be_whole_dirhams(amount, dirhams):
    assert fatora.dirhams_of(amount) == dirhams


def test_checkout_sends_what_fatora_expects(client, sandbox):
    url = client.checkout(order_id="order1", amount_dirhams=550, note="GUILD Coins", **CHECKOUT)
    assert url.startswith(sandbox.base_url + "/checkout/")
    [(path, body)] = sandbox.api_calls
    assert path == "/v1/payments/checkout"
    assert body == {
        "amount": "5.50", "currency": "QAR", "order_id": "order1", "note": "GUILD Coins", **CHECKOUT,
    }


def test_a_reused_order_id_is_refused(client):
    client.checkout(order_id="order2", amount_dirhams=550, **CHECKOUT)
    with pytest.raises(FatoraRejected) as refused:
        client.checkout(order_id="order2", amount_dirhams=550, **CHECKOUT)
    assert refused.value.error_code == "DUPLICATE_ORDER_ID"


def test_a_wrong_api_key_is_a_rejection_not_an_outage(sandbox):
    with pytest.raises(FatoraRejected) as refused:
        FatoraClient(sandbox.api_url, "wrong").verify("order1")
    assert refused.value.error_code == "INVALID_API_KEY"


@pytest.mark.parametrize("status", [500, 502, 429])
def test_checkout_is_not_retried(client, sandbox, status):
    sandbox.faults.fail_next_calls, sandbox.faults.fail_status = 1, status
    with pytest.raises(FatoraUnavailable):
        client.checkout(order_id="order3", amount_dirhams=550, **CHECKOUT)
    assert len(sandbox.api_calls) == 1 and client.sleeps == []


@pytest.mark.parametrize("status", [500, 503, 429])
def test_verify_is_retried_with_backoff_through_a_short_outage(client, sandbox, status):
    client.checkout(order_id="order4", amount_dirhams=550, **CHECKOUT)
    sandbox.decide("order4", pay=True)
    sandbox.faults.fail_next_calls, sandbox.faults.fail_status = fatora.VERIFY_ATTEMPTS_MAX - 1, status
    verification = client.verify("order4")
    assert verification.payment_status == "SUCCESS"
    assert verification.amount_dirhams == 550 and verification.currency == "QAR"
    assert verification.transaction_id == sandbox.orders["order4"].transaction_id
    assert len(client.sleeps) == fatora.VERIFY_ATTEMPTS_MAX - 1
    assert all(0 <= s <= fatora.RETRY_BACKOFF_CAP_SECONDS for s in client.sleeps)


def test_verify_gives_up_after_its_attempts(client, sandbox):
    sandbox.faults.fail_next_calls = fatora.VERIFY_ATTEMPTS_MAX
    with pytest.raises(FatoraUnavailable):
        client.verify("order5")
    assert len(sandbox.api_calls) == fatora.VERIFY_ATTEMPTS_MAX


def test_a_timeout_is_an_outage(client, sandbox):
    sandbox.faults.delay_seconds = 1.0
    with pytest.raises(FatoraUnavailable):
        client.verify("order6")


def test_an_unreachable_gateway_is_an_outage():
    closed = FatoraClient(f"http://127.0.0.1:{free_port()}/v1", "k", sleep=lambda s: None, timeouts=(0.5, 0.5))
    with pytest.raises(FatoraUnavailable):
        closed.verify("order7")


def test_refund_sends_the_order_and_an_optional_partial_amount(client, sandbox):
    client.checkout(order_id="order8", amount_dirhams=1100, **CHECKOUT)
    sandbox.decide("order8", pay=True)
    client.refund("order8", amount_dirhams=550)
    assert sandbox.api_calls[-1] == ("/v1/payments/refund", {"order_id": "order8", "amount": "5.50"})


def test_webhook_signatures_are_hmac_sha256_of_the_raw_body():
    body = b'{"order_id":"x"}'
    signature = fatora.sign("secret", body)
    assert signature == hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    assert fatora.signature_is_valid("secret", body, signature)
    assert fatora.signature_is_valid("secret", body, signature.upper())
    assert not fatora.signature_is_valid("secret", body + b" ", signature)
    assert not fatora.signature_is_valid("other", body, signature)
    assert not fatora.signature_is_valid("secret", body, None)
