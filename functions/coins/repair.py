"""The scheduled repair: what a trigger should have done and no trigger did.

Triggers deliver at least once, but only if they fire: Eventarc's retries run out (a bad
deploy left for a day, a quota, a misconfigured trigger), and the emulator drops every
event sent while the functions are down. So every ledger entry is written with a
pending effects marker and every outbox event with `pending_since`, in the commit that
makes them, and the trigger clears them. This job (Cloud Scheduler, every
REPAIR_INTERVAL_SECONDS) asks for the oldest still pending after the repair's age
(EFFECTS_REPAIR_AFTER_SECONDS, OUTBOX_REPAIR_AFTER_SECONDS) and runs the triggers' own
handlers on them, which apply each once in effect (their markers). A run costs one
query per kind, over the single-field index of `pending_since`, and the handlers of what
it returns (at most REPAIR_BATCH_MAX each): nothing in it grows with the history.

What the handler cannot apply keeps its marker pending, with the reason
(`repair_error`), for the next run and for reconciliation, which names it once it has
been pending past its limit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Callable

from . import config, effects, ledger, logs, notify, store
from .app import AppDb
from .store import Store, Where

# The reason kept on a document the repair could not apply: enough to tell what failed.
REASON_LENGTH_MAX = 300


def run(
    db: Store,
    app_db: AppDb,
    push_factory,
    scheduler_factory,
    *,
    now: datetime | None = None,
    batch: int = config.REPAIR_BATCH_MAX,
) -> dict[str, Any]:
    """One run: `{"effects": {"repaired", "failed"}, "outbox": {...}}`."""
    now = now or ledger.now_utc()
    settings = config.settings()
    push, scheduler = notify.pusher(push_factory), None

    def deliver(event_id: str) -> bool:
        nonlocal scheduler
        scheduler = scheduler or scheduler_factory()
        return notify.deliver(db, app_db, push, scheduler, event_id)

    report = {
        "effects": _repair(
            db,
            store.EFFECTS,
            lambda marker: store.effects_marker(marker["entry_id"]),
            lambda marker: effects.apply(db, marker["entry_id"]),
            now - timedelta(seconds=settings.effects_repair_after_seconds),
            batch,
            now,
        ),
        "outbox": _repair(
            db,
            store.OUTBOX,
            lambda event: store.outbox(event["id"]),
            lambda event: deliver(event["id"]),
            now - timedelta(seconds=settings.outbox_repair_after_seconds),
            batch,
            now,
        ),
    }
    if any(kind["repaired"] or kind["failed"] for kind in report.values()):
        logs.warning(
            "repaired what no trigger did",
            **{f"{kind}_{key}": value for kind, counts in report.items() for key, value in counts.items()},
        )
    return report


def pending(db: Store, collection: str, *, before: datetime, limit: int) -> list[dict[str, Any]]:
    """The oldest documents of `collection` (effects markers or outbox events) pending
    since before `before`."""
    return list(db.query(collection, (Where("pending_since", "<", before),), order_by="pending_since", limit=limit))


def _repair(
    db: Store,
    collection: str,
    doc_of: Callable[[dict[str, Any]], store.Doc],
    handle: Callable[[dict[str, Any]], bool],
    before: datetime,
    batch: int,
    now: datetime,
) -> dict[str, int]:
    """Runs `handle` on each pending document; a failure is kept on the document
    (`doc_of` names it) with its reason, for the next run and for reconciliation."""
    repaired = failed = 0
    for document in pending(db, collection, before=before, limit=batch):
        doc = doc_of(document)
        try:
            repaired += bool(handle(document))
        except Exception as error:  # noqa: BLE001 - one that fails must not stop the others
            failed += 1
            reason = f"{type(error).__name__}: {error}"[:REASON_LENGTH_MAX]
            logs.error("repair could not apply", collection=collection, id=doc.id, reason=reason)
            db.set(doc, {"repair_error": reason, "repair_tried_at": now}, merge=True)
    return {"repaired": repaired, "failed": failed}
