"""SADAD's wire format against the vectors of the project's SADAD reference (computed
with the placeholder key YOUR_TEST_SECRET_KEY, which is no real key)."""

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from coins import sadad

KEY = "YOUR_TEST_SECRET_KEY"
FORM = {
    "merchant_id": "1234567",
    "ORDER_ID": "GUILD-0001",
    "TXN_AMOUNT": "150.00",
    "CALLBACK_URL": "https://api.example.com/sadad/callback",
    "WEBSITE": "example.com",
    "email": "buyer@example.com",
    "MOBILE_NO": "97450000000",
    "txnDate": "2025-01-01 12:00:00",
}
CALLBACK = {
    "MID": "1234567",
    "ORDERID": "GUILD-0001",
    "RESPCODE": "3",
    "RESPMSG": "Txn Success",
    "STATUS": "TXN_SUCCESS",
    "TXNAMOUNT": "150.00",
    "transaction_number": "SD0000000000001",
    "transaction_status": "3",
    "website_ref_no": "GUILD-0001",
    "issandboxmode": "1",
}
WEBHOOK = {
    "invoiceNumber": "",
    "isTestMode": 1,
    "merchantId": "1234567",
    "message": "success",
    "transactionNumber": "SD0000000000001",
    "transactionStatus": 3,
    "txnAmount": 150,
    "websiteRefNo": "GUILD-0001",
}


def test_the_form_signature_is_the_reference_vector():
    assert sadad.sign(KEY, FORM).lower() == "4bc2bcb8c68ed89905d3167352c9eb034b91e847b27790dc4a43d2beda12e948"
    assert sadad.sign(KEY, FORM) == sadad.sign(KEY, FORM).upper(), "W7: upper-case hex"
    assert sadad.sign(KEY, {**FORM, "signature": "x", "productdetail": "y"}) == sadad.sign(KEY, FORM), "not signed"
    assert sadad.sign(KEY, {**FORM, "TXN_AMOUNT": "150.01"}) != sadad.sign(KEY, FORM)


def test_the_checkout_form_carries_the_mandatory_fields_signed():
    form = sadad.checkout_form(
        merchant_id="1234567",
        secret_key=KEY,
        order_id="GUILD-0001",
        amount_dirhams=15_000,
        callback_url="https://api.example.com/sadad/callback",
        website="example.com",
        email="buyer@example.com",
        mobile_no="97450000000",
        at=datetime(2025, 1, 1, 9, 0, tzinfo=timezone.utc),
    )
    assert {k: v for k, v in form.items() if k != "signature"} == FORM, "12:00 in Qatar is 09:00 UTC"
    assert form["signature"].lower() == "4bc2bcb8c68ed89905d3167352c9eb034b91e847b27790dc4a43d2beda12e948"
    assert sadad.amount_text(550) == "5.50"


def test_the_callback_checksum_is_the_reference_vector_and_a_forgery_fails():
    checksum = sadad.callback_checksum(KEY, CALLBACK)
    assert checksum == "93073150f674a069540bc5ca93894b20509afe0ca61ec3e9df1ddb0b5ba23f71"
    arrived = {**CALLBACK, "checksumhash": checksum.upper()}
    assert sadad.verified(sadad.callback_checksum(KEY, arrived), arrived["checksumhash"]), "case-insensitive"
    forged = {**arrived, "TXNAMOUNT": "1.00"}
    assert not sadad.verified(sadad.callback_checksum(KEY, forged), forged["checksumhash"])
    assert not sadad.verified(sadad.callback_checksum("another key", arrived), arrived["checksumhash"])
    assert not sadad.verified(checksum, None)
    assert sadad.callback_notice(arrived) == sadad.Notice("GUILD-0001", "SD0000000000001")


def test_the_webhook_checksum_is_the_reference_vector_with_values_as_php_writes_them():
    checksum = sadad.webhook_checksum(KEY, WEBHOOK)
    assert checksum == "19ecfd6504e6399f30fc9ad53adf5a5f95c00a0fb3306f3a02a9d45ce4870e84"
    assert sadad.webhook_checksum(KEY, {**WEBHOOK, "txnAmount": 150.0, "checksumhash": checksum}) == checksum, "5.0 is 5"
    assert sadad.webhook_notice(WEBHOOK) == sadad.Notice("GUILD-0001", "SD0000000000001")


@pytest.mark.parametrize(
    "value, text",
    [(None, ""), (False, ""), (True, "1"), (5.0, "5"), (150.5, "150.5"), (Decimal("150.00"), "150"), (3, "3"), ("SD1", "SD1")],
)
def test_values_are_written_as_php_writes_them(value, text):
    assert sadad.php_text(value) == text


def test_a_notice_must_name_an_order():
    with pytest.raises(ValueError):
        sadad.callback_notice({"transaction_status": "3"})
    with pytest.raises(ValueError):
        sadad.webhook_notice({"transactionStatus": 3})
