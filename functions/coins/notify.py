"""What follows an event, applied by the `outbox/{eventId}` created trigger: the escrow
timers it starts or stops (Cloud Tasks), one notification document per person concerned
in the app's `notifications` collection (in the app's schema and the reader's language:
`language_of`), a push to their devices through Expo, and, for escrow events, our escrow
written onto the app's job.

Events are delivered at least once: by the trigger, and for an event no trigger
delivered (`pending_since` still set after a while), by the scheduled repair
(coins.repair), through `deliver` too. Timers are Cloud Tasks named after the escrow and
its state version (scheduling one twice, or cancelling one that ran, is a no-op), set
first: they matter most. Notification documents have deterministic ids
(event id + user id) and are created only if absent; the job gets values computed from
the escrow as it is now, so a late or repeated event converges on the truth; and the
event is marked delivered at the end, so a redelivery after that changes nothing. A
crash between the push and the mark can push twice, which is the price of never
pushing zero times. A person the trigger cannot notify (an id Firestore refuses) is
recorded on `effect_failures/{eventId}`, logged as an ERROR and named by reconciliation;
the others are notified.
"""

from __future__ import annotations

from typing import Any, Mapping

from . import config, errors, language, ledger, logs, notices, store
from .app import AppDb, AppUser
from .domain import firestore_accepts_id
from .push import ExpoPush, Message
from .store import Store
from .tasks import TaskScheduler


def deliver(db: Store, app_db: AppDb, push: ExpoPush | None, scheduler: TaskScheduler, event_id: str) -> bool:
    """Delivers one event once. Returns False if it was delivered before."""
    event = db.get(store.outbox(event_id))
    if event is None:
        raise LookupError(f"outbox event {event_id} not found")
    if event.get("delivered_at"):
        return False
    _set_timers(scheduler, event.get("facts", {}))
    settings = config.settings()
    failures: list[dict[str, str]] = []
    messages: list[Message] = []
    owners = {}
    for notice in notices.for_event(event, admins=settings.admin_uids, link_base=settings.app_link_base):
        uid = notice.user_id
        if not firestore_accepts_id(uid):
            failures.append({"effect": f"notification:{uid}", "reason": "not a valid document id"})
            continue
        user = app_db.user(uid)
        note = notice.in_language(_reads(db, user))
        app_db.notify(f"{event_id}_{uid}", note, created_at=event["at"])
        for token in user.push_tokens:
            messages.append(Message(token.token, note.title, note.description, {"url": note.action_url, "eventId": event_id}))
            owners[token.token] = (uid, token)
    _record_escrow_on_job(db, app_db, event.get("facts", {}))
    if push is not None:
        for gone in push.send(messages):
            uid, token = owners[gone]
            app_db.deactivate_token(uid, token)
            logs.info("push token no longer registered; marked inactive", uid=uid)
    now = ledger.now_utc()
    if failures:
        db.set(
            store.effect_failure(event_id),
            {"source": "outbox", "id": event_id, "type": event["kind"], "failures": failures, "at": now},
        )
        logs.error("outbox effects failed", event_id=event_id, kind=event["kind"], failures=failures)
    db.set(store.outbox(event_id), {"delivered_at": now, "pushes": len(messages), "pending_since": None}, merge=True)
    logs.info("outbox event delivered", event_id=event_id, kind=event["kind"], pushes=len(messages))
    return True


def language_of(db: Store, app_db: AppDb, uid: str) -> str:
    """The language `uid` reads ("en" or "ar"): the one they chose in the app, else the
    one their coin requests asked for last, else English (coins.language.preferred)."""
    return _reads(db, app_db.user(uid))


def _reads(db: Store, user: AppUser) -> str:
    # The wallet keeps the language of the user's requests (coins.ledger); it is read only
    # when the app keeps no language of its own, which wins.
    remembered = None if user.language is not None else (db.get(store.wallet(user.uid)) or {}).get("language")
    return language.preferred(user.language, remembered)


def _set_timers(scheduler: TaskScheduler, facts: Mapping[str, Any]) -> None:
    """The escrow timer an event stops and the one it starts (coins.escrow)."""
    if facts.get("cancel_timer"):
        scheduler.cancel(facts["cancel_timer"])
    timer = facts.get("schedule_timer")
    if timer:
        scheduler.schedule(timer["task_id"], timer["at"], dict(timer["payload"]))


def _record_escrow_on_job(db: Store, app_db: AppDb, facts: Mapping[str, Any]) -> None:
    """The app shows the job's payments from `coinEscrows` (every milestone's escrow) and
    `escrowId` / `coinEscrow` (the last one that changed), in QAR: the milestone an
    event concerns, as it is now."""
    escrow_id, job_id = facts.get("escrow_id"), facts.get("job_id")
    if not (escrow_id and job_id):
        return
    escrow = db.get(store.escrow(escrow_id))
    if escrow is None:
        return
    summary = {
        "status": escrow["status"],
        "milestone": escrow["milestone"],
        "amount": notices.qar_value(escrow["amount_dirhams"]),
        "released": notices.qar_value(escrow["released_dirhams"]),
        "refunded": notices.qar_value(escrow["refunded_dirhams"]),
    }
    if not app_db.record_escrow(job_id, escrow_id, summary):
        logs.warning("the escrow's job is gone from the app", job_id=job_id, escrow_id=escrow_id)


def handle_event(db: Store, app_db: AppDb, push_factory, scheduler_factory, data: bytes) -> bool:
    """A `google.cloud.firestore.document.v1.created` event for `outbox/{eventId}`."""
    from google.events.cloud.firestore import DocumentEventData

    try:
        event_id = store.id_in(DocumentEventData.deserialize(data).value.name, store.OUTBOX)
    except Exception as error:  # noqa: BLE001 - a malformed event is dropped, loudly
        logs.error("outbox trigger got an event it cannot read", error=type(error).__name__)
        return False
    return deliver(db, app_db, pusher(push_factory), scheduler_factory(), event_id)


def pusher(push_factory) -> ExpoPush | None:
    """Expo's client, or None where push is not configured (notifications only)."""
    try:
        return push_factory()
    except errors.Unavailable as error:
        logs.warning("push is not configured; notifications only", reason=error.message)
        return None
