"""Idempotency keys and leases, on records `idempotency/{sha256(scope, key)}`.

A record is `in_progress` (claimed by `owner` until `locked_until`) or `done` (holding
the response). It is deleted by a TTL policy on `expires_at` (firestore.indexes.json);
an expired record that TTL has not removed yet counts as absent.

Work done in one transaction (every operation without an outside call) reads the record
in that transaction and writes the response in the same commit (`ledger.execute`'s fast
path: one round trip). Concurrent requests with one key conflict there; re-running the
same transaction against the same record until one wins would livelock a retry storm,
so an attempt that aborted claims the key instead (`claimed`): the first to create the
record owns it as a lease and does the work, the others read the record with plain
reads (no locks) until it holds the answer, and answer 409 request_in_progress only if
the owner has not answered after a bounded wait. An owner that died loses its lease
when `locked_until` passes. Work that spans an outside call (a gateway) claims the key
first, so that the others answer at once while it runs, and stores the response with
its last step. A lease is a claim that is never answered, only given back: one
settlement of a purchase at a time, and a turn in a `queue` on a contended document.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any, Callable, Iterable, Iterator, Mapping

from . import backoff, config, errors, logs, store
from .store import Store, Write


class State(StrEnum):
    """Where a record stands: claimed by a request doing the work, or holding its answer."""

    IN_PROGRESS = "in_progress"
    DONE = "done"


# A request that waits for another's answer (or its turn in a queue) reads the record
# again after 10-20 ms at first, doubling to 50-100 ms: quick to notice the answer,
# without a reader of every waiter hammering the emulator's two cores.
ANSWER_POLL_BASE_SECONDS = 0.02
ANSWER_POLL_CAP_SECONDS = 0.1
# Queue leases (`queue`) order transactions that contended on one document. A holder
# runs one transaction (milliseconds; a few seconds when a newcomer collides with it on
# the emulator), so 10 s is long past any live holder, and a dead one holds up the
# queue no longer than that.
QUEUE_SCOPE = "queue"
QUEUE_LEASE_SECONDS = 10.0


@dataclass(frozen=True)
class Response:
    """What the caller gets, and what a replay of the same key gets again."""

    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Idempotency:
    """A request's Idempotency-Key, scoped to its caller, and the fingerprint of what it
    asked. A lease has no fingerprint: it is never answered, so nothing is compared."""

    scope: str
    key: str
    fingerprint: str | None

    @staticmethod
    def of(scope: str, key: str, operation: str, body: Mapping[str, Any]) -> "Idempotency":
        canonical = json.dumps({"operation": operation, "body": body}, sort_keys=True, separators=(",", ":"))
        return Idempotency(scope=scope, key=key, fingerprint=hashlib.sha256(canonical.encode()).hexdigest())

    @property
    def doc(self) -> store.Doc:
        # Hashed: keys are caller-chosen text, document ids have rules of their own.
        return store.idempotency(hashlib.sha256(f"{self.scope}\n{self.key}".encode()).hexdigest())


@dataclass
class Claim:
    """The right to do the work of one key, until the lease runs out. `settled` becomes
    true when a committed transaction stored the response."""

    idempotency: Idempotency
    owner: str
    settled: bool = field(default=False)


@contextlib.contextmanager
def claimed(
    db: Store,
    idempotency: Idempotency,
    now: datetime,
    *,
    lease_seconds: float = config.IDEMPOTENCY_LEASE_SECONDS,
    wait_seconds: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Claim | Response]:
    """Claims the key for the block, or yields the answer already known for it (waiting
    up to `wait_seconds` for a request that holds it). A claim that no response settled
    is given back when the block ends (after a failure), so a retry with the same key
    can run; the lease runs out anyway if that fails too."""
    answer = claim(db, idempotency, now, lease_seconds=lease_seconds, wait_seconds=wait_seconds, sleep=sleep)
    if isinstance(answer, Response):
        yield answer
        return
    try:
        yield answer
    finally:
        if not answer.settled:
            release(db, answer)


@contextlib.contextmanager
def lease(db: Store, scope: str, name: str, now: datetime) -> Iterator[bool]:
    """Holds the lease `scope`/`name` for the block if no one else does; yields whether
    it was taken. Always given back at the end."""
    try:
        taken = claim(db, Idempotency(scope, name, None), now)
    except errors.RequestInProgress:
        yield False
        return
    assert isinstance(taken, Claim), "a lease is never answered"
    try:
        yield True
    finally:
        release(db, taken)


@contextlib.contextmanager
def queue(db: Store, docs: Iterable[store.Doc], *, sleep: Callable[[float], None] = time.sleep) -> Iterator[None]:
    """Waits in turn for short leases on `docs` (the documents a transaction contended
    on) and holds them for the block, so that requests that collided on one wallet take
    turns instead of aborting each other. Leases are taken in path order, so two waiting
    requests never wait on each other in a cycle. They only order the work: the
    transaction inside still guarantees it, so a lease that runs out (a holder that
    died) or a wait that runs out lets a request go ahead unqueued."""
    held: list[Claim] = []
    try:
        for doc in sorted(set(docs), key=str):
            try:
                taken = claim(
                    db,
                    Idempotency(QUEUE_SCOPE, str(doc), None),
                    _now(),
                    lease_seconds=QUEUE_LEASE_SECONDS,
                    wait_seconds=QUEUE_LEASE_SECONDS,
                    sleep=sleep,
                )
            except (errors.RequestInProgress, errors.Unavailable):
                logs.warning("went ahead of a queue that did not move", doc=str(doc))
                continue
            assert isinstance(taken, Claim), "a queue lease is never answered"
            held.append(taken)
        yield
    finally:
        for taken in reversed(held):
            release(db, taken)


def claim(
    db: Store,
    idempotency: Idempotency,
    now: datetime,
    *,
    lease_seconds: float = config.IDEMPOTENCY_LEASE_SECONDS,
    wait_seconds: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Claim | Response:
    """Claims the key with a plain create, or answers for it (see the module doc). A key
    that another request holds is 409 request_in_progress at once, or, with
    `wait_seconds`, once that request has not answered for so long; meanwhile the record
    is read with plain reads, which take no locks. A record that lapsed (its holder died)
    is cleared and competed for again."""
    owner = uuid.uuid4().hex
    waiting_until = time.monotonic() + wait_seconds
    giving_up_at = time.monotonic() + config.TRANSACTION_DEADLINE_SECONDS
    for attempt in range(1, config.TRANSACTION_ATTEMPTS_MAX + 1):
        try:
            if db.create(idempotency.doc, _claimed_record(idempotency, owner, now, lease_seconds)):
                return Claim(idempotency, owner)
        except store.Contention:
            pass  # a transaction is reading the record; what it holds is read below
        for polls in itertools.count(1):
            existing, version = db.get_versioned(idempotency.doc)
            try:
                answer = stored_answer(existing, idempotency, now)
                break
            except errors.RequestInProgress:
                if time.monotonic() >= waiting_until:
                    raise
                sleep(
                    backoff.delay_seconds(
                        polls, base_seconds=ANSWER_POLL_BASE_SECONDS, cap_seconds=ANSWER_POLL_CAP_SECONDS, floor=0.5
                    )
                )
                now = _now()
        if answer is not None:
            return answer
        if existing is not None:
            # Clear an expired record or a crashed request's claim, unless someone else
            # changed it since we read it; then compete for the key with a create again.
            db.delete_if_unchanged(idempotency.doc, version)
        elif attempt > 1:
            if time.monotonic() >= giving_up_at:
                break
            # Absent, yet the create contended: transactions that read the key have not
            # finished; let them.
            sleep(
                backoff.delay_seconds(
                    attempt - 1,
                    base_seconds=config.TRANSACTION_BACKOFF_BASE_SECONDS,
                    cap_seconds=config.TRANSACTION_BACKOFF_CAP_SECONDS,
                )
            )
        now = _now()
    raise errors.Unavailable()


def _claimed_record(idempotency: Idempotency, owner: str, now: datetime, lease_seconds: float) -> dict[str, Any]:
    return {
        "scope": idempotency.scope,
        "fingerprint": idempotency.fingerprint,
        "state": State.IN_PROGRESS,
        "owner": owner,
        "locked_until": now + timedelta(seconds=lease_seconds),
        "created_at": now,
        "expires_at": now + timedelta(seconds=config.IDEMPOTENCY_TTL_SECONDS),
    }


def _now() -> datetime:
    return datetime.now(timezone.utc)


def stored_answer(record: Mapping[str, Any] | None, idempotency: Idempotency, now: datetime) -> Response | None:
    """What a record says of a request with this key: its stored response (done), 409
    (another request holds it), 422 (the key was used for another request), or None
    when the key is free (no record, an expired one, a crashed request's claim)."""
    if record is None:
        return None
    lapsed = record["expires_at"] <= now or (record["state"] == State.IN_PROGRESS and record["locked_until"] <= now)
    if lapsed:
        return None
    if record["fingerprint"] != idempotency.fingerprint:
        raise errors.IdempotencyKeyReused()
    if record["state"] != State.DONE:
        raise errors.RequestInProgress()
    return Response(record["status"], json.loads(record["response_json"]))


def release(db: Store, claim: Claim) -> None:
    """Gives up a claim that no response settled. Best effort: the lease runs out anyway."""
    try:
        record, version = db.get_versioned(claim.idempotency.doc)
        if record is not None and record.get("state") == State.IN_PROGRESS and record.get("owner") == claim.owner:
            db.delete_if_unchanged(claim.idempotency.doc, version)
    except Exception as error:  # noqa: BLE001 - the original failure is what matters
        logs.warning("could not release an idempotency claim", error=type(error).__name__)


def still_owned(record: Mapping[str, Any] | None, claim: Claim) -> bool:
    """Whether the record read inside the work's transaction is still our claim (it may
    have lapsed and been taken over by another request, which then does the work)."""
    return record is not None and record.get("state") == State.IN_PROGRESS and record.get("owner") == claim.owner


def answered(idempotency: Idempotency, response: Response, now: datetime) -> dict[store.Doc, Write]:
    """The record that answers a key with its response, for the work's transaction."""
    record = {
        "scope": idempotency.scope,
        "fingerprint": idempotency.fingerprint,
        "state": State.DONE,
        "status": response.status,
        # Stored as text, so that a replay returns exactly the same body.
        "response_json": json.dumps(response.body, separators=(",", ":")),
        "created_at": now,
        "expires_at": now + timedelta(seconds=config.IDEMPOTENCY_TTL_SECONDS),
    }
    return {idempotency.doc: Write(record, merge=False)}
