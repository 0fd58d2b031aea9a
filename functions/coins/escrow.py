"""Job payments through escrow: lock, release (amount - fee to the freelancer, the fee to
`platform:fees`), refund, dispute, and automatic release.

Every transition is decided inside the ledger transaction from the escrow document as
read there, so that a release racing a refund, or five releases of one escrow, have
exactly one effect. Who may move an escrow from which state to which is one table,
`TRANSITIONS`. The escrow's coins are the balance of the account `escrow:{id}`, kept on
its document by the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Mapping

from . import audit, catalog, config, errors, ledger, logs, postings, store
from .app import AppDb, Job
from .auth import Caller
from .domain import PLATFORM_FEES, Account, EntryType, EscrowStatus, EventKind
from .store import Store, Where
from .times import moment

LOCKED, RELEASED, REFUNDED, DISPUTED = EscrowStatus.LOCKED, EscrowStatus.RELEASED, EscrowStatus.REFUNDED, EscrowStatus.DISPUTED
# Who acts when nobody does: the task and the sweeper.
AUTO_RELEASE_ACTOR = "system:auto-release"


class Role(StrEnum):
    """Who is acting on an escrow."""

    CLIENT = "client"
    FREELANCER = "freelancer"
    ADMIN = "admin"
    SYSTEM = "system"  # the auto-release task and the sweeper


class Action(StrEnum):
    RELEASE = "release"
    REFUND = "refund"
    DISPUTE = "dispute"


@dataclass(frozen=True)
class Transition:
    """One row of the table: `role` may `action` an escrow that is in one of `from_states`,
    which moves it to `to`. `entry` names the ledger entry when money moves."""

    action: Action
    role: Role
    from_states: tuple[EscrowStatus, ...]
    to: EscrowStatus
    entry: EntryType | None


TRANSITIONS = (
    Transition(Action.RELEASE, Role.CLIENT, (LOCKED,), RELEASED, EntryType.ESCROW_RELEASE),
    Transition(Action.RELEASE, Role.ADMIN, (LOCKED, DISPUTED), RELEASED, EntryType.ESCROW_RELEASE),
    Transition(Action.RELEASE, Role.SYSTEM, (LOCKED,), RELEASED, EntryType.ESCROW_RELEASE),
    Transition(Action.REFUND, Role.FREELANCER, (LOCKED,), REFUNDED, EntryType.ESCROW_REFUND),
    Transition(Action.REFUND, Role.ADMIN, (LOCKED, DISPUTED), REFUNDED, EntryType.ESCROW_REFUND),
    Transition(Action.DISPUTE, Role.CLIENT, (LOCKED,), DISPUTED, None),
    Transition(Action.DISPUTE, Role.FREELANCER, (LOCKED,), DISPUTED, None),
)
# Said to a party the table has no row for (a stranger gets 404 before this).
FORBIDDEN = {
    Action.RELEASE: "The freelancer cannot release an escrow.",
    Action.REFUND: "The client cannot refund an escrow.",
    Action.DISPUTE: "Only the client or the freelancer can dispute an escrow.",
}


@dataclass(frozen=True)
class Actor:
    """Who acts: a caller, or the system (`caller` None) for timers."""

    caller: Caller | None

    @property
    def uid(self) -> str:
        return self.caller.uid if self.caller else AUTO_RELEASE_ACTOR

    def roles(self, escrow: Mapping[str, Any]) -> tuple[Role, ...]:
        if self.caller is None:
            return (Role.SYSTEM,)
        roles = [Role.ADMIN] if self.caller.admin else []
        roles += [role for role in (Role.CLIENT, Role.FREELANCER) if escrow[f"{role}_id"] == self.caller.uid]
        return tuple(roles)

    def may_see(self, escrow: Mapping[str, Any]) -> bool:
        return bool(self.roles(escrow))


SYSTEM = Actor(None)


def transition(actor: Actor, escrow: Mapping[str, Any], action: Action) -> Transition:
    """The row of the table that lets `actor` do `action` now; 404 for a stranger, 403
    for a party the table has no row for, 409 for a state it does not allow."""
    roles = actor.roles(escrow)
    if not roles:
        raise errors.NotFound()
    rows = [row for row in TRANSITIONS if row.action is action and row.role in roles]
    if not rows:
        raise errors.Forbidden(FORBIDDEN[action])
    status = EscrowStatus(escrow["status"])
    for row in rows:
        if status in row.from_states:
            return row
    if status is DISPUTED:
        raise errors.InvalidState("A disputed escrow is resolved by an admin.", status=status)
    raise errors.InvalidState(f"The escrow is {status}; it cannot be {action}d now.", status=status)


def facts(escrow: Mapping[str, Any]) -> dict[str, Any]:
    """What an escrow event tells (coins.notices turns it into words)."""
    return {"escrow_id": escrow["id"], **{key: escrow[key] for key in ("job_id", "client_id", "freelancer_id", "amount_dirhams")}}


def render(escrow: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": escrow["id"],
        "status": escrow["status"],
        "job_id": escrow["job_id"],
        "client_id": escrow["client_id"],
        "freelancer_id": escrow["freelancer_id"],
        "amount_dirhams": escrow["amount_dirhams"],
        "fee_dirhams": escrow["fee_dirhams"],
        "coins": escrow.get("coins", {}),
        "auto_release_at": moment(escrow, "auto_release_at"),
        "created_at": moment(escrow, "created_at"),
        "released_at": moment(escrow, "released_at"),
        "refunded_at": moment(escrow, "refunded_at"),
        "disputed_at": moment(escrow, "disputed_at"),
        "dispute_reason": escrow.get("dispute_reason"),
    }


def lock(
    db: Store,
    app_db: AppDb,
    client: Caller,
    *,
    job_id: str,
    freelancer_id: str | None,
    amount_dirhams: int,
    idempotency: ledger.Idempotency,
) -> ledger.Response:
    """The client pays the job's hired freelancer: coins worth the amount move from the
    client's wallet to a new escrow (with change from the treasury when no exact
    combination exists). The job is read from the app before the money transaction
    (transactions do not span databases); what it refuses is answered, and stored under
    the key, from inside the transaction like every other refusal."""
    try:
        freelancer = hired_freelancer(app_db.job(job_id), client, freelancer_id)
        refusal = None
    except errors.CoinsError as error:
        freelancer, refusal = None, error
    escrow_id = store.new_id()
    hold = Account.escrow(escrow_id)
    delay = timedelta(seconds=config.settings().escrow_auto_release_seconds)

    def operation(reader: ledger.Reader) -> ledger.Plan:
        if refusal is not None:
            raise refusal
        if reader.escrow_job(job_id) is not None:
            raise errors.InvalidState("This job already has an escrow.", job_id=job_id)
        wallet = reader.wallet(client.uid)
        moved, _ = postings.pay(Account.user(client.uid), hold, wallet["coins"], amount_dirhams)
        escrow = {
            "id": escrow_id,
            "status": LOCKED,
            "job_id": job_id,
            "client_id": client.uid,
            "freelancer_id": freelancer,
            "amount_dirhams": amount_dirhams,
            "fee_dirhams": catalog.job_fee_dirhams(amount_dirhams),
            "auto_release_at": reader.now + delay,
            "created_at": reader.now,
            "updated_at": reader.now,
        }
        entry = postings.Entry(
            EntryType.ESCROW_LOCK, moved, refs={"escrow_id": escrow_id, "job_id": job_id}, parties=(client.uid, freelancer)
        )
        return ledger.Plan(
            entry=entry,
            documents={
                store.escrow(escrow_id): escrow,
                store.escrow_job(job_id): {"escrow_id": escrow_id, "client_id": client.uid, "created_at": reader.now},
            },
            events=(ledger.Event(EventKind.ESCROW_FUNDED, facts(escrow)),),
            respond=lambda outcome: ledger.Response(201, render({**escrow, "coins": postings.received(moved, hold)})),
        )

    return ledger.execute(db, operation, actor=client.uid, idempotency=idempotency)


def hired_freelancer(job: Job, client: Caller, freelancer_id: str | None) -> str:
    """Who the client pays for this job: 403 if the caller is not the job's client, 409
    if nobody is hired yet, 422 if the body names someone else."""
    if job.client_id != client.uid:
        raise errors.Forbidden("Only the job's client can pay for it.", job_id=job.id)
    if job.freelancer_id is None:
        raise errors.InvalidState("This job has no hired freelancer yet.", job_id=job.id)
    if freelancer_id is not None and freelancer_id != job.freelancer_id:
        raise errors.ValidationFailed(fields=[{"field": "freelancer_id", "message": "is not the job's hired freelancer"}])
    if job.freelancer_id == client.uid:
        raise errors.InvalidState("The job's client is also its freelancer.", job_id=job.id)
    return job.freelancer_id


def get(db: Store, caller: Caller, escrow_id: str) -> dict[str, Any]:
    escrow = db.get(store.escrow(escrow_id))
    if escrow is None or not Actor(caller).may_see(escrow):
        raise errors.NotFound()
    return render(escrow)


def finish(db: Store, caller: Caller, escrow_id: str, action: Action, *, idempotency: ledger.Idempotency | None) -> ledger.Response:
    """Release or refund, as the table allows the caller."""
    return _finish(db, Actor(caller), escrow_id, action, idempotency=idempotency)


class AutoRelease(StrEnum):
    """What a timer did (the task target's answer, and the sweeper's counts)."""

    RELEASED = "released"
    NOT_DUE = "skipped: not due"
    UNKNOWN = "skipped: unknown escrow"
    # An escrow no longer locked answers "skipped: <its status>".


def auto_release(db: Store, escrow_id: str, now: datetime | None = None) -> str:
    """Releases an escrow that is still `locked` past its time (the task, the sweeper);
    anything else is a no-op. Returns what happened (an `AutoRelease` value, or
    "skipped: <status>")."""
    now = now or ledger.now_utc()
    try:
        response = _finish(db, SYSTEM, escrow_id, Action.RELEASE, idempotency=None, due_by=now)
    except errors.NotFound:
        logs.warning("auto-release for an unknown escrow", escrow_id=escrow_id)
        return AutoRelease.UNKNOWN
    return response.body.get("outcome", AutoRelease.RELEASED)


def _finish(
    db: Store, actor: Actor, escrow_id: str, action: Action, *, idempotency: ledger.Idempotency | None, due_by: datetime | None = None
) -> ledger.Response:
    """Moves the escrow's coins as the transition says: a release pays the fee (with
    change to the freelancer) and the rest to the freelancer, a refund all to the client.
    The system (`due_by` given) skips an escrow that is not locked or not yet due."""
    doc, hold = store.escrow(escrow_id), Account.escrow(escrow_id)

    def skip(outcome: str) -> ledger.Plan:
        return ledger.Plan(entry=None, respond=lambda _: ledger.Response(200, {"outcome": outcome}))

    def operation(reader: ledger.Reader) -> ledger.Plan:
        escrow = reader.escrow(escrow_id)
        if escrow is None:
            raise errors.NotFound()
        try:
            row = transition(actor, escrow, action)
        except errors.InvalidState:
            if actor is SYSTEM:
                return skip(f"skipped: {escrow['status']}")
            raise
        if due_by is not None and escrow["auto_release_at"] > due_by:
            return skip(AutoRelease.NOT_DUE)
        held, client, freelancer = escrow["coins"], Account.user(escrow["client_id"]), Account.user(escrow["freelancer_id"])
        if row.to is RELEASED:
            moved, taken = postings.pay(hold, PLATFORM_FEES, held, escrow["fee_dirhams"], change_to=freelancer)
            moved += postings.transfer(hold, freelancer, catalog.add(held, taken, sign=-1))
        else:
            moved = postings.transfer(hold, client, held)
        changes = {"status": row.to, f"{row.to}_at": reader.now, f"{row.to}_by": actor.uid, "updated_at": reader.now}
        documents: dict[store.Doc, Mapping[str, Any]] = {doc: changes}
        if row.role is Role.ADMIN:
            documents.update(audit.record(
                actor=actor.uid, action=f"escrow_{row.to}", target=str(hold), now=reader.now,
                before={"status": escrow["status"]}, after={"status": row.to},
            ))
        entry = postings.Entry(
            row.entry,
            moved,
            refs={"escrow_id": escrow_id, "job_id": escrow["job_id"]},
            memo={"from_status": escrow["status"]},
            parties=(client.id, freelancer.id),
        )
        told = facts(escrow)
        if row.to is RELEASED:
            told.update(paid_dirhams=escrow["amount_dirhams"] - escrow["fee_dirhams"], fee_dirhams=escrow["fee_dirhams"])
        kind = EventKind.ESCROW_RELEASED if row.to is RELEASED else EventKind.ESCROW_REFUNDED
        return ledger.Plan(
            entry=entry,
            documents=documents,
            events=(ledger.Event(kind, told),),
            respond=lambda outcome: ledger.Response(200, render({**escrow, **changes, "coins": {}})),
        )

    return ledger.execute(db, operation, actor=actor.uid, idempotency=idempotency)


def dispute(db: Store, caller: Caller, escrow_id: str, *, reason: str) -> dict[str, Any]:
    """The client or the freelancer stops the automatic release; an admin then decides.
    Moves no money, so it takes no Idempotency-Key: a second dispute is 409."""

    def operation(reader: ledger.Reader) -> ledger.Plan:
        escrow = reader.escrow(escrow_id)
        if escrow is None:
            raise errors.NotFound()
        row = transition(Actor(caller), escrow, Action.DISPUTE)
        changes = {
            "status": row.to,
            "disputed_at": reader.now,
            "disputed_by": caller.uid,
            "dispute_reason": reason,
            "updated_at": reader.now,
        }
        disputed = ledger.Event(EventKind.ESCROW_DISPUTED, {**facts(escrow), "disputed_by": caller.uid, "reason": reason})
        return ledger.Plan(
            entry=None, documents={store.escrow(escrow_id): changes}, events=(disputed,),
            respond=lambda outcome: ledger.Response(200, render({**escrow, **changes})),
        )

    return ledger.execute(db, operation, actor=caller.uid).body


def sweep(db: Store, now: datetime | None = None) -> dict[str, int]:
    """Releases escrows still `locked` past their time, oldest first, in a bounded batch,
    through the same path as the task: for tasks that were lost or never created."""
    now = now or ledger.now_utc()
    due = db.query(
        store.ESCROWS,
        (Where("status", "==", LOCKED), Where("auto_release_at", "<=", now)),
        order_by="auto_release_at",
        limit=config.ESCROW_SWEEP_BATCH_MAX,
    )
    counts: dict[str, int] = {}
    for escrow in due:
        outcome = auto_release(db, escrow["id"], now)
        counts[outcome] = counts.get(outcome, 0) + 1
    logs.info("escrows swept", **counts)
    return counts
