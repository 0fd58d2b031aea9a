"""SADAD Qatar Web Checkout 2.1 on the wire: the signed checkout form, and the checksums
of the browser's callback and of the webhook, as developer.sadad.qa documents them
(gathered, with what it leaves undocumented, in the project's SADAD reference). The only
module that knows SADAD's field names, hashing rules and API; only `SadadClient` does I/O.

A checksum proves only that someone with the secret key signed, and the browser carries
the callback: nothing here decides that a payment happened (coins are issued only after
SADAD's own API confirms it).

Where SADAD's pages disagree or say nothing, the choice made is written beside the code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Mapping

from . import catalog

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
    """The fields of the form the payer's browser POSTs to SADAD's checkout (never a GET,
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
    (and SADAD's transaction); nothing more is believed, not even the status it reports
    (getTransaction decides)."""

    order_id: str
    transaction_number: str | None


def callback_notice(fields: Mapping[str, str]) -> Notice:
    """The browser's callback (W10): ORDERID (else website_ref_no) and transaction_number;
    the status it reports is not read (getTransaction decides)."""
    order_id = fields.get("ORDERID") or fields.get("website_ref_no")
    if not order_id:
        raise ValueError("no ORDERID")
    return Notice(order_id, fields.get("transaction_number") or None)


def webhook_notice(payload: Mapping[str, Any]) -> Notice:
    """The webhook (W11): websiteRefNo is our ORDER_ID, transactionNumber SADAD's."""
    order_id = payload.get("websiteRefNo")
    if not isinstance(order_id, str) or not order_id:
        raise ValueError("no websiteRefNo")
    number = payload.get("transactionNumber")
    return Notice(order_id, number if isinstance(number, str) and number else None)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# The server API (AUTH, GST).

# What SADAD answers getTransaction with (GST's status names); only Success is paid. The
# rest of GST's list (Refund, Pending, Onhold, Rejected) has no documented meaning for a
# payment: Refund and Rejected are final and unpaid; anything else stays pending.
PAID_STATUSES = frozenset({"success"})
FAILED_STATUSES = frozenset({"failed", "rejected", "refund"})
# How long a login's token is used: undocumented; SADAD's own Laravel package caches it
# 900 s, so we renew well before, and once more on a 401.
TOKEN_REUSE_SECONDS = 600
# A slow gateway must not hold a request (and its key) for long.
CONNECT_TIMEOUT_SECONDS = 3.05
READ_TIMEOUT_SECONDS = 15.0


class SadadError(Exception):
    """SADAD refused (a definite answer: no such transaction) or did not answer
    (SadadUnavailable)."""


class SadadUnavailable(SadadError):
    """No answer about the payment: unreachable, 5xx, 429, or our login refused."""


@dataclass(frozen=True)
class Transaction:
    """What getTransaction says of one payment."""

    transaction_number: str
    order_id: str | None  # website_ref_no: our ORDER_ID
    status: str  # IN_PROGRESS, FAILED or SUCCESSFUL
    amount_dirhams: int | None  # None when not an exact number of dirhams: it matches nothing
    sandbox: bool | None  # None when SADAD did not say: it is then never live


class SadadClient:
    """SADAD's server API: login, then getTransaction by SADAD's transaction number
    (a lookup by our ORDER_ID is undocumented, so the number is kept from the callback
    or the webhook)."""

    def __init__(
        self, base_url: str, merchant_id: str, secret_key: str, domain: str, *, session=None, clock=time.monotonic
    ) -> None:
        import requests

        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.merchant_id, self.secret_key, self.domain = merchant_id, secret_key, domain
        self.session = session or requests.Session()
        self.clock = clock
        self._token: tuple[str, float] | None = None

    def transaction(self, transaction_number: str) -> Transaction:
        """The payment as SADAD's API reports it (one renewal of the token on a 401)."""
        for renewed in (False, True):
            answer = self._request(
                "GET", "transactions/getTransaction", {"transactionno": transaction_number}, token=self._login(force=renewed)
            )
            if answer.status_code == 401 and not renewed:
                continue
            break
        if answer.status_code == 401:
            # Refused with a fresh token: our credentials, not the payment, are wrong.
            raise SadadUnavailable("getTransaction: HTTP 401 with a fresh token")
        if answer.status_code != 200:
            raise SadadError(f"getTransaction: HTTP {answer.status_code}")
        result = _json(answer)
        status = str(result.get("transactionstatus", "")).strip().lower()
        sandbox = result.get("issandboxmode")
        return Transaction(
            transaction_number=str(result.get("transactionno") or transaction_number),
            order_id=str(result["website_ref_no"]) if result.get("website_ref_no") else None,
            status=SUCCESSFUL if status in PAID_STATUSES else FAILED if status in FAILED_STATUSES else IN_PROGRESS,
            amount_dirhams=catalog.dirhams_of(result.get("amount")),
            sandbox=None if sandbox is None else php_text(sandbox) == "1",
        )

    def _login(self, *, force: bool) -> str:
        if not force and self._token is not None and self._token[1] > self.clock():
            return self._token[0]
        body = {
            "sadadId": int(self.merchant_id) if self.merchant_id.isdigit() else self.merchant_id,
            "secretKey": self.secret_key,
            "domain": self.domain,
        }
        answer = self._request("POST", "userbusinesses/login", body)
        if answer.status_code != 200:
            # 401 (bad credentials) or 400 (merchant blocked), AUTH: a fault of our
            # configuration, which says nothing of any payment: "no answer", never "no".
            raise SadadUnavailable(f"login: HTTP {answer.status_code} (check SADAD_MERCHANT_ID, SADAD_SECRET_KEY, SADAD_WEBSITE)")
        token = _json(answer).get("accessToken")
        if not isinstance(token, str) or not token:
            raise SadadUnavailable("login: no accessToken")
        self._token = (token, self.clock() + TOKEN_REUSE_SECONDS)
        return token

    def _request(self, method: str, path: str, body: Mapping[str, Any], *, token: str | None = None):
        import requests

        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "guild-coins"}
        if token is not None:
            headers["Authorization"] = token  # GST: the token itself, no "Bearer"
        try:
            answer = self.session.request(
                method,
                self.base_url + path,
                data=json.dumps(body),
                headers=headers,
                timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
            )
        except requests.RequestException as error:
            raise SadadUnavailable(f"{path}: {type(error).__name__}") from None
        if answer.status_code == 429 or answer.status_code >= 500:
            raise SadadUnavailable(f"{path}: HTTP {answer.status_code}")
        return answer


def _json(answer) -> dict[str, Any]:
    try:
        payload = answer.json(parse_float=Decimal)
    except ValueError:
        raise SadadUnavailable(f"HTTP {answer.status_code} without JSON") from None
    if not isinstance(payload, dict):
        raise SadadUnavailable("an answer that is not an object")
    return payload
