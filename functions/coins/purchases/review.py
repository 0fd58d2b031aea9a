"""The review queue: payments that cannot be honoured automatically (another amount, the
wrong mode, paid after the purchase failed or expired, still In Progress at SADAD after
48 hours), refunds whose answer was lost,
and refunds to be made by hand (SADAD). An admin issues, refunds or dismisses."""

from __future__ import annotations

from typing import Any, Callable

from .. import audit, errors, ledger, postings, store
from ..auth import Caller
from ..domain import EntryType, EventKind, RefundStatus
from ..gateways import Gateway
from ..idempotency import Idempotency
from ..store import Store, Where, existing
from . import refunds
from .states import PAID, REFUND_OPEN, Step, gateway_of, may, moved, reference_of, render

# The admins' queue: purchases waiting for a decision (the console counts it too).
QUEUE = (Where("needs_review", "==", True),)


def list_review(db: Store, *, limit: int, cursor: str | None) -> dict[str, Any]:
    """Purchases waiting for an admin, oldest first. The cursor may name a purchase
    decided since the page was read: its place in the order still holds."""
    return db.page(
        store.PURCHASES,
        QUEUE,
        limit=limit,
        cursor=cursor,
        owns=lambda purchase: "review_at" in purchase,
        render=render,
        newest_first=False,
        order_by="review_at",
    )


def resolve(
    db: Store,
    gateway_for: Callable[[str], Gateway],
    admin: Caller,
    purchase_id: str,
    *,
    action: str,
    note: str,
    idempotency: Idempotency,
) -> ledger.Response:
    """An admin decides a purchase in review. `issue`: credit the coins it names (once).
    `refund`: give the money back through the gateway (taking back the coins first if
    they were issued; calling again a refund whose answer was lost). `dismiss`: record
    the decision; for a refund whose answer was lost, or one to be made by hand, that
    the money went back."""
    if action == "issue":
        return _issue_in_review(db, admin, purchase_id, note, idempotency)
    purchase = db.get(store.purchase(purchase_id))
    if purchase is None or not purchase.get("needs_review"):
        return ledger.execute(db, _refuse_unless_in_review(purchase_id), actor=admin.uid, idempotency=idempotency)
    record = db.get(store.purchase_refund(purchase_id)) or {}
    # A refund that went out (or may have): dismissing it records that it did.
    sent = record.get("status") in (RefundStatus.UNCERTAIN, RefundStatus.MANUAL)
    if action == "refund" and purchase["status"] == PAID:
        return refunds.refund(db, gateway_for, admin, purchase_id, reason=note, idempotency=idempotency)
    # The gateway first: where it is not configured, 503 before anything is recorded.
    gateway = gateway_for(gateway_of(purchase)) if action == "refund" else None
    with refunds.admin_step(db, idempotency, purchase_id) as claim:
        if isinstance(claim, ledger.Response):
            return claim
        decided = _record_resolution(db, admin, purchase_id, action, note)
        if sent and gateway is not None:
            return refunds.call(db, gateway, admin.uid, purchase_id, claim)
        if sent:
            return refunds.finish(
                db, purchase_id, refunded=True, detail=f"confirmed by {admin.uid}: {note}", actor=admin.uid, claim=claim
            )
        if gateway is not None:
            return _refund_unissued(db, gateway, admin.uid, purchase_id, claim)
        return ledger.answered(db, claim, ledger.Response(200, render(decided)), actor=admin.uid)


def _refuse_unless_in_review(purchase_id: str):
    def operation(reader: ledger.Reader) -> ledger.Plan:
        purchase = reader.purchase(purchase_id)
        if purchase is None:
            raise errors.NotFound()
        raise errors.InvalidState("The purchase is not in the review queue.", status=purchase["status"])

    return operation


def _record_resolution(db: Store, admin: Caller, purchase_id: str, action: str, note: str) -> dict[str, Any]:
    """The admin's decision, audited; returns the purchase as it now is. A pending
    purchase dismissed is failed: the payment it was in review for is not honoured, and
    no sweep brings it back to the queue."""

    def operation(reader: ledger.Reader) -> ledger.Plan:
        purchase = existing(reader.purchase(purchase_id))
        resolution = {"action": action, "note": note, "by": admin.uid, "at": reader.now}
        changes: dict[str, Any] = {"resolution": resolution}
        if action == "dismiss":
            changes["needs_review"] = False
            if may(purchase, Step.DISMISS):
                changes.update(status=moved(purchase, Step.DISMISS), failure_reason=f"dismissed in review: {note}")
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
    return existing(db.get(store.purchase(purchase_id)))


def _issue_in_review(db: Store, admin: Caller, purchase_id: str, note: str, idempotency) -> ledger.Response:
    """Credits the coins a purchase in review names, exactly once (its status says
    whether they were issued, in the same transaction)."""

    def operation(reader: ledger.Reader) -> ledger.Plan:
        purchase = reader.purchase(purchase_id)
        if purchase is None:
            raise errors.NotFound()
        if not purchase.get("needs_review"):
            raise errors.InvalidState("The purchase is not in the review queue.", status=purchase["status"])
        refund = reader.purchase_refund(purchase_id)
        if refund is not None and refund["status"] in (*REFUND_OPEN, RefundStatus.REFUNDED):
            # The money is going back, or went back: its coins are never issued.
            raise errors.InvalidState(
                f"A refund of this payment is {refund['status']}: its coins cannot be issued.", status=purchase["status"]
            )
        paid = moved(purchase, Step.ISSUE_IN_REVIEW)
        resolution = {"action": "issue", "note": note, "by": admin.uid, "at": reader.now}
        changes = {
            "status": paid,
            "needs_review": False,
            "paid_at": reader.now,
            "entry_id": reader.entry_id,
            "resolution": resolution,
            "updated_at": reader.now,
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
                    after={"status": paid},
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


def _refund_unissued(db: Store, gateway: Gateway, actor: str, purchase_id: str, claim) -> ledger.Response:
    """A payment whose coins were never issued (a mismatch, a late payment): only the
    money goes back, with no coins to take. The refund is recorded before the gateway is
    called, as every refund is (`refunds.call`): an unanswered call is uncertain, never
    "did not refund", so the sweeper puts it in front of an admin and no second click
    can refund it again."""

    def operation(reader: ledger.Reader) -> ledger.Plan:
        purchase, record = existing(reader.purchase(purchase_id)), reader.purchase_refund(purchase_id)
        if not reference_of(purchase):
            raise errors.InvalidState("The gateway's reference of this payment is unknown.", status=purchase["status"])
        if record is not None and record["status"] in REFUND_OPEN:
            raise errors.InvalidState(
                "A refund of this purchase was sent to the gateway and has no answer yet; it is not sent "
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
    return refunds.call(db, gateway, actor, purchase_id, claim)
