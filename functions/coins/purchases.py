"""Coin purchases through Fatora: checkout, the payer's return, the webhook, the sweeper,
refunds with claw-back, and the review queue.

Coins are issued exactly once, by one ledger transaction that moves them from the
treasury to the buyer and marks the purchase `paid`, and only after Fatora's verify call
confirms SUCCESS in the required mode (live in production) for the purchase's exact
price in QAR. Nothing from outside is trusted: the payer's return (the primary signal,
Fatora's documented flow), a webhook (a second one) and the sweeper (the safety net)
only name an order to verify. A payment that does not match, or that arrives after the
purchase failed or expired, issues nothing and waits in the review queue for an admin.
A refunded purchase is final: no later verify issues anything for it.

A refund takes the coins back first (a hold, `refund:{purchase_id}`, in one ledger
transaction), then calls Fatora, then retires the held coins (refunded) or gives them
back to the buyer (Fatora refused). The steps are recorded on `purchase_refunds/{id}`;
the sweeper finishes a refund a crash interrupted, and an answer that was lost (Fatora
may or may not have refunded) goes to an admin rather than being guessed.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Mapping

from . import audit, catalog, config, errors, fatora, ledger, limits, logs, postings, store
from .auth import Caller
from .domain import TREASURY, Account, EntryType, EventKind, PurchaseStatus, RefundStatus, is_valid_id
from .idempotency import claimed, lease
from .store import Store, Where, existing
from .times import moment

PENDING, PAID, FAILED, EXPIRED = PurchaseStatus.PENDING, PurchaseStatus.PAID, PurchaseStatus.FAILED, PurchaseStatus.EXPIRED
REFUNDING, REFUNDED = PurchaseStatus.REFUNDING, PurchaseStatus.REFUNDED
# Every status in which the coins were issued.
ISSUED = (PAID, REFUNDING, REFUNDED)
# A refund is open (it holds the purchase's coins, if any were issued) until Fatora
# answers or an admin decides.
REFUND_OPEN = (RefundStatus.HELD, RefundStatus.CALLING, RefundStatus.UNCERTAIN)


class Outcome(StrEnum):
    """What one settlement (a return, a webhook, the sweeper) did with a purchase."""

    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    NEEDS_REVIEW = "needs_review"
    UNCHANGED = "unchanged"
    ALREADY_PAID = "already_paid"
    REFUNDED = "refunded"  # refunded here: a later SUCCESS never issues coins again
    UNKNOWN_ORDER = "unknown_order"  # a webhook naming no purchase of ours
    BEING_SETTLED = "being_settled"  # a webhook while another delivery settles it
    BUSY = "busy"  # the sweeper found a settlement in progress


class ReturnStatus(StrEnum):
    """What the payer's return tells the app (`guild://coins/purchase/{id}?status=`)."""

    PAID = "paid"
    FAILED = "failed"
    PENDING = "pending"  # the app polls the purchase


# What the buyer (and, for a review, the admins) hear about a settlement.
ANNOUNCED = {
    Outcome.PAID: EventKind.COINS_ISSUED,
    Outcome.FAILED: EventKind.PURCHASE_FAILED,
    Outcome.NEEDS_REVIEW: EventKind.PURCHASE_IN_REVIEW,
}
# Leases on purchases being settled or refunded: idempotency records of their own scope.
SETTLEMENT_LEASE_SCOPE = "settle-purchase"
# Where the payer's browser goes next: the app, told how it went.
RETURN_STATUS = {
    PAID: ReturnStatus.PAID,
    REFUNDING: ReturnStatus.PAID,
    REFUNDED: ReturnStatus.PAID,
    FAILED: ReturnStatus.FAILED,
    EXPIRED: ReturnStatus.FAILED,
}


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
        "review_reason": purchase.get("review_reason"),
        "resolution": _dated(purchase.get("resolution")),
        "refund": _dated(purchase.get("refund")),
        "created_at": moment(purchase, "created_at"),
        "paid_at": moment(purchase, "paid_at"),
        "refunded_at": moment(purchase, "refunded_at"),
    }


def _dated(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return {**record, "at": moment(record, "at")} if record else None


# Creating a purchase: three phases under one idempotency claim (the gateway call cannot
# be inside a transaction). The pending purchase is written first, so that whatever
# happens at the gateway, our order id is on record; and it is never used again.


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
    return_url = config.settings().purchase_return_url
    if not return_url:
        raise errors.Unavailable("Purchases are not configured (PURCHASE_RETURN_URL).")
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
        _open(db, caller.uid, purchase, claim)
        try:
            checkout_url = gateway.checkout(
                order_id=purchase_id,
                amount_dirhams=price,
                client={"name": caller.name or "GUILD user", "phone": caller.phone or "", "email": caller.email or ""},
                language=language,
                success_url=return_url,
                failure_url=return_url,
                note=f"GUILD Coins worth {value // catalog.DIRHAMS_PER_QAR} QAR",
            )
        except fatora.FatoraError as error:
            logs.warning("fatora checkout failed", purchase_id=purchase_id, reason=str(error))
            failed = {"status": FAILED, "failure_reason": f"checkout: {error}"}
            response = ledger.Response(errors.GatewayError.status, errors.GatewayError(purchase_id=purchase_id).to_body())
            return _write(db, purchase_id, failed, actor=caller.uid, claim=claim, response=response, uncount=caller.uid)
        # Only the new field: a settlement may already have changed the status.
        opened = {"checkout_url": checkout_url}
        response = ledger.Response(201, render({**purchase, **opened}))
        return _write(db, purchase_id, opened, actor=caller.uid, claim=claim, response=response)


def _open(db: Store, uid: str, purchase: Mapping[str, Any], claim) -> None:
    """The first phase: the pending purchase, counted against the buyer's limits in the
    same commit (429 over them, stored as the key's answer)."""

    def operation(reader: ledger.Reader) -> ledger.Plan:
        counted = limits.admit(reader.limits(uid), limits.Kind.PURCHASE, purchase["price_dirhams"], purchase["id"], reader.now)
        return ledger.Plan(
            entry=None,
            documents={store.purchase(purchase["id"]): purchase, store.limits(uid): counted},
            respond=lambda outcome: ledger.Response(200, {}),
        )

    ledger.execute(db, operation, actor=uid, claim=claim, answers=False)


def _write(
    db: Store, purchase_id: str, fields, *, actor, claim=None, response=None, uncount: str | None = None
) -> ledger.Response:
    """Merges fields into the purchase through the ledger (no money moves); with a
    claim, settles it with `response` in the same commit. `uncount`: the buyer whose
    limits no longer count this purchase (its checkout failed)."""

    def operation(reader: ledger.Reader) -> ledger.Plan:
        documents = {store.purchase(purchase_id): fields}
        if uncount:
            documents[store.limits(uncount)] = limits.forget(reader.limits(uncount), limits.Kind.PURCHASE, purchase_id)
        return ledger.Plan(entry=None, documents=documents, respond=lambda outcome: response or ledger.Response(200, {}))

    return ledger.execute(db, operation, actor=actor, claim=claim)


# Settling: what Fatora's verify says decides, inside one ledger transaction.


def settle(db: Store, purchase_id: str, verification: fatora.Verification, *, expire_unpaid: bool, event: dict | None) -> str:
    """Applies a verification to a purchase and returns what happened: `paid`,
    `already_paid`, `refunded`, `failed`, `expired`, `needs_review` or `unchanged`."""

    def operation(reader: ledger.Reader) -> ledger.Plan:
        purchase = existing(reader.purchase(purchase_id))
        outcome, entry, changes = _decide(purchase, verification, expire_unpaid, reader)
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

    outcome = ledger.execute(db, operation, actor="fatora").body["outcome"]
    if outcome == Outcome.NEEDS_REVIEW:
        logs.error(
            "fatora payment cannot be honoured automatically; it waits for an admin",
            purchase_id=purchase_id,
            verified_amount_dirhams=verification.amount_dirhams,
            verified_currency=verification.currency,
            verified_mode=verification.mode,
        )
    return outcome


def _decide(purchase, verification: fatora.Verification, expire_unpaid: bool, reader: ledger.Reader):
    """(outcome, ledger entry or None, changes to the purchase) for a verification. Pure."""
    if purchase["status"] in (REFUNDING, REFUNDED):
        return Outcome.REFUNDED, None, {}  # final: a later SUCCESS never issues coins again
    if purchase["status"] == PAID:
        return Outcome.ALREADY_PAID, None, {}
    seen = {"fatora_transaction_id": verification.transaction_id} if verification.transaction_id else {}
    if verification.payment_status == fatora.PAID:
        problem = _mismatch(purchase, verification)
        if problem is None and purchase["status"] != PENDING:
            problem = f"paid at Fatora after the purchase was {purchase['status']} here"
        if problem is not None:
            if purchase.get("needs_review"):
                return Outcome.UNCHANGED, None, {}
            return Outcome.NEEDS_REVIEW, None, {**seen, "needs_review": True, "review_reason": problem, "review_at": reader.now}
        entry = postings.Entry(
            EntryType.PURCHASE_ISSUE,
            postings.issue(purchase["user_id"], purchase["coins"]),
            refs={"purchase_id": purchase["id"]},
            memo={"fatora_transaction_id": verification.transaction_id, "price_dirhams": purchase["price_dirhams"]},
        )
        return Outcome.PAID, entry, {**seen, "status": PAID, "paid_at": reader.now, "entry_id": reader.entry_id}
    if purchase["status"] != PENDING:
        return Outcome.UNCHANGED, None, {}
    if verification.payment_status == fatora.FAILED:
        return Outcome.FAILED, None, {**seen, "status": FAILED, "failure_reason": "declined at Fatora"}
    if expire_unpaid:
        return Outcome.EXPIRED, None, {"status": EXPIRED, "failure_reason": "not paid within 24 hours"}
    return Outcome.UNCHANGED, None, seen


def _mismatch(purchase, verification: fatora.Verification) -> str | None:
    """Why a SUCCESS cannot be honoured as it is, or None."""
    required = config.settings().fatora_required_mode
    if verification.mode != required:
        return f"Fatora verified the payment in {verification.mode or 'no'} mode; coins are issued only for {required} mode."
    if verification.amount_dirhams != purchase["price_dirhams"] or verification.currency != fatora.CURRENCY:
        if verification.amount_dirhams is None:
            paid = "no amount"
        elif verification.currency == fatora.CURRENCY:
            paid = catalog.in_qar(verification.amount_dirhams)
        else:
            paid = f"an amount in {verification.currency or 'no currency'}"
        return f"Fatora verified {paid}; the purchase costs {catalog.in_qar(purchase['price_dirhams'])}."
    return None


# What names an order: the payer's return, a webhook.


def receive_return(db: Store, gateway_factory, query: Mapping[str, str]) -> str:
    """The payer's browser back from Fatora (`success_url` and `failure_url` alike):
    verify and settle, then the app's deep link with the purchase's status (paid,
    failed or pending). The status in the query is never trusted; when Fatora cannot
    be reached the answer is pending, and the webhook or the sweeper settles it."""
    try:
        notice = fatora.notice_of(query)
    except ValueError as error:
        raise errors.InvalidRequest(f"This is not a return from Fatora: {error}") from None
    if not is_valid_id(notice.order_id):
        raise errors.InvalidRequest("This is not a return from Fatora: no valid order_id.")
    if db.get(store.purchase(notice.order_id)) is None:
        raise errors.NotFound("No such purchase.")
    try:
        _verify_and_settle(db, gateway_factory(), notice, source="return")
    except errors.Unavailable:
        pass  # pending: the webhook or the sweeper settles it later
    except errors.RequestInProgress:
        _wait_while_settling(db, notice.order_id)  # a webhook that came first is settling it
    purchase = existing(db.get(store.purchase(notice.order_id)))
    status = ReturnStatus.PENDING if purchase.get("needs_review") else RETURN_STATUS.get(purchase["status"], ReturnStatus.PENDING)
    return f"{config.settings().app_link_base}coins/purchase/{notice.order_id}?status={status}"


def _wait_while_settling(db: Store, purchase_id: str) -> None:
    """A moment for the settlement in progress, so that the payer lands in the app with
    the outcome rather than "pending" (which the app then polls)."""
    import time

    deadline = time.monotonic() + config.RETURN_WAIT_SECONDS
    while time.monotonic() < deadline:
        if existing(db.get(store.purchase(purchase_id)))["status"] != PENDING:
            return
        time.sleep(0.2)


def receive_webhook(
    db: Store, gateway_factory, *, query: Mapping[str, str], raw_body: bytes, headers: Mapping[str, str]
) -> dict[str, Any]:
    """Fatora's notification, however it comes (GET with a query string, POST with JSON
    or a form): where a token is configured it must be in the URL; then the order is
    verified and settled."""
    import hmac

    token = config.settings().fatora_webhook_token
    if token and not hmac.compare_digest(query.get("token", "").encode(), token.encode()):
        raise errors.Unauthenticated("This webhook URL needs its token.")
    try:
        notice = fatora.notice_of({k: v for k, v in query.items() if k != "token"}, raw_body, headers.get("Content-Type", ""))
    except ValueError as error:
        raise errors.InvalidRequest(f"The notification names no order: {error}") from None
    if not is_valid_id(notice.order_id):
        raise errors.InvalidRequest("The notification has no valid order_id.")
    if db.get(store.purchase(notice.order_id)) is None:
        logs.warning("fatora webhook for an unknown order", order_id=notice.order_id)
        return {"outcome": Outcome.UNKNOWN_ORDER}
    try:
        return {"outcome": _verify_and_settle(db, gateway_factory(), notice, source="webhook")}
    except errors.RequestInProgress:
        # Another delivery is settling it now; it, or the sweeper, finishes the job.
        return {"outcome": Outcome.BEING_SETTLED}


def _verify_and_settle(db: Store, gateway: fatora.FatoraClient, notice: fatora.Notice, *, source: str) -> str:
    """Verify with Fatora (by the transaction when the notice names one), then settle.
    A paid purchase is answered without a verify call; one settlement per purchase at a
    time (RequestInProgress otherwise)."""
    purchase = existing(db.get(store.purchase(notice.order_id)))
    if purchase["status"] in ISSUED:
        return Outcome.ALREADY_PAID if purchase["status"] == PAID else Outcome.REFUNDED
    with _settling(db, notice.order_id) as taken:
        if not taken:
            raise errors.RequestInProgress("This order is being settled.")
        verification = _verify(gateway, notice.order_id, notice.transaction_id)
        if verification is None:
            return "unknown_at_fatora"
        event = {
            "id": event_id(source, notice, verification),
            "source": source,
            "payment_status": verification.payment_status,
            "transaction_id": notice.transaction_id,
        }
        return settle(db, notice.order_id, verification, expire_unpaid=False, event=event)


def _settling(db: Store, purchase_id: str):
    """One settlement (or refund step) of a purchase at a time: a lease on the purchase,
    given back afterwards; yields whether it was taken. Without it, twenty duplicate
    notifications would each call Fatora and then contend for the same documents."""
    return lease(db, SETTLEMENT_LEASE_SCOPE, purchase_id, ledger.now_utc())


def _verify(gateway: fatora.FatoraClient, order_id: str, transaction_id: str | None) -> fatora.Verification | None:
    try:
        return gateway.verify(order_id, transaction_id)
    except fatora.FatoraUnavailable as error:
        # 503 to the caller: Fatora retries the webhook, Scheduler reruns the sweeper.
        raise errors.Unavailable("The payment gateway is unreachable.", reason=str(error)) from None
    except fatora.FatoraRejected as error:
        logs.error("fatora refused to verify an order we created", order_id=order_id, error_code=error.error_code)
        return None


def event_id(source: str, notice: fatora.Notice, verification: fatora.Verification) -> str:
    """Deliveries of one notice of one outcome share an id."""
    import hashlib

    text = f"{source}\n{notice.order_id}\n{notice.transaction_id}\n{verification.payment_status}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# Refunds, with claw-back.


def refund(
    db: Store, gateway: fatora.FatoraClient, admin: Caller, purchase_id: str, *, reason: str, idempotency: ledger.Idempotency
) -> ledger.Response:
    """An admin refunds a paid purchase: the coins it issued are taken back from the
    buyer (409 insufficient_funds with the shortfall if the buyer no longer holds that
    value), then Fatora refunds the money, then the held coins leave circulation; if
    Fatora refuses, they go back to the buyer (502)."""
    with _admin_step(db, idempotency, purchase_id) as claim:
        if isinstance(claim, ledger.Response):
            return claim
        _hold_refund(db, admin, purchase_id, reason, claim)
        return _call_refund(db, gateway, admin.uid, purchase_id, claim)


@contextlib.contextmanager
def _admin_step(db: Store, idempotency: ledger.Idempotency, purchase_id: str):
    """An admin's step on a purchase around a gateway call: yields the request's claim on
    its key (or the stored answer of an earlier request with it), holding the purchase's
    settlement lease for the step; 409 request_in_progress while a settlement runs."""
    with claimed(db, idempotency, ledger.now_utc()) as claim:
        if isinstance(claim, ledger.Response):
            yield claim
            return
        with _settling(db, purchase_id) as taken:
            if not taken:
                raise errors.RequestInProgress("This purchase is being settled or refunded; try again shortly.")
            yield claim


def _hold_refund(db: Store, admin: Caller, purchase_id: str, reason: str, claim) -> None:
    """The first step: the buyer's coins worth the purchase move to the refund hold.
    A refusal (not found, not paid, too few coins) settles the claim with its answer."""
    hold = Account.refund(purchase_id)

    def operation(reader: ledger.Reader) -> ledger.Plan:
        purchase = reader.purchase(purchase_id)
        if purchase is None:
            raise errors.NotFound()
        if purchase["status"] != PAID:
            raise errors.InvalidState(
                f"The purchase is {purchase['status']}; only a paid purchase is refunded.", status=purchase["status"]
            )
        if not purchase.get("fatora_transaction_id"):
            raise errors.InvalidState("Fatora's transaction id of this purchase is unknown.", status=purchase["status"])
        buyer = Account.user(purchase["user_id"])
        moved, _ = postings.pay(buyer, hold, reader.wallet(purchase["user_id"])["coins"], purchase["value_dirhams"])
        record = {
            "purchase_id": purchase_id,
            "user_id": purchase["user_id"],
            "status": RefundStatus.HELD,
            "value_dirhams": purchase["value_dirhams"],
            "price_dirhams": purchase["price_dirhams"],
            "reason": reason,
            "by": admin.uid,
            "created_at": reader.now,
            "updated_at": reader.now,
        }
        return ledger.Plan(
            entry=postings.Entry(EntryType.REFUND_HOLD, moved, refs={"purchase_id": purchase_id}, memo={"reason": reason}),
            documents={
                store.purchase_refund(purchase_id): record,
                store.purchase(purchase_id): {
                    "status": REFUNDING,
                    "refund": {"status": RefundStatus.HELD, "reason": reason, "by": admin.uid, "at": reader.now},
                },
                **audit.record(
                    actor=admin.uid,
                    action="purchase_refund",
                    target=str(hold),
                    now=reader.now,
                    before={"status": PAID},
                    after={"status": REFUNDING},
                    reason=reason,
                ),
            },
            respond=lambda outcome: ledger.Response(200, {}),
        )

    ledger.execute(db, operation, actor=admin.uid, claim=claim, answers=False)


def _call_refund(db: Store, gateway: fatora.FatoraClient, actor: str, purchase_id: str, claim=None) -> ledger.Response:
    """The second and third steps: call Fatora (recorded first, so that a lost answer is
    known to be lost), then retire the held coins or give them back."""
    purchase = existing(db.get(store.purchase(purchase_id)))
    _refund_step(db, purchase_id, RefundStatus.CALLING, actor)
    try:
        refund_status = gateway.refund(purchase_id, purchase["fatora_transaction_id"])
    except fatora.FatoraRejected as error:
        return _finish_refund(db, purchase_id, refunded=False, detail=str(error), actor=actor, claim=claim)
    except fatora.FatoraUnavailable as error:
        # Fatora may have refunded: never guess. An admin checks Fatora's dashboard.
        _refund_step(
            db,
            purchase_id,
            RefundStatus.UNCERTAIN,
            actor,
            review=f"refund call unanswered ({error}); check Fatora's dashboard: dismiss if it refunded, refund to call again",
        )
        logs.error("fatora refund unanswered; the purchase waits for an admin", purchase_id=purchase_id, reason=str(error))
        response = ledger.Response(
            errors.GatewayError.status,
            errors.GatewayError(
                "Fatora did not answer the refund; it may or may not have happened. The purchase is in the review queue.",
                purchase_id=purchase_id,
            ).to_body(),
        )
        if claim is not None:
            _settle_claim(db, claim, response)
        return response
    return _finish_refund(db, purchase_id, refunded=True, detail=refund_status, actor=actor, claim=claim)


def _refund_step(db: Store, purchase_id: str, status: RefundStatus, actor: str, review: str | None = None) -> None:
    """Records how far a refund got; with `review`, puts the purchase before an admin."""

    def operation(reader: ledger.Reader) -> ledger.Plan:
        purchase = existing(reader.purchase(purchase_id))
        changes: dict[str, Any] = {"refund": {**(purchase.get("refund") or {}), "status": status}}
        events: tuple[ledger.Event, ...] = ()
        if review:
            changes.update(needs_review=True, review_reason=review, review_at=reader.now)
            events = (
                ledger.Event(
                    EventKind.PURCHASE_IN_REVIEW,
                    {
                        "user_id": purchase["user_id"],
                        "purchase_id": purchase_id,
                        "value_dirhams": purchase["value_dirhams"],
                        "reason": review,
                    },
                ),
            )
        documents = {
            store.purchase_refund(purchase_id): {"status": status, "updated_at": reader.now},
            store.purchase(purchase_id): changes,
        }
        return ledger.Plan(entry=None, documents=documents, events=events, respond=lambda outcome: ledger.Response(200, {}))

    ledger.execute(db, operation, actor=actor)


def _finish_refund(db: Store, purchase_id: str, *, refunded: bool, detail: str, actor: str, claim=None) -> ledger.Response:
    """Retires the held coins (Fatora refunded) or gives them back (Fatora refused)."""
    hold = Account.refund(purchase_id)

    def operation(reader: ledger.Reader) -> ledger.Plan:
        purchase, record = existing(reader.purchase(purchase_id)), existing(reader.purchase_refund(purchase_id))
        if record["status"] in (RefundStatus.REFUNDED, RefundStatus.REVERSED):
            raise errors.InvalidState(f"The refund is {record['status']} already.", status=record["status"])
        coins = record.get("coins", {})
        # A payment whose coins were never issued holds none: only the money moves.
        unissued = record.get("unissued", False)
        destination = TREASURY if refunded else Account.user(purchase["user_id"])
        status = RefundStatus.REFUNDED if refunded else RefundStatus.REVERSED
        changes: dict[str, Any] = {
            "needs_review": False,
            "refund": {**(purchase.get("refund") or {}), "status": status, "detail": detail},
        }
        if refunded:
            changes.update(status=REFUNDED, refunded_at=reader.now)
        elif unissued:
            changes["needs_review"] = True  # still to be decided
        else:
            changes["status"] = PAID
        entry = (
            postings.Entry(
                EntryType.REFUND_PAID if refunded else EntryType.REFUND_REVERSED,
                postings.transfer(hold, destination, coins),
                refs={"purchase_id": purchase_id},
                memo={"fatora": detail},
                parties=(purchase["user_id"],),
            )
            if coins
            else None
        )
        after = {**purchase, **changes}
        events = (
            (
                ledger.Event(
                    EventKind.PURCHASE_REFUNDED,
                    {"user_id": purchase["user_id"], "purchase_id": purchase_id, "value_dirhams": purchase["value_dirhams"]},
                ),
            )
            if refunded
            else ()
        )
        if refunded:
            respond = ledger.Response(200, render(after))
        else:
            message = (
                "Fatora refused the refund; the purchase stays in review."
                if unissued
                else "Fatora refused the refund; the coins are back with the buyer."
            )
            respond = ledger.Response(
                errors.GatewayError.status, errors.GatewayError(message, purchase_id=purchase_id, fatora=detail).to_body()
            )
        return ledger.Plan(
            entry=entry,
            documents={
                store.purchase_refund(purchase_id): {"status": status, "detail": detail, "updated_at": reader.now},
                store.purchase(purchase_id): changes,
            },
            events=events,
            respond=lambda outcome: respond,
        )

    return ledger.execute(db, operation, actor=actor, claim=claim)


def _settle_claim(db: Store, claim, response: ledger.Response) -> None:
    """Stores `response` as the answer of the claim (a step that moved no money)."""

    def operation(reader: ledger.Reader) -> ledger.Plan:
        return ledger.Plan(entry=None, respond=lambda outcome: response)

    ledger.execute(db, operation, actor="fatora-refund", claim=claim)


# The review queue.


def list_review(db: Store, *, limit: int, cursor: str | None) -> dict[str, Any]:
    """Purchases waiting for an admin, oldest first."""
    return db.page(
        store.PURCHASES,
        (Where("needs_review", "==", True),),
        limit=limit,
        cursor=cursor,
        owns=lambda purchase: purchase.get("needs_review") is True,
        render=render,
        newest_first=False,
        order_by="review_at",
    )


def resolve(
    db: Store, gateway_factory, admin: Caller, purchase_id: str, *, action: str, note: str, idempotency: ledger.Idempotency
) -> ledger.Response:
    """An admin decides a purchase in review. `issue`: credit the coins it names (once).
    `refund`: give the money back through Fatora (taking back the coins first if they
    were issued; calling again a refund whose answer was lost). `dismiss`: record the
    decision; for a refund whose answer was lost, that Fatora did refund it."""
    if action == "issue":
        return _issue_in_review(db, admin, purchase_id, note, idempotency)
    purchase = db.get(store.purchase(purchase_id))
    if purchase is None or not purchase.get("needs_review"):
        return ledger.execute(db, _refuse_unless_in_review(purchase_id), actor=admin.uid, idempotency=idempotency)
    record = db.get(store.purchase_refund(purchase_id)) or {}
    uncertain = record.get("status") == RefundStatus.UNCERTAIN
    if action == "refund" and purchase["status"] == PAID:
        return refund(db, gateway_factory(), admin, purchase_id, reason=note, idempotency=idempotency)
    with _admin_step(db, idempotency, purchase_id) as claim:
        if isinstance(claim, ledger.Response):
            return claim
        _record_resolution(db, admin, purchase_id, action, note)
        if uncertain and action == "refund":
            return _call_refund(db, gateway_factory(), admin.uid, purchase_id, claim)
        if uncertain:
            return _finish_refund(
                db, purchase_id, refunded=True, detail=f"confirmed by {admin.uid}: {note}", actor=admin.uid, claim=claim
            )
        if action == "refund":
            return _refund_unissued(db, gateway_factory(), admin.uid, purchase_id, claim)
        response = ledger.Response(200, render({**purchase, "needs_review": False}))
        _settle_claim(db, claim, response)
        return response


def _refuse_unless_in_review(purchase_id: str):
    def operation(reader: ledger.Reader) -> ledger.Plan:
        purchase = reader.purchase(purchase_id)
        if purchase is None:
            raise errors.NotFound()
        raise errors.InvalidState("The purchase is not in the review queue.", status=purchase["status"])

    return operation


def _record_resolution(db: Store, admin: Caller, purchase_id: str, action: str, note: str) -> None:
    def operation(reader: ledger.Reader) -> ledger.Plan:
        purchase = existing(reader.purchase(purchase_id))
        resolution = {"action": action, "note": note, "by": admin.uid, "at": reader.now}
        changes = {"resolution": resolution, **({"needs_review": False} if action == "dismiss" else {})}
        return ledger.Plan(
            entry=None,
            documents={
                store.purchase(purchase_id): changes,
                **audit.record(
                    actor=admin.uid,
                    action=f"purchase_review_{action}",
                    target=f"purchase:{purchase_id}",
                    now=reader.now,
                    before={"needs_review": True, "status": purchase["status"]},
                    after=changes,
                    reason=note,
                ),
            },
            respond=lambda outcome: ledger.Response(200, {}),
        )

    ledger.execute(db, operation, actor=admin.uid)


def _issue_in_review(db: Store, admin: Caller, purchase_id: str, note: str, idempotency) -> ledger.Response:
    """Credits the coins a purchase in review names, exactly once (its status says
    whether they were issued, in the same transaction)."""

    def operation(reader: ledger.Reader) -> ledger.Plan:
        purchase = reader.purchase(purchase_id)
        if purchase is None:
            raise errors.NotFound()
        if not purchase.get("needs_review") or purchase["status"] in ISSUED:
            raise errors.InvalidState(
                "Only a purchase in review whose coins were never issued can be issued.", status=purchase["status"]
            )
        resolution = {"action": "issue", "note": note, "by": admin.uid, "at": reader.now}
        changes = {
            "status": PAID,
            "needs_review": False,
            "paid_at": reader.now,
            "entry_id": reader.entry_id,
            "resolution": resolution,
        }
        entry = postings.Entry(
            EntryType.PURCHASE_ISSUE,
            postings.issue(purchase["user_id"], purchase["coins"]),
            refs={"purchase_id": purchase_id},
            memo={"issued_by": admin.uid, "note": note},
        )
        return ledger.Plan(
            entry=entry,
            documents={
                store.purchase(purchase_id): changes,
                **audit.record(
                    actor=admin.uid,
                    action="purchase_review_issue",
                    target=f"purchase:{purchase_id}",
                    now=reader.now,
                    before={"status": purchase["status"]},
                    after={"status": PAID},
                    reason=note,
                ),
            },
            events=(
                ledger.Event(
                    EventKind.COINS_ISSUED,
                    {"user_id": purchase["user_id"], "purchase_id": purchase_id, "value_dirhams": purchase["value_dirhams"]},
                ),
            ),
            respond=lambda outcome: ledger.Response(200, render({**purchase, **changes})),
        )

    return ledger.execute(db, operation, actor=admin.uid, idempotency=idempotency)


def _refund_unissued(db: Store, gateway: fatora.FatoraClient, actor: str, purchase_id: str, claim) -> ledger.Response:
    """A payment whose coins were never issued (a mismatch, a late payment): only the
    money goes back, with no coins to take. The refund is recorded before Fatora is
    called, as every refund is (`_call_refund`): an unanswered call is uncertain, never
    "did not refund", so the sweeper puts it in front of an admin and no second click
    can refund it again."""

    def operation(reader: ledger.Reader) -> ledger.Plan:
        purchase, record = existing(reader.purchase(purchase_id)), reader.purchase_refund(purchase_id)
        if not purchase.get("fatora_transaction_id"):
            raise errors.InvalidState("Fatora's transaction id of this purchase is unknown.", status=purchase["status"])
        if record is not None and record["status"] in REFUND_OPEN:
            raise errors.InvalidState(
                "A refund of this purchase was sent to Fatora and has no answer yet; it is not sent "
                "again. If none comes, the purchase returns to the review queue.",
                status=purchase["status"],
            )
        refund = {
            "purchase_id": purchase_id,
            "user_id": purchase["user_id"],
            "status": RefundStatus.HELD,
            "unissued": True,
            # Nothing is held: the coins were never issued.
            "value_dirhams": 0,
            "coins": {},
            "price_dirhams": purchase["price_dirhams"],
            "by": actor,
            "created_at": reader.now,
            "updated_at": reader.now,
        }
        return ledger.Plan(
            entry=None,
            documents={
                store.purchase_refund(purchase_id): refund,
                store.purchase(purchase_id): {"refund": {"status": RefundStatus.HELD, "by": actor, "at": reader.now}},
            },
            respond=lambda outcome: ledger.Response(200, {}),
        )

    try:
        ledger.execute(db, operation, actor=actor, claim=claim, answers=False)
    except errors.InvalidState as refused:
        return ledger.Response(refused.status, refused.to_body())  # stored under the key by the step
    return _call_refund(db, gateway, actor, purchase_id, claim)


# The sweeper.


def reconcile_pending(db: Store, gateway: fatora.FatoraClient, now: datetime | None = None) -> dict[str, int]:
    """Re-verifies purchases still pending 15 minutes after creation (oldest first, a
    bounded batch), so that a payer who never came back and a lost webhook never lose a
    paid purchase; those Fatora still reports unpaid after 24 hours expire. Finishes
    refunds a crash interrupted."""
    now = now or ledger.now_utc()
    pending = db.query(
        store.PURCHASES,
        (Where("status", "==", PENDING), Where("created_at", "<=", now - timedelta(seconds=config.PURCHASE_SWEEP_AFTER_SECONDS))),
        order_by="created_at",
        limit=config.PURCHASE_SWEEP_BATCH_MAX,
    )
    counts: dict[str, int] = {}
    for purchase in pending:
        outcome: str
        with _settling(db, purchase["id"]) as taken:
            if not taken:
                outcome = Outcome.BUSY  # a return or a webhook is settling it right now
            else:
                verification = _verify(gateway, purchase["id"], purchase.get("fatora_transaction_id"))
                if verification is None:
                    verification = fatora.Verification(purchase["id"], None, fatora.PENDING, None, None)
                expire = purchase["created_at"] <= now - timedelta(seconds=config.PURCHASE_EXPIRE_AFTER_SECONDS)
                outcome = settle(db, purchase["id"], verification, expire_unpaid=expire, event=None)
        counts[outcome] = counts.get(outcome, 0) + 1
    for record in db.query(
        store.PURCHASE_REFUNDS,
        (Where("status", "in", [RefundStatus.HELD, RefundStatus.CALLING]),),
        limit=config.PURCHASE_SWEEP_BATCH_MAX,
    ):
        outcome = _resume_refund(db, gateway, record, now)
        counts[outcome] = counts.get(outcome, 0) + 1
    logs.info("purchases reconciled", **counts)
    return counts


def _resume_refund(db: Store, gateway: fatora.FatoraClient, record: Mapping[str, Any], now: datetime) -> str:
    """A refund a crash interrupted: held but never called, call it; called with no
    answer for a while, put it in front of an admin."""
    purchase_id = record["purchase_id"]
    if record["updated_at"] > now - timedelta(seconds=config.REFUND_ANSWER_WAIT_SECONDS):
        return "refund_in_progress"
    with _settling(db, purchase_id) as taken:
        if not taken:
            return Outcome.BUSY
        current = existing(db.get(store.purchase_refund(purchase_id)))
        if current["status"] == RefundStatus.HELD:
            _call_refund(db, gateway, "system:sweeper", purchase_id)
            return f"refund_{existing(db.get(store.purchase_refund(purchase_id)))['status']}"
        if current["status"] == RefundStatus.CALLING:
            _refund_step(
                db,
                purchase_id,
                RefundStatus.UNCERTAIN,
                "system:sweeper",
                review="refund call interrupted; check Fatora's dashboard: dismiss if it refunded, refund to call again",
            )
            return "refund_uncertain"
    return "unchanged"


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
        store.PURCHASES,
        (Where("user_id", "==", owner),),
        limit=limit,
        cursor=cursor,
        owns=lambda purchase: purchase.get("user_id") == owner,
        render=render,
    )
