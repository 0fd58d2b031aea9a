"""A local Fatora sandbox, as Fatora documents itself (fatora.io/api): the payments API
(checkout, verify, refund), the hosted checkout page with Pay and Decline, the payer's
redirect to `success_url` / `failure_url` with `order_id` and `transaction_id` added,
and, if one is set up (as in Fatora's dashboard), a webhook retried with backoff.

What Fatora documents, and the sandbox does:
- `api_key` header; `{"status": "SUCCESS", "result": {...}}` or `{"status": "FAILURE",
  "error": {"error_code", "description"}}`.
- checkout: `amount` a JSON number (every example); `order_id` any string, not checked
  for uniqueness (a second checkout with an id makes a second order); `success_url` and
  `failure_url` without a query string of ours (the FAQ).
- verify: `{order_id, transaction_id}`; by the transaction when given (it must belong
  to the order), else the order's latest payment; answers `payment_status`, `amount` (a
  number), `currency`, `transaction_id`, `mode`.
- refund: `{transaction_id, order_id}`; answers `result.refund_status`.
What Fatora does not document, and the sandbox decides safely (README, "Fatora"):
- The webhook: a GET with query parameters `order_id`, `transaction_id`, `mode`,
  `response_code`, `description` (what secondary sources show); a POST with JSON or a
  form is a switch. No signature (none is documented).
- A string amount is refused (Fatora's examples never send one); a refund of a payment
  already refunded, or not paid, is refused; `refund_status` is "completed".

Started by `make dev` and by the tests. It can be told to misbehave, over HTTP
(`POST /_sandbox/faults`) or in-process (`sandbox.faults`).
"""

from __future__ import annotations

import html
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from flask import Flask, Response, redirect, request

from local.serving import QuietHandler, in_background, still_running

# Webhook delivery: up to six tries, waiting 0.2 s, 0.4 s, ... between them.
WEBHOOK_ATTEMPTS_MAX = 6
WEBHOOK_BACKOFF_BASE_SECONDS = 0.2
WEBHOOK_TIMEOUT_SECONDS = 10
REFUND_STATUS = "completed"


@dataclass
class Faults:
    """What the sandbox does wrong, for tests. Counters count down per call."""

    fail_next_calls: int = 0  # the next N API calls answer `fail_status`
    fail_status: int = 500
    fail_paths: tuple = ()  # only these API paths fail (all when empty)
    delay_seconds: float = 0.0  # before every API answer
    verify_status: str | None = None  # report this payment_status instead of the truth
    verify_amount: str | None = None  # report this amount instead of the truth
    verify_currency: str | None = None
    verify_mode: str | None = None  # report this mode instead of the account's
    refuse_refunds: bool = False  # answer refunds with FAILURE
    lose_next_refund_answers: int = 0  # the next N refunds are made, then answered 502 (the answer is lost)
    webhook_copies: int = 1  # send each webhook this many times, concurrently
    webhook_method: str = "GET"  # "GET" (query string), "POST_JSON" or "POST_FORM"
    webhooks_enabled: bool = True
    follow_returns: bool = True  # redirect the payer to success_url / failure_url


@dataclass
class Order:
    order_id: str
    amount: Decimal
    currency: str
    client: dict
    language: str
    success_url: str
    failure_url: str
    token: str
    status: str = "PENDING"
    transaction_id: str | None = None
    refunds: list = field(default_factory=list)


class FatoraSandbox:
    def __init__(self, *, api_key: str, webhook_url: str | None = None, mode: str = "test") -> None:
        self.api_key = api_key
        # As set up in Fatora's dashboard (with a `?token=` of ours, if one is wanted).
        self.webhook_url = webhook_url
        self.mode = mode  # the account's mode: "test" or "live"
        self.base_url = ""  # set by serve()
        self.faults = Faults()
        self.orders: list[Order] = []  # every checkout, duplicates of an order id included
        self.deliveries: list[dict[str, Any]] = []  # one per webhook try: order, status or error
        self.api_calls: list[tuple[str, dict]] = []  # (path, body) as received
        self._lock = threading.Lock()
        self._deliveries_in_flight: list[threading.Thread] = []
        self._server = None
        self.app = self._build_app()

    # Running.

    def serve(self, port: int = 0) -> "FatoraSandbox":
        class KeepsUnderscoreHeaders(QuietHandler):
            # Fatora authenticates with an `api_key` header; werkzeug drops headers with
            # underscores unless told otherwise.
            def make_environ(self):
                environ = super().make_environ()
                for key, value in self.headers.items():
                    if "_" in key:
                        environ["HTTP_" + key.upper()] = value
                return environ

        self._server = in_background(self.app, port, "fatora-sandbox", KeepsUnderscoreHeaders)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    @property
    def api_url(self) -> str:
        return self.base_url + "/v1"

    def drain(self, timeout_seconds: float = 90.0) -> None:
        """Waits for webhook deliveries in flight (retries included) to finish."""
        self._deliveries_in_flight = still_running(list(self._deliveries_in_flight), timeout_seconds)

    def reset(self) -> None:
        self.drain()
        with self._lock:
            self.faults = Faults()
            self.orders.clear()
            self.deliveries.clear()
            self.api_calls.clear()

    def order(self, order_id: str, transaction_id: str | None = None) -> Order | None:
        """The order's payment with that transaction, or its latest checkout."""
        with self._lock:
            found = [
                o
                for o in self.orders
                if o.order_id == order_id and (transaction_id is None or o.transaction_id == transaction_id)
            ]
        return found[-1] if found else None

    # What a payer does on the hosted page, and what Fatora then sends.

    def decide(self, order_id: str, pay: bool) -> Order:
        order = self.order(order_id)
        with self._lock:
            if order.status == "PENDING":
                order.status = "SUCCESS" if pay else "FAILURE"
                order.transaction_id = "TX-" + uuid.uuid4().hex[:16].upper()
        if self.faults.webhooks_enabled:
            self.send_webhook(order)
        return order

    def return_url(self, order: Order) -> str:
        """Where the payer's browser goes: success_url or failure_url, with Fatora's query."""
        target = order.success_url if order.status == "SUCCESS" else order.failure_url
        return f"{target}?{urlencode({'order_id': order.order_id, 'transaction_id': order.transaction_id or ''})}"

    def send_webhook(self, order: Order, *, wait: bool = False) -> None:
        """Notifies the webhook URL, in the background, retrying non-2xx with backoff."""
        if not self.webhook_url:
            return
        fields = {
            "order_id": order.order_id,
            "transaction_id": order.transaction_id or "",
            "mode": self.mode,
            "response_code": "000" if order.status == "SUCCESS" else "051",
            "description": order.status,
        }
        threads = [
            threading.Thread(target=self._deliver, args=(order.order_id, fields, self.faults.webhook_method), daemon=True)
            for _ in range(self.faults.webhook_copies)
        ]
        for thread in threads:
            thread.start()
        self._deliveries_in_flight.extend(threads)
        if wait:
            for thread in threads:
                thread.join()

    def _deliver(self, order_id: str, fields: dict, method: str) -> None:
        separator = "&" if "?" in self.webhook_url else "?"
        for attempt in range(WEBHOOK_ATTEMPTS_MAX):
            if attempt:
                time.sleep(WEBHOOK_BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
            try:
                if method == "POST_JSON":
                    answer = requests.post(self.webhook_url, json=fields, timeout=WEBHOOK_TIMEOUT_SECONDS)
                elif method == "POST_FORM":
                    answer = requests.post(self.webhook_url, data=fields, timeout=WEBHOOK_TIMEOUT_SECONDS)
                else:
                    answer = requests.get(f"{self.webhook_url}{separator}{urlencode(fields)}", timeout=WEBHOOK_TIMEOUT_SECONDS)
                status = answer.status_code
            except requests.RequestException as error:
                status = type(error).__name__
            with self._lock:
                self.deliveries.append({"order_id": order_id, "attempt": attempt, "status": status, "method": method})
            if isinstance(status, int) and 200 <= status < 300:
                return

    # The HTTP face.

    def _build_app(self) -> Flask:
        app = Flask("fatora_sandbox")

        def answer(payload: dict, status: int = 200) -> Response:
            return Response(json.dumps(payload, default=_number), status, mimetype="application/json")

        def failure(code: str, description: str, status: int) -> Response:
            return answer({"status": "FAILURE", "error": {"error_code": code, "description": description}}, status)

        def body() -> dict:
            try:
                parsed = json.loads(request.get_data(), parse_float=Decimal)
            except ValueError:
                return {}
            return parsed if isinstance(parsed, dict) else {}

        @app.before_request
        def api_gate():
            if not request.path.startswith("/v1/"):
                return None
            with self._lock:
                self.api_calls.append((request.path, body()))
                faults = self.faults
                failing = faults.fail_next_calls > 0 and (not faults.fail_paths or request.path in faults.fail_paths)
                if failing:
                    faults.fail_next_calls -= 1
                delay = faults.delay_seconds
            if delay:
                time.sleep(delay)
            if failing:
                return failure("SANDBOX_FAULT", "told to fail", self.faults.fail_status)
            if request.headers.get("api_key") != self.api_key:
                return failure("INVALID_API_KEY", "api_key header missing or wrong", 401)
            if not body():
                return failure("INVALID_REQUEST", "JSON object expected", 400)
            return None

        @app.post("/v1/payments/checkout")
        def checkout():
            given = body()
            missing = [k for k in ("amount", "currency", "order_id", "client", "success_url", "failure_url") if not given.get(k)]
            if missing:
                return failure("MISSING_FIELDS", f"missing {missing}", 400)
            amount = given["amount"]
            if isinstance(amount, bool) or not isinstance(amount, (int, Decimal)) or amount <= 0 or given["currency"] != "QAR":
                return failure("INVALID_AMOUNT", "amount must be a positive number of QAR", 400)
            if any(urlsplit(given[k]).query for k in ("success_url", "failure_url")):
                return failure("INVALID_URL", "success_url and failure_url take no query string", 400)
            token = uuid.uuid4().hex
            with self._lock:
                self.orders.append(
                    Order(
                        order_id=str(given["order_id"]),
                        amount=Decimal(amount),
                        currency=given["currency"],
                        client=given["client"],
                        language=given.get("language", "en"),
                        success_url=given["success_url"],
                        failure_url=given["failure_url"],
                        token=token,
                    )
                )
            return answer({"status": "SUCCESS", "result": {"checkout_url": f"{self.base_url}/checkout/{token}"}})

        @app.post("/v1/payments/verify")
        def verify():
            given = body()
            order = self.order(str(given.get("order_id")), given.get("transaction_id") or None)
            if order is None:
                return failure("ORDER_NOT_FOUND", "no such order or transaction", 404)
            faults = self.faults
            return answer(
                {
                    "status": "SUCCESS",
                    "result": {
                        "order_id": order.order_id,
                        "transaction_id": order.transaction_id,
                        "payment_status": faults.verify_status or order.status,
                        "amount": Decimal(faults.verify_amount) if faults.verify_amount else order.amount,
                        "currency": faults.verify_currency or order.currency,
                        "mode": faults.verify_mode or self.mode,
                        "description": "Transaction Successful - Approved" if order.status == "SUCCESS" else order.status,
                    },
                }
            )

        @app.post("/v1/payments/refund")
        def refund():
            given = body()
            order = self.order(str(given.get("order_id")), given.get("transaction_id") or "")
            if order is None or order.status != "SUCCESS" or order.refunds or self.faults.refuse_refunds:
                return failure("NOT_REFUNDABLE", "only a paid transaction, not yet refunded, can be refunded", 400)
            order.refunds.append(order.amount)
            with self._lock:
                lost = self.faults.lose_next_refund_answers > 0
                self.faults.lose_next_refund_answers -= lost
            if lost:
                # What a proxy answers when Fatora's answer never reached it: the refund happened.
                return failure("BAD_GATEWAY", "the answer was lost", 502)
            return answer(
                {
                    "status": "SUCCESS",
                    "result": {
                        "order_id": order.order_id,
                        "transaction_id": order.transaction_id,
                        "refund_status": REFUND_STATUS,
                    },
                }
            )

        def by_token(token: str) -> Order | None:
            return next((o for o in self.orders if o.token == token), None)

        @app.get("/checkout/<token>")
        def page(token):
            order = by_token(token)
            if order is None:
                return Response("Unknown checkout", 404)
            amount = html.escape(f"{order.amount:.2f}")
            return Response(
                f"""<!doctype html><title>Fatora sandbox checkout</title>
<h1>Pay {amount} QAR</h1><p>Order {html.escape(order.order_id)} ({html.escape(order.status)})</p>
<form method="post" action="/checkout/{token}/pay"><button>Pay</button></form>
<form method="post" action="/checkout/{token}/decline"><button>Decline</button></form>""",
                mimetype="text/html",
            )

        @app.post("/checkout/<token>/<decision>")
        def decide(token, decision):
            order = by_token(token)
            if order is None or decision not in ("pay", "decline"):
                return Response("Unknown checkout", 404)
            order = self.decide(order.order_id, pay=decision == "pay")
            if not self.faults.follow_returns:
                return Response(
                    "<!doctype html><p>Payment recorded. (The sandbox did not send you back.)</p>", mimetype="text/html"
                )
            return redirect(self.return_url(order), code=303)

        @app.post("/_sandbox/faults")
        def set_faults():
            changes = request.get_json(force=True)
            unknown = set(changes) - set(Faults.__dataclass_fields__)
            if unknown:
                return answer({"error": f"unknown faults {sorted(unknown)}"}, 400)
            for name, value in changes.items():
                setattr(self.faults, name, value)
            return answer({"faults": self.faults.__dict__})

        @app.post("/_sandbox/orders/<order_id>/webhook")
        def resend(order_id):
            order = self.order(order_id)
            if order is None:
                return answer({"error": "no such order"}, 404)
            self.send_webhook(order)
            return answer({"sent": True})

        return app


def _number(value: Any):
    """JSON numbers for Decimals (the sandbox's amounts), as Fatora sends them."""
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value).__name__)
