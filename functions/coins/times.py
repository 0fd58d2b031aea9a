"""How times are shown: RFC 3339 in UTC for machines; Qatar time (Asia/Qatar) for people."""

from __future__ import annotations

import functools
from datetime import datetime, timezone, tzinfo
from typing import Any, Mapping


@functools.cache
def qatar() -> tzinfo:
    """Where GUILD is: receipts, statements and the export say times in it. Loaded on
    first use (the time zone database costs a function that never shows one 3 ms)."""
    from zoneinfo import ZoneInfo

    return ZoneInfo("Asia/Qatar")


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def moment(document: Mapping[str, Any], name: str) -> str | None:
    """A document's timestamp field as RFC 3339, or None where it is not set."""
    value = document.get(name)
    return rfc3339(value) if value else None


def dated(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A record kept on a document (a dispute, a resolution, a refund, a KYC change) with
    its `at` as RFC 3339; None stays None."""
    return {**record, "at": moment(record, "at")} if record else None
