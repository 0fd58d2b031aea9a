"""The audit log: every admin action writes `audit/{id}` in the same transaction as the
action itself (who, what, on what, when, before and after, why). Admin-readable only."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from . import store


def record(
    *,
    actor: str,
    action: str,
    target: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    now: datetime,
    reason: str | None = None,
) -> dict[store.Doc, dict[str, Any]]:
    """The audit document of an action, to merge into a ledger plan's `documents`."""
    audit_id = store.new_id()
    return {
        store.audit(audit_id): {
            "id": audit_id,
            "actor": actor,
            "action": action,
            "target": target,
            "before": dict(before or {}),
            "after": dict(after or {}),
            "reason": reason,
            "at": now,
        }
    }
