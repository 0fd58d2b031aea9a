"""Reconciliation: every account recomputed from the ledger, read in pages, and compared
with what the documents say.

Checks: the conservation invariant (every tier sums to zero over all accounts, nothing
but the treasury below zero); every wallet document equals its replay; every escrow and
withdrawal and purchase refund holds what its status says (while open: a withdrawal its
amount, a refund its purchase's value, an escrow its amount less what was released and
refunded; nothing once finished)
and its document's coins equal its replay; every paid purchase has exactly one issue
entry (so does a refunded one: a refund retires coins, it does not un-issue them) and no
other purchase has any; the vault's derived balances (treasury, platform
fees, ...) equal the ledger's; no entry has effects the trigger could not apply; and
nothing a trigger should have done (an entry's effects, an outbox event's deliveries)
has been pending so long that the repair (coins.repair) must have failed at it.
The tests run the same checks, without the vault, after every test that moves money.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from . import catalog, config, effects, ledger, logs, postings, repair, store
from .domain import Account, EntryType, EventKind, PurchaseStatus
from .escrow import OPEN as OPEN_ESCROW
from .escrow import held_dirhams
from .purchases import REFUND_OPEN
from .store import Store, Where
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
    """The report: `{"ok", "checked", "problems", "pending_effects", "pending_outbox"}`.
    `vault=False` leaves out what the triggers derive (the vault, failed effects, the
    outbox), which lags behind the ledger.

    The vault is compared with the replay of the entries the trigger has applied (their
    markers, written in the same transaction as their increments), so an entry whose
    effects are still on their way is no false alarm: it is counted in
    `pending_effects` (how many, and the oldest's age), as undelivered outbox events are
    in `pending_outbox`. Only what has been pending past the repair's age and
    REPAIR_RUNS_BEFORE_A_PROBLEM of its runs is a problem (`effects_stalled`,
    `outbox_stalled`), with the reason the repair gave, if it tried."""
    now = now or ledger.now_utc()
    issues_by_purchase: dict[str, int] = {}
    checked = {"entries": 0, "wallets": 0, "escrows": 0, "withdrawals": 0, "purchase_refunds": 0, "purchases": 0}
    applied_ids = {marker["entry_id"] for marker in db.scan(store.EFFECTS) if effects.is_applied(marker)} if vault else set()
    applied: postings.Balances = {}
    pending: list[datetime] = []

    def visit(entry: dict[str, Any]) -> None:
        checked["entries"] += 1
        if entry["type"] == EntryType.PURCHASE_ISSUE:
            purchase_id = entry.get("refs", {}).get("purchase_id")
            issues_by_purchase[purchase_id] = issues_by_purchase.get(purchase_id, 0) + 1
        if entry["id"] in applied_ids:
            postings.add_postings(applied, entry["postings"])
        else:
            pending.append(entry["created_at"])

    balances = replay(db, visit)
    problems = postings.conservation_problems(balances)

    for wallet in db.scan(store.WALLETS):
        checked["wallets"] += 1
        replayed = balances.get(Account.user(wallet["user_id"]), {})
        if catalog.normalize(wallet.get("coins", {})) != replayed or wallet.get("balance_dirhams") != catalog.value_dirhams(
            replayed
        ):
            problems.append(
                {"kind": "wallet_differs", "user_id": wallet["user_id"], "document": wallet.get("coins", {}), "ledger": replayed}
            )

    for collection, account_of, open_states, still_held in (
        (store.ESCROWS, Account.escrow, OPEN_ESCROW, held_dirhams),
        (store.WITHDRAWALS, Account.withdrawal, OPEN_WITHDRAWAL, lambda withdrawal: withdrawal["amount_dirhams"]),
        (store.PURCHASE_REFUNDS, Account.refund, REFUND_OPEN, lambda refund: refund["value_dirhams"]),
    ):
        for hold in db.scan(collection):
            checked[collection] += 1
            hold_id = hold.get("id") or hold["purchase_id"]
            account = account_of(hold_id)
            replayed = balances.get(account, {})
            expected = still_held(hold) if hold["status"] in open_states else 0
            if catalog.value_dirhams(replayed) != expected:
                problems.append(
                    {
                        "kind": f"{account.kind}_hold_wrong",
                        "id": hold_id,
                        "status": hold["status"],
                        "held_dirhams": catalog.value_dirhams(replayed),
                        "expected_dirhams": expected,
                    }
                )
            if catalog.normalize(hold.get("coins", {})) != replayed:
                problems.append(
                    {"kind": f"{account.kind}_differs", "id": hold_id, "document": hold.get("coins", {}), "ledger": replayed}
                )

    for purchase in db.scan(store.PURCHASES):
        checked["purchases"] += 1
        issued = issues_by_purchase.pop(purchase["id"], 0)
        # Paid and refunding purchases were issued; a refunded one was if it has its entry
        # (a payment refunded from the review queue never was).
        expected = 1 if purchase["status"] in (PurchaseStatus.PAID, PurchaseStatus.REFUNDING) or purchase.get("entry_id") else 0
        if issued != expected:
            problems.append(
                {"kind": "purchase_issues", "id": purchase["id"], "status": purchase["status"], "issue_entries": issued}
            )
    for purchase_id, issued in issues_by_purchase.items():
        problems.append({"kind": "issue_without_purchase", "purchase_id": purchase_id, "issue_entries": issued})

    report: dict[str, Any] = {}
    if vault:
        problems.extend(_vault_problems(db, {account: catalog.normalize(tiers) for account, tiers in applied.items()}))
        for failure in db.scan(store.EFFECT_FAILURES):
            problems.append(
                {"kind": "effects_failed", "source": failure["source"], "id": failure["id"], "failures": failure["failures"]}
            )
        settings = config.settings()
        report["pending_effects"] = _age({"count": len(pending)}, min(pending, default=None), now)
        limit = stall_limit_seconds(settings.effects_repair_after_seconds)
        stalled = [moment for moment in pending if (now - moment).total_seconds() > limit]
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
    return {"ok": not problems, "checked": checked, "problems": problems, **report}


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
    """The scheduled run: stores its report under `reconciliation/{day}` (today, UTC) and
    logs an ERROR on any problem, which an alert policy on ERROR logs picks up."""
    now = ledger.now_utc()
    day = day or now.strftime("%Y-%m-%d")
    report = run(db)
    stored = {**report, "problems": report["problems"][:STORED_PROBLEMS_MAX], "problem_count": len(report["problems"])}
    db.set(store.reconciliation(day), {**stored, "day": day, "at": now})
    if report["ok"]:
        logs.info("reconciliation ok", day=day, **report["checked"])
    else:
        logs.error("reconciliation found problems", day=day, problems=len(report["problems"]), first=report["problems"][:5])
        # Once per day (the id is the day): the admins hear about it.
        event = ledger.Event(EventKind.RECONCILIATION_PROBLEM, {"day": day, "problem_count": len(report["problems"])})
        db.create(store.outbox(f"reconciliation-{day}"), event.document(f"reconciliation-{day}", actor="reconciliation", now=now))
    return report
