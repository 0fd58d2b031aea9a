"""A purchase's states, the one table of its transitions, and how it reads.

pending -> paid (the gateway verified the payment: coins issued, exactly once)
        |  failed (declined, the checkout could not be opened, or dismissed in review)
        |  expired (never paid)
paid -> refunding (the coins are held back) -> refunded (final) | paid (the gateway refused)
pending, failed, expired -> refunded (money back for a payment whose coins never were)
A payment that cannot be honoured automatically (another amount, the wrong mode, paid
after the purchase failed or expired, still In Progress at SADAD after 48 hours)
changes no state: it raises `needs_review`, and an
admin issues, refunds or dismisses it (`review`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Mapping

from .. import errors
from ..domain import EventKind, PurchaseStatus, RefundStatus
from ..gateways import Name
from ..times import dated, moment

PENDING, PAID, FAILED, EXPIRED = PurchaseStatus.PENDING, PurchaseStatus.PAID, PurchaseStatus.FAILED, PurchaseStatus.EXPIRED
REFUNDING, REFUNDED = PurchaseStatus.REFUNDING, PurchaseStatus.REFUNDED
# Every status in which the coins were issued.
ISSUED = (PAID, REFUNDING, REFUNDED)
# A refund is open (it holds the purchase's coins, if any were issued) until the gateway
# answers or an admin decides.
REFUND_OPEN = (RefundStatus.HELD, RefundStatus.CALLING, RefundStatus.UNCERTAIN, RefundStatus.MANUAL)


class Step(StrEnum):
    ISSUE = "issue"  # the gateway verified the payment
    FAIL = "fail"  # declined at the gateway, or no checkout could be opened
    EXPIRE = "expire"  # not paid in time
    ISSUE_IN_REVIEW = "issue_in_review"  # an admin issues what a payment in review names
    HOLD_REFUND = "hold_refund"  # the coins are taken back before the money goes
    REFUND = "refund"  # the gateway (or an admin, by hand) refunded
    REVERSE_REFUND = "reverse_refund"  # the gateway refused: the coins go back
    REFUND_UNISSUED = "refund_unissued"  # the money back for a payment whose coins never were
    DISMISS = "dismiss"  # an admin does not honour the payment a pending purchase is in review for


@dataclass(frozen=True)
class Transition:
    from_states: tuple[PurchaseStatus, ...]
    to_state: PurchaseStatus


UNPAID = (PENDING, FAILED, EXPIRED)
TRANSITIONS = {
    Step.ISSUE: Transition((PENDING,), PAID),
    Step.FAIL: Transition((PENDING,), FAILED),
    Step.EXPIRE: Transition((PENDING,), EXPIRED),
    Step.ISSUE_IN_REVIEW: Transition(UNPAID, PAID),
    Step.HOLD_REFUND: Transition((PAID,), REFUNDING),
    Step.REFUND: Transition((REFUNDING,), REFUNDED),
    Step.REVERSE_REFUND: Transition((REFUNDING,), PAID),
    Step.REFUND_UNISSUED: Transition(UNPAID, REFUNDED),
    Step.DISMISS: Transition((PENDING,), FAILED),
}
NOT_NOW = {
    Step.ISSUE_IN_REVIEW: "Only a purchase in review whose coins were never issued can be issued; it is {status}.",
    Step.HOLD_REFUND: "The purchase is {status}; only a paid purchase is refunded.",
}


def may(purchase: Mapping[str, Any], step: Step) -> bool:
    return purchase["status"] in TRANSITIONS[step].from_states


def moved(purchase: Mapping[str, Any], step: Step) -> PurchaseStatus:
    """The state `step` takes the purchase to; 409 naming its state if not from this one."""
    if not may(purchase, step):
        text = NOT_NOW.get(step, "The purchase is {status}: this cannot be done now.")
        raise errors.InvalidState(text.format(status=purchase["status"]), status=purchase["status"])
    return TRANSITIONS[step].to_state


class Outcome(StrEnum):
    """What one settlement (a return, a callback, a webhook, the sweeper) did."""

    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    NEEDS_REVIEW = "needs_review"
    UNCHANGED = "unchanged"
    ALREADY_PAID = "already_paid"
    REFUNDED = "refunded"  # refunded here: a later success never issues coins again
    UNKNOWN_ORDER = "unknown_order"  # a webhook naming no purchase of ours
    UNKNOWN_AT_GATEWAY = "unknown_at_gateway"  # the gateway knows no such payment
    OTHER_ORDER = "other_order"  # the gateway's transaction belongs to another order
    BEING_SETTLED = "being_settled"  # a webhook while another delivery settles it
    BUSY = "busy"  # the sweeper found a settlement in progress
    GATEWAY_UNAVAILABLE = "gateway_unavailable"  # the sweeper could not reach it


class ReturnStatus(StrEnum):
    """What the payer's browser tells the app (`guild://coins/purchase/{id}?status=`)."""

    PAID = "paid"
    FAILED = "failed"
    PENDING = "pending"  # the app polls the purchase


# What the buyer (and, for a review, the admins) hear about a settlement.
ANNOUNCED = {
    Outcome.PAID: EventKind.COINS_ISSUED,
    Outcome.FAILED: EventKind.PURCHASE_FAILED,
    Outcome.NEEDS_REVIEW: EventKind.PURCHASE_IN_REVIEW,
}
RETURN_STATUS = {
    PAID: ReturnStatus.PAID,
    REFUNDING: ReturnStatus.PAID,
    REFUNDED: ReturnStatus.PAID,
    FAILED: ReturnStatus.FAILED,
    EXPIRED: ReturnStatus.FAILED,
}


def return_status(purchase: Mapping[str, Any]) -> ReturnStatus:
    if purchase.get("needs_review"):
        return ReturnStatus.PENDING
    return RETURN_STATUS.get(purchase["status"], ReturnStatus.PENDING)


def gateway_of(purchase: Mapping[str, Any]) -> Name:
    """The gateway a purchase was made through."""
    return Name(purchase["gateway"])


WORDS = {Name.FATORA: "Fatora", Name.SADAD: "SADAD"}


def gateway_words(purchase: Mapping[str, Any]) -> str:
    """The gateway's name as people write it, for messages."""
    return WORDS[gateway_of(purchase)]


def reference_of(purchase: Mapping[str, Any]) -> str | None:
    """The gateway's reference of the payment, once verified (Fatora's transaction id,
    SADAD's transaction number)."""
    return purchase.get("gateway_reference")


def render(purchase: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": purchase["id"],
        "user_id": purchase["user_id"],
        "status": purchase["status"],
        "gateway": gateway_of(purchase),
        "gateway_reference": reference_of(purchase),
        "coins": purchase["coins"],
        "value_dirhams": purchase["value_dirhams"],
        "price_dirhams": purchase["price_dirhams"],
        "gateway_fee_dirhams": purchase["gateway_fee_dirhams"],
        "currency": purchase["currency"],
        "pack_id": purchase.get("pack_id"),
        "checkout_url": purchase.get("checkout_url"),
        "checkout": purchase.get("checkout"),
        "failure_reason": purchase.get("failure_reason"),
        "needs_review": purchase.get("needs_review", False),
        "review_reason": purchase.get("review_reason"),
        "resolution": dated(purchase.get("resolution")),
        "refund": dated(purchase.get("refund")),
        "created_at": moment(purchase, "created_at"),
        "paid_at": moment(purchase, "paid_at"),
        "refunded_at": moment(purchase, "refunded_at"),
    }
