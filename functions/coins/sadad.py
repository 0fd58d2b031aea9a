"""SADAD Qatar Web Checkout 2.1 on the wire: the signed checkout form, and the checksums
of the browser's callback and of the webhook, as developer.sadad.qa documents them
(gathered, with what it leaves undocumented, in the project's SADAD reference). The only
module that knows SADAD's field names and hashing rules; nothing here does I/O.

A checksum proves only that someone with the secret key signed, and the browser carries
the callback: nothing here decides that a payment happened (coins are issued only after
SADAD's own API confirms it).

Where SADAD's pages disagree or say nothing, the choice made is written beside the code.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Mapping

# One checkout URL for test and live: the signing key picks the mode (W8, FAQ).
CHECKOUT_URL = "https://sadadqa.com/webpurchase"
# transaction_status / transactionStatus: only 2 and 3 are final (W10, W12, W16).
IN_PROGRESS, FAILED, SUCCESSFUL = "1", "2", "3"
# Posted beside the signed fields but kept out of the signature (W8: optional fields are
# not signed "unless documented"; productdetail is a list, not a scalar).
UNSIGNED = frozenset({"signature", "productdetail"})
CALLBACK_CHECKSUM = "checksumhash"


def sign(secret_key: str, fields: Mapping[str, str]) -> str:
    """The checkout form's signature (W7): every scalar field posted but the signature
    itself and productdetail, sorted by key in byte order, their values appended to the
    secret key with no separator, SHA-256 of the UTF-8 text, in hex.

    W7 shows the hex in upper case; SADAD's end-to-end sample and the computed vectors
    use lower case. Upper case is what the documentation page says, so it is sent; the
    contract check (`make sadad-contract`) confirms SADAD accepts it."""
    signed = {key: value for key, value in fields.items() if key not in UNSIGNED}
    return _sha256(secret_key + "".join(signed[key] for key in sorted(signed))).upper()


def amount_text(amount_dirhams: int) -> str:
    """TXN_AMOUNT: the exact price as a 2-decimal string, 550 dirhams -> "5.50" (W8)."""
    assert isinstance(amount_dirhams, int) and amount_dirhams > 0
    return f"{amount_dirhams // 100}.{amount_dirhams % 100:02d}"


def txn_date(moment: datetime) -> str:
    """txnDate as SADAD's samples write it, "YYYY-MM-DD HH:MM:SS" (E2E, WOO; W7's example
    has a date alone). Its time zone is undocumented: we send Qatar time, the
    merchant's, which has no daylight saving."""
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo("Asia/Qatar")).strftime("%Y-%m-%d %H:%M:%S")


def checkout_form(
    *,
    merchant_id: str,
    secret_key: str,
    order_id: str,
    amount_dirhams: int,
    callback_url: str,
    website: str,
    email: str,
    mobile_no: str,
    at: datetime,
) -> dict[str, str]:
    """The fields of the form the payer's browser POSTs to CHECKOUT_URL (never a GET,
    W8): the documented mandatory fields, signed."""
    fields = {
        "merchant_id": merchant_id,
        "ORDER_ID": order_id,
        "TXN_AMOUNT": amount_text(amount_dirhams),
        "CALLBACK_URL": callback_url,
        "WEBSITE": website,
        "email": email,
        "MOBILE_NO": mobile_no,
        "txnDate": txn_date(at),
    }
    return {**fields, "signature": sign(secret_key, fields)}


def callback_checksum(secret_key: str, fields: Mapping[str, str]) -> str:
    """The checksum of the browser's callback (W13): every field that arrived but the
    checksum, sorted by key, their values (decoded once from the form body) appended to
    the secret key, SHA-256 in hex."""
    return _sha256(secret_key + "".join(fields[key] for key in sorted(fields) if key != CALLBACK_CHECKSUM))


def webhook_checksum(secret_key: str, payload: Mapping[str, Any]) -> str:
    """The webhook's checksum: W11's steps are cut off; Sadad's own WooCommerce plugin
    removes the checksum, sorts by key and hashes the secret key and the values as PHP
    turns them into text (php_text)."""
    return _sha256(secret_key + "".join(php_text(payload[key]) for key in sorted(payload) if key != CALLBACK_CHECKSUM))


def verified(expected: str, given: Any) -> bool:
    """A checksum compared in constant time, case-insensitively (W13)."""
    return isinstance(given, str) and hmac.compare_digest(expected.lower().encode(), given.strip().lower().encode())


def php_text(value: Any) -> str:
    """A JSON value as PHP's string conversion writes it, which the webhook's checksum
    hashes: null and false "", true "1", 5.0 "5", 150.5 "150.5"."""
    if value is None or value is False:
        return ""
    if value is True:
        return "1"
    if isinstance(value, float | Decimal):
        number = Decimal(str(value)) if isinstance(value, float) else value
        return format(number.normalize(), "f")
    return str(value)


@dataclass(frozen=True)
class Notice:
    """What a callback or a webhook says, once its checksum holds: it names an order
    (and SADAD's transaction), nothing more is believed."""

    order_id: str
    transaction_number: str | None
    status: str  # IN_PROGRESS, FAILED or SUCCESSFUL as SADAD reported it


def callback_notice(fields: Mapping[str, str]) -> Notice:
    """The browser's callback (W10): ORDERID, transaction_number, transaction_status."""
    order_id = fields.get("ORDERID") or fields.get("website_ref_no")
    if not order_id:
        raise ValueError("no ORDERID")
    return Notice(order_id, fields.get("transaction_number") or None, str(fields.get("transaction_status", "")))


def webhook_notice(payload: Mapping[str, Any]) -> Notice:
    """The webhook (W11): websiteRefNo is our ORDER_ID, transactionNumber SADAD's."""
    order_id = payload.get("websiteRefNo")
    if not isinstance(order_id, str) or not order_id:
        raise ValueError("no websiteRefNo")
    number = payload.get("transactionNumber")
    return Notice(order_id, number if isinstance(number, str) and number else None, php_text(payload.get("transactionStatus")))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
