"""A local SADAD sandbox, speaking Web Checkout 2.1 as SADAD documents it (the project's
SADAD reference, with sources): SADAD has no public sandbox reachable from here.

What SADAD documents, and the sandbox does:
- `POST /webpurchase`: the signed form (W8). The signature is checked as W7 describes it
  (coins.sadad.sign, compared case-insensitively). A good one shows the payment page
  with Pay and Decline.
- Pay or Decline answers an HTML page with the auto-submitting callback form (W10),
  POSTed by the browser to CALLBACK_URL: MID, ORDERID, RESPCODE, RESPMSG, TXNAMOUNT,
  STATUS, transaction_number, transaction_status (1 In Progress, 2 Failed, 3
  Successful), website_ref_no, issandboxmode, checksumhash.
- The webhook (W11), if one is set up as in SADAD's panel: a JSON POST with
  invoiceNumber, isTestMode, merchantId, message, transactionNumber, transactionStatus,
  txnAmount (a number), websiteRefNo and checksumhash (the values as PHP writes them).
- The server API: `POST /api/userbusinesses/login` {sadadId, secretKey, domain} ->
  {accessToken} or 401 (AUTH); `GET /api/transactions/getTransaction` with the token in
  `Authorization` (no "Bearer") and a JSON body {transactionno} (GST).
What SADAD does not document, and the sandbox decides (the contract check, `make
sadad-contract`, compares getTransaction's answer with the real API; the rest is the
safe choice, and our code depends on none of it):
- getTransaction's answer is cut off in GST: the sandbox answers `transactionno`,
  `website_ref_no`, `amount` (a number), `transactionstatus` (Inprogress, Failed,
  Success: GST's names) and `issandboxmode` (1: the callback's name for the same fact).
- The token's lifetime: 900 s, as SADAD's own Laravel package caches it.
- How SADAD refuses a form with a wrong signature, a missing mandatory field or another
  merchant id: here, a page saying so (never a payment page).
- A second form with the same ORDER_ID (W8 says it is unique; our checkout page posts the
  same form again when reloaded): here, it replaces the order and its transaction number.
- getTransaction for a transaction it does not know, or before the payer acted: here, 404.
- A callback's RESPCODE, RESPMSG and STATUS other than for a success: here, RESPCODE is
  the status's value, RESPMSG "Txn Failed" or "Txn In Progress", STATUS TXN_FAILURE for
  both; the webhook's `message` is "failed" or "in progress". Our code reads neither: it
  asks getTransaction.
- When the webhook is sent (W11: "right after the transaction is created"): here, when
  the payer pays or declines.
- Whether login checks `domain` against the key: here, it does not.

Test controls, over HTTP or in-process (`sandbox.faults`): `POST /_sandbox/faults`,
`POST /_sandbox/orders/{ORDER_ID}/pay|decline` (answer the callback page, as SADAD's
page would), `/webhook` (send it again) and `/settle` (`{"status": 3}` or `2`, for one
left In Progress).
"""

from __future__ import annotations

import html
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import requests
from flask import Flask, Response, request

from coins import sadad
from local.serving import in_background, still_running

MANDATORY = ("merchant_id", "ORDER_ID", "TXN_AMOUNT", "CALLBACK_URL", "WEBSITE", "email", "MOBILE_NO", "txnDate", "signature")
TOKEN_LIFETIME_SECONDS = 900
WEBHOOK_TIMEOUT_SECONDS = 10
STATUS_NAMES = {sadad.IN_PROGRESS: "Inprogress", sadad.FAILED: "Failed", sadad.SUCCESSFUL: "Success"}


@dataclass
class Faults:
    """What the sandbox does wrong, for tests."""

    in_progress: bool = False  # payments stay In Progress (1) until settled
    decline: bool = False  # Pay declines
    report_amount: str | None = None  # getTransaction reports this amount instead of the truth
    break_checksum: bool = False  # callbacks and webhooks carry a wrong checksum
    webhooks_enabled: bool = True
    webhook_copies: int = 1  # each webhook sent this many times
    api_down: bool = False  # the server API answers 503


@dataclass
class Order:
    order_id: str
    amount: str  # TXN_AMOUNT as posted
    callback_url: str
    token: str
    transaction_number: str
    status: str | None = None  # None until the payer acts; then "1", "2" or "3"
    fields: dict[str, str] = field(default_factory=dict)


class SadadSandbox:
    def __init__(
        self,
        *,
        merchant_id: str,
        secret_key: str,
        domain: str = "localhost",
        webhook_url: str | None = None,
        sandbox_mode: bool = True,
    ) -> None:
        self.merchant_id, self.secret_key, self.domain = merchant_id, secret_key, domain
        self.webhook_url = webhook_url  # as set in SADAD's panel
        self.sandbox_mode = sandbox_mode  # a test key: issandboxmode 1
        self.base_url = ""
        self.faults = Faults()
        self.orders: dict[str, Order] = {}
        self.webhooks: list[dict[str, Any]] = []  # what was sent, with the answer's status
        self.api_calls: list[tuple[str, dict]] = []
        self._tokens: dict[str, float] = {}
        self._sending: list[threading.Thread] = []  # webhooks on their way
        self._lock = threading.Lock()
        self._server = None
        self.app = self._build_app()

    def serve(self, port: int = 0) -> "SadadSandbox":
        self._server = in_background(self.app, port, "sadad-sandbox")
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    @property
    def checkout_url(self) -> str:
        return self.base_url + "/webpurchase"

    @property
    def api_url(self) -> str:
        return self.base_url + "/api/"

    def reset(self) -> None:
        with self._lock:
            self.faults = Faults()
            self.orders.clear()
            self.webhooks.clear()
            self.api_calls.clear()

    def drain(self, timeout_seconds: float = 90.0) -> None:
        """Waits for the webhooks on their way (a test's must not land in the next)."""
        with self._lock:
            sending, self._sending = self._sending, []
        left = still_running(sending, timeout_seconds)
        with self._lock:
            self._sending.extend(left)

    def order_of(self, order_id: str) -> Order:
        return self.orders[order_id]

    # What SADAD sends.

    def callback_fields(self, order: Order) -> dict[str, str]:
        status = order.status or sadad.IN_PROGRESS
        fields = {
            "MID": self.merchant_id,
            "ORDERID": order.order_id,
            "RESPCODE": status,
            "RESPMSG": {sadad.SUCCESSFUL: "Txn Success", sadad.FAILED: "Txn Failed"}.get(status, "Txn In Progress"),
            "TXNAMOUNT": order.amount,
            "STATUS": "TXN_SUCCESS" if status == sadad.SUCCESSFUL else "TXN_FAILURE",
            "transaction_number": order.transaction_number,
            "transaction_status": status,
            "website_ref_no": order.order_id,
            "issandboxmode": "1" if self.sandbox_mode else "0",
        }
        return {**fields, "checksumhash": self._checksum(sadad.callback_checksum(self.secret_key, fields))}

    def webhook_payload(self, order: Order) -> dict[str, Any]:
        status = order.status or sadad.IN_PROGRESS
        payload: dict[str, Any] = {
            "invoiceNumber": "",
            "isTestMode": 1 if self.sandbox_mode else 0,
            "merchantId": self.merchant_id,
            "message": {sadad.SUCCESSFUL: "success", sadad.FAILED: "failed"}.get(status, "in progress"),
            "transactionNumber": order.transaction_number,
            "transactionStatus": int(status),
            "txnAmount": float(Decimal(order.amount)),
            "websiteRefNo": order.order_id,
        }
        return {**payload, "checksumhash": self._checksum(sadad.webhook_checksum(self.secret_key, payload))}

    def send_webhook(self, order: Order) -> None:
        if not (self.webhook_url and self.faults.webhooks_enabled):
            return
        payload = self.webhook_payload(order)
        for _ in range(self.faults.webhook_copies):
            try:
                answer = requests.post(self.webhook_url, json=payload, timeout=WEBHOOK_TIMEOUT_SECONDS)
                status: int | str = answer.status_code
            except requests.RequestException as error:
                status = type(error).__name__
            with self._lock:
                self.webhooks.append({"order_id": order.order_id, "status": status, "payload": payload})

    def _checksum(self, checksum: str) -> str:
        return ("0" * 64) if self.faults.break_checksum else checksum

    def _act(self, order: Order, decision: str) -> Response:
        """The payer pressed Pay or Decline: the callback page, and the webhook."""
        if decision == "pay" and not self.faults.decline:
            order.status = sadad.IN_PROGRESS if self.faults.in_progress else sadad.SUCCESSFUL
        else:
            order.status = sadad.FAILED
        sender = threading.Thread(target=self.send_webhook, args=(order,), daemon=True)
        with self._lock:
            self._sending.append(sender)
        sender.start()
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in self.callback_fields(order).items()
        )
        page = (
            f'<!doctype html><html><body onload="document.forms[0].submit()">'
            f'<form method="post" action="{html.escape(order.callback_url)}">{inputs}'
            f"<noscript><button>Continue</button></noscript></form></body></html>"
        )
        return Response(page, 200, mimetype="text/html")

    # The app.

    def _build_app(self) -> Flask:
        app = Flask("sadad-sandbox")

        def page(text: str, status: int = 200) -> Response:
            return Response(f"<!doctype html><html><body><p>{html.escape(text)}</p></body></html>", status, mimetype="text/html")

        @app.post("/webpurchase")
        def webpurchase():
            fields = request.form.to_dict()
            missing = [name for name in MANDATORY if not fields.get(name)]
            if missing:
                return page(f"Missing fields: {', '.join(missing)}", 400)
            if fields["merchant_id"] != self.merchant_id:
                return page("Unknown merchant", 400)
            if not sadad.verified(sadad.sign(self.secret_key, fields), fields["signature"]):
                return page("Invalid signature", 400)
            token = secrets.token_urlsafe(12)
            number = "SD" + "".join(secrets.choice("0123456789") for _ in range(13))
            order = Order(fields["ORDER_ID"], fields["TXN_AMOUNT"], fields["CALLBACK_URL"], token, number, fields=fields)
            with self._lock:
                self.orders[order.order_id] = order
            return Response(
                f"<!doctype html><html><body><h1>SADAD sandbox</h1><p>Pay {html.escape(order.amount)} QAR</p>"
                f'<form method="post" action="/webpurchase/{token}/pay"><button>Pay</button></form>'
                f'<form method="post" action="/webpurchase/{token}/decline"><button>Decline</button></form></body></html>',
                200,
                mimetype="text/html",
            )

        @app.post("/webpurchase/<token>/<decision>")
        def decide(token: str, decision: str):
            order = next((o for o in self.orders.values() if o.token == token), None)
            if order is None or decision not in ("pay", "decline") or order.status is not None:
                return page("No such payment", 404)
            return self._act(order, decision)

        @app.post("/_sandbox/orders/<order_id>/<what>")
        def control(order_id: str, what: str):
            order = self.orders.get(order_id)
            if order is None:
                return Response(json.dumps({"error": "unknown order"}), 404, mimetype="application/json")
            if what in ("pay", "decline"):
                return self._act(order, what)
            if what == "settle":
                status = str((request.get_json(silent=True) or {}).get("status", ""))
                if order.status != sadad.IN_PROGRESS or status not in (sadad.FAILED, sadad.SUCCESSFUL):
                    return Response(
                        json.dumps({"error": "settle an In Progress order with status 2 or 3"}), 400, mimetype="application/json"
                    )
                order.status = status
            if what in ("settle", "webhook"):
                self.send_webhook(order)
                return Response(json.dumps({"status": order.status}), 200, mimetype="application/json")
            return Response(json.dumps({"error": f"unknown control {what}"}), 404, mimetype="application/json")

        @app.post("/_sandbox/faults")
        def set_faults():
            changes = request.get_json(force=True)
            unknown = set(changes) - set(Faults.__dataclass_fields__)
            if unknown:
                return Response(json.dumps({"error": f"unknown faults {sorted(unknown)}"}), 400, mimetype="application/json")
            for name, value in changes.items():
                setattr(self.faults, name, value)
            return Response(json.dumps(self.faults.__dict__), 200, mimetype="application/json")

        @app.post("/api/userbusinesses/login")
        def login():
            given = request.get_json(silent=True) or {}
            self.api_calls.append(("login", {k: v for k, v in given.items() if k != "secretKey"}))
            if self.faults.api_down:
                return Response("{}", 503, mimetype="application/json")
            if str(given.get("sadadId")) != self.merchant_id or given.get("secretKey") != self.secret_key:
                return Response(json.dumps({"error": {"message": "Invalid credentials"}}), 401, mimetype="application/json")
            token = secrets.token_urlsafe(24)
            with self._lock:
                self._tokens[token] = time.monotonic() + TOKEN_LIFETIME_SECONDS
            return Response(json.dumps({"accessToken": token}), 200, mimetype="application/json")

        @app.get("/api/transactions/getTransaction")
        def get_transaction():
            given = request.get_json(silent=True, force=True) or {}
            self.api_calls.append(("getTransaction", given))
            if self.faults.api_down:
                return Response("{}", 503, mimetype="application/json")
            token = request.headers.get("Authorization", "")
            if self._tokens.get(token, 0) < time.monotonic():
                return Response(json.dumps({"error": {"message": "Unauthorized"}}), 401, mimetype="application/json")
            order = next((o for o in self.orders.values() if o.transaction_number == given.get("transactionno")), None)
            if order is None or order.status is None:
                return Response(json.dumps({"error": {"message": "Transaction not found"}}), 404, mimetype="application/json")
            amount = Decimal(self.faults.report_amount or order.amount)
            return Response(
                json.dumps(
                    {
                        "transactionno": order.transaction_number,
                        "website_ref_no": order.order_id,
                        "amount": float(amount),
                        "transactionstatus": STATUS_NAMES[order.status],
                        "issandboxmode": 1 if self.sandbox_mode else 0,
                        "isRefund": 0,
                    }
                ),
                200,
                mimetype="application/json",
            )

        return app
