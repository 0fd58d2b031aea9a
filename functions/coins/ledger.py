"""THE transaction module: every balance change in GUILD Coins goes through `execute`.

One call runs one Firestore transaction (queued and retried as a whole on contention,
see `execute`) that:
1. reads the request's idempotency record (replaying a stored answer, or, for work that
   holds a claim around a gateway call, checking the claim is still ours), then every
   document it will change (all reads first);
2. asks the operation what to do (pure, from what was read) and validates it: postings
   balance per tier, no user or hold account ends below zero in any tier;
3. writes the accounts, the journal entry, the business documents, the outbox events,
   the entry's pending effects marker and the idempotency record holding the response,
   all in the same commit.

A user's own request also gives the language it asked for (coins.language), which is
remembered on the caller's wallet when the transaction writes that wallet anyway: the
app keeps its language on the phone, and this is how notices learn it, at no write or
read of its own.

Writes that move no money (a dispute, a KYC decision, the trigger's effects) go through
here too, as plans without an entry: they get the same queueing on contention and the
same idempotency. Accounts and the pure rules of double entry are in `domain` and
`postings`; idempotency records in `idempotency`; documents in `store`.

The treasury and `platform:fees` are hot and are never documents written here: their
balances are derived from the ledger. Each wallet numbers its own entries (`seq`);
there is no global counter, which would cap the whole system at about one write a second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from . import backoff, catalog, config, errors, logs, postings, signals, store
from . import idempotency as keys
from .domain import AccountKind, EventKind
from .idempotency import Claim, Idempotency, Response
from .postings import Entry
from .store import Doc, Reader, Store, Write

__all__ = ["Entry", "Idempotency", "Outcome", "Plan", "Reader", "Response", "execute", "now_utc"]


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Outcome:
    """What `Plan.respond` sees after the writes are decided."""

    entry_id: str | None
    wallets: Mapping[str, dict[str, Any]]


@dataclass(frozen=True)
class Event:
    """Something the people concerned hear about (coins.notify delivers it): written to
    the outbox in the same commit as what it announces, so it is never lost nor told of
    something that did not happen."""

    kind: EventKind
    facts: Mapping[str, Any] = field(default_factory=dict)

    def document(self, event_id: str, *, actor: str, now: datetime, entry_id: str | None = None) -> dict[str, Any]:
        """As kept in `outbox/{event_id}`; `pending_since` is cleared once it is
        delivered, so that the repair finds what no trigger delivered (coins.repair)."""
        return {
            "id": event_id,
            "kind": self.kind,
            "facts": dict(self.facts),
            "entry_id": entry_id,
            "actor": actor,
            "at": now,
            "pending_since": now,
        }


@dataclass(frozen=True)
class Plan:
    """An operation's decision: at most one journal entry, the business documents it
    merges into (or creates), the events it announces, and the response built from the
    outcome."""

    entry: Entry | None
    respond: Callable[[Outcome], Response]
    documents: Mapping[Doc, Mapping[str, Any]] = field(default_factory=dict)
    events: tuple[Event, ...] = ()


Operation = Callable[[Reader], Plan]


def execute(
    db: Store,
    operation: Operation,
    *,
    actor: str,
    idempotency: Idempotency | None = None,
    claim: Claim | None = None,
    answers: bool = True,
    language: str | None = None,
    clock: Callable[[], datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    answer_wait_seconds: float = config.IDEMPOTENCY_ANSWER_WAIT_SECONDS,
) -> Response:
    """Runs `operation` in one transaction; see the module doc.

    The fast path is one attempt: with an idempotency key, the key's record is read in
    the same transaction and the response written in the same commit as the work. An
    attempt that aborts on contention is not simply re-run (concurrent requests would
    keep aborting each other): the request queues. With a key, it claims the key first
    (`idempotency.claimed`), so that of a storm of requests with one key one does the
    work and the others wait for its stored answer; then it waits its turn for the
    documents the aborted attempt read (`idempotency.queue`), and runs the transaction
    again, with backoff, until it commits or the deadline passes (503, nothing done).

    A domain error raised by the operation is stored too (a replay gets the same 4xx)
    and then raised. Work that spans an outside call (a payment gateway) holds the claim
    itself (`idempotency.claimed`) and passes it to each `execute` of its steps: every
    step checks the claim is still ours and stores a refusal as the answer; the step
    that ends the work stores its response too, the others pass `answers=False`.

    `language`: what the request of `actor`, a user acting for themselves, asked to read
    (its Accept-Language, coins.language); set on their wallet if this writes it. Never
    given for an admin's or the system's work: their language is not the user's.
    `clock`: the moment of each attempt (default: now_utc, looked up at the call).
    """
    assert idempotency is None or claim is None, "give the key or a claim on it, not both"
    clock = clock or now_utc
    entry_id = store.new_id()
    deadline = time.monotonic() + config.TRANSACTION_DEADLINE_SECONDS

    def attempt(key: Idempotency | None, held: Claim | None) -> Response:
        now = clock()
        try:
            result, entry = db.attempt(
                lambda reader: _work(reader, operation, key, held, answers, actor, language, now), now=now, entry_id=entry_id
            )
        except store.Refused as refused:
            logs.error("firestore refused a write", actor=actor, reason=str(refused))
            raise errors.Unstorable() from None
        if held is not None and (answers or isinstance(result, errors.CoinsError)):
            held.settled = True
        if entry is not None:
            # After the commit, so that a logged movement is one that happened.
            logs.info(
                "ledger entry",
                entry_id=entry_id,
                entry_type=entry.type,
                actor=actor,
                accounts=sorted({str(p.source) for p in entry.postings} | {str(p.destination) for p in entry.postings}),
            )
        if isinstance(result, errors.CoinsError):
            raise result
        return result

    try:
        return attempt(idempotency, claim)
    except store.Contention as contention:
        logs.info("transaction aborted; queueing", at=contention.at, reason=contention.reason)
        contended = contention.docs
    except _KeyHeld:
        contended = ()  # another request queued with this key: wait for its answer
    if idempotency is None:
        return _queued(db, lambda: attempt(None, claim), contended, actor, deadline, sleep)
    with keys.claimed(
        db, idempotency, clock(), lease_seconds=config.QUEUED_CLAIM_LEASE_SECONDS, wait_seconds=answer_wait_seconds, sleep=sleep
    ) as held:
        if isinstance(held, Response):
            return held
        return _queued(db, lambda: attempt(None, held), contended, actor, deadline, sleep)


def answered(db: Store, claim: Claim | None, response: Response, *, actor: str) -> Response:
    """Stores `response` as the answer of `claim` (the step that ends a piece of work
    spanning an outside call, having moved no money), and returns it. Without a claim
    (the sweeper's work), only returns it."""
    if claim is None:
        return response

    def operation(reader: Reader) -> Plan:
        return Plan(entry=None, respond=lambda outcome: response)

    return execute(db, operation, actor=actor, claim=claim)


class _KeyHeld(Exception):
    """The fast path found the key claimed by a request that queued."""


def _queued(
    db: Store,
    attempt: Callable[[], Response],
    contended: tuple[Doc, ...],
    actor: str,
    deadline: float,
    sleep: Callable[[float], None],
) -> Response:
    """Attempts after contention: in turn on the contended documents (the key records
    are the claim's business), with backoff, until the deadline."""
    with keys.queue(db, [doc for doc in contended if doc.collection != store.IDEMPOTENCY], sleep=sleep):
        for number in range(1, config.TRANSACTION_ATTEMPTS_MAX):
            try:
                return attempt()
            except store.Contention as contention:
                logs.info("transaction aborted", attempt=number, at=contention.at, reason=contention.reason)
            if time.monotonic() > deadline:
                break
            sleep(
                backoff.delay_seconds(
                    number,
                    base_seconds=config.TRANSACTION_BACKOFF_BASE_SECONDS,
                    cap_seconds=config.TRANSACTION_BACKOFF_CAP_SECONDS,
                )
            )
    logs.warning("transaction contention exhausted", attempts=number + 1, actor=actor)
    raise errors.Unavailable()


def _work(
    reader: Reader,
    operation: Operation,
    idempotency: Idempotency | None,
    claim: Claim | None,
    answers: bool,
    actor: str,
    language: str | None,
    now: datetime,
):
    """One attempt's reads and decisions: (writes, (response or stored refusal, entry))."""
    if claim is not None:
        if not keys.still_owned(reader.get(claim.idempotency.doc), claim):
            # Our claim lapsed and another request took the key over: it does the work.
            raise errors.RequestInProgress()
        idempotency = claim.idempotency
    elif idempotency is not None:
        try:
            known = keys.stored_answer(reader.get(idempotency.doc), idempotency, now)
        except errors.RequestInProgress:
            raise _KeyHeld() from None
        if known is not None:
            return {}, (known, None)  # a replay: nothing written
    answering = idempotency is not None and (claim is None or answers)
    try:
        plan = operation(reader)
        writes, outcome = _writes(reader, plan, actor, now)
        if language is not None:
            _remember_language(writes, store.wallet(actor), language)
        response = plan.respond(outcome)
    except errors.CoinsError as error:
        if not error.final or idempotency is None:
            raise
        return keys.answered(idempotency, Response(error.status, error.to_body()), now), (error, None)
    if answering:
        assert idempotency is not None
        writes.update(keys.answered(idempotency, response, now))
    return writes, (response, plan.entry)


def _remember_language(writes: dict[Doc, Write], wallet: Doc, language: str) -> None:
    """Sets `language` on the caller's wallet if the writes include it and it says
    otherwise: a wallet written whole carries what it had, so an unchanged language is
    left as it is; nothing is read or written for it alone."""
    written = writes.get(wallet)
    if written is not None and written.data.get("language") != language:
        writes[wallet] = Write({**written.data, "language": language}, merge=written.merge)


def effects_pending(entry_id: str, entry_type: str, now: datetime) -> dict[str, Any]:
    """The marker of an entry whose effects are not applied yet (coins.effects replaces
    it with the applied one; coins.repair finds it by `pending_since`)."""
    return {"entry_id": entry_id, "type": entry_type, "pending_since": now}


def _coins_at(before: Mapping[str, Any], now: datetime) -> datetime:
    """When an account document's coins were last written by an entry: its entries are
    those created at or before it (reconciliation compares at that moment). Never moves
    back, should one instance's clock lag another's."""
    previous = before.get("coins_at")
    return max(previous, now) if previous is not None else now


def _writes(reader: Reader, plan: Plan, actor: str, now: datetime) -> tuple[dict[Doc, Write], Outcome]:
    """Validates the plan against what was read and computes every write. Pure given
    the reads."""
    writes: dict[Doc, Write] = {doc: Write(dict(data)) for doc, data in plan.documents.items()}
    for number, event in enumerate(plan.events):
        # Named after the transaction's entry id: the id of the journal entry when money
        # moves, so a notification can be traced to it.
        event_id = reader.entry_id if number == 0 else f"{reader.entry_id}-{number}"
        entry_id = reader.entry_id if plan.entry else None
        writes[store.outbox(event_id)] = Write(event.document(event_id, actor=actor, now=now, entry_id=entry_id), merge=False)
    entry = plan.entry
    if entry is None:
        return writes, Outcome(entry_id=None, wallets={})
    wallets_after: dict[str, dict[str, Any]] = {}
    users: dict[str, dict[str, Any]] = {}
    changes = postings.deltas(entry)
    for account, delta in changes.items():
        if account.kind is AccountKind.USER:
            uid, doc = account.id, store.wallet(account.id)
            before = reader.wallet(uid)
            coins_after = postings.non_negative(account, before.get("coins", {}), delta)
            balance_after = catalog.value_dirhams(coins_after)
            seq = before.get("seq", 0) + 1
            # Merged with what the plan itself writes on the wallet (a withdrawal's hold marker).
            extra = writes[doc].data if doc in writes else {}
            entry_counts, entries_today = signals.count_entry(before.get("entry_counts"), now)
            wallet = {
                **before,
                **extra,
                "coins": coins_after,
                "balance_dirhams": balance_after,
                "seq": seq,
                "updated_at": now,
                "coins_at": _coins_at(before, now),
                "entry_counts": entry_counts,
            }
            why = signals.entries_signal(entries_today)
            if why is not None:
                wallet["signals"], tell = signals.raised(wallet.get("signals"), signals.Signal.MANY_ENTRIES, why, now)
                if tell:
                    event_id = f"{reader.entry_id}-signal-{uid}"
                    facts = {"user_id": uid, "signal": signals.Signal.MANY_ENTRIES, "level": "medium", "why": why}
                    signal = Event(EventKind.FRAUD_SIGNAL, facts)
                    writes[store.outbox(event_id)] = Write(signal.document(event_id, actor=actor, now=now), merge=False)
            wallets_after[uid] = wallet
            writes[doc] = Write(wallet, merge=False)
            users[uid] = {
                "coins_delta": catalog.normalize(delta),
                "amount_dirhams": catalog.value_dirhams(delta),
                "balance_after_dirhams": balance_after,
                "coins_after": coins_after,
                "seq": seq,
            }
        elif account.is_hold:
            # A hold (escrow, withdrawal) keeps its coins on its business document, which
            # is written whole: a merge would keep tiers the new coins no longer have.
            hold_doc = store.account_document(account)
            assert hold_doc is not None, "every hold is kept on a document"
            doc = hold_doc
            before = reader.get(doc) or {}
            data = {**before, **(writes[doc].data if doc in writes else {})}
            data["coins"] = postings.non_negative(account, before.get("coins", {}), delta)
            data["coins_at"] = _coins_at(before, now)
            writes[doc] = Write(data, merge=False)
    writes[store.entry(reader.entry_id)] = Write(
        {
            "id": reader.entry_id,
            "type": entry.type,
            "postings": [posting.stored() for posting in entry.postings],
            "accounts": sorted(str(account) for account in changes),
            "user_ids": sorted(users),
            "users": users,
            "parties": sorted(set(entry.parties) | set(users)),
            "refs": dict(entry.refs),
            "memo": dict(entry.memo),
            "actor": actor,
            "created_at": now,
        },
        merge=False,
    )
    # The entry's effects marker, pending until the trigger (or the repair) applies them.
    writes[store.effects_marker(reader.entry_id)] = Write(effects_pending(reader.entry_id, entry.type, now), merge=False)
    return writes, Outcome(entry_id=reader.entry_id, wallets=wallets_after)
