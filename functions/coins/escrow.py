"""Job payments through escrow, one escrow per milestone of a job (Upwork's fixed-price
milestones are the model users know): fund, submit, request changes, release (all or
part), request a refund, refund, dispute, resolve (an admin's split), and the timers.

Every transition is one row of `TRANSITIONS` (who may do it, from which states, to
which) and is decided inside the ledger transaction from the escrow as read there, so
that a release racing a refund, or two partial releases, have exactly the effect of
one after the other. The escrow's coins are the balance of the account `escrow:{id}`,
kept on its document by the ledger; while open it holds amount - released - refunded.

Timers: entering `submitted` starts the review window, entering `refund_requested` the
refund-response window; leaving either cancels it. A timer is a Cloud Task named after
the escrow and its state version, scheduled by the outbox trigger from the event this
transition writes; it acts only if the escrow is still in that state and version.
Nothing moves merely because time passed since funding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Mapping

from . import audit, catalog, config, errors, ledger, limits, logs, postings, store
from .app import AppDb, Job
from .auth import Caller
from .domain import PLATFORM_FEES, Account, EntryType, EscrowStatus, EventKind
from .store import Store, Where
from .times import dated, moment

FUNDED, SUBMITTED, REFUND_REQUESTED, DISPUTED = (
    EscrowStatus.FUNDED,
    EscrowStatus.SUBMITTED,
    EscrowStatus.REFUND_REQUESTED,
    EscrowStatus.DISPUTED,
)
RELEASED, REFUNDED, SPLIT = EscrowStatus.RELEASED, EscrowStatus.REFUNDED, EscrowStatus.SPLIT
OPEN = (FUNDED, SUBMITTED, REFUND_REQUESTED, DISPUTED)
# Who acts when nobody does: the timers and the sweeper.
SYSTEM_ACTOR = "system:escrow-timer"


class Role(StrEnum):
    """Who is acting on an escrow."""

    CLIENT = "client"
    FREELANCER = "freelancer"
    ADMIN = "admin"
    SYSTEM = "system"  # a timer (Cloud Task) or the sweeper, when a window ends


class Action(StrEnum):
    SUBMIT = "submit"
    REQUEST_CHANGES = "request_changes"
    RELEASE = "release"
    REQUEST_REFUND = "request_refund"
    REFUND = "refund"
    DISPUTE = "dispute"
    RESOLVE = "resolve"


@dataclass(frozen=True)
class Transition:
    """One row: `role` may `action` an escrow in one of `from_states`. `to` is the state
    it moves to (None: the amounts decide: a partial release stays where it is, a
    resolution ends released, refunded or split). Money moves on the rows with an
    `entry`."""

    action: Action
    role: Role
    from_states: tuple[EscrowStatus, ...]
    to: EscrowStatus | None
    entry: EntryType | None = None


TRANSITIONS = (
    Transition(Action.SUBMIT, Role.FREELANCER, (FUNDED,), SUBMITTED),
    Transition(Action.REQUEST_CHANGES, Role.CLIENT, (SUBMITTED,), FUNDED),
    Transition(Action.RELEASE, Role.CLIENT, (FUNDED, SUBMITTED), None, EntryType.ESCROW_RELEASE),
    Transition(Action.RELEASE, Role.ADMIN, OPEN, None, EntryType.ESCROW_RELEASE),
    Transition(Action.RELEASE, Role.SYSTEM, (SUBMITTED,), RELEASED, EntryType.ESCROW_RELEASE),
    Transition(Action.REQUEST_REFUND, Role.CLIENT, (FUNDED, SUBMITTED), REFUND_REQUESTED),
    # The freelancer accepts a refund request, or gives the money back at any time.
    Transition(Action.REFUND, Role.FREELANCER, OPEN, REFUNDED, EntryType.ESCROW_REFUND),
    Transition(Action.REFUND, Role.ADMIN, OPEN, REFUNDED, EntryType.ESCROW_REFUND),
    Transition(Action.REFUND, Role.SYSTEM, (REFUND_REQUESTED,), REFUNDED, EntryType.ESCROW_REFUND),
    # Either party; the freelancer disputing a refund request is declining it.
    Transition(Action.DISPUTE, Role.CLIENT, (FUNDED, SUBMITTED, REFUND_REQUESTED), DISPUTED),
    Transition(Action.DISPUTE, Role.FREELANCER, (FUNDED, SUBMITTED, REFUND_REQUESTED), DISPUTED),
    Transition(Action.RESOLVE, Role.ADMIN, (DISPUTED,), None, EntryType.ESCROW_SPLIT),
)
# Said to a party the table has no row for (a stranger gets 404 before this).
FORBIDDEN = {
    Action.SUBMIT: "Only the freelancer submits the work.",
    Action.REQUEST_CHANGES: "Only the client requests changes.",
    Action.RELEASE: "Only the client (or an admin) releases an escrow.",
    Action.REQUEST_REFUND: "Only the client requests a refund.",
    Action.REFUND: "The client cannot refund an escrow; request a refund instead.",
    Action.DISPUTE: "Only the client or the freelancer can dispute an escrow.",
    Action.RESOLVE: "Only an admin resolves a dispute.",
}

# Said when the table has a row for the party but not for the escrow's state: a
# sentence per action, with the state in words.
NOT_NOW = {
    Action.SUBMIT: "The work can be submitted only while the escrow is funded; it is {state}.",
    Action.REQUEST_CHANGES: "Changes can be asked for only after the work is submitted; the escrow is {state}.",
    Action.RELEASE: "This escrow cannot be released now: it is {state}.",
    Action.REQUEST_REFUND: "A refund can be requested only while the escrow is funded or submitted; it is {state}.",
    Action.REFUND: "This escrow cannot be refunded now: it is {state}.",
    Action.DISPUTE: "This escrow cannot be disputed now: it is {state}.",
    Action.RESOLVE: "Only a disputed escrow is resolved by an admin; this one is {state}.",
}
STATE_WORDS = {
    FUNDED: "funded",
    SUBMITTED: "submitted for review",
    REFUND_REQUESTED: "waiting for the freelancer to answer a refund request",
    DISPUTED: "in dispute",
    RELEASED: "released",
    REFUNDED: "refunded",
    SPLIT: "settled by an admin",
}


class Window(StrEnum):
    """The timed states, and what happens to what is held when their window ends."""

    REVIEW = "review"  # submitted: released to the freelancer
    REFUND_RESPONSE = "refund_response"  # refund_requested: back to the client


TIMED = {SUBMITTED: Window.REVIEW, REFUND_REQUESTED: Window.REFUND_RESPONSE}
WHEN_WINDOW_ENDS = {Window.REVIEW: Action.RELEASE, Window.REFUND_RESPONSE: Action.REFUND}


@dataclass(frozen=True)
class Actor:
    """Who acts: a caller, or the system (`caller` None) for timers."""

    caller: Caller | None

    @property
    def uid(self) -> str:
        return self.caller.uid if self.caller else SYSTEM_ACTOR

    @property
    def language(self) -> str | None:
        return self.caller.language if self.caller else None

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
    for a party the table has no row for, 409 naming the state for a state it does not
    allow."""
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
    if status is DISPUTED and action in (Action.RELEASE, Action.REFUND):
        raise errors.InvalidState("A disputed escrow is resolved by an admin.", status=status)
    raise errors.InvalidState(NOT_NOW[action].format(state=STATE_WORDS[status]), status=status)


def held_dirhams(escrow: Mapping[str, Any]) -> int:
    return escrow["amount_dirhams"] - escrow["released_dirhams"] - escrow["refunded_dirhams"]


def task_id(escrow_id: str, version: int) -> str:
    """The timer of an escrow in one state version: a late task for an earlier version
    finds a newer version and does nothing."""
    return f"{escrow_id}-v{version}"


def facts(escrow: Mapping[str, Any]) -> dict[str, Any]:
    """What an escrow event tells (coins.notices turns it into words)."""
    return {
        "escrow_id": escrow["id"],
        "job_id": escrow["job_id"],
        "milestone": escrow["milestone"],
        "client_id": escrow["client_id"],
        "freelancer_id": escrow["freelancer_id"],
        "amount_dirhams": escrow["amount_dirhams"],
    }


def render(escrow: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": escrow["id"],
        "status": escrow["status"],
        "job_id": escrow["job_id"],
        "milestone": escrow["milestone"],
        "client_id": escrow["client_id"],
        "freelancer_id": escrow["freelancer_id"],
        "amount_dirhams": escrow["amount_dirhams"],
        "held_dirhams": held_dirhams(escrow),
        "released_dirhams": escrow["released_dirhams"],
        "refunded_dirhams": escrow["refunded_dirhams"],
        "fee_dirhams": escrow["fee_dirhams"],
        "coins": escrow.get("coins", {}),
        "review_ends_at": moment(escrow, "review_ends_at"),
        "refund_response_ends_at": moment(escrow, "refund_response_ends_at"),
        "submission_note": escrow.get("submission_note"),
        "changes_note": escrow.get("changes_note"),
        "refund_reason": escrow.get("refund_reason"),
        "dispute": dated(escrow.get("dispute")),
        "resolution": dated(escrow.get("resolution")),
        "created_at": moment(escrow, "created_at"),
        "submitted_at": moment(escrow, "submitted_at"),
        "released_at": moment(escrow, "released_at"),
        "refunded_at": moment(escrow, "refunded_at"),
        "disputed_at": moment(escrow, "disputed_at"),
        "resolved_at": moment(escrow, "resolved_at"),
    }


# Funding.


def lock(
    db: Store,
    app_db: AppDb,
    client: Caller,
    *,
    job_id: str,
    milestone: str,
    freelancer_id: str | None,
    amount_dirhams: int,
    idempotency: ledger.Idempotency,
) -> ledger.Response:
    """The client funds a milestone of a job for its hired freelancer: coins worth the
    amount move from the client's wallet to a new escrow (with change from the treasury
    when no exact combination exists). One open escrow per (job, milestone). The job is
    read from the app before the money transaction (transactions do not span
    databases); what it refuses is answered, and stored under the key, from inside the
    transaction like every other refusal."""
    try:
        freelancer = hired_freelancer(app_db.job(job_id), client, freelancer_id)
        refusal = None
    except errors.CoinsError as error:
        freelancer, refusal = "", error
    escrow_id = store.new_id()
    hold = Account.escrow(escrow_id)

    def operation(reader: ledger.Reader) -> ledger.Plan:
        if refusal is not None:
            raise refusal
        open_one = (reader.escrow_milestone(job_id, milestone) or {}).get("open_escrow_id")
        if open_one:
            raise errors.InvalidState(
                "This milestone of the job is already funded.", job_id=job_id, milestone=milestone, escrow_id=open_one
            )
        wallet = reader.wallet(client.uid)
        moved, _ = postings.pay(Account.user(client.uid), hold, wallet["coins"], amount_dirhams)
        counted = limits.admit(reader.limits(client.uid), limits.Kind.JOB_PAYMENT, amount_dirhams, escrow_id, reader.now)
        escrow = {
            "id": escrow_id,
            "status": FUNDED,
            "version": 1,
            "job_id": job_id,
            "milestone": milestone,
            "client_id": client.uid,
            "freelancer_id": freelancer,
            # Both parties, for "my escrows" lists.
            "parties": [client.uid, freelancer],
            "amount_dirhams": amount_dirhams,
            "released_dirhams": 0,
            "refunded_dirhams": 0,
            "fee_dirhams": 0,
            "timer_due_at": None,
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
                store.escrow_milestone(job_id, milestone): {
                    "job_id": job_id,
                    "milestone": milestone,
                    "open_escrow_id": escrow_id,
                },
                store.limits(client.uid): counted,
            },
            events=(ledger.Event(EventKind.ESCROW_FUNDED, facts(escrow)),),
            respond=lambda outcome: ledger.Response(201, render({**escrow, "coins": postings.received(moved, hold)})),
        )

    return ledger.execute(db, operation, actor=client.uid, idempotency=idempotency, language=client.language)


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


# Reading.


def get(db: Store, caller: Caller, escrow_id: str) -> dict[str, Any]:
    escrow = db.get(store.escrow(escrow_id))
    if escrow is None or not Actor(caller).may_see(escrow):
        raise errors.NotFound()
    return render(escrow)


def list_for(
    db: Store,
    caller: Caller,
    *,
    role: str | None,
    status: EscrowStatus | None,
    job_id: str | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """The caller's escrows, as client, freelancer or either; newest first."""
    field = {"client": "client_id", "freelancer": "freelancer_id"}.get(role or "")
    where: tuple[Where, ...] = (Where(field, "==", caller.uid),) if field else (Where("parties", "array_contains", caller.uid),)
    if job_id is not None:
        where += (Where("job_id", "==", job_id),)
    if status is not None:
        where += (Where("status", "==", status),)

    def owns(escrow: Mapping[str, Any]) -> bool:
        return caller.uid in escrow.get("parties", ())

    return db.page(store.ESCROWS, where, limit=limit, cursor=cursor, owns=owns, render=render)


# The admins' queue: disputes waiting for a resolution (the console counts it too).
DISPUTE_QUEUE = (Where("status", "==", DISPUTED),)


def list_disputes(db: Store, *, limit: int, cursor: str | None) -> dict[str, Any]:
    """The admin's queue: disputed escrows, oldest dispute first, with both sides. The
    cursor may name a dispute resolved since the page was read: its place still holds."""
    return db.page(
        store.ESCROWS,
        DISPUTE_QUEUE,
        limit=limit,
        cursor=cursor,
        owns=lambda escrow: "disputed_at" in escrow,
        render=render,
        newest_first=False,
        order_by="disputed_at",
    )


# Transitions.


@dataclass(frozen=True)
class Change:
    """What a transition does to an escrow: its new fields, the money it moves, and what
    the parties hear."""

    fields: Mapping[str, Any]
    moved: tuple[postings.Posting, ...] = ()
    event: EventKind | None = None
    told: Mapping[str, Any] | None = None


def submit(db: Store, caller: Caller, escrow_id: str, *, note: str | None) -> dict[str, Any]:
    """The freelancer delivers: the client's review window starts."""

    def change(escrow, row, now):
        return Change(
            {"submission_note": note, "submitted_at": now, "changes_note": None},
            event=EventKind.ESCROW_SUBMITTED,
            told={"note": note},
        )

    return _move(db, Actor(caller), escrow_id, Action.SUBMIT, change).body


def request_changes(db: Store, caller: Caller, escrow_id: str, *, note: str) -> dict[str, Any]:
    """The client sends the work back: funded again, the review window stopped."""

    def change(escrow, row, now):
        return Change(
            {"changes_note": note, "changes_requested_at": now}, event=EventKind.ESCROW_CHANGES_REQUESTED, told={"note": note}
        )

    return _move(db, Actor(caller), escrow_id, Action.REQUEST_CHANGES, change).body


def request_refund(db: Store, caller: Caller, escrow_id: str, *, reason: str) -> dict[str, Any]:
    """The client asks for the money back: the freelancer's response window starts."""

    def change(escrow, row, now):
        return Change(
            {"refund_reason": reason, "refund_requested_at": now},
            event=EventKind.ESCROW_REFUND_REQUESTED,
            told={"reason": reason},
        )

    return _move(db, Actor(caller), escrow_id, Action.REQUEST_REFUND, change).body


def dispute(db: Store, caller: Caller, escrow_id: str, *, reason: str, evidence_urls: tuple[str, ...]) -> dict[str, Any]:
    """Either party stops the clock; an admin then resolves. From a refund request, the
    freelancer's dispute is its answer: declined."""

    def change(escrow, row, now):
        declined = escrow["status"] == REFUND_REQUESTED and row.role is Role.FREELANCER
        opened = {
            "by": caller.uid,
            "role": row.role,
            "reason": reason,
            "evidence_urls": list(evidence_urls),
            "at": now,
            "declined_refund": declined,
        }
        return Change(
            {"dispute": opened, "disputed_at": now},
            event=EventKind.ESCROW_DISPUTED,
            told={"disputed_by": caller.uid, "reason": reason, "declined_refund": declined},
        )

    return _move(db, Actor(caller), escrow_id, Action.DISPUTE, change).body


def release(db: Store, caller: Caller, escrow_id: str, *, amount_dirhams: int | None, idempotency) -> ledger.Response:
    """Pays the freelancer what is still held, or part of it (`amount_dirhams`): the
    amount minus its fee to the freelancer, the fee to the platform. A partial release
    leaves the escrow where it is."""
    return _move(db, Actor(caller), escrow_id, Action.RELEASE, _releasing(amount_dirhams), idempotency=idempotency)


def refund(db: Store, caller: Caller, escrow_id: str, *, idempotency) -> ledger.Response:
    """Everything still held goes back to the client."""
    return _move(db, Actor(caller), escrow_id, Action.REFUND, _refunding, idempotency=idempotency)


def resolve(db: Store, admin: Caller, escrow_id: str, *, freelancer_dirhams: int, note: str, idempotency) -> ledger.Response:
    """An admin ends a dispute: `freelancer_dirhams` of what is held to the freelancer
    (minus its fee), the rest to the client. 0 is a full refund, all of it a full
    release, anything between a split."""

    def change(escrow, row, now):
        held = held_dirhams(escrow)
        if freelancer_dirhams > held:
            raise _more_than_held("freelancer_dirhams", freelancer_dirhams, held)
        paid, fee, moved = _pay_freelancer(escrow, freelancer_dirhams)
        back = held - freelancer_dirhams
        moved += postings.transfer(Account.escrow(escrow["id"]), Account.user(escrow["client_id"]), _after(escrow, moved))
        to = RELEASED if back == 0 else REFUNDED if freelancer_dirhams == 0 else SPLIT
        resolution = {
            "freelancer_dirhams": freelancer_dirhams,
            "client_dirhams": back,
            "fee_dirhams": fee,
            "note": note,
            "by": admin.uid,
            "at": now,
        }
        return Change(
            {
                "status": to,
                "released_dirhams": escrow["released_dirhams"] + freelancer_dirhams,
                "refunded_dirhams": escrow["refunded_dirhams"] + back,
                "fee_dirhams": escrow["fee_dirhams"] + fee,
                "resolution": resolution,
                "resolved_at": now,
            },
            moved,
            EventKind.ESCROW_RESOLVED,
            {
                "outcome": to,
                "freelancer_dirhams": freelancer_dirhams,
                "paid_dirhams": paid,
                "fee_dirhams": fee,
                "client_dirhams": back,
                "note": note,
            },
        )

    return _move(db, Actor(admin), escrow_id, Action.RESOLVE, change, idempotency=idempotency)


def when_window_ends(db: Store, escrow_id: str, version: int | None, now: datetime | None = None) -> str:
    """A timer (or the sweeper) for an escrow's window: if the escrow is still in the
    timed state of that version (any version when None) and the window has ended,
    release (review) or refund (refund response) what is held. Anything else is a no-op.
    Returns what happened: the escrow's new status, or why it was skipped."""
    now = now or ledger.now_utc()

    def decide(escrow) -> Action | str:
        window = TIMED.get(escrow["status"])
        if window is None:
            return f"skipped: {escrow['status']}"
        if version is not None and escrow["version"] != version:
            return "skipped: superseded"
        if escrow["timer_due_at"] > now:
            return "skipped: not due"
        return WHEN_WINDOW_ENDS[window]

    def change(escrow, row, at):
        return (_releasing(None) if row.action is Action.RELEASE else _refunding)(escrow, row, at)

    try:
        body = _move(db, SYSTEM, escrow_id, None, change, decide=decide).body
    except errors.NotFound:
        logs.warning("a timer for an unknown escrow", escrow_id=escrow_id)
        return "skipped: unknown escrow"
    return body.get("outcome") or str(body["status"])


def sweep(db: Store, now: datetime | None = None) -> dict[str, int]:
    """Ends the windows that are over, oldest first, in a bounded batch, through the
    same path as the timers: for tasks that were lost or never created."""
    now = now or ledger.now_utc()
    due = db.query(
        store.ESCROWS,
        (Where("status", "in", list(TIMED)), Where("timer_due_at", "<=", now)),
        order_by="timer_due_at",
        limit=config.ESCROW_SWEEP_BATCH_MAX,
    )
    counts: dict[str, int] = {}
    for escrow in due:
        outcome = when_window_ends(db, escrow["id"], escrow["version"], now)
        counts[outcome] = counts.get(outcome, 0) + 1
    logs.info("escrows swept", **counts)
    return counts


def _releasing(amount_dirhams: int | None):
    def change(escrow, row, now):
        held = held_dirhams(escrow)
        gross = held if amount_dirhams is None else amount_dirhams
        if gross > held:
            raise _more_than_held("amount_dirhams", gross, held)
        paid, fee, moved = _pay_freelancer(escrow, gross)
        complete = gross == held
        fields = {"released_dirhams": escrow["released_dirhams"] + gross, "fee_dirhams": escrow["fee_dirhams"] + fee}
        if complete:
            fields.update(status=RELEASED, released_at=now)
        return Change(
            fields,
            moved,
            EventKind.ESCROW_RELEASED,
            {"released_dirhams": gross, "paid_dirhams": paid, "fee_dirhams": fee, "partial": not complete},
        )

    return change


def _refunding(escrow, row, now):
    held = held_dirhams(escrow)
    hold = Account.escrow(escrow["id"])
    moved = postings.transfer(hold, Account.user(escrow["client_id"]), escrow.get("coins", {}))
    return Change(
        {"status": REFUNDED, "refunded_dirhams": escrow["refunded_dirhams"] + held, "refunded_at": now},
        moved,
        EventKind.ESCROW_REFUNDED,
        {"refunded_dirhams": held},
    )


def _pay_freelancer(escrow: Mapping[str, Any], gross: int) -> tuple[int, int, tuple[postings.Posting, ...]]:
    """(paid to the freelancer, fee, postings) for `gross` of the escrow's coins. The
    fee is the job fee on everything released so far, less the fees already taken, so
    paying in parts costs what paying at once would; the treasury makes change back to
    the escrow where coins do not divide exactly."""
    if gross == 0:
        return 0, 0, ()
    hold, freelancer = Account.escrow(escrow["id"]), Account.user(escrow["freelancer_id"])
    fee = catalog.job_fee_dirhams(escrow["released_dirhams"] + gross) - escrow["fee_dirhams"]
    moved, _ = postings.pay(hold, PLATFORM_FEES, escrow.get("coins", {}), fee, change_to=hold)
    more, _ = postings.pay(hold, freelancer, _after(escrow, moved), gross - fee, change_to=hold)
    return gross - fee, fee, moved + more


def _after(escrow: Mapping[str, Any], moved: tuple[postings.Posting, ...]) -> dict[str, int]:
    """The escrow's coins once `moved` is applied."""
    return catalog.add(escrow.get("coins", {}), postings.net(moved, Account.escrow(escrow["id"])))


def _more_than_held(field: str, asked: int, held: int) -> errors.ValidationFailed:
    return errors.ValidationFailed(
        fields=[{"field": field, "message": f"at most {held} dirhams are still held"}], held_dirhams=held, asked_dirhams=asked
    )


def _move(
    db: Store, actor: Actor, escrow_id: str, action: Action | None, change, *, idempotency=None, decide=None
) -> ledger.Response:
    """One transition, in one ledger transaction: the row of the table, the change, the
    state version and the timers, the audit of an admin's act, the event. `decide`, for
    the system, picks the action from the escrow as read, or says why there is none."""
    doc, hold = store.escrow(escrow_id), Account.escrow(escrow_id)

    def operation(reader: ledger.Reader) -> ledger.Plan:
        escrow = reader.escrow(escrow_id)
        if escrow is None:
            raise errors.NotFound()
        chosen = decide(escrow) if decide else action
        if isinstance(chosen, str) and not isinstance(chosen, Action):
            return ledger.Plan(entry=None, respond=lambda _: ledger.Response(200, {"outcome": chosen}))
        assert isinstance(chosen, Action), "an action, or the reason there is none"
        row = transition(actor, escrow, chosen)
        result = change(escrow, row, reader.now)
        before, after = EscrowStatus(escrow["status"]), EscrowStatus(result.fields.get("status", row.to or escrow["status"]))
        fields = {**result.fields, "status": after, "updated_at": reader.now}
        told = {**facts(escrow), **(result.told or {})}
        if after != before:
            fields["version"] = escrow["version"] + 1
            if before in TIMED:
                told["cancel_timer"] = task_id(escrow_id, escrow["version"])
                fields.update(timer_due_at=None, review_ends_at=None, refund_response_ends_at=None)
            if after in TIMED:
                window = TIMED[after]
                seconds = (
                    config.settings().escrow_review_window_seconds
                    if window is Window.REVIEW
                    else config.settings().escrow_refund_response_seconds
                )
                due = reader.now + timedelta(seconds=seconds)
                fields.update(timer_due_at=due, **{f"{window}_ends_at": due})
                told["schedule_timer"] = {
                    "task_id": task_id(escrow_id, fields["version"]),
                    "at": due,
                    "payload": {"escrow_id": escrow_id, "version": fields["version"]},
                }
            if after not in OPEN:
                fields["closed_at"] = reader.now
        documents: dict[store.Doc, Mapping[str, Any]] = {doc: fields}
        if after not in OPEN and before in OPEN:
            documents[store.escrow_milestone(escrow["job_id"], escrow["milestone"])] = {"open_escrow_id": None}
        if row.role is Role.ADMIN:
            documents.update(
                audit.record(
                    actor=actor.uid,
                    action=f"escrow_{row.action}",
                    target=str(hold),
                    now=reader.now,
                    before={"status": before, "held_dirhams": held_dirhams(escrow)},
                    after={"status": after, **{k: v for k, v in fields.items() if k.endswith("_dirhams")}},
                    reason=(result.told or {}).get("note"),
                )
            )
        entry = None
        if result.moved:
            assert row.entry is not None, "money moves only on the rows with an entry type"
            entry = postings.Entry(
                row.entry,
                result.moved,
                refs={"escrow_id": escrow_id, "job_id": escrow["job_id"]},
                memo={
                    "from_status": before,
                    "action": row.action,
                    **{k: v for k, v in (result.told or {}).items() if k.endswith("_dirhams")},
                },
                parties=(escrow["client_id"], escrow["freelancer_id"]),
            )
        elif row.entry is not None and after == before:
            raise errors.ValidationFailed(fields=[{"field": "amount_dirhams", "message": "must move something"}])
        events = (ledger.Event(result.event, told),) if result.event else ()
        return ledger.Plan(
            entry=entry,
            documents=documents,
            events=events,
            respond=lambda outcome: ledger.Response(200, render({**escrow, **fields, "coins": _after(escrow, result.moved)})),
        )

    return ledger.execute(db, operation, actor=actor.uid, idempotency=idempotency, language=actor.language)
