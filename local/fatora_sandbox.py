"""A local Fatora sandbox: the payments API (checkout, verify, refund), the hosted
checkout page with Pay and Decline buttons, and signed webhooks retried with backoff.

Started by `make dev` and by the tests. It can be told to misbehave, over HTTP
(`POST /_sandbox/faults`) or in-process (`sandbox.faults`): fail verify, answer 500 or
429, delay, send duplicate webhooks, report another amount or currency.
"""

from __future__ import annotations

import html
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import requests
from flask import Flask, Response, redirect, request

# Webhook delivery: up to six tries, waiting 0.2 s, 0.4 s, ... between them.
WEBHOOK_ATTEMPTS_MAX = 6
WEBHOOK_BACKOFF_BASE_SECONDS = 0.2
WEBHOOK_TIMEOUT_SECONDS = 10


@dataclass
class Faults:
    """What the sandbox does wrong, for tests. Counters count down per call."""

    fail_next_calls: int = 0  # the next N API calls answer `fail_status`
    fail_status: int = 500
    delay_seconds: float = 0.0  # before every API answer
    verify_status: str | None = None  # report this payment_status instead of the truth
    verify_amount: str | None = None  # report this amount instead of the truth
    verify_currency: str | None = None
    webhook_copies: int = 1  # send each webhook this many times, concurrently
    webhook_form: bool = False  # form-encoded instead of JSON
    webhooks_enabled: bool = True


@dataclass
class Order:
    order_id: str
    amount: str
    currency: str
    client: dict
    language: str
    success_url: str
    failure_url: str
    token: str
    status: str = "PENDING"
    transaction_id: str | None = None
    refunded: list = field(default_factory=list)


class FatoraSandbox:
    def __init__(self, *, api_key: str, webhook_url: str | None = None, webhook_secret: str | None = None) -> None:
        self.api_key = api_key
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.base_url = ""  # set by serve()
        self.faults = Faults()
        self.orders: dict[str, Order] = {}
        self.deliveries: list[dict[str, Any]] = []  # one per webhook try: order, status or error
        self.api_calls: list[tuple[str, dict]] = []  # (path, body) as received
        self._lock = threading.Lock()
        self._deliveries_in_flight: list[threading.Thread] = []
        self._server = None
        self.app = self._build_app()

    # Running.

    def serve(self, port: int = 0) -> "FatoraSandbox":
        from werkzeug.serving import WSGIRequestHandler, make_server

        class KeepsUnderscoreHeaders(WSGIRequestHandler):
            # Fatora authenticates with an `api_key` header; werkzeug drops headers with
            # underscores unless told otherwise.
            def make_environ(self):
                environ = super().make_environ()
                for key, value in self.headers.items():
                    if "_" in key:
                        environ["HTTP_" + key.upper()] = value
                return environ

            def log_request(self, *args, **kwargs):
                pass

        self._server = make_server("127.0.0.1", port, self.app, threaded=True, request_handler=KeepsUnderscoreHeaders)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True, name="fatora-sandbox").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    @property
    def api_url(self) -> str:
        return self.base_url + "/v1"

    def drain(self, timeout_seconds: float = 15.0) -> None:
        """Waits for webhook deliveries in flight (retries included) to finish."""
        deadline = time.monotonic() + timeout_seconds
        for thread in list(self._deliveries_in_flight):
            thread.join(max(0.0, deadline - time.monotonic()))
        self._deliveries_in_flight = [t for t in self._deliveries_in_flight if t.is_alive()]

    def reset(self) -> None:
        self.drain()
        with self._lock:
            self.faults = Faults()
            self.orders.clear()
            self.deliveries.clear()
            self.api_calls.clear()

    # What a payer does on the hosted page, and what Fatora then sends.

    def decide(self, order_id: str, pay: bool) -> Order:
        with self._lock:
            order = self.orders[order_id]
            if order.status == "PENDING":
                order.status = "SUCCESS" if pay else "FAILURE"
                order.transaction_id = "TX-" + uuid.uuid4().hex[:16].upper()
        if self.faults.webhooks_enabled:
            self.send_webhook(order_id)
        return order

    def send_webhook(self, order_id: str, *, wait: bool = False) -> None:
        """Notifies the webhook URL, in the background, retrying non-2xx with backoff."""
        if not self.webhook_url:
            return
        order = self.orders[order_id]
        payload = {"order_id": order.order_id, "transaction_id": order.transaction_id, "status": order.status}
        if self.faults.webhook_form:
            from urllib.parse import urlencode

            body, content_type = urlencode({k: v or "" for k, v in payload.items()}).encode(), "application/x-www-form-urlencoded"
        else:
            body, content_type = json.dumps(payload).encode(), "application/json"
        headers = {"Content-Type": content_type}
        if self.webhook_secret:
            from coins.fatora import SIGNATURE_HEADER, sign

            headers[SIGNATURE_HEADER] = sign(self.webhook_secret, body)
        threads = [
            threading.Thread(target=self._deliver, args=(order_id, body, headers), daemon=True)
            for _ in range(self.faults.webhook_copies)
        ]
        for thread in threads:
            thread.start()
        self._deliveries_in_flight.extend(threads)
        if wait:
            for thread in threads:
                thread.join()

    def _deliver(self, order_id: str, body: bytes, headers: dict) -> None:
        for attempt in range(WEBHOOK_ATTEMPTS_MAX):
            if attempt:
                time.sleep(WEBHOOK_BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
            try:
                status = requests.post(self.webhook_url, data=body, headers=headers, timeout=WEBHOOK_TIMEOUT_SECONDS).status_code
            except requests.RequestException as error:
                status = type(error).__name__
            with self._lock:
                self.deliveries.append({"order_id": order_id, "attempt": attempt, "status": status})
            if isinstance(status, int) and 200 <= status < 300:
                return

    # The HTTP face.

    def _build_app(self) -> Flask:
        app = Flask("fatora_sandbox")

        def answer(payload: dict, status: int = 200) -> Response:
            return Response(json.dumps(payload), status, mimetype="application/json")

        def failure(code: str, description: str, status: int) -> Response:
            return answer({"status": "FAILURE", "error": {"error_code": code, "description": description}}, status)

        @app.before_request
        def api_gate():
            if not request.path.startswith("/v1/"):
                return None
            body = request.get_json(silent=True)
            with self._lock:
                self.api_calls.append((request.path, body if isinstance(body, dict) else {}))
                failing = self.faults.fail_next_calls > 0
                if failing:
                    self.faults.fail_next_calls -= 1
                delay = self.faults.delay_seconds
            if delay:
                time.sleep(delay)
            if failing:
                return failure("SANDBOX_FAULT", "told to fail", self.faults.fail_status)
            if request.headers.get("api_key") != self.api_key:
                return failure("INVALID_API_KEY", "api_key header missing or wrong", 401)
            if not isinstance(body, dict):
                return failure("INVALID_REQUEST", "JSON object expected", 400)
            return None

        @app.post("/v1/payments/checkout")
        def checkout():
            body = request.get_json()
            missing = [k for k in ("amount", "currency", "order_id", "client", "success_url", "failure_url") if not body.get(k)]
            if missing:
                return failure("MISSING_FIELDS", f"missing {missing}", 400)
            if _amount(body["amount"]) is None or body["currency"] != "QAR":
                return failure("INVALID_AMOUNT", "amount must be a positive 2-decimal QAR value", 400)
            with self._lock:
                if body["order_id"] in self.orders:
                    return failure("DUPLICATE_ORDER_ID", "order_id already used", 409)
                token = uuid.uuid4().hex
                self.orders[body["order_id"]] = Order(
                    order_id=body["order_id"], amount=body["amount"], currency=body["currency"],
                    client=body["client"], language=body.get("language", "en"),
                    success_url=body["success_url"], failure_url=body["failure_url"], token=token,
                )
            return answer({"status": "SUCCESS", "result": {"checkout_url": f"{self.base_url}/checkout/{token}"}})

        @app.post("/v1/payments/verify")
        def verify():
            order = self.orders.get(str(request.get_json().get("order_id")))
            if order is None:
                return failure("ORDER_NOT_FOUND", "no such order", 404)
            faults = self.faults
            return answer({
                "status": "SUCCESS",
                "result": {
                    "order_id": order.order_id,
                    "transaction_id": order.transaction_id,
                    "payment_status": faults.verify_status or order.status,
                    "amount": faults.verify_amount or order.amount,
                    "currency": faults.verify_currency or order.currency,
                },
            })

        @app.post("/v1/payments/refund")
        def refund():
            body = request.get_json()
            order = self.orders.get(str(body.get("order_id")))
            if order is None or order.status != "SUCCESS":
                return failure("NOT_REFUNDABLE", "only paid orders can be refunded", 400)
            order.refunded.append(body.get("amount") or order.amount)
            return answer({"status": "SUCCESS", "result": {"order_id": order.order_id, "refunded": order.refunded}})

        def by_token(token: str) -> Order | None:
            return next((o for o in self.orders.values() if o.token == token), None)

        @app.get("/checkout/<token>")
        def page(token):
            order = by_token(token)
            if order is None:
                return Response("Unknown checkout", 404)
            amount = html.escape(order.amount)
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
            target = order.success_url if order.status == "SUCCESS" else order.failure_url
            separator = "&" if "?" in target else "?"
            return redirect(f"{target}{separator}order_id={order.order_id}", code=303)

        @app.get("/returned")
        def returned():
            return Response(f"<!doctype html><p>Payment {html.escape(request.args.get('result', ''))}. "
                            "You can close this page.</p>", mimetype="text/html")

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
            if order_id not in self.orders:
                return answer({"error": "no such order"}, 404)
            self.send_webhook(order_id)
            return answer({"sent": True})

        return app


def _amount(text: Any) -> Decimal | None:
    if not isinstance(text, str):
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value > 0 and value == value.quantize(Decimal("0.01")) and len(text.split(".")[-1]) == 2 else None
