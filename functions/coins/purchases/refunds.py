"""Refunds, with claw-back. The coins go first: the buyer's coins worth the purchase move
to a hold (`refund:{purchase_id}`) in one ledger transaction; then the gateway refunds
the money; then the held coins are retired (refunded) or given back (the gateway
refused). Each step is recorded on `purchase_refunds/{id}` before the next is taken, and
that record is the recovery point: `drive` takes a refund on from whatever step it is
at, for the admin's request, for a retry of it after a crash, and for the sweeper.

- held: the gateway not called yet: call it.
- calling: a call was made and its answer never recorded (the process died): whether
  the gateway refunded is unknown, so it is never guessed: it goes to an admin
  (uncertain), who checks the gateway's dashboard.
- manual: the gateway has no refund API (SADAD): an admin refunds in its panel and
  dismisses the review to record it.
- uncertain, refunded, reversed: nothing to do but answer.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping

from .. import audit, catalog, config, errors, ledger, logs, postings, store
from ..auth import Caller
from ..domain import TREASURY, Account, EntryType, EventKind, RefundStatus
from ..gateways import Gateway, ManualRefund, Refused, Unavailable
from ..idempotency import Idempotency, claimed
from ..store import Store, existing
from .states import PAID, REFUNDING, Step, gateway_of, gateway_words, moved, reference_of, render

HELD, CALLING, UNCERTAIN, MANUAL = RefundStatus.HELD, RefundStatus.CALLING, RefundStatus.UNCERTAIN, RefundStatus.MANUAL
FINAL = (RefundStatus.REFUNDED, RefundStatus.REVERSED)


def refund(
    db: Store, gateway_for: Callable[[str], Gateway], admin: Caller, purchase_id: str, *, reason: str, idempotency: Idempotency
) -> ledger.Response:
    """An admin refunds a paid purchase: the coins it issued are taken back from the
    buyer (409 insufficient_funds with the shortfall if the buyer no longer holds that
    value), then the gateway refunds the money, then the held coins leave circulation;
    if the gateway refuses, they go back to the buyer (502). A refund already under way
    (a retry after a crash) is driven on from where it stopped."""
    found = db.get(store.purchase(purchase_id))
    # The gateway first: where it is not configured, 503 before any coin moves.
    gateway = gateway_for(gateway_of(found)) if found is not None else None
    with admin_step(db, idempotency, purchase_id) as claim:
        if isinstance(claim, ledger.Response):
            return claim
        _hold(db, admin, purchase_id, reason, claim)
        assert gateway is not None, "the hold found the purchase"
        return drive(db, gateway, admin.uid, purchase_id, claim)


@contextlib.contextmanager
def admin_step(db: Store, idempotency: Idempotency, purchase_id: str):
    """An admin's step on a purchase around a gateway call: yields the request's claim on
    its key (or the stored answer of an earlier request with it), holding the purchase's
    settlement lease for the step; 409 request_in_progress while a settlement runs."""
    from .settlement import settling

    with claimed(db, idempotency, ledger.now_utc()) as claim:
        if isinstance(claim, ledger.Response):
            yield claim
            return
        with settling(db, purchase_id) as taken:
            if not taken:
                raise errors.RequestInProgress("This purchase is being settled or refunded; try again shortly.")
            yield claim


def _hold(db: Store, admin: Caller, purchase_id: str, reason: str, claim) -> None:
    """The first step: the buyer's coins worth the purchase move to the refund hold. A
    purchase already refunding is left as it is (its refund is driven on). A refusal
    (not found, not paid, too few coins) settles the claim with its answer."""
    hold = Account.refund(purchase_id)

    def operation(reader: ledger.Reader) -> ledger.Plan:
        purchase = reader.purchase(purchase_id)
        if purchase is None:
            raise errors.NotFound()
        if purchase["status"] == REFUNDING:
            return ledger.Plan(entry=None, respond=lambda outcome: ledger.Response(200, {}))
        refunding = moved(purchase, Step.HOLD_REFUND)
        if not reference_of(purchase):
            raise errors.InvalidState("The gateway's reference of this payment is unknown.", status=purchase["status"])
        buyer = Account.user(purchase["user_id"])
        moved_coins, _ = postings.pay(buyer, hold, reader.wallet(purchase["user_id"])["coins"], purchase["value_dirhams"])
        record = {
            "purchase_id": purchase_id,
            "user_id": purchase["user_id"],
            "status": HELD,
            "value_dirhams": purchase["value_dirhams"],
            "price_dirhams": purchase["price_dirhams"],
            "reason": reason,
            "by": admin.uid,
            "created_at": reader.now,
            "updated_at": reader.now,
        }
        return ledger.Plan(
            entry=postings.Entry(EntryType.REFUND_HOLD, moved_coins, refs={"purchase_id": purchase_id}, memo={"reason": reason}),
            documents={
                store.purchase_refund(purchase_id): record,
                store.purchase(purchase_id): {
                    "status": refunding,
                    "updated_at": reader.now,
                    "refund": {"status": HELD, "reason": reason, "by": admin.uid, "at": reader.now},
                },
                **audit.record(
                    actor=admin.uid,
                    action="purchase_refund",
                    target=str(hold),
                    now=reader.now,
                    before={"status": PAID},
                    after={"status": refunding},
                    reason=reason,
                ),
            },
            respond=lambda outcome: ledger.Response(200, {}),
        )

    ledger.execute(db, operation, actor=admin.uid, claim=claim, answers=False)


def drive(db: Store, gateway: Gateway, actor: str, purchase_id: str, claim=None) -> ledger.Response:
    """Takes the purchase's refund on from its recorded step (the module doc), and
    answers as the step it ends on says."""
    record = existing(db.get(store.purchase_refund(purchase_id)))
    status = record["status"]
    if status == HELD:
        return call(db, gateway, actor, purchase_id, claim)
    if status == CALLING:
        purchase = existing(db.get(store.purchase(purchase_id)))
        step(db, purchase_id, UNCERTAIN, actor, review=_check_the_dashboard(purchase, "refund call interrupted"))
        return ledger.answered(db, claim, _unanswered(purchase), actor=actor)
    return ledger.answered(db, claim, answer(db, purchase_id), actor=actor)


def answer(db: Store, purchase_id: str) -> ledger.Response:
    """What a refund's recorded state says to the admin who asked for it."""
    purchase, record = existing(db.get(store.purchase(purchase_id))), existing(db.get(store.purchase_refund(purchase_id)))
    if record["status"] == UNCERTAIN:
        return _unanswered(purchase)
    if record["status"] == RefundStatus.REVERSED:
        return _refused(purchase, record, record.get("detail", ""))
    return ledger.Response(200, render(purchase))


def _unanswered(purchase: Mapping[str, Any]) -> ledger.Response:
    return ledger.Response(
        errors.GatewayError.status,
        errors.GatewayError(
            f"{gateway_words(purchase)} did not answer the refund; it may or may not have happened. "
            "The purchase is in the review queue.",
            purchase_id=purchase["id"],
        ).to_body(),
    )


def _refused(purchase: Mapping[str, Any], record: Mapping[str, Any], detail: str) -> ledger.Response:
    name = gateway_words(purchase)
    message = (
        f"{name} refused the refund; the purchase stays in review."
        if record.get("unissued")
        else f"{name} refused the refund; the coins are back with the buyer."
    )
    return ledger.Response(
        errors.GatewayError.status, errors.GatewayError(message, purchase_id=purchase["id"], gateway=detail).to_body()
    )


def _check_the_dashboard(purchase: Mapping[str, Any], what: str) -> str:
    return f"{what}; check {gateway_words(purchase)}'s dashboard: dismiss if it refunded, refund to call again"


def call(db: Store, gateway: Gateway, actor: str, purchase_id: str, claim=None) -> ledger.Response:
    """The second and third steps: call the gateway (recorded first, so that a lost
    answer is known to be lost), then retire the held coins or give them back. Where
    the gateway has no refund API, the refund waits for an admin to make it by hand."""
    purchase = existing(db.get(store.purchase(purchase_id)))
    reference = reference_of(purchase)
    assert reference, "only a payment the gateway verified is refunded"
    step(db, purchase_id, CALLING, actor)
    try:
        refund_status = gateway.refund(purchase_id, reference)
    except Refused as error:
        return finish(db, purchase_id, refunded=False, detail=str(error), actor=actor, claim=claim)
    except ManualRefund as manual:
        amount = catalog.in_qar(purchase["price_dirhams"])
        review = f"Refund {amount} to the payer by hand: {manual} Then dismiss this review to record it done."
        step(db, purchase_id, MANUAL, actor, review=review, reference=reference)
        return ledger.answered(
            db, claim, ledger.Response(200, render(existing(db.get(store.purchase(purchase_id))))), actor=actor
        )
    except Unavailable as error:
        # The gateway may have refunded: never guess. An admin checks its dashboard.
        step(db, purchase_id, UNCERTAIN, actor, review=_check_the_dashboard(purchase, f"refund call unanswered ({error})"))
        logs.error("refund unanswered; the purchase waits for an admin", purchase_id=purchase_id, reason=str(error))
        return ledger.answered(db, claim, _unanswered(purchase), actor=actor)
    return finish(db, purchase_id, refunded=True, detail=refund_status, actor=actor, claim=claim)


def step(
    db: Store, purchase_id: str, status: RefundStatus, actor: str, review: str | None = None, reference: str | None = None
) -> None:
    """Records how far a refund got; with `review`, puts the purchase before an admin."""

    def operation(reader: ledger.Reader) -> ledger.Plan:
        purchase = existing(reader.purchase(purchase_id))
        changes: dict[str, Any] = {
            "refund": {**(purchase.get("refund") or {}), "status": status, **({"reference": reference} if reference else {})}
        }
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


def finish(db: Store, purchase_id: str, *, refunded: bool, detail: str, actor: str, claim=None) -> ledger.Response:
    """Retires the held coins (the gateway refunded) or gives them back (it refused)."""
    hold = Account.refund(purchase_id)

    def operation(reader: ledger.Reader) -> ledger.Plan:
        purchase, record = existing(reader.purchase(purchase_id)), existing(reader.purchase_refund(purchase_id))
        if record["status"] in FINAL:
            raise errors.InvalidState(f"The refund is {record['status']} already.", status=record["status"])
        coins = record.get("coins", {})
        # A payment whose coins were never issued holds none: only the money moves.
        unissued = record.get("unissued", False)
        destination = TREASURY if refunded else Account.user(purchase["user_id"])
        status = RefundStatus.REFUNDED if refunded else RefundStatus.REVERSED
        changes: dict[str, Any] = {
            "needs_review": False,
            "refund": {**(purchase.get("refund") or {}), "status": status, "detail": detail},
            "updated_at": reader.now,
        }
        if refunded:
            changes.update(status=moved(purchase, Step.REFUND_UNISSUED if unissued else Step.REFUND), refunded_at=reader.now)
        elif unissued:
            changes["needs_review"] = True  # still to be decided
        else:
            changes["status"] = moved(purchase, Step.REVERSE_REFUND)
        entry = (
            postings.Entry(
                EntryType.REFUND_PAID if refunded else EntryType.REFUND_REVERSED,
                postings.transfer(hold, destination, coins),
                refs={"purchase_id": purchase_id},
                memo={"gateway": detail},
                parties=(purchase["user_id"],),
            )
            if coins
            else None
        )
        events = (
            (
                ledger.Event(
                    EventKind.PURCHASE_REFUNDED,
                    {
                        "user_id": purchase["user_id"],
                        "purchase_id": purchase_id,
                        "value_dirhams": purchase["value_dirhams"],
                        "price_dirhams": purchase["price_dirhams"],
                        "unissued": unissued,
                    },
                ),
            )
            if refunded
            else ()
        )
        respond = ledger.Response(200, render({**purchase, **changes})) if refunded else _refused(purchase, record, detail)
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


def resume(db: Store, gateway_for: Callable[[str], Gateway], record: Mapping[str, Any], now: datetime) -> str:
    """The sweeper's turn on a refund no request is driving (held or calling, untouched
    for a while): the same driver as the request's."""
    from .settlement import settling

    purchase_id = record["purchase_id"]
    if record["updated_at"] > now - timedelta(seconds=config.REFUND_ANSWER_WAIT_SECONDS):
        return "refund_in_progress"
    with settling(db, purchase_id) as taken:
        if not taken:
            return "busy"
        try:
            drive(db, gateway_for(gateway_of(existing(db.get(store.purchase(purchase_id))))), "system:sweeper", purchase_id)
        except errors.Unavailable:
            return "gateway_unavailable"
        return f"refund_{existing(db.get(store.purchase_refund(purchase_id)))['status']}"
