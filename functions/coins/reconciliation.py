"""Reconciliation: every account recomputed from the ledger and compared with what the
documents say.

Checks: the conservation invariant (every tier sums to zero over all accounts, nothing
but the treasury below zero); every wallet document equals its replay; every escrow and
withdrawal and purchase refund holds what its status says (while open: a withdrawal its
amount, a refund its purchase's value, an escrow its amount less what was released and
refunded; nothing once finished) and its document's coins equal its replay; every issue
entry is the one its purchase records (so a purchase is never issued twice, nor one that
was not paid), and every purchase that says it was issued names its issue entry (a
refunded one too, if it was issued: a refund retires coins, it does not un-issue them);
the vault's derived balances (treasury, platform fees, ...) equal the ledger's; no entry
has effects the trigger could not apply; and nothing a trigger should have done (an
entry's effects, an outbox event's deliveries) has been pending so long that the repair
(coins.repair) must have failed at it.

Three ways to run them:
- `incremental`: from a checkpoint (balances per account, verified up to a watermark,
  `reconciliation_checkpoint/`): the entries after the watermark, the accounts they
  touched and the purchases they issued, then the checkpoint moves to
  RECONCILE_LAG_SECONDS ago. Its cost follows what is new, not the history: the daily
  job and the console's "reconcile now".
- `start_full` / `full_step`: the whole ledger and every document, in chunks of
  FULL_REPLAY_CHUNK chained through Cloud Tasks (`reconciliation_runs/{id}` says how far
  it got); it ends by making its balances the checkpoint. Monthly, and from the console.
- `run`: the same full replay in one call, for tests and small histories.
An account document is compared with its replay as of its own `coins_at` (the entry that
last wrote its coins), so a document read before an entry the run has read is no false
alarm. The other way round is not covered: an entry committed after the run read the
ledger but before it read the document is in the document and not in the replay, and is
reported once (the next run sees both). Reading both at one read time would close it.
Runs do not overlap their checkpoints: one that finds it moved keeps nothing (503).
"""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping

from . import catalog, config, effects, errors, ledger, logs, postings, repair, store
from .domain import Account, AccountKind, EntryType, EventKind, PurchaseStatus
from .escrow import OPEN as OPEN_ESCROW
from .escrow import held_dirhams
from .purchases import REFUND_OPEN
from .store import Store, Where
from .times import rfc3339
from .withdrawals import OPEN as OPEN_WITHDRAWAL

# A stored report keeps this many problems (a Firestore document holds at most 1 MiB);
# the count says how many there were.
STORED_PROBLEMS_MAX = 200


def replay(db: Store, visit: Callable[[dict[str, Any]], None] | None = None) -> postings.Balances:
    """Every account's balance per tier, from every entry of the ledger, read in pages.
    `visit` sees each entry too."""
    balances: postings.Balances = {}
    for entry in db.scan(store.LEDGER):
        if visit is not None:
            visit(entry)
        postings.add_postings(balances, entry["postings"])
    return {account: catalog.normalize(tiers) for account, tiers in balances.items()}


def run(db: Store, *, vault: bool = True, now: datetime | None = None) -> dict[str, Any]:
    """The full replay in one call. The report: `{"ok", "checked", "problems",
    "pending_effects", "pending_outbox"}`. `vault=False` leaves out what the triggers
    derive (the vault, failed effects, the outbox), which lags behind the ledger.

    The vault is compared with the replay of the entries the trigger has applied, so an
    entry whose effects are still on their way is no false alarm: it is counted in
    `pending_effects` (how many, and the oldest's age), as undelivered outbox events are
    in `pending_outbox`. Only what has been pending past the repair's age and
    REPAIR_RUNS_BEFORE_A_PROBLEM of its runs is a problem (`effects_stalled`,
    `outbox_stalled`), with the reason the repair gave, if it tried."""
    now = now or ledger.now_utc()
    checked = {"entries": 0, "wallets": 0, "escrows": 0, "withdrawals": 0, "purchase_refunds": 0, "purchases": 0}
    issues: dict[str, dict[str, Any]] = {}  # issue entries by id

    def visit(entry: dict[str, Any]) -> None:
        checked["entries"] += 1
        if entry["type"] == EntryType.PURCHASE_ISSUE:
            issues[entry["id"]] = entry

    balances = replay(db, visit)
    problems = postings.conservation_problems(balances)
    for collection in ACCOUNT_COLLECTIONS:
        for document in db.scan(collection):
            checked[collection] += 1
            account = account_of(collection, document)
            problems.extend(account_problems(account, document, balances.get(account, {})))
    purchases: dict[str, dict[str, Any]] = {}
    for purchase in db.scan(store.PURCHASES):
        checked["purchases"] += 1
        purchases[purchase["id"]] = purchase
        problems.extend(purchase_problems(purchase, issues.get(purchase.get("entry_id") or "")))
    for entry in issues.values():
        problems.extend(issue_problems(entry, purchases.get(entry.get("refs", {}).get("purchase_id") or "")))
    report: dict[str, Any] = {}
    if vault:
        trigger_problems, report = triggers(db, balances, now)
        problems.extend(trigger_problems)
    return {"ok": not problems, "checked": checked, "problems": problems, **report}


# The checks, each on one thing: a full replay and an incremental run share them.

# Collections whose documents keep an account's coins, and the account each one keeps.
ACCOUNT_COLLECTIONS = (store.WALLETS, store.ESCROWS, store.WITHDRAWALS, store.PURCHASE_REFUNDS)
HOLDS = {
    AccountKind.ESCROW: (OPEN_ESCROW, held_dirhams),
    AccountKind.WITHDRAWAL: (OPEN_WITHDRAWAL, lambda withdrawal: withdrawal["amount_dirhams"]),
    AccountKind.REFUND: (REFUND_OPEN, lambda refund: refund["value_dirhams"]),
}


def account_of(collection: str, document: Mapping[str, Any]) -> Account:
    if collection == store.WALLETS:
        return Account.user(document["user_id"])
    kind = {store.ESCROWS: Account.escrow, store.WITHDRAWALS: Account.withdrawal, store.PURCHASE_REFUNDS: Account.refund}
    return kind[collection](document.get("id") or document["purchase_id"])


def account_problems(account: Account, document: Mapping[str, Any] | None, replayed: Mapping[str, int]) -> list[dict[str, Any]]:
    """A wallet or a hold's document against the replay of its account."""
    replayed = catalog.normalize(replayed)
    document = document or {}
    if account.kind is AccountKind.USER:
        if catalog.normalize(document.get("coins", {})) != replayed or document.get(
            "balance_dirhams", 0 if not document else None
        ) != catalog.value_dirhams(replayed):
            return [{"kind": "wallet_differs", "user_id": account.id, "document": document.get("coins", {}), "ledger": replayed}]
        return []
    open_states, still_held = HOLDS[account.kind]
    problems = []
    expected = still_held(document) if document.get("status") in open_states else 0
    if catalog.value_dirhams(replayed) != expected:
        problems.append(
            {
                "kind": f"{account.kind}_hold_wrong",
                "id": account.id,
                "status": document.get("status"),
                "held_dirhams": catalog.value_dirhams(replayed),
                "expected_dirhams": expected,
            }
        )
    if catalog.normalize(document.get("coins", {})) != replayed:
        problems.append(
            {"kind": f"{account.kind}_differs", "id": account.id, "document": document.get("coins", {}), "ledger": replayed}
        )
    return problems


ISSUED_STATES = (PurchaseStatus.PAID, PurchaseStatus.REFUNDING)


def issue_problems(entry: Mapping[str, Any], purchase: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """An issue entry must be the one its purchase records: a second issue, or one for a
    purchase never issued, records another (or none)."""
    purchase_id = entry.get("refs", {}).get("purchase_id")
    if purchase is None:
        return [{"kind": "issue_without_purchase", "purchase_id": purchase_id, "entry_id": entry["id"]}]
    if purchase.get("entry_id") != entry["id"]:
        return [{"kind": "purchase_issues", "id": purchase_id, "status": purchase["status"], "extra_entry_id": entry["id"]}]
    return []


def purchase_problems(purchase: Mapping[str, Any], issue: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """A purchase that says it was issued (paid or refunding, or one with an entry: a
    refunded one was issued if it has it) must name its own issue entry."""
    says_issued = purchase["status"] in ISSUED_STATES or purchase.get("entry_id")
    named = issue is not None and issue["type"] == EntryType.PURCHASE_ISSUE and issue["refs"].get("purchase_id") == purchase["id"]
    if says_issued and not named:
        return [
            {"kind": "purchase_issues", "id": purchase["id"], "status": purchase["status"], "entry_id": purchase.get("entry_id")}
        ]
    return []


def triggers(
    db: Store, balances: postings.Balances, now: datetime, pending_entries: Iterable[Mapping[str, Any]] | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """What the triggers derive, against the ledger: the vault equals the replay less the
    entries whose effects are still pending; failed effects; how much is pending, and
    what has stalled. `pending_entries`: those entries, if the caller has them."""
    markers = list(db.query(store.EFFECTS, (Where("pending_since", ">", EPOCH),)))
    if pending_entries is None:
        found = db.get_many(store.entry(marker["entry_id"]) for marker in markers)
        pending_entries = [entry for entry in found.values() if entry is not None]
    unapplied: postings.Balances = {}
    for entry in pending_entries:
        postings.add_postings(unapplied, entry["postings"])
    applied = {account: dict(tiers) for account, tiers in balances.items()}
    for account, tiers in unapplied.items():
        for tier, count in tiers.items():
            applied.setdefault(account, {})[tier] = applied.get(account, {}).get(tier, 0) - count
    problems = _vault_problems(db, {account: catalog.normalize(tiers) for account, tiers in applied.items()})
    for failure in db.scan(store.EFFECT_FAILURES):
        problems.append(
            {"kind": "effects_failed", "source": failure["source"], "id": failure["id"], "failures": failure["failures"]}
        )
    settings = config.settings()
    report: dict[str, Any] = {}
    waiting = [marker["pending_since"] for marker in markers]
    report["pending_effects"] = _age({"count": len(waiting)}, min(waiting, default=None), now)
    limit = stall_limit_seconds(settings.effects_repair_after_seconds)
    stalled = [moment for moment in waiting if (now - moment).total_seconds() > limit]
    if stalled:
        problems.append(
            _age(
                {"kind": "effects_stalled", "pending": len(stalled), "reasons": _reasons(db, store.EFFECTS, now, limit)},
                min(stalled),
                now,
            )
        )
    outbox = db.count(store.OUTBOX, (Where("pending_since", ">", EPOCH),))
    oldest_event = repair.pending(db, store.OUTBOX, before=now, limit=1)
    report["pending_outbox"] = _age({"count": outbox}, oldest_event[0]["pending_since"] if oldest_event else None, now)
    limit = stall_limit_seconds(settings.outbox_repair_after_seconds)
    if report["pending_outbox"]["oldest_age_seconds"] > limit:
        problems.append(
            _age(
                {
                    "kind": "outbox_stalled",
                    "pending": db.count(store.OUTBOX, (Where("pending_since", "<", now - timedelta(seconds=limit)),)),
                    "reasons": _reasons(db, store.OUTBOX, now, limit),
                },
                oldest_event[0]["pending_since"],
                now,
            )
        )
    return problems, report


# The incremental run, from the checkpoint.

CURRENT = "current"


def incremental(db: Store, *, now: datetime | None = None) -> dict[str, Any]:
    """Verifies what is new since the checkpoint: every entry after its watermark (the
    invariant over all accounts, the checkpoint's and theirs), each account they touched
    against its document, each purchase they issued against its purchase, each purchase
    changed since (`updated_at`) against the entry it names, and what the triggers
    derive; then moves the checkpoint to RECONCILE_LAG_SECONDS ago. Without a
    checkpoint it starts from the beginning (the first run reads the whole ledger once).
    The report is `run`'s, with `checked.history_entries`: how many entries the
    checkpoint now stands for."""
    now = now or ledger.now_utc()
    horizon = now - timedelta(seconds=config.RECONCILE_LAG_SECONDS)
    state = db.get(store.reconciliation_checkpoint(CURRENT))
    watermark: datetime = state["watermark"] if state else EPOCH
    kept = load_balances(db, state["version"]) if state else {}
    balances = {account: dict(tiers) for account, tiers in kept.items()}
    changes: dict[Account, list[tuple[datetime, dict[str, int]]]] = {}
    issues: list[dict[str, Any]] = []
    new = folded = 0
    for entry in db.after(store.LEDGER, "created_at", watermark):
        new += 1
        postings.add_postings(balances, entry["postings"])
        _note_changes(changes, entry)
        if entry["created_at"] <= horizon:
            postings.add_postings(kept, entry["postings"])
            folded += 1
        if entry["type"] == EntryType.PURCHASE_ISSUE:
            issues.append(entry)
    balances = {account: catalog.normalize(tiers) for account, tiers in balances.items()}
    problems = postings.conservation_problems(balances)
    problems.extend(_documents_problems(db, balances, changes))
    found = db.get_many(store.purchase(entry["refs"].get("purchase_id") or "-") for entry in issues)
    for entry in issues:
        problems.extend(issue_problems(entry, found[store.purchase(entry["refs"].get("purchase_id") or "-")]))
    # The purchases changed since: each one that says it was issued names its entry.
    changed = list(db.query(store.PURCHASES, (Where("updated_at", ">", watermark),)))
    named = db.get_many(store.entry(purchase["entry_id"]) for purchase in changed if purchase.get("entry_id"))
    for purchase in changed:
        issue = named.get(store.entry(purchase["entry_id"])) if purchase.get("entry_id") else None
        problems.extend(purchase_problems(purchase, issue))
    trigger_problems, report = triggers(db, balances, now)
    problems.extend(trigger_problems)
    history = (state["entries"] if state else 0) + folded
    save_balances(db, CURRENT, kept, watermark=max(watermark, horizon), entries=history, previous=state)
    checked = {"entries": new, "accounts": len(changes), "purchases": len(issues) + len(changed), "history_entries": history}
    return {"ok": not problems, "checked": checked, "problems": problems, **report}


def _documents_problems(
    db: Store, balances: postings.Balances, changes: Mapping[Account, list[tuple[datetime, dict[str, int]]]]
) -> list[dict[str, Any]]:
    """Each account `changes` touched, against its document as of the document's own
    `coins_at` (what entries after it wrote, the document cannot show yet)."""
    documents = {account: store.account_document(account) for account in changes}
    found = db.get_many(doc for doc in documents.values() if doc is not None)
    problems: list[dict[str, Any]] = []
    for account, doc in sorted((account, doc) for account, doc in documents.items() if doc is not None):
        document = found[doc]
        problems.extend(account_problems(account, document, as_of(balances.get(account, {}), changes[account], document)))
    return problems


def _note_changes(changes: dict[Account, list[tuple[datetime, dict[str, int]]]], entry: Mapping[str, Any]) -> None:
    """Each account's change by `entry`, with when it was made (for `as_of`)."""
    for account, delta in postings.add_postings({}, entry["postings"]).items():
        changes.setdefault(account, []).append((entry["created_at"], delta))


def as_of(balance: Mapping[str, int], changes: Iterable[tuple[datetime, dict[str, int]]], document) -> dict[str, int]:
    """`balance` less the changes made after the document's `coins_at`."""
    at = (document or {}).get("coins_at")
    result = dict(balance)
    if at is None:
        return result
    for created_at, delta in changes:
        if created_at > at:
            for tier, count in delta.items():
                result[tier] = result.get(tier, 0) - count
    return catalog.normalize(result)


def _shard_of(account: Account) -> int:
    return zlib.crc32(str(account).encode()) % config.CHECKPOINT_SHARDS


def load_balances(db: Store, version: str) -> postings.Balances:
    """The balances a version of a checkpoint kept (every shard of it). A shard missing
    means another run replaced that version meanwhile: 503, to run again on the new one,
    never empty balances built upon."""
    found = db.get_many(store.reconciliation_shard(version, shard) for shard in range(config.CHECKPOINT_SHARDS))
    if any(document is None for document in found.values()):
        raise errors.Unavailable("Another reconciliation moved the checkpoint meanwhile; run this one again.")
    balances: postings.Balances = {}
    for document in found.values():
        for text, tiers in (document or {}).get("balances", {}).items():
            balances[Account.parse(text)] = dict(tiers)
    return balances


def save_balances(
    db: Store,
    name: str,
    balances: postings.Balances,
    *,
    watermark: datetime,
    entries: int,
    previous: Mapping[str, Any] | None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Writes `balances` as a new version of checkpoint `name` (its shards first, then
    the document naming them: a crash in between leaves the previous version whole),
    then deletes the previous version's shards. Returns the version. If another run
    moved the checkpoint since `previous` was read, nothing is kept (its new shards are
    deleted) and the run is 503, to run again from the checkpoint as it now is."""
    version = f"{name}-{store.new_id()}"
    shards: list[dict[str, Any]] = [{"balances": {}} for _ in range(config.CHECKPOINT_SHARDS)]
    for account, tiers in balances.items():
        tiers = catalog.normalize(tiers)
        if tiers:  # a closed hold, an emptied wallet: nothing to keep
            shards[_shard_of(account)]["balances"][str(account)] = tiers
    for number, shard in enumerate(shards):
        db.set(store.reconciliation_shard(version, number), shard)
    now_kept = db.get(store.reconciliation_checkpoint(name))
    if (now_kept or {}).get("version") != (previous or {}).get("version"):
        for number in range(config.CHECKPOINT_SHARDS):
            db.delete(store.reconciliation_shard(version, number))
        raise errors.Unavailable("Another reconciliation moved the checkpoint meanwhile; run this one again.")
    db.set(
        store.reconciliation_checkpoint(name),
        {"version": version, "watermark": watermark, "entries": entries, "at": ledger.now_utc(), **(extra or {})},
    )
    if previous is not None and previous.get("version"):
        for number in range(config.CHECKPOINT_SHARDS):
            db.delete(store.reconciliation_shard(previous["version"], number))
    return version


# The full replay in chunks, chained through Cloud Tasks.

FULL_COLLECTIONS = (*ACCOUNT_COLLECTIONS, store.PURCHASES)


def start_full(db: Store, scheduler, *, by: str, now: datetime | None = None) -> dict[str, Any]:
    """Starts a full replay (409 while another runs) and schedules its first step;
    answers the run's progress, `reconciliation_runs/{id}`."""
    now = now or ledger.now_utc()
    for running in db.query(store.RECONCILIATION_RUNS, (Where("status", "==", "running"),)):
        if running["updated_at"] > now - timedelta(seconds=FULL_STEP_STALE_SECONDS):
            raise errors.InvalidState("A full replay is running already.", status="running", run_id=running["id"])
        _abandon(db, running, now)  # died: its task gave up; what it kept is dropped
    run_id = now.strftime("%Y%m%d%H%M%S") + "-" + store.new_id()[:6]
    progress = {
        "id": run_id,
        "status": "running",
        "phase": "ledger",
        "by": by,
        "horizon": now - timedelta(seconds=config.RECONCILE_LAG_SECONDS),
        "started_at": now,
        "updated_at": now,
        "steps": 0,
        "entries": 0,
        "documents": 0,
        "collection": 0,
        "after": None,
        "problems": [],
        "problem_count": 0,
    }
    db.set(store.reconciliation_run(run_id), progress)
    scheduler.schedule(f"reconcile-{run_id}-0", now, {"run_id": run_id})
    return render_run(progress)


# A running replay not moved for this long died (a step's task gave up): another may start.
FULL_STEP_STALE_SECONDS = 30 * 60


def _abandon(db: Store, run: Mapping[str, Any], now: datetime) -> None:
    """A run that died: marked abandoned, and the balances it kept deleted."""
    name = f"run-{run['id']}"
    held = db.get(store.reconciliation_checkpoint(name))
    if held is not None:
        for number in range(config.CHECKPOINT_SHARDS):
            db.delete(store.reconciliation_shard(held["version"], number))
        db.delete(store.reconciliation_checkpoint(name))
    db.set(store.reconciliation_run(run["id"]), {"status": "abandoned", "updated_at": now}, merge=True)


def full_step(db: Store, scheduler, run_id: str, *, now: datetime | None = None) -> dict[str, Any]:
    """One chunk of a full replay: FULL_REPLAY_CHUNK entries of the ledger (to the run's
    horizon), or documents of one collection; then the next step is scheduled, or the
    run ends: its balances become the checkpoint. A step retried after a crash does its
    chunk again (the balances and their cursor are written together)."""
    now = now or ledger.now_utc()
    progress = db.get(store.reconciliation_run(run_id))
    if progress is None:
        raise errors.NotFound("No such reconciliation run.")
    if progress["status"] != "running":
        return render_run(progress)
    name = f"run-{run_id}"
    held = db.get(store.reconciliation_checkpoint(name))
    balances = load_balances(db, held["version"]) if held else {}
    problems: list[dict[str, Any]] = []
    changes: dict[str, Any] = {"steps": progress["steps"] + 1, "updated_at": now}
    if progress["phase"] == "ledger":
        start = held.get("cursor") if held else None
        chunk = list(
            db.after(store.LEDGER, "created_at", EPOCH, until=progress["horizon"], limit=config.FULL_REPLAY_CHUNK, start=start)
        )
        issues = [entry for entry in chunk if entry["type"] == EntryType.PURCHASE_ISSUE]
        for entry in chunk:
            postings.add_postings(balances, entry["postings"])
        found = db.get_many(store.purchase(entry["refs"].get("purchase_id") or "-") for entry in issues)
        for entry in issues:
            problems.extend(issue_problems(entry, found[store.purchase(entry["refs"].get("purchase_id") or "-")]))
        cursor = chunk[-1]["id"] if chunk else (held or {}).get("cursor")
        entries = (held["entries"] if held else 0) + len(chunk)
        save_balances(db, name, balances, watermark=progress["horizon"], entries=entries, previous=held, extra={"cursor": cursor})
        changes["entries"] = entries
        if len(chunk) < config.FULL_REPLAY_CHUNK:
            problems.extend(postings.conservation_problems({a: catalog.normalize(t) for a, t in balances.items()}))
            changes["phase"] = "documents"
    else:
        later, since = _after_horizon(db, balances, progress["horizon"])
        collection = FULL_COLLECTIONS[progress["collection"]]
        page = db.scan_page(collection, after=progress["after"], limit=config.FULL_REPLAY_CHUNK)
        if collection == store.PURCHASES:
            found = db.get_many(store.entry(p["entry_id"]) for p in page if p.get("entry_id"))
            for purchase in page:
                issue = found.get(store.entry(purchase["entry_id"])) if purchase.get("entry_id") else None
                problems.extend(purchase_problems(purchase, issue))
        else:
            for document in page:
                account = account_of(collection, document)
                problems.extend(
                    account_problems(account, document, as_of(later.get(account, {}), since.get(account, []), document))
                )
        changes["documents"] = progress["documents"] + len(page)
        if len(page) < config.FULL_REPLAY_CHUNK:
            changes.update(collection=progress["collection"] + 1, after=None)
        else:
            changes["after"] = page[-1]["__id__"]
        if changes.get("collection", progress["collection"]) == len(FULL_COLLECTIONS):
            trigger_problems, _ = triggers(db, {a: catalog.normalize(t) for a, t in later.items()}, now)
            problems.extend(trigger_problems)
    stored = [*progress["problems"], *problems][:STORED_PROBLEMS_MAX]
    changes.update(problems=stored, problem_count=progress["problem_count"] + len(problems))
    done = changes.get("collection") == len(FULL_COLLECTIONS)
    if done:
        current = db.get(store.reconciliation_checkpoint(CURRENT))
        held = db.get(store.reconciliation_checkpoint(name))
        assert held is not None, "the ledger phase kept its balances"
        # The replay's balances become the checkpoint, as of its horizon.
        db.set(
            store.reconciliation_checkpoint(CURRENT),
            {"version": held["version"], "watermark": progress["horizon"], "entries": held["entries"], "at": now},
        )
        db.delete(store.reconciliation_checkpoint(name))
        if current is not None and current.get("version") != held["version"]:
            for number in range(config.CHECKPOINT_SHARDS):
                db.delete(store.reconciliation_shard(current["version"], number))
        changes.update(status="done", ok=changes["problem_count"] == 0, finished_at=now)
    db.set(store.reconciliation_run(run_id), changes, merge=True)
    after = {**progress, **changes}
    if done:
        _tell(db, f"full-{run_id}", after["problem_count"], after["problems"], now)
    else:
        scheduler.schedule(f"reconcile-{run_id}-{after['steps']}", now, {"run_id": run_id})
    return render_run(after)


def _after_horizon(db: Store, balances: postings.Balances, horizon: datetime):
    """The balances now (the horizon's and every entry since), and each account's
    changes since, for documents compared as of their own `coins_at`."""
    later = {account: dict(tiers) for account, tiers in balances.items()}
    since: dict[Account, list[tuple[datetime, dict[str, int]]]] = {}
    for entry in db.after(store.LEDGER, "created_at", horizon):
        postings.add_postings(later, entry["postings"])
        _note_changes(since, entry)
    return later, since


def render_run(progress: Mapping[str, Any]) -> dict[str, Any]:
    """A full replay's progress, as the console shows it."""
    return {
        "id": progress["id"],
        "status": progress["status"],
        "phase": progress["phase"] if progress["status"] == "running" else None,
        "ok": progress.get("ok"),
        "steps": progress["steps"],
        "entries": progress["entries"],
        "documents": progress["documents"],
        "problem_count": progress["problem_count"],
        "problems": progress["problems"],
        "horizon": rfc3339(progress["horizon"]),
        "started_at": rfc3339(progress["started_at"]),
        "finished_at": rfc3339(progress["finished_at"]) if progress.get("finished_at") else None,
    }


def get_run(db: Store, run_id: str) -> dict[str, Any]:
    progress = db.get(store.reconciliation_run(run_id))
    if progress is None:
        raise errors.NotFound("No such reconciliation run.")
    return render_run(progress)


# Timestamps are all after this; `pending_since > EPOCH` is "pending since any time".
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# A stalled problem names the reasons of this many of the oldest.
STALLED_REASONS_MAX = 20


def stall_limit_seconds(repair_after_seconds: int) -> int:
    """How long something may be pending before it is a problem: the repair's age and
    REPAIR_RUNS_BEFORE_A_PROBLEM of its runs."""
    return repair_after_seconds + config.REPAIR_RUNS_BEFORE_A_PROBLEM * config.REPAIR_INTERVAL_SECONDS


def _age(counts: dict[str, Any], oldest: datetime | None, now: datetime) -> dict[str, Any]:
    return {**counts, "oldest_age_seconds": round((now - oldest).total_seconds(), 1) if oldest else 0.0}


def _reasons(db: Store, collection: str, now: datetime, limit_seconds: int) -> list[dict[str, str]]:
    """Why the oldest stalled ones are still pending: what the repair said, if it tried."""
    stalled = repair.pending(db, collection, before=now - timedelta(seconds=limit_seconds), limit=STALLED_REASONS_MAX)
    return [
        {
            "id": document.get("entry_id") or document["id"],
            "reason": document.get("repair_error") or "the repair has not tried it: is the repair job running?",
        }
        for document in stalled
    ]


def _vault_problems(db: Store, balances: postings.Balances) -> list[dict[str, Any]]:
    """The trigger's running totals against the replay of what it applied, per account
    class: any difference is something written behind the trigger's back."""
    expected = effects.class_balances(balances)
    derived = effects.read_vault(db)["balances"]
    problems = []
    for name in sorted(set(expected) | set(derived)):
        want, have = expected.get(name, {}), derived.get(name, {})
        if want != have:
            problems.append({"kind": "vault_differs", "class": name, "vault": have, "ledger": want})
    return problems


def run_daily(db: Store, day: str | None = None) -> dict[str, Any]:
    """The scheduled run (incremental): stores its report under `reconciliation/{day}`
    (today, UTC) and logs an ERROR on any problem, which an alert policy on ERROR logs
    picks up, and the admins are told."""
    now = ledger.now_utc()
    return _kept(db, day or now.strftime("%Y-%m-%d"), now)


def run_now(db: Store) -> dict[str, Any]:
    """The console's "Reconcile now": the same run, kept and told as the daily one is
    (under its own name, `{day}-now-{HHMMSS}`). What it finds moves the checkpoint past
    it, so it must never be seen by the console alone."""
    now = ledger.now_utc()
    return _kept(db, now.strftime("%Y-%m-%d-now-%H%M%S"), now)


def _kept(db: Store, day: str, now: datetime) -> dict[str, Any]:
    report = incremental(db, now=now)
    stored = {**report, "problems": report["problems"][:STORED_PROBLEMS_MAX], "problem_count": len(report["problems"])}
    db.set(store.reconciliation(day), {**stored, "day": day, "at": now})
    _tell(db, day, len(report["problems"]), report["problems"], now)
    if report["ok"]:
        logs.info("reconciliation ok", day=day, **report["checked"])
    return report


def _tell(db: Store, name: str, count: int, problems: list[dict[str, Any]], now: datetime) -> None:
    """An ERROR log and, once per run (the event's id is the run's), the admins told."""
    if not count:
        return
    logs.error("reconciliation found problems", run=name, problems=count, first=problems[:5])
    event = ledger.Event(EventKind.RECONCILIATION_PROBLEM, {"day": name, "problem_count": count})
    db.create(store.outbox(f"reconciliation-{name}"), event.document(f"reconciliation-{name}", actor="reconciliation", now=now))
