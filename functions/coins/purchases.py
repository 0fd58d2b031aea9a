"""Coin purchases through Fatora: checkout, the webhook, and the sweeper.

Coins are issued exactly once, by one ledger transaction that moves them from the
treasury to the buyer and marks the purchase `paid`, and only after Fatora's verify call
confirms SUCCESS for the purchase's exact price in QAR. A webhook is a hint to verify;
the sweeper verifies what no webhook settled. A payment verified as SUCCESS is honoured
even after the purchase failed or expired on our side.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, Mapping

from . import catalog, config, errors, fatora, ledger, logs, postings, store
from .idempotency import claimed, lease
from .auth import Caller
from .domain import EntryType, EventKind, PurchaseStatus, is_valid_id
from .store import Store, Where
from .times import moment

PENDING, PAID, FAILED, EXPIRED = PurchaseStatus.PENDING, PurchaseStatus.PAID, PurchaseStatus.FAILED, PurchaseStatus.EXPIRED
# What the buyer (and, for a review, the admins) hear about a settlement.
ANNOUNCED = {"paid": EventKind.COINS_ISSUED, "failed": EventKind.PURCHASE_FAILED, "needs_review": EventKind.PURCHASE_IN_REVIEW}
# Leases on purchases being settled: idempotency records of their own scope.
SETTLEMENT_LEASE_SCOPE = "settle-purchase"


def render(purchase: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": purchase["id"],
        "user_id": purchase["user_id"],
        "status": purchase["status"],
        "coins": purchase["coins"],
        "value_dirhams": purchase["value_dirhams"],
        "price_dirhams": purchase["price_dirhams"],
        "gateway_fee_dirhams": purchase["gateway_fee_dirhams"],
        "currency": purchase["currency"],
        "pack_id": purchase.get("pack_id"),
        "checkout_url": purchase.get("checkout_url"),
        "failure_reason": purchase.get("failure_reason"),
        "needs_review": purchase.get("needs_review", False),
        "created_at": moment(purchase, "created_at"),
        "paid_at": moment(purchase, "paid_at"),
    }


# Creating a purchase: three phases under one idempotency claim (the gateway call cannot
# be inside a transaction). The pending purchase is written first, so that whatever
# happens at the gateway, our order id is on record.


def create(
    db: Store,
    gateway: fatora.FatoraClient,
    caller: Caller,
    *,
    coins: Mapping[str, int],
    pack_id: str | None,
    language: str,
    idempotency: ledger.Idempotency,
) -> ledger.Response:
    settings = config.settings()
    if not (settings.purchase_success_url and settings.purchase_failure_url):
        raise errors.Unavailable("Purchases are not configured (PURCHASE_SUCCESS_URL, PURCHASE_FAILURE_URL).")
    with claimed(db, idempotency, ledger.now_utc()) as claim:
        if isinstance(claim, ledger.Response):
            return claim
        purchase_id = store.new_id()
        value = catalog.value_dirhams(coins)
        price = catalog.price_dirhams(value)
        purchase = {
            "id": purchase_id,
            "user_id": caller.uid,
            "status": PENDING,
            "coins": catalog.normalize(coins),
            "value_dirhams": value,
            "price_dirhams": price,
            "gateway_fee_dirhams": catalog.gateway_fee_dirhams(price),
            "currency": fatora.CURRENCY,
            "pack_id": pack_id,
            "checkout_url": None,
            "needs_review": False,
            "created_at": ledger.now_utc(),
        }
        _write(db, purchase_id, purchase, actor=caller.uid)
        try:
            checkout_url = gateway.checkout(
                order_id=purchase_id,
                amount_dirhams=price,
                client={"name": caller.name or "GUILD user", "phone": caller.phone or "", "email": caller.email or ""},
                language=language,
                success_url=settings.purchase_success_url,
                failure_url=settings.purchase_failure_url,
                note=f"GUILD Coins worth {value // catalog.DIRHAMS_PER_QAR} QAR",
            )
        except fatora.FatoraError as error:
            logs.warning("fatora checkout failed", purchase_id=purchase_id, reason=str(error))
            failed = {"status": FAILED, "failure_reason": f"checkout: {error}"}
            response = ledger.Response(errors.GatewayError.status, errors.GatewayError(purchase_id=purchase_id).to_body())
            return _write(db, purchase_id, failed, actor=caller.uid, claim=claim, response=response)
        # Only the new field: a settlement may already have changed the status.
        opened = {"checkout_url": checkout_url}
        response = ledger.Response(201, render({**purchase, **opened}))
        return _write(db, purchase_id, opened, actor=caller.uid, claim=claim, response=response)



def _write(db: Store, purchase_id: str, fields, *, actor, claim=None, response=None) -> ledger.Response:
    """Merges fields into the purchase through the ledger (no money moves); with a
    claim, settles it with `response` in the same commit."""

    def operation(reader: ledger.Reader) -> ledger.Plan:
        return ledger.Plan(
            entry=None, documents={store.purchase(purchase_id): fields},
            respond=lambda outcome: response or ledger.Response(200, {}),
        )

    return ledger.execute(db, operation, actor=actor, claim=claim)


# Settling: what Fatora's verify says decides, inside one ledger transaction.


def settle(db: Store, purchase_id: str, verification: fatora.Verification, *, expire_unpaid: bool, event: dict | None) -> str:
    """Applies a verification to a purchase and returns what happened: `paid`,
    `already_paid`, `failed`, `expired`, `needs_review` or `unchanged`."""

    def operation(reader: ledger.Reader) -> ledger.Plan:
        purchase = reader.purchase(purchase_id)
        outcome, entry, changes = _decide(purchase, verification, expire_unpaid, reader)
        documents: dict[store.Doc, dict[str, Any]] = {store.purchase(purchase_id): {**changes, "updated_at": reader.now}} if changes else {}
        if event is not None and changes:
            # Only notifications that changed something are recorded; duplicates stay reads.
            documents[store.purchase_event(purchase_id, event["id"])] = {**event, "outcome": outcome, "received_at": reader.now}
        told = ANNOUNCED.get(outcome)
        events = (ledger.Event(told, {"user_id": purchase["user_id"], "purchase_id": purchase_id,
                                      "value_dirhams": purchase["value_dirhams"], "reason": changes.get("review_reason")}),) if told else ()
        return ledger.Plan(entry=entry, documents=documents, events=events,
                           respond=lambda o: ledger.Response(200, {"outcome": outcome}))

    outcome = ledger.execute(db, operation, actor="fatora").body["outcome"]
    if outcome == "needs_review":
        logs.error(
            "fatora payment does not match its purchase",
            purchase_id=purchase_id,
            verified_amount_dirhams=verification.amount_dirhams,
            verified_currency=verification.currency,
        )
    return outcome


def _decide(purchase, verification: fatora.Verification, expire_unpaid: bool, reader: ledger.Reader):
    """(outcome, ledger entry or None, changes to the purchase) for a verification. Pure."""
    if purchase["status"] == PAID:
        return "already_paid", None, {}
    if verification.payment_status == fatora.PAID:
        if verification.amount_dirhams != purchase["price_dirhams"] or verification.currency != fatora.CURRENCY:
            return "needs_review", None, {
                "needs_review": True,
                "review_reason": (
                    f"verified {verification.amount_dirhams} dirhams {verification.currency}, "
                    f"expected {purchase['price_dirhams']} {fatora.CURRENCY}"
                ),
            }
        entry = postings.Entry(
            EntryType.PURCHASE_ISSUE,
            postings.issue(purchase["user_id"], purchase["coins"]),
            refs={"purchase_id": purchase["id"]},
            memo={"fatora_transaction_id": verification.transaction_id, "price_dirhams": purchase["price_dirhams"]},
        )
        return "paid", entry, {
            "status": PAID,
            "fatora_transaction_id": verification.transaction_id,
            "paid_at": reader.now,
            "entry_id": reader.entry_id,
        }
    if purchase["status"] != PENDING:
        return "unchanged", None, {}
    if verification.payment_status == fatora.FAILED:
        return "failed", None, {"status": FAILED, "failure_reason": "declined at Fatora"}
    if expire_unpaid:
        return "expired", None, {"status": EXPIRED, "failure_reason": "not paid within 24 hours"}
    return "unchanged", None, {}


# The webhook.


def receive_webhook(db: Store, gateway_factory, *, raw_body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """Fatora's notification, as bytes: the signature is checked (where a secret is
    configured) before anything is parsed, then the order is verified and settled."""
    secret = config.settings().fatora_webhook_secret
    if secret and not fatora.signature_is_valid(secret, raw_body, headers.get(fatora.SIGNATURE_HEADER)):
        raise errors.Unauthenticated(f"A valid {fatora.SIGNATURE_HEADER} header is required.")
    try:
        order_id = fatora.webhook_order_id(raw_body, headers.get("Content-Type", ""))
    except ValueError as error:
        raise errors.InvalidRequest(str(error)) from None
    if not is_valid_id(order_id):
        raise errors.InvalidRequest("The notification has no valid order_id.")
    return handle_webhook(db, gateway_factory(), order_id=order_id, event_id=event_id(raw_body))


def handle_webhook(db: Store, gateway: fatora.FatoraClient, *, order_id: str, event_id: str) -> dict[str, Any]:
    """A notification about `order_id`: verify with Fatora, then settle. Unknown orders
    and already paid purchases are answered without a verify call; a notification that
    arrives while another one for the order is being settled gets 409, which makes
    Fatora deliver it again later."""
    purchase = db.get(store.purchase(order_id))
    if purchase is None:
        logs.warning("fatora webhook for an unknown order", order_id=order_id)
        return {"outcome": "unknown_order"}
    if purchase["status"] == PAID:
        return {"outcome": "already_paid"}
    with _settling(db, order_id) as taken:
        if not taken:
            raise errors.RequestInProgress("This order is being settled; deliver the notification again later.")
        verification = _verify(gateway, order_id)
        if verification is None:
            return {"outcome": "unknown_at_fatora"}
        event = {"id": event_id, "source": "webhook", "payment_status": verification.payment_status}
        return {"outcome": settle(db, order_id, verification, expire_unpaid=False, event=event)}


def _settling(db: Store, purchase_id: str):
    """One settlement of a purchase at a time (webhook duplicates, the sweeper): a lease
    on the purchase, given back afterwards; yields whether it was taken. Without it,
    twenty duplicate notifications would each call Fatora and then contend for the same
    documents."""
    return lease(db, SETTLEMENT_LEASE_SCOPE, purchase_id, ledger.now_utc())


def _verify(gateway: fatora.FatoraClient, order_id: str) -> fatora.Verification | None:
    try:
        return gateway.verify(order_id)
    except fatora.FatoraUnavailable as error:
        # 503 to the caller: Fatora retries the webhook, Scheduler reruns the sweeper.
        raise errors.Unavailable("The payment gateway is unreachable.", reason=str(error)) from None
    except fatora.FatoraRejected as error:
        logs.error("fatora refused to verify an order we created", order_id=order_id, error_code=error.error_code)
        return None


def event_id(raw_body: bytes) -> str:
    """Duplicate deliveries of one notification share an event id."""
    return hashlib.sha256(raw_body).hexdigest()[:32]


# The sweeper.


def reconcile_pending(db: Store, gateway: fatora.FatoraClient, now: datetime | None = None) -> dict[str, int]:
    """Re-verifies purchases still pending 15 minutes after creation (oldest first, a
    bounded batch), so that a lost webhook never loses a paid purchase; those Fatora
    still reports unpaid after 24 hours expire."""
    now = now or ledger.now_utc()
    pending = db.query(
        store.PURCHASES,
        (Where("status", "==", PENDING), Where("created_at", "<=", now - timedelta(seconds=config.PURCHASE_SWEEP_AFTER_SECONDS))),
        order_by="created_at",
        limit=config.PURCHASE_SWEEP_BATCH_MAX,
    )
    counts: dict[str, int] = {}
    for purchase in pending:
        with _settling(db, purchase["id"]) as taken:
            if not taken:
                outcome = "busy"  # a webhook is settling it right now
            else:
                verification = _verify(gateway, purchase["id"])
                if verification is None:
                    verification = fatora.Verification(purchase["id"], None, fatora.PENDING, None, None)
                expire = purchase["created_at"] <= now - timedelta(seconds=config.PURCHASE_EXPIRE_AFTER_SECONDS)
                outcome = settle(db, purchase["id"], verification, expire_unpaid=expire, event=None)
        counts[outcome] = counts.get(outcome, 0) + 1
    logs.info("purchases reconciled", **counts)
    return counts


# Reading.


def get(db: Store, caller: Caller, purchase_id: str) -> dict[str, Any]:
    purchase = db.get(store.purchase(purchase_id))
    if purchase is None or not (caller.admin or purchase["user_id"] == caller.uid):
        raise errors.NotFound()  # someone else's purchase is not acknowledged to exist
    return render(purchase)


def list_for(db: Store, caller: Caller, *, user_id: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
    if user_id is not None and user_id != caller.uid and not caller.admin:
        raise errors.Forbidden("Only an admin may list another user's purchases.")
    owner = user_id or caller.uid
    return db.page(
        store.PURCHASES, (Where("user_id", "==", owner),), limit=limit, cursor=cursor,
        owns=lambda purchase: purchase.get("user_id") == owner, render=render,
    )
