"""The Fatora payment gateway, as Fatora documents it (fatora.io/api): the client of its
API and the reading of what it sends us (the payer's return, the webhook). Fatora's wire
format lives in this file only.

- `POST /payments/checkout` (header `api_key`, JSON; `amount` a JSON number in every
  example) answers the hosted checkout page's URL. Order ids are not checked for
  uniqueness by Fatora: ours are derived from the buyer's Idempotency-Key (one order per
  key), and a retry of the same key after a crash may open a second page for that order.
- After payment Fatora sends the payer's browser to `success_url` or `failure_url`,
  adding query parameters (`order_id`, `transaction_id`, ...); the URLs must carry no
  query string of ours.
- `POST /payments/verify` with `{transaction_id, order_id}` answers `payment_status`
  (SUCCESS | PENDING | FAILURE), `amount` (a JSON number), `currency`,
  `transaction_id` and `mode` (test or live).
- `POST /payments/refund` with `{transaction_id, order_id}` answers
  `result.refund_status`.
- A webhook exists only if one is set up in Fatora's dashboard; its method and fields
  are not documented (secondary sources show a GET with query parameters:
  transaction_id, order_id, mode, response_code, description). No signature is
  documented anywhere, so nothing that arrives is trusted: it only names an order to
  verify.

Success is `{"status": "SUCCESS", "result": {...}}`, failure `{"status": "FAILURE",
"error": {"error_code", "description"}}`.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs

from . import backoff, catalog

CURRENCY = "QAR"
# A slow gateway must not hold a request (and its idempotency claim) for long.
CONNECT_TIMEOUT_SECONDS = 3.05
READ_TIMEOUT_SECONDS = 15.0
# verify is safe to repeat; four tries ride out a short outage or a 429 burst.
VERIFY_ATTEMPTS_MAX = 4
RETRY_BACKOFF_BASE_SECONDS = 0.25
RETRY_BACKOFF_CAP_SECONDS = 2.0
# Transaction ids are Fatora's; ours to store, so bounded.
TRANSACTION_ID_LENGTH_MAX = 128

PAID, FAILED, PENDING = "SUCCESS", "FAILURE", "PENDING"


class FatoraError(Exception):
    """The gateway did not do what was asked."""


class FatoraUnavailable(FatoraError):
    """Unreachable, timed out, 5xx or 429: the call may succeed later, or may have
    succeeded already (the answer was lost)."""


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
    mode: str | None = None  # "live" or "test"


@dataclass(frozen=True)
class Notice:
    """What the payer's return or a webhook names: an order, maybe its transaction."""

    order_id: str
    transaction_id: str | None


def qar_text(amount_dirhams: int) -> str:
    """Exact 2-decimal QAR text: 550 dirhams -> "5.50"."""
    assert isinstance(amount_dirhams, int) and amount_dirhams >= 0
    return f"{amount_dirhams // 100}.{amount_dirhams % 100:02d}"


def json_with_amount(body: Mapping[str, Any], amount_dirhams: int) -> str:
    """The JSON text of `body` with `amount` as a JSON number with exactly two decimals
    (`5.50`), made from integer dirhams without a float: a placeholder no other value
    can contain is replaced by the number's text."""
    placeholder = f"amount-{uuid.uuid4().hex}"
    text = json.dumps({**body, "amount": placeholder}, separators=(",", ":"), ensure_ascii=False)
    return text.replace(json.dumps(placeholder), qar_text(amount_dirhams), 1)


def notice_of(query: Mapping[str, str], body: bytes = b"", content_type: str = "") -> Notice:
    """The order (and transaction) a return or webhook names: from the query string
    first, then a JSON or form-encoded body. ValueError when there is none."""
    fields: dict[str, Any] = dict(query)
    if not fields.get("order_id") and body.strip():
        kind = content_type.split(";")[0].strip().lower()
        try:
            if kind == "application/x-www-form-urlencoded":
                parsed: Any = {key: values[0] for key, values in parse_qs(body.decode(), strict_parsing=True).items()}
            else:
                parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ValueError("The notification is neither JSON nor form-encoded.") from None
        if isinstance(parsed, dict):
            fields = {**parsed, **{k: v for k, v in fields.items() if v}}
    order_id, transaction_id = fields.get("order_id"), fields.get("transaction_id")
    if not isinstance(order_id, str) or not order_id:
        raise ValueError("No order_id.")
    if transaction_id in (None, ""):
        transaction_id = None
    elif (
        not isinstance(transaction_id, str) or len(transaction_id) > TRANSACTION_ID_LENGTH_MAX or not transaction_id.isprintable()
    ):
        raise ValueError("The transaction_id is not usable.")
    return Notice(order_id, transaction_id)


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
        5xx: the order may exist at Fatora already, and the purchase fails safely (its
        order id is never used again)."""
        body: dict[str, Any] = {
            "currency": CURRENCY,
            "order_id": order_id,
            "client": client,
            "language": language,
            "success_url": success_url,
            "failure_url": failure_url,
        }
        if note:
            body["note"] = note
        result = self._call("/payments/checkout", json_with_amount(body, amount_dirhams), attempts=1)
        url = result.get("checkout_url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise FatoraUnavailable("checkout answered without a checkout_url")
        return url

    def verify(self, order_id: str, transaction_id: str | None = None) -> Verification:
        """What Fatora says of a payment: by its transaction when we know it, else by
        the order alone."""
        body = {"order_id": order_id, **({"transaction_id": transaction_id} if transaction_id else {})}
        result = self._call("/payments/verify", json.dumps(body), attempts=VERIFY_ATTEMPTS_MAX)
        status = str(result.get("payment_status", "")).upper()
        return Verification(
            order_id=str(result.get("order_id", order_id)),
            transaction_id=str(result["transaction_id"]) if result.get("transaction_id") else None,
            payment_status=status if status in (PAID, FAILED, PENDING) else PENDING,
            amount_dirhams=catalog.dirhams_of(result.get("amount")),
            currency=str(result["currency"]).upper() if result.get("currency") else None,
            mode=str(result["mode"]).lower() if result.get("mode") else None,
        )

    def refund(self, order_id: str, transaction_id: str) -> str:
        """Refunds a payment in full; returns Fatora's `refund_status`. Not retried: a
        lost answer leaves it unknown whether the refund happened."""
        result = self._call("/payments/refund", json.dumps({"transaction_id": transaction_id, "order_id": order_id}), attempts=1)
        return str(result.get("refund_status", ""))

    def _call(self, path: str, body: str, *, attempts: int) -> dict[str, Any]:
        import requests

        last: FatoraError = FatoraUnavailable("not called")
        for attempt in range(attempts):
            if attempt:
                self.sleep(
                    backoff.delay_seconds(attempt, base_seconds=RETRY_BACKOFF_BASE_SECONDS, cap_seconds=RETRY_BACKOFF_CAP_SECONDS)
                )
            try:
                response = self.session.post(
                    self.base_url + path,
                    data=body.encode(),
                    headers={"api_key": self.api_key, "Accept": "application/json", "Content-Type": "application/json"},
                    timeout=self.timeouts,
                )
            except requests.RequestException as error:
                last = FatoraUnavailable(f"{path}: {type(error).__name__}")
                continue
            if response.status_code == 429 or response.status_code >= 500:
                last = FatoraUnavailable(f"{path}: HTTP {response.status_code}")
                continue
            try:
                # Amounts are read as Decimal, never as floats.
                payload = response.json(parse_float=Decimal)
            except ValueError:
                raise FatoraUnavailable(f"{path}: HTTP {response.status_code} without JSON") from None
            if not isinstance(payload, dict):
                raise FatoraUnavailable(f"{path}: unexpected answer")
            if payload.get("status") == "SUCCESS" and isinstance(payload.get("result"), dict):
                return payload["result"]
            refusal: dict[str, Any] = payload["error"] if isinstance(payload.get("error"), dict) else {}
            raise FatoraRejected(
                str(refusal.get("error_code", f"HTTP {response.status_code}")), str(refusal.get("description", ""))
            )
        raise last
