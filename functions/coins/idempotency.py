"""Idempotency keys and leases, on records `idempotency/{sha256(scope, key)}`.

A record is `in_progress` (claimed by `owner` until `locked_until`) or `done` (holding
the response). It is deleted by a TTL policy on `expires_at` (firestore.indexes.json);
an expired record that TTL has not removed yet counts as absent.

Work done in one transaction (every operation without an outside call) reads the record
in that transaction and writes the response in the same commit (`ledger.execute`): of
concurrent requests with one key, one commits and the others, conflicting on the record,
retry and find its response. Work that spans an outside call (a gateway) claims the key
first with a plain create, so that the others answer at once while it runs (409
request_in_progress), and stores the response with its last step. A lease is a claim
that is never answered, only given back: one settlement of a purchase at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterator, Mapping

from . import config, errors, logs, store
from .store import Store, Write

IN_PROGRESS, DONE = "in_progress", "done"


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
def claimed(db: Store, idempotency: Idempotency, now: datetime) -> Iterator[Claim | Response]:
    """Claims the key for the block, or yields the answer already known for it. A claim
    that no response settled is given back when the block ends (after a failure), so a
    retry with the same key can run; the lease runs out anyway if that fails too."""
    answer = claim(db, idempotency, now)
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


def claim(db: Store, idempotency: Idempotency, now: datetime) -> Claim | Response:
    """Claims the key, or answers for it (see the module doc)."""
    owner = uuid.uuid4().hex
    record = {
        "scope": idempotency.scope,
        "fingerprint": idempotency.fingerprint,
        "state": IN_PROGRESS,
        "owner": owner,
        "locked_until": now + timedelta(seconds=config.IDEMPOTENCY_LEASE_SECONDS),
        "created_at": now,
        "expires_at": now + timedelta(seconds=config.IDEMPOTENCY_TTL_SECONDS),
    }
    for _ in range(config.TRANSACTION_ATTEMPTS_MAX):
        if db.create(idempotency.doc, record):
            return Claim(idempotency, owner)
        existing, version = db.get_versioned(idempotency.doc)
        if existing is None:
            continue  # released between our create and our read
        answer = stored_answer(existing, idempotency, now)
        if answer is not None:
            return answer
        # Clear an expired record or a crashed request's claim, unless someone else
        # changed it since we read it; then compete for the key with a create again.
        db.delete_if_unchanged(idempotency.doc, version)
    raise errors.Unavailable()


def stored_answer(record: Mapping[str, Any] | None, idempotency: Idempotency, now: datetime) -> Response | None:
    """What a record says of a request with this key: its stored response (done), 409
    (another request holds it), 422 (the key was used for another request), or None
    when the key is free (no record, an expired one, a crashed request's claim)."""
    if record is None:
        return None
    lapsed = record["expires_at"] <= now or (record["state"] == IN_PROGRESS and record["locked_until"] <= now)
    if lapsed:
        return None
    if record["fingerprint"] != idempotency.fingerprint:
        raise errors.IdempotencyKeyReused()
    if record["state"] != DONE:
        raise errors.RequestInProgress()
    return Response(record["status"], json.loads(record["response_json"]))


def release(db: Store, claim: Claim) -> None:
    """Gives up a claim that no response settled. Best effort: the lease runs out anyway."""
    try:
        record, version = db.get_versioned(claim.idempotency.doc)
        if record is not None and record.get("state") == IN_PROGRESS and record.get("owner") == claim.owner:
            db.delete_if_unchanged(claim.idempotency.doc, version)
    except Exception as error:  # noqa: BLE001 - the original failure is what matters
        logs.warning("could not release an idempotency claim", error=type(error).__name__)


def still_owned(record: Mapping[str, Any] | None, claim: Claim) -> bool:
    """Whether the record read inside the work's transaction is still our claim (it may
    have lapsed and been taken over by another request, which then does the work)."""
    return record is not None and record.get("state") == IN_PROGRESS and record.get("owner") == claim.owner


def answered(idempotency: Idempotency, response: Response, now: datetime) -> dict[store.Doc, Write]:
    """The record that answers a key with its response, for the work's transaction."""
    record = {
        "scope": idempotency.scope,
        "fingerprint": idempotency.fingerprint,
        "state": DONE,
        "status": response.status,
        # Stored as text, so that a replay returns exactly the same body.
        "response_json": json.dumps(response.body, separators=(",", ":")),
        "created_at": now,
        "expires_at": now + timedelta(seconds=config.IDEMPOTENCY_TTL_SECONDS),
    }
    return {idempotency.doc: Write(record, merge=False)}
