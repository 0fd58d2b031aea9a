"""Coin purchases, through a payment gateway (coins.gateways: Fatora or SADAD): opening
a checkout (`checkout`), settling what the gateway's API verifies (`settlement`: the
payer's browser, webhooks, the sweeper), refunds with claw-back (`refunds`) and the
review queue (`review`). A purchase's states are one table (`states`); a purchase keeps
the gateway it was made through, and every later step asks that one.

Coins are issued exactly once, by one ledger transaction that moves them from the
treasury to the buyer and marks the purchase `paid`, and only after the gateway's own
API confirms the payment in the required mode (live in production), for the purchase's
exact price in QAR. Every step that spans a gateway call leaves a recovery point first
(the pending purchase, the refund's record), so that a retry with the request's key, or
the sweeper, takes it on from where it stopped.
"""

from __future__ import annotations

from typing import Any

from .. import errors, store
from ..auth import Caller
from ..store import Store, Where
from .checkout import checkout_page, chosen, create, payer_of, purchase_id_for
from .refunds import refund
from .review import list_review, resolve
from .settlement import receive_browser, receive_webhook, reconcile_pending, settle
from .states import ISSUED, REFUND_OPEN, Outcome, ReturnStatus, render

__all__ = [
    "ISSUED",
    "REFUND_OPEN",
    "Outcome",
    "ReturnStatus",
    "checkout_page",
    "chosen",
    "create",
    "get",
    "list_for",
    "list_review",
    "payer_of",
    "purchase_id_for",
    "receive_browser",
    "receive_webhook",
    "reconcile_pending",
    "refund",
    "render",
    "resolve",
    "settle",
]


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
