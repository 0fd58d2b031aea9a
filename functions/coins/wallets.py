"""Wallets: reading them, their transaction history, balance checks, admin adjustments
and lifting a user's velocity limits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Mapping

from . import audit, catalog, ledger, postings, store
from .auth import Caller
from .domain import Account, EntryType, EventKind, KycStatus, new_wallet
from .store import Store, Where
from .times import rfc3339


def render_wallet(wallet: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "user_id": wallet["user_id"],
        "coins": catalog.normalize(wallet.get("coins", {})),
        "balance_dirhams": wallet.get("balance_dirhams", 0),
        "held_dirhams": wallet.get("held_dirhams", 0),
        "kyc_status": wallet.get("kyc_status", KycStatus.NONE),
        "kyc_qid_masked": wallet.get("kyc_qid_masked"),
        "stats": wallet.get("stats", {}),
        "updated_at": rfc3339(wallet["updated_at"]),
    }


def get_wallet(db: Store, uid: str, *, language: str | None = None) -> dict[str, Any]:
    """The caller's wallet, created empty on first read. A plain create, outside the
    ledger: an empty wallet holds no coins, and a concurrent first read or first payment
    that created it first wins. A create held up by a transaction that is creating the
    wallet right now answers the empty wallet: the read comes before that commit.
    `language`, what the caller's request asked to read (coins.language), is remembered
    on the wallet it creates; a read of an existing wallet writes nothing."""
    wallet = db.get(store.wallet(uid))
    if wallet is not None:
        return render_wallet(wallet)
    empty = new_wallet(uid, ledger.now_utc())
    if language is not None:
        empty["language"] = language
    try:
        if db.create(store.wallet(uid), empty):
            return render_wallet(empty)
    except store.Contention:
        return render_wallet(empty)
    return render_wallet(db.get(store.wallet(uid)) or empty)


def list_transactions(db: Store, uid: str, *, limit: int, cursor: str | None, entry_type: EntryType | None) -> dict[str, Any]:
    """The user's ledger entries, newest first, optionally of one type."""
    where: tuple[Where, ...] = (Where("user_ids", "array_contains", uid),)
    if entry_type is not None:
        where += (Where("type", "==", entry_type),)
    return db.page(
        store.LEDGER,
        where,
        limit=limit,
        cursor=cursor,
        owns=lambda entry: uid in (entry.get("user_ids") or []),
        render=lambda entry: render_transaction(entry, uid),
    )


def render_transaction(entry: Mapping[str, Any], uid: str) -> dict[str, Any]:
    mine = entry["users"][uid]
    return {
        "id": entry["id"],
        "type": entry["type"],
        "coins_delta": mine["coins_delta"],
        "amount_dirhams": mine["amount_dirhams"],
        "balance_after_dirhams": mine["balance_after_dirhams"],
        "refs": entry.get("refs", {}),
        "created_at": rfc3339(entry["created_at"]),
    }


def check_balance(db: Store, uid: str, amount_dirhams: int) -> dict[str, Any]:
    """Whether the wallet can pay `amount_dirhams`, and with which coins and change."""
    coins = (db.get(store.wallet(uid)) or {}).get("coins", {})
    balance = catalog.value_dirhams(coins)
    selection = catalog.select(coins, amount_dirhams)
    return {
        "sufficient": selection is not None,
        "balance_dirhams": balance,
        "shortfall_dirhams": max(0, amount_dirhams - balance),
        "pay_with": selection.pay if selection else {},
        "change": selection.change if selection else {},
    }


def adjust_balance(
    db: Store, admin: Caller, *, user_id: str, coins: Mapping[str, int], reason: str, idempotency: ledger.Idempotency
) -> ledger.Response:
    """An admin correction: positive counts are issued from the treasury, negative ones
    retired to it. Never drives a wallet below zero (409 insufficient_funds)."""
    added = {symbol: count for symbol, count in coins.items() if count > 0}
    removed = {symbol: -count for symbol, count in coins.items() if count < 0}
    entry = postings.Entry(
        type=EntryType.ADMIN_ADJUST,
        postings=postings.issue(user_id, added) + postings.retire(user_id, removed),
        memo={"reason": reason},
    )

    def operation(reader: ledger.Reader) -> ledger.Plan:
        before = reader.wallet(user_id).get("coins", {})
        trail = audit.record(
            actor=admin.uid,
            action="adjust_balance",
            target=str(Account.user(user_id)),
            now=reader.now,
            before={"coins": before},
            after={"coins": catalog.add(before, coins)},
            reason=reason,
        )

        def respond(outcome: ledger.Outcome) -> ledger.Response:
            return ledger.Response(
                200,
                {
                    "entry_id": outcome.entry_id,
                    "user_id": user_id,
                    "coins_delta": catalog.normalize(coins),
                    "amount_dirhams": catalog.value_dirhams(coins),
                    "reason": reason,
                    "wallet": render_wallet(outcome.wallets[user_id]),
                },
            )

        adjusted = ledger.Event(
            EventKind.BALANCE_ADJUSTED, {"user_id": user_id, "amount_dirhams": catalog.value_dirhams(coins), "reason": reason}
        )
        return ledger.Plan(entry=entry, respond=respond, documents=trail, events=(adjusted,))

    return ledger.execute(db, operation, idempotency=idempotency, actor=admin.uid)


def lift_limits(db: Store, admin: Caller, *, user_id: str, hours: int, reason: str) -> dict[str, Any]:
    """An admin lifts a user's velocity limits (coins.limits) for `hours`; audited. Moves
    no money, so it takes no Idempotency-Key: lifting twice sets the same end again."""

    def operation(reader: ledger.Reader) -> ledger.Plan:
        before = (reader.limits(user_id) or {}).get("lifted_until")
        until = reader.now + timedelta(hours=hours)
        return ledger.Plan(
            entry=None,
            documents={
                store.limits(user_id): {"lifted_until": until, "lifted_by": admin.uid, "lift_reason": reason},
                **audit.record(
                    actor=admin.uid,
                    action="limits_lifted",
                    target=str(Account.user(user_id)),
                    now=reader.now,
                    before={"lifted_until": before},
                    after={"lifted_until": until},
                    reason=reason,
                ),
            },
            respond=lambda outcome: ledger.Response(200, {"user_id": user_id, "lifted_until": rfc3339(until)}),
        )

    return ledger.execute(db, operation, actor=admin.uid).body
