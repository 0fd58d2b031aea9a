"""Reconciliation: every account recomputed from the ledger, read in pages, and compared
with what the documents say.

Checks: every tier sums to zero over all accounts; every wallet document equals its
replay; every escrow and withdrawal holds what its status says (its amount while open,
nothing once finished) and its document's coins equal its replay; every paid purchase
has exactly one issue entry and no other purchase has any; the vault's derived balances
(treasury, platform fees, ...) equal the ledger's.
"""

from __future__ import annotations

from typing import Any

from . import catalog, effects, escrow, ledger, logs, purchases, withdrawals
from .pages import stream_all

RECONCILIATION = "reconciliation"
# A stored report keeps this many problems (a Firestore document holds at most 1 MiB);
# the count says how many there were.
STORED_PROBLEMS_MAX = 200


def run(db) -> dict[str, Any]:
    problems: list[dict[str, Any]] = []
    issues_by_purchase: dict[str, int] = {}
    checked = {"entries": 0, "wallets": 0, "escrows": 0, "withdrawals": 0, "purchases": 0}

    def visit(entry: dict[str, Any]) -> None:
        checked["entries"] += 1
        if entry["type"] == "purchase_issue":
            purchase_id = entry.get("refs", {}).get("purchase_id")
            issues_by_purchase[purchase_id] = issues_by_purchase.get(purchase_id, 0) + 1

    balances = ledger.replay(db, visit)
    for symbol in catalog.SYMBOLS:
        total = sum(tiers.get(symbol, 0) for tiers in balances.values())
        if total != 0:
            problems.append({"kind": "tier_not_balanced", "tier": symbol, "sum": total})
    for account, tiers in balances.items():
        negative = {t: c for t, c in tiers.items() if c < 0}
        if negative and account != ledger.TREASURY:
            problems.append({"kind": "negative_balance", "account": account, "coins": negative})

    for wallet in stream_all(db.collection(ledger.WALLETS)):
        checked["wallets"] += 1
        replayed = balances.get(ledger.user_account(wallet["user_id"]), {})
        if catalog.normalize(wallet.get("coins", {})) != replayed or wallet.get("balance_dirhams") != catalog.value_dirhams(replayed):
            problems.append({"kind": "wallet_differs", "user_id": wallet["user_id"], "document": wallet.get("coins", {}), "ledger": replayed})

    for kind, collection, open_states in (
        ("escrow", escrow.ESCROWS, (escrow.LOCKED, escrow.DISPUTED)),
        ("withdrawal", withdrawals.WITHDRAWALS, withdrawals.OPEN),
    ):
        for hold in stream_all(db.collection(collection)):
            checked[collection] += 1
            replayed = balances.get(f"{kind}:{hold['id']}", {})
            expected = hold["amount_dirhams"] if hold["status"] in open_states else 0
            if catalog.value_dirhams(replayed) != expected:
                problems.append({"kind": f"{kind}_hold_wrong", "id": hold["id"], "status": hold["status"],
                                 "held_dirhams": catalog.value_dirhams(replayed), "expected_dirhams": expected})
            if catalog.normalize(hold.get("coins", {})) != replayed:
                problems.append({"kind": f"{kind}_differs", "id": hold["id"], "document": hold.get("coins", {}), "ledger": replayed})

    for purchase in stream_all(db.collection(purchases.PURCHASES)):
        checked["purchases"] += 1
        issued = issues_by_purchase.pop(purchase["id"], 0)
        if issued != (1 if purchase["status"] == purchases.PAID else 0):
            problems.append({"kind": "purchase_issues", "id": purchase["id"], "status": purchase["status"], "issue_entries": issued})
    for purchase_id, issued in issues_by_purchase.items():
        problems.append({"kind": "issue_without_purchase", "purchase_id": purchase_id, "issue_entries": issued})

    problems.extend(_vault_problems(db, balances))
    return {"ok": not problems, "checked": checked, "problems": problems}


def _vault_problems(db, balances: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    """The trigger's running totals against the replay, per account class. The trigger
    lags a little behind the ledger; an entry whose effects are not applied yet shows up
    here, and the daily run, hours later, sees none."""
    expected = effects.class_balances(balances)
    derived = effects.read_vault(db)["balances"]
    problems = []
    for name in sorted(set(expected) | set(derived)):
        want, have = expected.get(name, {}), derived.get(name, {})
        if want != have:
            problems.append({"kind": "vault_differs", "class": name, "vault": have, "ledger": want})
    return problems


def run_daily(db, day: str | None = None) -> dict[str, Any]:
    """The scheduled run: stores its report under `reconciliation/{day}` (today, UTC) and
    logs an ERROR on any problem, which an alert policy on ERROR logs picks up."""
    day = day or ledger.now_utc().strftime("%Y-%m-%d")
    report = run(db)
    stored = {**report, "problems": report["problems"][:STORED_PROBLEMS_MAX], "problem_count": len(report["problems"])}
    db.collection(RECONCILIATION).document(day).set({**stored, "day": day, "at": ledger.now_utc()})
    if report["ok"]:
        logs.info("reconciliation ok", day=day, **report["checked"])
    else:
        logs.error("reconciliation found problems", day=day, problems=len(report["problems"]), first=report["problems"][:5])
    return report
