"""The Fatora adapter, on what it sends and how it reads answers, against the local
sandbox over HTTP (loopback; no emulator needed)."""

import json
from decimal import Decimal

import pytest

from coins import catalog, fatora
from coins.fatora import FatoraClient, FatoraRejected, FatoraUnavailable
from local.emulator import free_port
from local.fatora_sandbox import FatoraSandbox

CHECKOUT = dict(
    client={"name": "Alice", "phone": "+97450000000", "email": "a@example.com"},
    language="ar",
    success_url="https://app.example/return",
    failure_url="https://app.example/return",
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
    # Generous: one slow answer of the in-process sandbox on a loaded machine is no outage.
    gateway = FatoraClient(sandbox.api_url, "unit-key", sleep=sleeps.append, timeouts=(10, 10))
    gateway.sleeps = sleeps
    return gateway


@pytest.mark.parametrize("dirhams, text", [(550, "5.50"), (5, "0.05"), (55000, "550.00"), (0, "0.00"), (123456789, "1234567.89")])
def test_amounts_are_sent_as_exact_two_decimal_qar_text(dirhams, text):
    assert fatora.qar_text(dirhams) == text
    assert catalog.dirhams_of(text) == dirhams


@pytest.mark.parametrize(
    "amount, dirhams",
    [
        ("5.50", 550),
        (5.5, 550),
        (5, 500),
        ("5.5", 550),
        ("5.505", None),
        ("abc", None),
        (None, None),
        (True, None),
        ("NaN", None),
        ("Infinity", None),
        ([5], None),
        (0.1 + 0.2, None),
        (Decimal("123.100"), 12310),
        (Decimal("0.001"), None),
    ],
)
def test_amounts_read_back_must_be_whole_dirhams(amount, dirhams):
    assert catalog.dirhams_of(amount) == dirhams


def test_checkout_sends_the_amount_as_a_json_number_with_two_decimals(client, sandbox):
    url = client.checkout(order_id="order1", amount_dirhams=550, note="GUILD Coins", **CHECKOUT)
    assert url.startswith(sandbox.base_url + "/checkout/")
    [(path, body)] = sandbox.api_calls
    assert path == "/v1/payments/checkout"
    assert body == {"amount": Decimal("5.50"), "currency": "QAR", "order_id": "order1", "note": "GUILD Coins", **CHECKOUT}
    assert str(body["amount"]) == "5.50", "the number's text, exactly"


@pytest.mark.parametrize("dirhams", [550, 5, 55000, 123456789, 100])
def test_the_amount_is_written_into_the_json_text_without_a_float(dirhams):
    text = fatora.json_with_amount({"order_id": "o", "note": 'amount-x " \u00e9'}, dirhams)
    parsed = json.loads(text, parse_float=Decimal)
    assert f'"amount":{fatora.qar_text(dirhams)}' in text
    assert parsed["amount"] == Decimal(fatora.qar_text(dirhams)) and parsed["note"] == 'amount-x " \u00e9'


def test_fatora_does_not_check_order_ids_so_a_reused_one_makes_a_second_order(client, sandbox):
    first = client.checkout(order_id="order2", amount_dirhams=550, **CHECKOUT)
    second = client.checkout(order_id="order2", amount_dirhams=550, **CHECKOUT)
    assert first != second and len([o for o in sandbox.orders if o.order_id == "order2"]) == 2


def test_verify_sends_the_transaction_when_known_and_reads_the_mode(client, sandbox):
    client.checkout(order_id="order9", amount_dirhams=550, **CHECKOUT)
    order = sandbox.decide("order9", pay=True)
    by_order = client.verify("order9")
    by_both = client.verify("order9", order.transaction_id)
    assert by_order == by_both
    assert (by_both.payment_status, by_both.amount_dirhams, by_both.mode) == ("SUCCESS", 550, "test")
    assert [c[1] for c in sandbox.api_calls[-2:]] == [
        {"order_id": "order9"},
        {"order_id": "order9", "transaction_id": order.transaction_id},
    ]
    with pytest.raises(FatoraRejected):
        client.verify("order9", "TX-NOT-THIS-ORDERS")


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
    assert verification.transaction_id == sandbox.order("order4").transaction_id
    assert len(client.sleeps) == fatora.VERIFY_ATTEMPTS_MAX - 1
    assert all(0 <= s <= fatora.RETRY_BACKOFF_CAP_SECONDS for s in client.sleeps)


def test_verify_gives_up_after_its_attempts(client, sandbox):
    sandbox.faults.fail_next_calls = fatora.VERIFY_ATTEMPTS_MAX
    with pytest.raises(FatoraUnavailable):
        client.verify("order5")
    assert len(sandbox.api_calls) == fatora.VERIFY_ATTEMPTS_MAX


def test_a_timeout_is_an_outage(sandbox):
    impatient = FatoraClient(sandbox.api_url, "unit-key", sleep=lambda s: None, timeouts=(0.5, 0.5))
    sandbox.faults.delay_seconds = 1.0  # always past the 0.5 s read timeout
    with pytest.raises(FatoraUnavailable):
        impatient.verify("order6")


def test_an_unreachable_gateway_is_an_outage():
    closed = FatoraClient(f"http://127.0.0.1:{free_port()}/v1", "k", sleep=lambda s: None, timeouts=(0.5, 0.5))
    with pytest.raises(FatoraUnavailable):
        closed.verify("order7")


def test_refund_sends_the_transaction_and_the_order_and_reads_its_status(client, sandbox):
    client.checkout(order_id="order8", amount_dirhams=1100, **CHECKOUT)
    order = sandbox.decide("order8", pay=True)
    assert client.refund("order8", order.transaction_id) == "completed"
    assert sandbox.api_calls[-1] == ("/v1/payments/refund", {"transaction_id": order.transaction_id, "order_id": "order8"})
    with pytest.raises(FatoraRejected):
        client.refund("order8", order.transaction_id)  # refunded already
    assert client.sleeps == [], "a refund is never retried"


@pytest.mark.parametrize(
    "query, body, content_type, notice",
    [
        ({"order_id": "o1", "transaction_id": "TX1"}, b"", "", ("o1", "TX1")),
        ({"order_id": "o1"}, b"", "", ("o1", None)),
        ({}, b'{"order_id": "o2", "transaction_id": "TX2"}', "application/json", ("o2", "TX2")),
        ({}, b"order_id=o3&transaction_id=TX3", "application/x-www-form-urlencoded; charset=utf-8", ("o3", "TX3")),
        ({"order_id": "o4"}, b'{"order_id": "other"}', "application/json", ("o4", None)),
        ({"transaction_id": "TX5"}, b'{"order_id": "o5"}', "application/json", ("o5", "TX5")),
    ],
)
def test_a_notice_names_its_order_from_the_query_first_then_the_body(query, body, content_type, notice):
    assert fatora.notice_of(query, body, content_type) == fatora.Notice(*notice)


@pytest.mark.parametrize(
    "query, body",
    [({}, b""), ({"order_id": ""}, b""), ({}, b"{nope"), ({}, b"[1]"), ({"order_id": "o", "transaction_id": "x" * 129}, b"")],
)
def test_a_notice_without_an_order_is_refused(query, body):
    with pytest.raises(ValueError):
        fatora.notice_of(query, body, "application/json")
