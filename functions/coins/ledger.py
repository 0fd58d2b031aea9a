"""THE transaction module: every balance change in GUILD Coins goes through `execute`.

One call runs one Firestore transaction (retried as a whole on contention) that:
1. checks the request's claim on its idempotency key, then reads every document it will
   change (all reads first);
2. asks the operation what to do (pure, from what was read) and validates it: postings
   balance per tier, no user or hold account ends below zero in any tier;
3. writes the accounts, the journal entry, the business documents and the idempotency
   record holding the response, all in the same commit.

Accounts: `user:{uid}` (the coins of `wallets/{uid}`), the holds `escrow:{id}` and
`withdrawal:{id}` (the coins field of their business document), `treasury` (the issuer)
and `platform:fees`. The last two are hot and are never documents written here: their
balances are derived from the ledger (every tier of every entry sums to zero, so the
treasury is the negative of everything outstanding). Each wallet numbers its own entries
(`seq`); there is no global counter, which would cap the whole system at about one
write a second.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

from . import catalog, config, errors, logs

TREASURY = "treasury"
PLATFORM_FEES = "platform:fees"
USER_PREFIX = "user:"

WALLETS = "wallets"
# Holds keep their coins on their business document: `escrow:{id}` on escrows/{id}.
HOLDING_COLLECTIONS = {"escrow": "escrows", "withdrawal": "withdrawals"}
LEDGER = "ledger"
IDEMPOTENCY = "idempotency"

ENTRY_TYPES = frozenset(
    {
        "purchase_issue",
        "escrow_lock",
        "escrow_release",
        "escrow_refund",
        "withdrawal_hold",
        "withdrawal_paid",
        "withdrawal_rejected",
        "admin_adjust",
    }
)


def user_account(uid: str) -> str:
    return USER_PREFIX + uid


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


# What callers hand in.


@dataclass(frozen=True)
class Idempotency:
    """A request's Idempotency-Key, scoped to its caller, and the fingerprint of what it asked."""

    scope: str
    key: str
    fingerprint: str

    @staticmethod
    def of(scope: str, key: str, operation: str, body: Mapping[str, Any]) -> "Idempotency":
        canonical = json.dumps({"operation": operation, "body": body}, sort_keys=True, separators=(",", ":"))
        return Idempotency(scope=scope, key=key, fingerprint=hashlib.sha256(canonical.encode()).hexdigest())

    @property
    def document_id(self) -> str:
        # Hashed: keys are caller-chosen text, document ids have rules of their own.
        return hashlib.sha256(f"{self.scope}\n{self.key}".encode()).hexdigest()


@dataclass(frozen=True)
class Posting:
    """`count` coins of `tier` move from one account to another."""

    tier: str
    count: int
    source: str
    destination: str
    # Change made by the treasury inside a payment (coins broken into smaller ones).
    change: bool = False


@dataclass(frozen=True)
class Entry:
    type: str
    postings: tuple[Posting, ...]
    refs: Mapping[str, str] = field(default_factory=dict)
    memo: Mapping[str, Any] = field(default_factory=dict)
    # Users the entry concerns beyond those whose wallets it moves (for notifications):
    # a freelancer when the client's coins are locked for their job.
    parties: tuple[str, ...] = ()


@dataclass(frozen=True)
class Response:
    """What the caller gets, and what a replay of the same key gets again."""

    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """What `Plan.respond` sees after the writes are decided."""

    entry_id: str | None
    wallets: Mapping[str, dict[str, Any]]


@dataclass(frozen=True)
class Plan:
    """An operation's decision: at most one journal entry, the business documents it
    writes (created or merged), and the response built from the outcome."""

    entry: Entry | None
    respond: Callable[[Outcome], Response]
    documents: Mapping[Any, dict[str, Any]] = field(default_factory=dict)


class Reader:
    """The reads of one transaction attempt. Every document the ledger writes is read
    through here first, so all reads precede all writes."""

    def __init__(self, db, transaction, now: datetime, entry_id: str) -> None:
        self.db = db
        self.transaction = transaction
        self.now = now
        # The id the journal entry will have, for business documents that refer to it.
        self.entry_id = entry_id
        self._wallets: dict[str, dict[str, Any]] = {}
        self._documents: dict[str, dict[str, Any] | None] = {}

    def wallet(self, uid: str) -> dict[str, Any]:
        """The wallet document (an empty one if it does not exist yet). Do not mutate."""
        if uid not in self._wallets:
            snapshot = self.db.collection(WALLETS).document(uid).get(transaction=self.transaction)
            self._wallets[uid] = snapshot.to_dict() if snapshot.exists else empty_wallet(uid, self.now)
        return self._wallets[uid]

    def document(self, ref) -> dict[str, Any] | None:
        """A document (None if missing), read once per attempt. Do not mutate."""
        if ref.path not in self._documents:
            snapshot = ref.get(transaction=self.transaction)
            self._documents[ref.path] = snapshot.to_dict() if snapshot.exists else None
        return self._documents[ref.path]


Operation = Callable[[Reader], Plan]


def empty_wallet(uid: str, now: datetime) -> dict[str, Any]:
    return {
        "user_id": uid,
        "coins": {},
        "balance_dirhams": 0,
        "held_dirhams": 0,
        "kyc_status": "none",
        "stats": {},
        "seq": 0,
        "created_at": now,
        "updated_at": now,
    }


# The one entry point.


def execute(
    db,
    operation: Operation,
    *,
    actor: str,
    idempotency: Idempotency | None = None,
    claim: "Claim | None" = None,
    clock: Callable[[], datetime] = now_utc,
    sleep: Callable[[float], None] = time.sleep,
) -> Response:
    """Runs `operation` in one transaction, retried on contention; see the module doc.

    With an idempotency key the work has two atomic phases (as in Stripe's design): the
    key is first claimed with a plain create, so that of many concurrent requests with
    one key exactly one works and the others answer at once (stored response, or 409
    request_in_progress); the work transaction then checks that it still owns the claim
    and stores the response in the same commit as the work. A domain error raised by the
    operation is stored too (a replay gets the same 4xx) and then raised.

    Work that spans an outside call (a payment gateway) claims the key itself with
    `claim`, runs its phases, and passes the claim to the last `execute`, which settles it.
    """
    if idempotency is not None:
        assert claim is None, "give the key or a claim on it, not both"
        claimed = claim_key(db, idempotency, clock())
        if isinstance(claimed, Response):
            return claimed
        try:
            return execute(db, operation, actor=actor, claim=claimed, clock=clock, sleep=sleep)
        except BaseException:
            # A stored refusal settled the claim already; anything else gives it back.
            release(db, claimed)
            raise
    return _run(db, operation, actor, claim, clock, sleep)


def _run(db, operation, actor, claim, clock, sleep) -> Response:
    from google.api_core import exceptions as api_exceptions

    entry_id = db.collection(LEDGER).document().id
    deadline = time.monotonic() + config.TRANSACTION_DEADLINE_SECONDS
    for attempt in range(config.TRANSACTION_ATTEMPTS_MAX):
        if attempt > 0 and time.monotonic() > deadline:
            break
        transaction = db.transaction(max_attempts=1)
        try:
            result = _attempt(db, transaction, operation, claim, actor, entry_id, clock())
        except api_exceptions.Aborted as error:
            # A read waited too long for a lock another transaction holds.
            logs.info("transaction aborted", attempt=attempt, at="read", reason=str(error)[:120])
        except ValueError as error:
            # A single-attempt commit that aborted is reported as ValueError from Aborted.
            if not isinstance(error.__cause__, api_exceptions.Aborted):
                raise
            logs.info("transaction aborted", attempt=attempt, at="commit", reason=str(error.__cause__)[:120])
        else:
            if isinstance(result, errors.CoinsError):
                raise result
            return result
        backoff = min(config.TRANSACTION_BACKOFF_CAP_SECONDS, config.TRANSACTION_BACKOFF_BASE_SECONDS * 2**attempt)
        sleep(random.uniform(0, backoff))
    logs.warning("transaction contention exhausted", attempts=attempt + 1, actor=actor)
    raise errors.Unavailable()


def _attempt(db, transaction, operation, claim, actor, entry_id, now) -> Response | errors.CoinsError:
    from google.cloud import firestore

    @firestore.transactional
    def body(transaction) -> Response | errors.CoinsError:
        reader = Reader(db, transaction, now, entry_id)
        idempotency_ref = None
        if claim is not None:
            idempotency_ref = db.collection(IDEMPOTENCY).document(claim.idempotency.document_id)
            record = idempotency_ref.get(transaction=transaction).to_dict() or {}
            if record.get("state") != "in_progress" or record.get("owner") != claim.owner:
                # Our claim lapsed and another request took the key over: it does the work.
                raise errors.RequestInProgress()
        try:
            plan = operation(reader)
            writes, outcome = _apply(reader, plan, entry_id, actor, now)
            response = plan.respond(outcome)
        except errors.CoinsError as error:
            if not error.final:
                raise
            if claim is not None:
                _store_response(transaction, idempotency_ref, claim.idempotency, Response(error.status, error.to_body()), now)
            return error
        for ref, data, merge in writes.values():
            transaction.set(ref, data, merge=merge)
        if claim is not None:
            _store_response(transaction, idempotency_ref, claim.idempotency, response, now)
        if plan.entry is not None:
            committed.append(plan.entry)
        return response

    committed: list[Entry] = []
    result = body(transaction)
    for entry in committed[-1:]:
        # After the commit, so that a logged movement is one that happened.
        logs.info(
            "ledger entry",
            entry_id=entry_id,
            entry_type=entry.type,
            accounts=sorted({p.source for p in entry.postings} | {p.destination for p in entry.postings}),
            actor=actor,
        )
    return result


def _apply(reader: Reader, plan: Plan, entry_id: str, actor: str, now: datetime):
    """Validates the plan against what was read and computes every write, keyed by
    document path. Pure given the reads."""
    writes: dict[str, tuple[Any, dict[str, Any], bool]] = {}
    for ref, data in plan.documents.items():
        writes[ref.path] = (ref, dict(data), True)
    wallets_after: dict[str, dict[str, Any]] = {}
    entry = plan.entry
    if entry is not None:
        deltas = _validate(entry)
        users: dict[str, dict[str, Any]] = {}
        for account, delta in deltas.items():
            if account.startswith(USER_PREFIX):
                uid = account[len(USER_PREFIX) :]
                before = reader.wallet(uid)
                ref = reader.db.collection(WALLETS).document(uid)
                # What the plan itself writes on the wallet (a withdrawal's hold marker).
                _, extra, _ = writes.get(ref.path, (ref, {}, True))
                coins_after = _non_negative(account, before.get("coins", {}), delta)
                balance_after = catalog.value_dirhams(coins_after)
                seq = before.get("seq", 0) + 1
                wallet = {**before, **extra, "coins": coins_after, "balance_dirhams": balance_after, "seq": seq, "updated_at": now}
                wallets_after[uid] = wallet
                writes[ref.path] = (ref, wallet, False)
                users[uid] = {
                    "coins_delta": catalog.normalize(delta),
                    "amount_dirhams": catalog.value_dirhams(delta),
                    "balance_after_dirhams": balance_after,
                    "coins_after": coins_after,
                    "seq": seq,
                }
            elif account.split(":", 1)[0] in HOLDING_COLLECTIONS:
                # A hold (escrow, withdrawal) keeps its coins on its business document.
                kind, hold_id = account.split(":", 1)
                ref = reader.db.collection(HOLDING_COLLECTIONS[kind]).document(hold_id)
                _, data, _ = writes.get(ref.path, (ref, {}, True))
                before = reader.document(ref) or {}
                data["coins"] = _non_negative(account, before.get("coins", {}), delta)
                writes[ref.path] = (ref, data, True)
            else:
                # treasury and platform:fees are derived from the ledger, never written.
                assert account in (TREASURY, PLATFORM_FEES), account
        ref = reader.db.collection(LEDGER).document(entry_id)
        writes[ref.path] = (
            ref,
            {
                "id": entry_id,
                "type": entry.type,
                "postings": [
                    {"tier": p.tier, "count": p.count, "from": p.source, "to": p.destination, "change": p.change}
                    for p in entry.postings
                ],
                "accounts": sorted(deltas),
                "user_ids": sorted(users),
                "users": users,
                "parties": sorted(set(entry.parties) | set(users)),
                "refs": dict(entry.refs),
                "memo": dict(entry.memo),
                "actor": actor,
                "created_at": now,
            },
            False,
        )
    return writes, Outcome(entry_id=entry_id if entry is not None else None, wallets=wallets_after)


def _non_negative(account: str, before: Mapping[str, int], delta: Mapping[str, int]) -> dict[str, int]:
    after = catalog.add(before, delta)
    negative = {symbol: count for symbol, count in after.items() if count < 0}
    if negative:
        shortfall = -sum(catalog.TIER_BY_SYMBOL[s].value_dirhams * c for s, c in negative.items())
        raise errors.InsufficientFunds(account=account, missing_coins=negative, shortfall_dirhams=shortfall)
    return after


def _validate(entry: Entry) -> dict[str, dict[str, int]]:
    """Signed per-tier deltas per account. A posting moves a positive count between two
    different accounts, so every tier of the entry sums to zero by construction; the
    assertion below keeps it that way."""
    assert entry.type in ENTRY_TYPES, entry.type
    assert entry.postings, "an entry moves something"
    deltas: dict[str, dict[str, int]] = {}
    for posting in entry.postings:
        assert posting.tier in catalog.TIER_BY_SYMBOL, posting.tier
        assert isinstance(posting.count, int) and posting.count > 0, posting
        assert posting.source != posting.destination, posting
        for account, sign in ((posting.source, -1), (posting.destination, 1)):
            tiers = deltas.setdefault(account, {})
            tiers[posting.tier] = tiers.get(posting.tier, 0) + sign * posting.count
    for symbol in catalog.SYMBOLS:
        assert sum(tiers.get(symbol, 0) for tiers in deltas.values()) == 0, "unbalanced entry"
    return deltas


# Idempotency records: `idempotency/{sha256(scope, key)}`, deleted by a TTL policy on
# `expires_at` (firestore.indexes.json). An expired record that TTL has not yet removed
# counts as absent. A record is `in_progress` (claimed by `owner` until `locked_until`)
# or `done` (holding the response).


@dataclass(frozen=True)
class Claim:
    """The right to do the work of one idempotency key, until the lease runs out."""

    idempotency: Idempotency
    owner: str


def claim_key(db, idempotency: Idempotency, now: datetime | None = None) -> Claim | Response:
    """Claims the key for this request, or answers for it: the stored response if the key
    is done, 409 if another request holds it, 422 if the key was used for another request."""
    now = now or now_utc()
    from google.api_core import exceptions as api_exceptions

    ref = db.collection(IDEMPOTENCY).document(idempotency.document_id)
    owner = uuid.uuid4().hex
    claim = {
        "scope": idempotency.scope,
        "fingerprint": idempotency.fingerprint,
        "state": "in_progress",
        "owner": owner,
        "locked_until": now + timedelta(seconds=config.IDEMPOTENCY_LEASE_SECONDS),
        "created_at": now,
        "expires_at": now + timedelta(seconds=config.IDEMPOTENCY_TTL_SECONDS),
    }
    for _ in range(config.TRANSACTION_ATTEMPTS_MAX):
        try:
            ref.create(claim)
            return Claim(idempotency, owner)
        except api_exceptions.Conflict:
            pass
        snapshot = ref.get()
        if not snapshot.exists:
            continue  # released between our create and our read
        record = snapshot.to_dict()
        lapsed = record["expires_at"] <= now or (record["state"] == "in_progress" and record["locked_until"] <= now)
        if not lapsed:
            if record["fingerprint"] != idempotency.fingerprint:
                raise errors.IdempotencyKeyReused()
            if record["state"] != "done":
                raise errors.RequestInProgress()
            return Response(record["status"], json.loads(record["response_json"]))
        try:
            # Clear an expired record or a crashed request's claim, unless someone else
            # changed it since we read it; then compete for the key with a create again.
            ref.delete(option=db.write_option(last_update_time=snapshot.update_time))
        except (api_exceptions.FailedPrecondition, api_exceptions.Conflict, api_exceptions.NotFound):
            pass
    raise errors.Unavailable()


def release(db, claim: Claim) -> None:
    """Gives up a claim that no response settled (after a failure that stored nothing),
    so that a retry with the same key can run. Best effort: the lease runs out anyway."""
    ref = db.collection(IDEMPOTENCY).document(claim.idempotency.document_id)
    try:
        snapshot = ref.get()
        if snapshot.exists and snapshot.get("state") == "in_progress" and snapshot.get("owner") == claim.owner:
            ref.delete(option=db.write_option(last_update_time=snapshot.update_time))
    except Exception as error:  # noqa: BLE001 - the original failure is what matters
        logs.warning("could not release an idempotency claim", error=type(error).__name__)


def _store_response(transaction, ref, idempotency: Idempotency, response: Response, now: datetime) -> None:
    transaction.set(
        ref,
        {
            "scope": idempotency.scope,
            "fingerprint": idempotency.fingerprint,
            "state": "done",
            "status": response.status,
            # Stored as text, so that a replay returns exactly the same body.
            "response_json": json.dumps(response.body, separators=(",", ":")),
            "created_at": now,
            "expires_at": now + timedelta(seconds=config.IDEMPOTENCY_TTL_SECONDS),
        },
    )


# Posting builders shared by the operations.


def transfer(source: str, destination: str, coins: Mapping[str, int], *, change: bool = False) -> tuple[Posting, ...]:
    return tuple(Posting(s, c, source, destination, change) for s, c in catalog.normalize(coins).items())


def issue(uid: str, coins: Mapping[str, int]) -> tuple[Posting, ...]:
    """Coins enter circulation: treasury -> user."""
    return transfer(TREASURY, user_account(uid), coins)


def retire(uid: str, coins: Mapping[str, int]) -> tuple[Posting, ...]:
    """Coins leave circulation: user -> treasury."""
    return transfer(user_account(uid), TREASURY, coins)


def pay(
    source: str, destination: str, held: Mapping[str, int], amount_dirhams: int, *, change_to: str | None = None
) -> tuple[tuple[Posting, ...], dict[str, int]]:
    """Postings that move exactly `amount_dirhams` from `source` (holding `held`) to
    `destination`, and the coins taken from `source`. Coins are chosen by the catalog's
    selection; when no exact combination exists the treasury makes change: it takes the
    coins, gives the destination the fewest coins of the amount and `change_to` (the
    source unless said otherwise) the difference. Value is conserved exactly."""
    if amount_dirhams == 0:
        return (), {}
    selection = catalog.select(held, amount_dirhams)
    if selection is None:
        balance = catalog.value_dirhams(held)
        raise errors.InsufficientFunds(balance_dirhams=balance, shortfall_dirhams=amount_dirhams - balance)
    if not selection.change:
        return transfer(source, destination, selection.pay), selection.pay
    postings = (
        transfer(source, TREASURY, selection.pay, change=True)
        + transfer(TREASURY, destination, catalog.fewest_coins(amount_dirhams), change=True)
        + transfer(TREASURY, change_to or source, selection.change, change=True)
    )
    return postings, selection.pay


# Replay: the whole ledger recomputed, for reconciliation and the tests' conservation check.


def replay(db, visit: Callable[[dict[str, Any]], None] | None = None) -> dict[str, dict[str, int]]:
    """Every account's balance per tier, from every entry of the ledger, read in pages.
    `visit` sees each entry too."""
    from .pages import stream_all

    balances: dict[str, dict[str, int]] = {}
    for entry in stream_all(db.collection(LEDGER)):
        if visit is not None:
            visit(entry)
        add_postings(balances, entry["postings"])
    return {account: catalog.normalize(tiers) for account, tiers in balances.items()}


def add_postings(balances: dict[str, dict[str, int]], postings) -> dict[str, dict[str, int]]:
    """Adds stored postings (`{"tier", "count", "from", "to"}`) to per-account balances."""
    for posting in postings:
        for account, sign in ((posting["from"], -1), (posting["to"], 1)):
            tiers = balances.setdefault(account, {})
            tiers[posting["tier"]] = tiers.get(posting["tier"], 0) + sign * posting["count"]
    return balances
