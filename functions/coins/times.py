"""How times are shown: RFC 3339 in UTC."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def moment(document: Mapping[str, Any], name: str) -> str | None:
    """A document's timestamp field as RFC 3339, or None where it is not set."""
    value = document.get(name)
    return rfc3339(value) if value else None
