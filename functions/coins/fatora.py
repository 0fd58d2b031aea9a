"""The Fatora payment gateway: the client of its API and the parsing of its webhook.
Fatora's wire format lives in this file only.

Fatora's REST API (base URL + `api_key` header, JSON): `POST /payments/checkout`,
`POST /payments/verify`, `POST /payments/refund`. Success is
`{"status": "SUCCESS", "result": {...}}`, failure `{"status": "FAILURE", "error":
{"error_code", "description"}}`. Fatora publishes no webhook signature and no
idempotency contract, so a notification is only a hint to call `verify`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Callable
from urllib.parse import parse_qs

from . import backoff

CURRENCY = "QAR"
# A slow gateway must not hold a request (and its idempotency claim) for long.
CONNECT_TIMEOUT_SECONDS = 3.05
READ_TIMEOUT_SECONDS = 15.0
# verify is safe to repeat; four tries ride out a short outage or a 429 burst.
VERIFY_ATTEMPTS_MAX = 4
RETRY_BACKOFF_BASE_SECONDS = 0.25
RETRY_BACKOFF_CAP_SECONDS = 2.0
SIGNATURE_HEADER = "X-Fatora-Signature"

PAID, FAILED, PENDING = "SUCCESS", "FAILURE", "PENDING"


class FatoraError(Exception):
    """The gateway did not do what was asked."""


class FatoraUnavailable(FatoraError):
    """Unreachable, timed out, 5xx or 429: the call may succeed later."""


class FatoraRejected(FatoraError):
    """Fatora answered and said no (FAILURE with an error code)."""

    def __init__(self, error_code: str, description: str) -> None:
        super().__init__(f"{error_code}: {description}")
        self.error_code = error_code
        self.description = description


@dataclass(frozen=True)
class Verification:
    order_id: str
    transaction_id: str | None
    payment_status: str  # SUCCESS, FAILURE or PENDING
    # None when Fatora's amount is not a whole number of dirhams: it then matches nothing.
    amount_dirhams: int | None
    currency: str | None


def qar_text(amount_dirhams: int) -> str:
    """Exact 2-decimal QAR text: 550 dirhams -> "5.50"."""
    assert isinstance(amount_dirhams, int) and amount_dirhams >= 0
    return f"{amount_dirhams // 100}.{amount_dirhams % 100:02d}"


def dirhams_of(amount: Any) -> int | None:
    """Fatora's decimal QAR amount (number or text) in dirhams, or None if not exact."""
    if isinstance(amount, bool) or not isinstance(amount, (int, float, str)):
        return None
    try:
        # str() first: a float such as 5.5 becomes the decimal "5.5", not its binary value.
        dirhams = Decimal(str(amount)) * 100
    except InvalidOperation:
        return None
    if not dirhams.is_finite() or dirhams != dirhams.to_integral_value():
        return None
    return int(dirhams)


def sign(secret: str, body: bytes) -> str:
    """The webhook signature: hex HMAC-SHA256 of the raw body with the shared secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_is_valid(secret: str, body: bytes, signature: str | None) -> bool:
    return signature is not None and hmac.compare_digest(sign(secret, body), signature.strip().lower())


def webhook_order_id(raw_body: bytes, content_type: str) -> str:
    """The order a notification names, from its JSON or form-encoded body; ValueError
    when there is none."""
    content_type = content_type.split(";")[0].strip().lower()
    try:
        if content_type == "application/x-www-form-urlencoded":
            fields = {key: values[0] for key, values in parse_qs(raw_body.decode(), strict_parsing=True).items()}
        else:
            fields = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("The notification is neither JSON nor form-encoded.") from None
    order_id = fields.get("order_id") if isinstance(fields, dict) else None
    if not isinstance(order_id, str):
        raise ValueError("The notification has no valid order_id.")
    return order_id


class FatoraClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        session=None,
        sleep: Callable[[float], None] = time.sleep,
        timeouts: tuple[float, float] = (CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
    ) -> None:
        import requests

        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.session = session or requests.Session()
        self.sleep = sleep
        self.timeouts = timeouts

    def checkout(
        self,
        *,
        order_id: str,
        amount_dirhams: int,
        client: dict[str, str],
        language: str,
        success_url: str,
        failure_url: str,
        note: str | None = None,
    ) -> str:
        """Opens a hosted checkout and returns its URL. Not retried after a timeout or a
        5xx: Fatora refuses a reused order id, so a second try could not succeed anyway."""
        body = {
            "amount": qar_text(amount_dirhams),
            "currency": CURRENCY,
            "order_id": order_id,
            "client": client,
            "language": language,
            "success_url": success_url,
            "failure_url": failure_url,
        }
        if note:
            body["note"] = note
        result = self._call("/payments/checkout", body, attempts=1)
        url = result.get("checkout_url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise FatoraUnavailable("checkout answered without a checkout_url")
        return url

    def verify(self, order_id: str) -> Verification:
        result = self._call("/payments/verify", {"order_id": order_id}, attempts=VERIFY_ATTEMPTS_MAX)
        status = str(result.get("payment_status", "")).upper()
        return Verification(
            order_id=str(result.get("order_id", order_id)),
            transaction_id=str(result["transaction_id"]) if result.get("transaction_id") else None,
            payment_status=status if status in (PAID, FAILED, PENDING) else PENDING,
            amount_dirhams=dirhams_of(result.get("amount")),
            currency=str(result["currency"]).upper() if result.get("currency") else None,
        )

    def refund(self, order_id: str, amount_dirhams: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"order_id": order_id}
        if amount_dirhams is not None:
            body["amount"] = qar_text(amount_dirhams)
        return self._call("/payments/refund", body, attempts=1)

    def _call(self, path: str, body: dict[str, Any], *, attempts: int) -> dict[str, Any]:
        import requests

        last: FatoraError = FatoraUnavailable("not called")
        for attempt in range(attempts):
            if attempt:
                self.sleep(backoff.delay_seconds(attempt, base_seconds=RETRY_BACKOFF_BASE_SECONDS, cap_seconds=RETRY_BACKOFF_CAP_SECONDS))
            try:
                response = self.session.post(
                    self.base_url + path,
                    json=body,
                    headers={"api_key": self.api_key, "Accept": "application/json"},
                    timeout=self.timeouts,
                )
            except requests.RequestException as error:
                last = FatoraUnavailable(f"{path}: {type(error).__name__}")
                continue
            if response.status_code == 429 or response.status_code >= 500:
                last = FatoraUnavailable(f"{path}: HTTP {response.status_code}")
                continue
            try:
                payload = response.json()
            except ValueError:
                raise FatoraUnavailable(f"{path}: HTTP {response.status_code} without JSON") from None
            if not isinstance(payload, dict):
                raise FatoraUnavailable(f"{path}: unexpected answer")
            if payload.get("status") == "SUCCESS" and isinstance(payload.get("result"), dict):
                return payload["result"]
            error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
            raise FatoraRejected(str(error.get("error_code", f"HTTP {response.status_code}")), str(error.get("description", "")))
        raise last
