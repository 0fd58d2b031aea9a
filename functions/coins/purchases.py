"""Coin purchases through Fatora: checkout, the webhook, and the sweeper.

Coins are issued exactly once, by one ledger transaction that moves them from the
treasury to the buyer and marks the purchase `paid`, and only after Fatora's verify call
confirms SUCCESS for the purchase's exact price in QAR. A webhook is a hint to verify;
the sweeper verifies what no webhook settled. A payment verified as SUCCESS is honoured
even after the purchase failed or expired on our side.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import datetime, timedelta
from typing import Any, Mapping

from . import catalog, config, errors, fatora, ledger, logs
from .auth import Caller
from .pages import moment, page_of

PURCHASES = "purchases"
EVENTS = "events"
PENDING, PAID, FAILED, EXPIRED = "pending", "paid", "failed", "expired"


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


# Creating a purchase: three phases under one idempotency claim. The pending purchase is
# written first, so that whatever happens at the gateway, our order id is on record.


def create(
    db,
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
    claim = ledger.claim_key(db, idempotency)
    if isinstance(claim, ledger.Response):
        return claim
    try:
        ref = db.collection(PURCHASES).document()
        value = catalog.value_dirhams(coins)
        price = catalog.price_dirhams(value)
        purchase = {
            "id": ref.id,
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
        _write(db, ref, purchase, actor=caller.uid)
        try:
            checkout_url = gateway.checkout(
                order_id=ref.id,
                amount_dirhams=price,
                client={"name": caller.name or "GUILD user", "phone": caller.phone or "", "email": caller.email or ""},
                language=language,
                success_url=settings.purchase_success_url,
                failure_url=settings.purchase_failure_url,
                note=f"GUILD Coins worth {value // catalog.DIRHAMS_PER_QAR} QAR",
            )
        except fatora.FatoraError as error:
            logs.warning("fatora checkout failed", purchase_id=ref.id, reason=str(error))
            failed = {"status": FAILED, "failure_reason": f"checkout: {error}"}
            response = ledger.Response(errors.GatewayError.status, errors.GatewayError(purchase_id=ref.id).to_body())
            return _write(db, ref, failed, actor=caller.uid, claim=claim, response=response)
        # Only the new field: a settlement may already have changed the status.
        opened = {"checkout_url": checkout_url}
        response = ledger.Response(201, render({**purchase, **opened}))
        return _write(db, ref, opened, actor=caller.uid, claim=claim, response=response)
    except BaseException:
        ledger.release(db, claim)  # unless a response settled it
        raise


def _write(db, ref, fields, *, actor, claim=None, response=None) -> ledger.Response:
    """Writes (merges) fields of the purchase document through the ledger; no money moves."""

    def operation(reader: ledger.Reader) -> ledger.Plan:
        return ledger.Plan(entry=None, documents={ref: fields}, respond=lambda outcome: response or ledger.Response(200, {}))

    return ledger.execute(db, operation, actor=actor, claim=claim)


# Settling: what Fatora's verify says decides, inside one ledger transaction.


def settle(db, purchase_id: str, verification: fatora.Verification, *, expire_unpaid: bool, event: dict | None) -> str:
    """Applies a verification to a purchase and returns what happened: `paid`,
    `already_paid`, `failed`, `expired`, `needs_review` or `unchanged`."""
    ref = db.collection(PURCHASES).document(purchase_id)

    def operation(reader: ledger.Reader) -> ledger.Plan:
        purchase = reader.document(ref)
        outcome, entry, changes = _decide(purchase, verification, expire_unpaid, reader)
        documents: dict[Any, dict[str, Any]] = {ref: {**changes, "updated_at": reader.now}} if changes else {}
        if event is not None and changes:
            # Only notifications that changed something are recorded; duplicates stay reads.
            documents[ref.collection(EVENTS).document(event["id"])] = {**event, "outcome": outcome, "received_at": reader.now}
        return ledger.Plan(entry=entry, documents=documents, respond=lambda o: ledger.Response(200, {"outcome": outcome}))

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
        entry = ledger.Entry(
            "purchase_issue",
            ledger.issue(purchase["user_id"], purchase["coins"]),
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


def receive_webhook(db, gateway_factory, *, raw_body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """Fatora's notification, as bytes: the signature is checked (where a secret is
    configured) before anything is parsed, then the order is verified and settled."""
    secret = config.settings().fatora_webhook_secret
    if secret and not fatora.signature_is_valid(secret, raw_body, headers.get(fatora.SIGNATURE_HEADER)):
        raise errors.Unauthenticated(f"A valid {fatora.SIGNATURE_HEADER} header is required.")
    content_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
    order_id = _order_id(raw_body, content_type)
    return handle_webhook(db, gateway_factory(), order_id=order_id, event_id=event_id(raw_body))


def _order_id(raw_body: bytes, content_type: str) -> str:
    import json
    from urllib.parse import parse_qs

    try:
        if content_type == "application/x-www-form-urlencoded":
            fields = {key: values[0] for key, values in parse_qs(raw_body.decode(), strict_parsing=True).items()}
        else:
            fields = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError):
        raise errors.InvalidRequest("The notification is neither JSON nor form-encoded.") from None
    order_id = fields.get("order_id") if isinstance(fields, dict) else None
    if not isinstance(order_id, str) or not order_id.isalnum() or len(order_id) > config.ID_LENGTH_MAX:
        raise errors.InvalidRequest("The notification has no valid order_id.")
    return order_id


def handle_webhook(db, gateway: fatora.FatoraClient, *, order_id: str, event_id: str) -> dict[str, Any]:
    """A notification about `order_id`: verify with Fatora, then settle. Unknown orders
    and already paid purchases are answered without a verify call; a notification that
    arrives while another one for the order is being settled gets 409, which makes
    Fatora deliver it again later."""
    snapshot = db.collection(PURCHASES).document(order_id).get()
    if not snapshot.exists:
        logs.warning("fatora webhook for an unknown order", order_id=order_id)
        return {"outcome": "unknown_order"}
    if snapshot.get("status") == PAID:
        return {"outcome": "already_paid"}
    with _settling(db, order_id) as claimed:
        if not claimed:
            raise errors.RequestInProgress("This order is being settled; deliver the notification again later.")
        verification = _verify(gateway, order_id)
        if verification is None:
            return {"outcome": "unknown_at_fatora"}
        event = {"id": event_id, "source": "webhook", "payment_status": verification.payment_status}
        return {"outcome": settle(db, order_id, verification, expire_unpaid=False, event=event)}


@contextlib.contextmanager
def _settling(db, purchase_id: str):
    """One settlement of a purchase at a time (webhook duplicates, the sweeper): a lease
    on the purchase, taken with the same claim that guards idempotency keys and given
    back afterwards. Yields whether it was taken. Without it, twenty duplicate
    notifications would each call Fatora and then contend for the same documents."""
    key = ledger.Idempotency(scope="settle-purchase", key=purchase_id, fingerprint="settle")
    try:
        claim = ledger.claim_key(db, key)
    except errors.RequestInProgress:
        yield False
        return
    assert isinstance(claim, ledger.Claim), "settlement leases are never settled with a response"
    try:
        yield True
    finally:
        ledger.release(db, claim)


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


def reconcile_pending(db, gateway: fatora.FatoraClient, now: datetime | None = None) -> dict[str, int]:
    """Re-verifies purchases still pending 15 minutes after creation (oldest first, a
    bounded batch), so that a lost webhook never loses a paid purchase; those Fatora
    still reports unpaid after 24 hours expire."""
    from google.cloud import firestore

    now = now or ledger.now_utc()
    query = (
        db.collection(PURCHASES)
        .where(filter=firestore.FieldFilter("status", "==", PENDING))
        .where(filter=firestore.FieldFilter("created_at", "<=", now - timedelta(seconds=config.PURCHASE_SWEEP_AFTER_SECONDS)))
        .order_by("created_at")
        .limit(config.PURCHASE_SWEEP_BATCH_MAX)
    )
    counts: dict[str, int] = {}
    for snapshot in query.stream():
        with _settling(db, snapshot.id) as claimed:
            if not claimed:
                outcome = "busy"  # a webhook is settling it right now
            else:
                verification = _verify(gateway, snapshot.id)
                if verification is None:
                    verification = fatora.Verification(snapshot.id, None, fatora.PENDING, None, None)
                expire = snapshot.get("created_at") <= now - timedelta(seconds=config.PURCHASE_EXPIRE_AFTER_SECONDS)
                outcome = settle(db, snapshot.id, verification, expire_unpaid=expire, event=None)
        counts[outcome] = counts.get(outcome, 0) + 1
    logs.info("purchases reconciled", **counts)
    return counts


# Reading.


def get(db, caller: Caller, purchase_id: str) -> dict[str, Any]:
    snapshot = db.collection(PURCHASES).document(purchase_id).get()
    if not snapshot.exists or not (caller.admin or snapshot.get("user_id") == caller.uid):
        raise errors.NotFound()  # someone else's purchase is not acknowledged to exist
    return render(snapshot.to_dict())


def list_for(db, caller: Caller, *, user_id: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
    from google.cloud import firestore

    if user_id is not None and user_id != caller.uid and not caller.admin:
        raise errors.Forbidden("Only an admin may list another user's purchases.")
    owner = user_id or caller.uid
    collection = db.collection(PURCHASES)
    query = collection.where(filter=firestore.FieldFilter("user_id", "==", owner))
    return page_of(collection, query, limit=limit, cursor=cursor, owns=lambda doc: doc.get("user_id") == owner, render=render)
