"""The one door to Firestore. Every collection name and document path lives here, and so
does the database they live in (one setting, `COINS_DATABASE`). Services name documents
with `Doc` values (`store.escrow(id)`), read them through a `Reader` inside a
transaction or a `Store` outside one, and hand back their writes keyed by `Doc`; none of
them touches a Firestore client, reference or query.
"""

from __future__ import annotations

import base64
import secrets
import string
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable, Iterator, Mapping

from . import errors

# Collections of the coins database.
WALLETS = "wallets"
KYC_HISTORY = "kyc_history"  # wallets/{uid}/kyc_history/{id}
LEDGER = "ledger"
IDEMPOTENCY = "idempotency"
ESCROWS = "escrows"
ESCROW_MILESTONES = "escrow_milestones"  # one open escrow per (job, milestone)
WITHDRAWALS = "withdrawals"
PRIVATE = "private"  # withdrawals/{id}/private/destination: the unmasked destination
PURCHASES = "purchases"
PURCHASE_EVENTS = "events"  # purchases/{id}/events/{event_id}
PURCHASE_REFUNDS = "purchase_refunds"  # purchase_refunds/{purchase_id}: its refund, and the refund hold
AUDIT = "audit"
KYC = "kyc"  # kyc/{uid}: the identity a user submitted (admins only: the full QID)
LIMITS = "limits"  # limits/{uid}: the user's recent purchases, withdrawals and job payments
RECONCILIATION = "reconciliation"
# reconciliation_checkpoint/{name}: balances per account verified up to a watermark, in
# shards ({name}-{n}: a document holds at most 1 MiB); "current" is the incremental
# run's, a full replay writes its own as it goes and makes it current when done.
RECONCILIATION_CHECKPOINT = "reconciliation_checkpoint"
RECONCILIATION_RUNS = "reconciliation_runs"  # reconciliation_runs/{run_id}: a chunked full replay
EFFECTS = "ledger_effects"  # ledger_effects/{entry_id}: the trigger applied this entry
EFFECT_FAILURES = "effect_failures"  # effects a trigger could not apply, by entry or event id
OUTBOX = "outbox"  # outbox/{event_id}: what happened, for notifications, push and the app's job
VAULT = "vault"  # vault/summary/shards/{n}
VAULT_DAILY = "vault_daily"  # vault_daily/{day}/shards/{n}
SHARDS = "shards"

# Firestore's auto-ids: 20 characters of this alphabet.
_AUTO_ID_ALPHABET = string.ascii_letters + string.digits
AUTO_ID_LENGTH = 20
# What of Firestore's error text an exception carries into logs and answers: enough to
# tell what failed, never a whole request echoed back.
ERROR_TEXT_MAX = 200
CONTENTION_TEXT_MAX = 120
# A milestone lock's id: the first 40 hex digits (160 bits) of the job and milestone's
# SHA-256, well clear of collisions and of Firestore's 1,500-byte id limit.
MILESTONE_ID_HEX_DIGITS = 40
# Pages of a full scan (reconciliation, replay): memory stays flat however large the
# collection grows, and a page stays well under Firestore's response limits.
SCAN_PAGE_SIZE = 500
# A range read (the ledger by time) in pages this large: each page is one query, and a
# query's cost has a part that does not depend on how much it returns (measured on the
# emulator, which answers every query by scanning the collection: 0.4 s at 65,000 entries).
RANGE_PAGE_SIZE = 5000


@dataclass(frozen=True)
class Doc:
    """A document's path in the coins database, as segments: ("wallets", "alice")."""

    path: tuple[str, ...]

    @property
    def id(self) -> str:
        return self.path[-1]

    @property
    def collection(self) -> str:
        return self.path[-2]

    def __str__(self) -> str:
        return "/".join(self.path)


def existing(document: dict[str, Any] | None) -> dict[str, Any]:
    """A document the flow has seen before (it created or found it): one gone since is
    404, not a crash."""
    if document is None:
        raise errors.NotFound()
    return document


def id_in(document_name: str, collection: str) -> str:
    """`projects/P/databases/D/documents/ledger/ID` -> `ID`, for a top-level collection
    (what a document event names); ValueError for a document elsewhere."""
    parent, _, document_id = document_name.rpartition("/")
    if not (parent == collection or parent.endswith("/documents/" + collection)) or not document_id:
        raise ValueError(f"not a document of {collection}: {document_name}")
    return document_id


def new_id() -> str:
    """A fresh document id, made as Firestore makes its auto-ids."""
    return "".join(secrets.choice(_AUTO_ID_ALPHABET) for _ in range(AUTO_ID_LENGTH))


def wallet(uid: str) -> Doc:
    return Doc((WALLETS, uid))


def kyc_change(uid: str, change_id: str) -> Doc:
    return Doc((WALLETS, uid, KYC_HISTORY, change_id))


def entry(entry_id: str) -> Doc:
    return Doc((LEDGER, entry_id))


def idempotency(record_id: str) -> Doc:
    return Doc((IDEMPOTENCY, record_id))


def escrow(escrow_id: str) -> Doc:
    return Doc((ESCROWS, escrow_id))


def escrow_milestone(job_id: str, milestone: str) -> Doc:
    """The lock that keeps one escrow open per (job, milestone): milestone names are
    the app's text, so the id is a hash."""
    import hashlib

    return Doc((ESCROW_MILESTONES, hashlib.sha256(f"{job_id}\n{milestone}".encode()).hexdigest()[:MILESTONE_ID_HEX_DIGITS]))


def withdrawal(withdrawal_id: str) -> Doc:
    return Doc((WITHDRAWALS, withdrawal_id))


def withdrawal_destination(withdrawal_id: str) -> Doc:
    return Doc((WITHDRAWALS, withdrawal_id, PRIVATE, "destination"))


def purchase(purchase_id: str) -> Doc:
    return Doc((PURCHASES, purchase_id))


def purchase_refund(purchase_id: str) -> Doc:
    return Doc((PURCHASE_REFUNDS, purchase_id))


def purchase_event(purchase_id: str, event_id: str) -> Doc:
    return Doc((PURCHASES, purchase_id, PURCHASE_EVENTS, event_id))


def kyc(uid: str) -> Doc:
    return Doc((KYC, uid))


def limits(uid: str) -> Doc:
    return Doc((LIMITS, uid))


def audit(audit_id: str) -> Doc:
    return Doc((AUDIT, audit_id))


def reconciliation(day: str) -> Doc:
    return Doc((RECONCILIATION, day))


def reconciliation_checkpoint(name: str) -> Doc:
    return Doc((RECONCILIATION_CHECKPOINT, name))


def reconciliation_shard(name: str, shard: int) -> Doc:
    return Doc((RECONCILIATION_CHECKPOINT, f"{name}-{shard}"))


def reconciliation_run(run_id: str) -> Doc:
    return Doc((RECONCILIATION_RUNS, run_id))


def effects_marker(entry_id: str) -> Doc:
    return Doc((EFFECTS, entry_id))


def effect_failure(entry_id: str) -> Doc:
    return Doc((EFFECT_FAILURES, entry_id))


def outbox(event_id: str) -> Doc:
    return Doc((OUTBOX, event_id))


def vault_shard(shard: int, day: str | None = None) -> Doc:
    """A shard of the vault's totals (`day` None) or of one day's."""
    parent = (VAULT_DAILY, day) if day else (VAULT, "summary")
    return Doc((*parent, SHARDS, str(shard)))


def account_document(account) -> Doc | None:
    """The document that keeps an account's coins: a wallet or a hold's business
    document; None for the derived accounts (treasury, platform fees)."""
    from .domain import AccountKind

    kept_on = {
        AccountKind.USER: wallet,
        AccountKind.ESCROW: escrow,
        AccountKind.WITHDRAWAL: withdrawal,
        AccountKind.REFUND: purchase_refund,
    }
    return kept_on.get(account.kind, lambda _: None)(account.id)


@dataclass(frozen=True)
class Increment:
    """A blind numeric increment of one field (no read needed)."""

    amount: int


@dataclass(frozen=True)
class Write:
    data: Mapping[str, Any]
    # Merge into the document (create it if missing) rather than replace it.
    merge: bool = True


class Contention(Exception):
    """A write or a transaction attempt aborted on a lock another transaction holds;
    retry it. `docs` are the documents the attempt read or was reading, the candidates
    for what it contended on."""

    def __init__(self, at: str, reason: str, docs: tuple["Doc", ...] = ()) -> None:
        super().__init__(f"{at}: {reason}")
        self.at = at
        self.reason = reason
        self.docs = docs


class Refused(Exception):
    """Firestore refused a write as invalid (an id or a value it does not accept)."""


@dataclass(frozen=True)
class Where:
    """One filter of a query: (field, operator, value), in Firestore's operators."""

    field: str
    op: str
    value: Any


class Reader:
    """The reads of one transaction attempt, in domain terms. All reads precede all
    writes: the work reads through here and hands its writes back, and `Store.attempt`
    applies them at the end. A document the work changes from what it was (a wallet, an
    escrow) is read here first; one it only creates or increments blindly (an entry, the
    vault's shards) need not be."""

    def __init__(self, store: "Store", transaction, now: datetime, entry_id: str) -> None:
        self._store = store
        self._transaction = transaction
        self.now = now
        # The id the journal entry will have, for business documents that refer to it.
        self.entry_id = entry_id
        self._read: dict[Doc, dict[str, Any] | None] = {}
        # Every document this attempt read or began to read, in order: what an aborted
        # attempt may have contended on.
        self.touched: list[Doc] = []

    def get(self, doc: Doc) -> dict[str, Any] | None:
        """A document (None if missing), read once per attempt. Do not mutate."""
        if doc not in self._read:
            self.touched.append(doc)
            snapshot = self._store._ref(doc).get(transaction=self._transaction)
            self._read[doc] = snapshot.to_dict() if snapshot.exists else None
        return self._read[doc]

    def wallet(self, uid: str) -> dict[str, Any]:
        """The wallet (a new empty one if it does not exist yet). Do not mutate."""
        from .domain import new_wallet

        return self.get(wallet(uid)) or new_wallet(uid, self.now)

    def escrow(self, escrow_id: str) -> dict[str, Any] | None:
        return self.get(escrow(escrow_id))

    def limits(self, uid: str) -> dict[str, Any] | None:
        return self.get(limits(uid))

    def kyc(self, uid: str) -> dict[str, Any] | None:
        return self.get(kyc(uid))

    def escrow_milestone(self, job_id: str, milestone: str) -> dict[str, Any] | None:
        return self.get(escrow_milestone(job_id, milestone))

    def withdrawal(self, withdrawal_id: str) -> dict[str, Any] | None:
        return self.get(withdrawal(withdrawal_id))

    def purchase(self, purchase_id: str) -> dict[str, Any] | None:
        return self.get(purchase(purchase_id))

    def purchase_refund(self, purchase_id: str) -> dict[str, Any] | None:
        return self.get(purchase_refund(purchase_id))


class Store:
    """The coins database. Made once per process by `clients.store()`."""

    def __init__(self, client) -> None:
        self.client = client

    @staticmethod
    def connect(project: str, database: str) -> "Store":
        """The database of a project (the emulator's where FIRESTORE_EMULATOR_HOST is set)."""
        from google.cloud import firestore

        return Store(firestore.Client(project=project, database=database))

    def _ref(self, doc: Doc):
        return self.client.document(*doc.path)

    # Single documents, outside transactions.

    def get(self, doc: Doc) -> dict[str, Any] | None:
        snapshot = self._ref(doc).get()
        return snapshot.to_dict() if snapshot.exists else None

    def get_versioned(self, doc: Doc) -> tuple[dict[str, Any] | None, Any]:
        """A document and its version, for `delete_if_unchanged`."""
        snapshot = self._ref(doc).get()
        return (snapshot.to_dict(), snapshot.update_time) if snapshot.exists else (None, None)

    def create(self, doc: Doc, data: Mapping[str, Any]) -> bool:
        """Creates the document; False if it exists already. Raises Contention when a
        transaction that read the document held it past the lock timeout (which the
        client library reports as a Conflict too: it is not "exists")."""
        from google.api_core import exceptions

        try:
            self._ref(doc).create(_encode(data))
            return True
        except exceptions.AlreadyExists:
            return False
        except exceptions.Aborted as error:
            raise Contention("create", str(error)[:CONTENTION_TEXT_MAX], (doc,)) from None

    def set(self, doc: Doc, data: Mapping[str, Any], *, merge: bool = False) -> None:
        self._ref(doc).set(_encode(data), merge=merge)

    def delete(self, doc: Doc) -> None:
        self._ref(doc).delete()

    def delete_if_unchanged(self, doc: Doc, version) -> bool:
        """Deletes the document unless it changed since `version` was read."""
        from google.api_core import exceptions

        try:
            self._ref(doc).delete(option=self.client.write_option(last_update_time=version))
            return True
        except (exceptions.FailedPrecondition, exceptions.Conflict, exceptions.NotFound):
            return False

    # Transactions.

    def attempt(
        self,
        work: Callable[[Reader], tuple[Mapping[Doc, Write], Any]],
        *,
        now: datetime,
        entry_id: str,
    ) -> Any:
        """One attempt of one transaction: `work` reads through the Reader and returns the
        writes and a result; the writes commit together or not at all. Raises Contention
        when the attempt aborted on a lock (retrying is the caller's: see ledger.execute),
        Refused when Firestore refused a write as invalid."""
        from google.api_core import exceptions
        from google.cloud import firestore

        readers: list[Reader] = []

        @firestore.transactional
        def body(transaction):
            readers.append(Reader(self, transaction, now, entry_id))
            writes, result = work(readers[-1])
            for doc, write in writes.items():
                transaction.set(self._ref(doc), _encode(write.data), merge=write.merge)
            return result

        try:
            return body(self.client.transaction(max_attempts=1))
        except exceptions.InvalidArgument as error:
            raise Refused(str(error)[:ERROR_TEXT_MAX]) from None
        except exceptions.Aborted as error:
            # A read waited too long for a lock another transaction holds.
            raise Contention("read", str(error)[:CONTENTION_TEXT_MAX], _touched(readers)) from None
        except ValueError as error:
            # A single-attempt commit that aborted is reported as ValueError from Aborted.
            if not isinstance(error.__cause__, exceptions.Aborted):
                raise
            raise Contention("commit", str(error.__cause__)[:CONTENTION_TEXT_MAX], _touched(readers)) from None

    # Queries.

    def query(
        self,
        collection: str,
        where: tuple[Where, ...] = (),
        *,
        order_by: str | None = None,
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Documents of a top-level collection matching every filter."""
        query = self._query(collection, where)
        if order_by is not None:
            query = query.order_by(order_by)
        if limit is not None:
            query = query.limit(limit)
        for snapshot in query.stream():
            yield snapshot.to_dict()

    def count(self, collection: str, where: tuple[Where, ...] = ()) -> int:
        """How many documents of a top-level collection match every filter (an
        aggregation: the documents themselves are not read)."""
        return int(self._query(collection, where).count().get()[0][0].value)

    def get_many(self, docs: Iterable[Doc]) -> dict[Doc, dict[str, Any] | None]:
        """Several documents in one round trip per page (None for a missing one)."""
        wanted = list(dict.fromkeys(docs))
        found: dict[Doc, dict[str, Any] | None] = {}
        for start in range(0, len(wanted), SCAN_PAGE_SIZE):
            page = wanted[start : start + SCAN_PAGE_SIZE]
            by_path = {self._ref(doc).path: doc for doc in page}
            for snapshot in self.client.get_all([self._ref(doc) for doc in page]):
                found[by_path[snapshot.reference.path]] = snapshot.to_dict() if snapshot.exists else None
        return found

    def after(
        self, collection: str, field: str, after: Any, *, until: Any = None, limit: int | None = None, start: Any = None
    ) -> Iterator[dict[str, Any]]:
        """Documents whose `field` is after `after` (and at most `until`), in order of
        `field` then id, read in pages; `start`: resume after the document of this id."""
        upper = (Where(field, "<=", until),) if until is not None else ()
        return self._ordered(collection, field, (Where(field, ">", after), *upper), limit=limit, start=start)

    def between(
        self, collection: str, field: str, start: Any, end: Any, *, where: tuple[Where, ...] = ()
    ) -> Iterator[dict[str, Any]]:
        """Documents whose `field` is from `start` (included) to `end` (excluded), and that
        match `where`, in order of `field` then id, read in pages: never all held at once."""
        bounds = (Where(field, ">=", start), Where(field, "<", end))
        return self._ordered(collection, field, (*where, *bounds), limit=None, start=None)

    def _ordered(
        self, collection: str, field: str, where: tuple[Where, ...], *, limit: int | None, start: str | None
    ) -> Iterator[dict[str, Any]]:
        query = self._query(collection, where).order_by(field).order_by("__name__")
        read = 0
        last = self.client.collection(collection).document(start).get() if start is not None else None
        while limit is None or read < limit:
            size = RANGE_PAGE_SIZE if limit is None else min(RANGE_PAGE_SIZE, limit - read)
            page = list((query.start_after(last) if last is not None else query).limit(size).stream())
            for snapshot in page:
                yield snapshot.to_dict()
            read += len(page)
            if len(page) < size:
                return
            last = page[-1]

    def scan_page(self, collection: str, *, after: str | None, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` documents of a collection in order of id, after the id `after`."""
        query = self.client.collection(collection).order_by("__name__").limit(limit)
        if after is not None:
            query = query.start_after(self.client.collection(collection).document(after).get())
        return [snapshot.to_dict() | {"__id__": snapshot.id} for snapshot in query.stream()]

    def scan(self, collection: str) -> Iterator[dict[str, Any]]:
        """Every document of a top-level collection, read in pages by id."""
        query = self.client.collection(collection).order_by("__name__").limit(SCAN_PAGE_SIZE)
        last = None
        while True:
            page = list((query.start_after(last) if last is not None else query).stream())
            for snapshot in page:
                yield snapshot.to_dict()
            if len(page) < SCAN_PAGE_SIZE:
                return
            last = page[-1]

    def subcollection(self, parent: Doc, name: str, *, order_by: str, limit: int) -> list[dict[str, Any]]:
        """The newest documents of a document's subcollection (a wallet's KYC history)."""
        query = self._ref(parent).collection(name).order_by(order_by, direction="DESCENDING").limit(limit)
        return [snapshot.to_dict() for snapshot in query.stream()]

    def vault_shards(self, day: str | None = None) -> Iterator[dict[str, Any]]:
        parent = vault_shard(0, day).path[:-2]
        for snapshot in self.client.document(*parent).collection(SHARDS).stream():
            yield snapshot.to_dict()

    def page(
        self,
        collection: str,
        where: tuple[Where, ...],
        *,
        limit: int,
        cursor: str | None,
        owns: Callable[[Mapping[str, Any]], bool],
        render: Callable[[dict[str, Any]], dict[str, Any]],
        newest_first: bool = True,
        order_by: str = "created_at",
    ) -> dict[str, Any]:
        """One page of a list, ordered by `order_by` (`created_at` unless said, then id).
        The cursor is opaque to callers (the base64url of the id of the previous page's
        last document); it must name a document `owns` accepts, so that a cursor from
        someone else's list reveals nothing."""
        direction = "DESCENDING" if newest_first else "ASCENDING"
        query = self._query(collection, where).order_by(order_by, direction=direction).order_by("__name__", direction=direction)
        if cursor is not None:
            last = self.client.collection(collection).document(_decode_cursor(cursor)).get()
            if not last.exists or not owns(last.to_dict()):
                raise _bad_cursor()
            query = query.start_after(last)
        page = list(query.limit(limit + 1).stream())
        items = [render(snapshot.to_dict()) for snapshot in page[:limit]]
        next_cursor = _encode_cursor(page[limit - 1].id) if len(page) > limit else None
        return {"items": items, "next_cursor": next_cursor}

    def _query(self, collection: str, where: tuple[Where, ...]):
        from google.cloud import firestore

        query = self.client.collection(collection)
        for condition in where:
            query = query.where(filter=firestore.FieldFilter(condition.field, condition.op, condition.value))
        return query


def _touched(readers: list[Reader]) -> tuple[Doc, ...]:
    return tuple(readers[-1].touched) if readers else ()


def _encode(data: Mapping[str, Any]) -> dict[str, Any]:
    """Our values in Firestore's terms: an Increment becomes a server-side increment."""
    if not any(isinstance(value, (Increment, dict)) for value in data.values()):
        return dict(data)
    from google.cloud import firestore

    def encode(value):
        if isinstance(value, Increment):
            return firestore.Increment(value.amount)
        if isinstance(value, dict):
            return {key: encode(inner) for key, inner in value.items()}
        return value

    return {key: encode(value) for key, value in data.items()}


def _bad_cursor() -> errors.ValidationFailed:
    return errors.ValidationFailed(fields=[{"field": "cursor", "message": "unknown cursor"}])


def _encode_cursor(document_id: str) -> str:
    return base64.urlsafe_b64encode(document_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    from .domain import is_valid_id

    try:
        document_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        document_id = ""
    if not is_valid_id(document_id):
        raise _bad_cursor()
    return document_id
