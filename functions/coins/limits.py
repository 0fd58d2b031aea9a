"""Velocity limits: how much one user may buy, cash out or pay for jobs in a rolling
window (GUILD's design documents' figures, each a setting). Pure: the operation reads
`limits/{uid}` in its own transaction, asks `admit` whether one more fits, and writes
what it returns in the same commit, so that concurrent requests at the boundary
serialize on that one per-user document and exactly the allowed number succeed. A
request refused for another reason, or failing, writes nothing, so it does not count;
a replay of an idempotent request is answered before the operation runs, so it does not
count twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Mapping

from . import config, errors


class Kind(StrEnum):
    PURCHASE = "purchase"
    WITHDRAWAL = "withdrawal"
    JOB_PAYMENT = "job_payment"


@dataclass(frozen=True)
class Limit:
    kind: Kind
    window: timedelta
    count_max: int
    # None: only the count is limited.
    amount_max_dirhams: int | None


def limit_of(kind: Kind) -> Limit:
    settings = config.settings()
    return {
        Kind.PURCHASE: Limit(
            kind, timedelta(hours=24), settings.limit_purchases_per_day, settings.limit_purchase_dirhams_per_day
        ),
        Kind.WITHDRAWAL: Limit(
            kind, timedelta(days=7), settings.limit_withdrawals_per_week, settings.limit_withdrawal_dirhams_per_week
        ),
        Kind.JOB_PAYMENT: Limit(kind, timedelta(hours=24), settings.limit_job_payments_per_day, None),
    }[kind]


def admit(document: Mapping[str, Any] | None, kind: Kind, amount_dirhams: int, ref: str, now: datetime) -> dict[str, Any]:
    """The limits document's new fields with this request counted, or RateLimited (429,
    with when it would fit) / ValidationFailed (it never would: more than the window
    allows at all)."""
    document = document or {}
    recent = [event for event in document.get(kind, []) if event["at"] > now - limit_of(kind).window]
    counted: dict[str, Any] = {str(kind): [*recent, {"at": now, "amount_dirhams": amount_dirhams, "ref": ref}]}
    lifted_until = document.get("lifted_until")
    if lifted_until is not None and lifted_until > now:
        return counted
    limit = limit_of(kind)
    if limit.amount_max_dirhams is not None and amount_dirhams > limit.amount_max_dirhams:
        raise errors.ValidationFailed(
            fields=[
                {
                    "field": "amount_dirhams",
                    "message": f"more than the {limit.kind} limit of {limit.amount_max_dirhams} dirhams "
                    f"per {int(limit.window.total_seconds() // 3600)} hours",
                }
            ]
        )
    wait = _wait(recent, limit, amount_dirhams, now)
    if wait is not None:
        raise errors.RateLimited(
            limit=limit.kind,
            window_seconds=int(limit.window.total_seconds()),
            count_max=limit.count_max,
            amount_max_dirhams=limit.amount_max_dirhams,
            used_count=len(recent),
            used_dirhams=sum(event["amount_dirhams"] for event in recent),
            retry_after_seconds=wait,
        )
    return counted


def forget(document: Mapping[str, Any] | None, kind: Kind, ref: str) -> dict[str, Any]:
    """The document's fields without the request `ref` (one that failed after counting)."""
    return {str(kind): [event for event in (document or {}).get(kind, []) if event["ref"] != ref]}


def _wait(recent: list[Mapping[str, Any]], limit: Limit, amount_dirhams: int, now: datetime) -> int | None:
    """Seconds until one more request of this amount fits the window, None if it does now."""
    ordered = sorted(recent, key=lambda event: event["at"])
    must_expire = 0  # how many of the oldest requests must leave the window first
    if len(ordered) + 1 > limit.count_max:
        must_expire = len(ordered) + 1 - limit.count_max
    if limit.amount_max_dirhams is not None:
        total = sum(event["amount_dirhams"] for event in ordered) + amount_dirhams
        dropped = 0
        while total > limit.amount_max_dirhams:
            total -= ordered[dropped]["amount_dirhams"]
            dropped += 1
        must_expire = max(must_expire, dropped)
    if must_expire == 0:
        return None
    leaves = ordered[must_expire - 1]["at"] + limit.window
    return max(1, int((leaves - now).total_seconds() + 0.999))
