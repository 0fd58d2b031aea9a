"""The audit log: every admin action writes `audit/{id}` in the same transaction as the
action itself (who, what, on what, when, before and after, why). Admin-readable only."""

from __future__ import annotations

from typing import Any, Mapping

AUDIT = "audit"


def record(reader, *, actor: str, action: str, target: str, before: Mapping[str, Any] | None,
           after: Mapping[str, Any] | None, reason: str | None = None) -> tuple[Any, dict[str, Any]]:
    """The audit document of an action, for a ledger plan's `documents`."""
    ref = reader.db.collection(AUDIT).document()
    return ref, {
        "id": ref.id,
        "actor": actor,
        "action": action,
        "target": target,
        "before": dict(before or {}),
        "after": dict(after or {}),
        "reason": reason,
        "at": reader.now,
    }
