"""Fraud signals (GUILD's COIN_SYSTEM_ADVANCED_ARCHITECTURE figures): more than 50 ledger
entries for one user in 24 hours (medium), more than 10,000 QAR requested in withdrawals
by one user in 7 days (high). A signal only informs: it flags the user (on the wallet,
`signals`, shown on the console's user page and beside their withdrawals) and tells the
admins once per user per window; the velocity limits are what block.

Computed in the operation's own transaction from what it reads anyway (no scans, no
hot document): the entries from hourly counters on the user's wallet, which the ledger
writes with every entry; the withdrawals from the week the velocity limits keep. Pure.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Mapping

from . import catalog, config


class Signal(StrEnum):
    MANY_ENTRIES = "many_entries"
    LARGE_WITHDRAWALS = "large_withdrawals"


LEVEL = {Signal.MANY_ENTRIES: "medium", Signal.LARGE_WITHDRAWALS: "high"}
WINDOW = {Signal.MANY_ENTRIES: timedelta(hours=24), Signal.LARGE_WITHDRAWALS: timedelta(days=7)}
# Entries are counted per hour: "in 24 hours" is this hour and the 23 before it.
HOURS = 24


def _hour(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H")


def count_entry(counts: Mapping[str, int] | None, now: datetime) -> tuple[dict[str, int], int]:
    """The wallet's hourly entry counters with one more entry now, the older hours
    dropped, and how many entries the last 24 hours hold."""
    kept = {_hour(now - timedelta(hours=back)) for back in range(HOURS)}
    counted = {hour: n for hour, n in (counts or {}).items() if hour in kept}
    counted[_hour(now)] = counted.get(_hour(now), 0) + 1
    return counted, sum(counted.values())


def entries_signal(total: int) -> str | None:
    """Why the entry count is a signal, or None."""
    if total > config.SIGNAL_ENTRIES_PER_DAY_MAX:
        return f"{total} ledger entries in 24 hours (more than {config.SIGNAL_ENTRIES_PER_DAY_MAX})"
    return None


def withdrawals_signal(recent: list[Mapping[str, Any]], amount_dirhams: int) -> str | None:
    """Why a week's withdrawals with this one (`recent`: the velocity limits' record of
    the week) are a signal, or None."""
    total = sum(event["amount_dirhams"] for event in recent) + amount_dirhams
    if total > config.SIGNAL_WITHDRAWN_DIRHAMS_PER_WEEK_MAX:
        return (
            f"{catalog.in_qar(total)} requested in withdrawals in 7 days "
            f"(more than {catalog.in_qar(config.SIGNAL_WITHDRAWN_DIRHAMS_PER_WEEK_MAX)})"
        )
    return None


def raised(signals: Mapping[str, Any] | None, signal: Signal, why: str, now: datetime) -> tuple[dict[str, Any], bool]:
    """The wallet's `signals` with `signal` raised now, and whether the admins are to be
    told (not if they were told of it within its window)."""
    current = dict((signals or {}).get(signal) or {})
    told_at = current.get("told_at")
    tell = told_at is None or told_at <= now - WINDOW[signal]
    updated = {
        "level": LEVEL[signal],
        "why": why,
        "since": current.get("since") if current.get("since") and not tell else now,
        "last_at": now,
        "told_at": now if tell else told_at,
    }
    return {**(signals or {}), signal: updated}, tell


def active(signals: Mapping[str, Any] | None, now: datetime) -> dict[str, Any]:
    """The signals still within their window (older ones are history)."""
    return {
        name: flag
        for name, flag in (signals or {}).items()
        if name in WINDOW and flag.get("last_at") and flag["last_at"] > now - WINDOW[Signal(name)]
    }


def render(flags: Mapping[str, Any] | None) -> dict[str, dict[str, str]]:
    """Signals as the console shows them: level, why, since when."""
    from .times import rfc3339

    return {
        name: {"level": flag["level"], "why": flag["why"], "since": rfc3339(flag["since"])}
        for name, flag in (flags or {}).items()
    }
