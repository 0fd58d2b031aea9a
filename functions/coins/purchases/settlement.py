"""Settling a purchase: what the gateway's own API says decides, in one ledger
transaction that issues the coins and marks the purchase paid.

Nothing from outside is trusted: the payer's browser (Fatora's return, SADAD's callback),
a webhook and the sweeper only name an order to verify (SADAD's checksums are checked
first: a notice that fails them is refused, one that holds still proves nothing). Coins
are issued only for a payment the gateway's API reports paid, in the required mode, for
the purchase's exact price in QAR, of this very order. One that does not match, or that
arrives after the purchase failed or expired, issues nothing and waits in the review
queue. A refunded purchase is final: no later verification issues anything for it.
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Mapping

from .. import catalog, config, errors, ledger, logs, postings, store
from ..domain import EntryType, is_valid_id
from ..gateways import CURRENCY, Forged, Gateway, Name, Notice, Refused, Source, Status, Unavailable, Verification
from ..idempotency import lease
from ..store import Store, Where, existing
from . import refunds
from .states import (
    ANNOUNCED,
    ISSUED,
    PAID,
    PENDING,
    REFUNDED,
    REFUNDING,
    WORDS,
    Outcome,
    Step,
    gateway_of,
    gateway_words,
    moved,
    reference_of,
    return_status,
)

# Leases on purchases being settled or refunded: idempotency records of their own scope.
SETTLEMENT_LEASE_SCOPE = "settle-purchase"


def settle(
    db: Store, gateway: Gateway, purchase_id: str, verification: Verification, *, expire_unpaid: bool, event: dict | None
) -> str:
    """Applies what `gateway` verified to a purchase and returns the Outcome."""

    def operation(reader: ledger.Reader) -> ledger.Plan:
        purchase = existing(reader.purchase(purchase_id))
        outcome, entry, changes = decide(purchase, verification, expire_unpaid, reader, gateway.required_mode)
        documents: dict[store.Doc, dict[str, Any]] = (
            {store.purchase(purchase_id): {**changes, "updated_at": reader.now}} if changes else {}
        )
        if event is not None and changes:
            # Only notifications that changed something are recorded; duplicates stay reads.
            documents[store.purchase_event(purchase_id, event["id"])] = {**event, "outcome": outcome, "received_at": reader.now}
        told = ANNOUNCED.get(outcome)
        events = (
            (
                ledger.Event(
                    told,
                    {
                        "user_id": purchase["user_id"],
                        "purchase_id": purchase_id,
                        "value_dirhams": purchase["value_dirhams"],
                        "reason": changes.get("review_reason"),
                    },
                ),
            )
            if told
            else ()
        )
        return ledger.Plan(
            entry=entry, documents=documents, events=events, respond=lambda o: ledger.Response(200, {"outcome": outcome})
        )

    outcome = ledger.execute(db, operation, actor=gateway.name).body["outcome"]
    if outcome == Outcome.NEEDS_REVIEW:
        logs.error(
            "payment cannot be honoured automatically; it waits for an admin",
            purchase_id=purchase_id,
            gateway=gateway.name,
            verified_amount_dirhams=verification.amount_dirhams,
            verified_currency=verification.currency,
            verified_mode=verification.mode,
        )
    return outcome


def decide(purchase, verification: Verification, expire_unpaid: bool, reader: ledger.Reader, required_mode: str):
    """(outcome, ledger entry or None, changes to the purchase) for a verification. Pure."""
    if purchase["status"] in (REFUNDING, REFUNDED):
        return Outcome.REFUNDED, None, {}  # final: a later success never issues coins again
    if purchase["status"] == PAID:
        return Outcome.ALREADY_PAID, None, {}
    seen = {"gateway_reference": verification.reference} if verification.reference else {}
    if verification.status is Status.PAID:
        problem = _mismatch(purchase, verification, required_mode)
        if problem is None and purchase["status"] != PENDING:
            problem = f"paid at {gateway_words(purchase)} after the purchase was {purchase['status']} here"
        if problem is not None:
            if purchase.get("needs_review"):
                return Outcome.UNCHANGED, None, {}
            return Outcome.NEEDS_REVIEW, None, {**seen, "needs_review": True, "review_reason": problem, "review_at": reader.now}
        entry = postings.Entry(
            EntryType.PURCHASE_ISSUE,
            postings.issue(purchase["user_id"], purchase["coins"]),
            refs={"purchase_id": purchase["id"]},
            memo={
                "gateway": gateway_of(purchase),
                "reference": verification.reference,
                "price_dirhams": purchase["price_dirhams"],
            },
        )
        return (
            Outcome.PAID,
            entry,
            {
                **seen,
                "status": moved(purchase, Step.ISSUE),
                "paid_at": reader.now,
                "entry_id": reader.entry_id,
                # In review only while it might be paid (SADAD's In Progress past its window): now it is.
                **({"needs_review": False} if purchase.get("needs_review") else {}),
            },
        )
    if purchase["status"] != PENDING:
        return Outcome.UNCHANGED, None, {}
    if verification.status is Status.FAILED:
        return (
            Outcome.FAILED,
            None,
            {**seen, "status": moved(purchase, Step.FAIL), "failure_reason": f"declined at {gateway_words(purchase)}"},
        )
    if expire_unpaid and verification.status is Status.IN_PROGRESS:
        # Perhaps paid: the bank has not confirmed. Not failed, never expired unseen: an admin checks.
        if purchase.get("needs_review"):
            return Outcome.UNCHANGED, None, {}
        gateway = gateway_words(purchase)
        problem = f"{gateway} still reports the payment In Progress: check it in {gateway}'s panel, then issue or dismiss"
        return Outcome.NEEDS_REVIEW, None, {**seen, "needs_review": True, "review_reason": problem, "review_at": reader.now}
    if expire_unpaid:
        return Outcome.EXPIRED, None, {"status": moved(purchase, Step.EXPIRE), "failure_reason": "not paid in time"}
    return Outcome.UNCHANGED, None, seen


def _mismatch(purchase, verification: Verification, required_mode: str) -> str | None:
    """Why a paid verification cannot be honoured as it is, or None."""
    gateway = gateway_words(purchase)
    if verification.mode != required_mode:
        return (
            f"{gateway} verified the payment in {verification.mode or 'no'} mode; coins are issued only for {required_mode} mode."
        )
    if verification.amount_dirhams != purchase["price_dirhams"] or verification.currency != CURRENCY:
        if verification.amount_dirhams is None:
            paid = "no amount"
        elif verification.currency == CURRENCY:
            paid = catalog.in_qar(verification.amount_dirhams)
        else:
            paid = f"an amount in {verification.currency or 'no currency'}"
        return f"{gateway} verified {paid}; the purchase costs {catalog.in_qar(purchase['price_dirhams'])}."
    return None


# What names an order: the payer's browser, a webhook.


def receive_browser(
    db: Store, gateway_for: Callable[[str], Gateway], name: Name, *, query, body: bytes, content_type: str
) -> str:
    """The payer's browser back from the gateway (Fatora's return, SADAD's callback):
    verify and settle, then the app's deep link with the purchase's status (paid, failed
    or pending). What the browser says of the payment is never trusted; when the gateway
    cannot be reached the answer is pending, and the webhook or the sweeper settles it."""
    gateway = gateway_for(name)
    notice = _notice(gateway, Source.BROWSER, query, body, content_type, what=f"a return from {WORDS[name]}")
    purchase = db.get(store.purchase(notice.order_id))
    if purchase is None or gateway_of(purchase) != name:
        raise errors.NotFound("No such purchase.")
    try:
        _verify_and_settle(db, gateway, notice, source="return")
    except errors.Unavailable:
        pass  # pending: the webhook or the sweeper settles it later
    except errors.RequestInProgress:
        _wait_while_settling(db, notice.order_id)  # a webhook that came first is settling it
    purchase = existing(db.get(store.purchase(notice.order_id)))
    return f"{config.settings().app_link_base}coins/purchase/{notice.order_id}?status={return_status(purchase)}"


def receive_webhook(
    db: Store, gateway_for: Callable[[str], Gateway], name: Name, *, query, body: bytes, content_type: str
) -> dict[str, Any]:
    """A gateway's notification: its checksum or token checked as the gateway documents,
    then the order it names verified and settled. 200 for anything handled or safely
    ignored; 5xx only when the gateway or Firestore cannot be reached (it retries)."""
    gateway = gateway_for(name)
    notice = _notice(gateway, Source.WEBHOOK, query, body, content_type, what="a notification that names an order")
    purchase = db.get(store.purchase(notice.order_id))
    if purchase is None or gateway_of(purchase) != name:
        logs.warning("webhook for an unknown order", gateway=name, order_id=notice.order_id)
        return {"outcome": Outcome.UNKNOWN_ORDER}
    try:
        return {"outcome": _verify_and_settle(db, gateway, notice, source="webhook")}
    except errors.RequestInProgress:
        # Another delivery is settling it now; it, or the sweeper, finishes the job.
        return {"outcome": Outcome.BEING_SETTLED}


def _notice(gateway: Gateway, source: Source, query, body: bytes, content_type: str, *, what: str) -> Notice:
    try:
        notice = gateway.notice(source, query, body, content_type)
    except Forged as forged:
        # An ERROR, which alerts: an attack, or our reading of the gateway's checksum rule is
        # wrong (SADAD's sources disagree on it), when every real payment's notice fails.
        logs.error("forged notification refused", gateway=gateway.name, source=source, reason=str(forged))
        raise errors.Unauthenticated(str(forged)) from None
    except ValueError as error:
        raise errors.InvalidRequest(f"This is not {what}: {error}") from None
    if not is_valid_id(notice.order_id):
        raise errors.InvalidRequest(f"This is not {what}: no valid order id.")
    reference = notice.reference
    if reference is not None and (len(reference) > config.GATEWAY_REFERENCE_LENGTH_MAX or not reference.isprintable()):
        raise errors.InvalidRequest(f"This is not {what}: its transaction reference is not usable.")
    return notice


def _wait_while_settling(db: Store, purchase_id: str) -> None:
    """A moment for the settlement in progress, so that the payer lands in the app with
    the outcome rather than "pending" (which the app then polls)."""
    deadline = time.monotonic() + config.RETURN_WAIT_SECONDS
    while time.monotonic() < deadline:
        if existing(db.get(store.purchase(purchase_id)))["status"] != PENDING:
            return
        time.sleep(0.2)


def _verify_and_settle(db: Store, gateway: Gateway, notice: Notice, *, source: str) -> str:
    """Verify with the gateway (by the reference the notice names, else the one on
    record), then settle. A paid purchase is answered without a call; one settlement per
    purchase at a time (RequestInProgress otherwise)."""
    purchase = existing(db.get(store.purchase(notice.order_id)))
    if purchase["status"] in ISSUED:
        return Outcome.ALREADY_PAID if purchase["status"] == PAID else Outcome.REFUNDED
    with settling(db, notice.order_id) as taken:
        if not taken:
            raise errors.RequestInProgress("This order is being settled.")
        if gateway.asks_by_reference and notice.reference:
            _keep_hint(db, gateway, notice.order_id, notice.reference)
        verification = verify(gateway, notice.order_id, notice.reference or reference_of(purchase))
        if not isinstance(verification, Verification):
            return verification
        event = {
            "id": event_id(source, notice, verification),
            "source": source,
            "payment_status": verification.status,
            "reference": notice.reference,
        }
        return settle(db, gateway, notice.order_id, verification, expire_unpaid=False, event=event)


# References a notice named, kept for a gateway that is asked by reference (SADAD): the
# newest few, so that the sweeper can ask again when the API was down at the callback.
HINTS_MAX = 5


def _keep_hint(db: Store, gateway: Gateway, purchase_id: str, reference: str) -> None:
    """Keeps a reference a notice named (its checksum held) before it is verified: were
    SADAD's API down now and the webhook lost, it is the only way to ask again. It is
    only a question to ask: a reference is recorded as the payment's
    (`gateway_reference`) once the gateway says it is this order's."""

    def operation(reader: ledger.Reader) -> ledger.Plan:
        purchase = existing(reader.purchase(purchase_id))
        hints = list(purchase.get("reference_hints") or [])
        if reference in hints or reference == reference_of(purchase):
            return ledger.Plan(entry=None, respond=lambda outcome: ledger.Response(200, {}))
        documents = {store.purchase(purchase_id): {"reference_hints": [*hints, reference][-HINTS_MAX:]}}
        return ledger.Plan(entry=None, documents=documents, respond=lambda outcome: ledger.Response(200, {}))

    ledger.execute(db, operation, actor=gateway.name)


# Which of several answers for one purchase counts (its attempts' transactions): the first.
SAYS_MOST = {Status.PAID: 0, Status.IN_PROGRESS: 1, Status.PENDING: 2, Status.FAILED: 3}


def _asked_by(purchase: Mapping[str, Any], gateway: Gateway) -> list[str | None]:
    """The references to verify a purchase by: the verified one; else, for a gateway
    asked by reference, those notices named (newest first); else none (by order id)."""
    if reference_of(purchase):
        return [reference_of(purchase)]
    if gateway.asks_by_reference and purchase.get("reference_hints"):
        return list(reversed(purchase["reference_hints"]))
    return [None]


def settling(db: Store, purchase_id: str):
    """One settlement (or refund step) of a purchase at a time: a lease on the purchase,
    given back afterwards; yields whether it was taken. Without it, twenty duplicate
    notifications would each call the gateway and then contend for the same documents."""
    return lease(db, SETTLEMENT_LEASE_SCOPE, purchase_id, ledger.now_utc())


def verify(gateway: Gateway, order_id: str, reference: str | None) -> Verification | str:
    """The gateway's word on the payment, or the Outcome that stands for none:
    UNKNOWN_AT_GATEWAY (refused, or cannot be asked yet), OTHER_ORDER (the reference
    belongs to another order: it is never recorded on this one). 503 when unreachable:
    the gateway retries its webhook, Scheduler reruns the sweeper."""
    try:
        verification = gateway.verify(order_id, reference)
    except Unavailable as error:
        raise errors.Unavailable("The payment gateway is unreachable.", reason=str(error)) from None
    except Refused as error:
        logs.error(
            "the gateway refused to verify an order we created", gateway=gateway.name, order_id=order_id, reason=str(error)
        )
        return Outcome.UNKNOWN_AT_GATEWAY
    if verification is None:
        return Outcome.UNKNOWN_AT_GATEWAY
    if verification.order_id != order_id:
        logs.error(
            "the gateway's transaction belongs to another order; nothing is issued",
            gateway=gateway.name,
            order_id=order_id,
            reference=reference,
            its_order_id=verification.order_id,
        )
        return Outcome.OTHER_ORDER
    return verification


def event_id(source: str, notice: Notice, verification: Verification) -> str:
    """Deliveries of one notice of one outcome share an id."""
    text = f"{source}\n{notice.order_id}\n{notice.reference}\n{verification.status}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# The sweeper.


def reconcile_pending(
    db: Store, gateway_for: Callable[[str], Gateway], gateways: Iterable[str], now: datetime | None = None
) -> dict[str, int]:
    """Re-verifies purchases still pending 15 minutes after creation, per gateway
    offered (`gateways`; oldest first, a bounded batch each), so that a payer who never
    came back and a lost webhook never lose a paid purchase the gateway can be asked
    about (a SADAD payment is asked by its transaction number, known from a callback or
    a webhook). An unpaid one expires after 24 hours; one the gateway still reports In
    Progress (SADAD: the bank has not confirmed) after 48 goes to an admin instead, as
    it may be paid. One in review is the admin's: not swept, so it never holds a place
    in the batch. Purchases of a gateway not configured here wait, untouched, until it
    is. Drives on the refunds a crash interrupted."""
    now = now or ledger.now_utc()
    counts: dict[str, int] = {}
    for name in gateways:
        pending = db.query(
            store.PURCHASES,
            (
                Where("gateway", "==", name),
                Where("status", "==", PENDING),
                Where("needs_review", "==", False),
                Where("created_at", "<=", now - timedelta(seconds=config.PURCHASE_SWEEP_AFTER_SECONDS)),
            ),
            order_by="created_at",
            limit=config.PURCHASE_SWEEP_BATCH_MAX,
        )
        for purchase in pending:
            outcome = _sweep(db, gateway_for, purchase, now)
            counts[outcome] = counts.get(outcome, 0) + 1
    for record in db.query(
        store.PURCHASE_REFUNDS,
        (Where("status", "in", [refunds.HELD, refunds.CALLING]),),
        limit=config.PURCHASE_SWEEP_BATCH_MAX,
    ):
        outcome = refunds.resume(db, gateway_for, record, now)
        counts[outcome] = counts.get(outcome, 0) + 1
    logs.info("purchases reconciled", **counts)
    return counts


def _sweep(db: Store, gateway_for: Callable[[str], Gateway], purchase: Mapping[str, Any], now: datetime) -> str:
    """One pending purchase: verified by each reference it may be asked by, the answer
    that says most kept (paid, then in progress, then pending, then failed: a payer's
    declined attempt never hides the one that went through); none for it (nothing to ask
    by, unknown, another order's): unpaid so far."""
    gateway = gateway_for(gateway_of(purchase))
    with settling(db, purchase["id"]) as taken:
        if not taken:
            return Outcome.BUSY  # a return or a webhook is settling it right now
        verification = Verification(purchase["id"], None, Status.PENDING, None, None, None)
        answered = False
        for reference in _asked_by(purchase, gateway):
            try:
                found = verify(gateway, purchase["id"], reference)
            except errors.Unavailable:
                return Outcome.GATEWAY_UNAVAILABLE
            if isinstance(found, Verification) and (not answered or SAYS_MOST[found.status] < SAYS_MOST[verification.status]):
                verification, answered = found, True
            if verification.status is Status.PAID:
                break
        expires_after = (
            config.PURCHASE_IN_PROGRESS_EXPIRE_AFTER_SECONDS
            if verification.status is Status.IN_PROGRESS
            else config.PURCHASE_EXPIRE_AFTER_SECONDS
        )
        expire = purchase["created_at"] <= now - timedelta(seconds=expires_after)
        return settle(db, gateway, purchase["id"], verification, expire_unpaid=expire, event=None)
