"""Wallets: reading them, their transaction history, balance checks, admin adjustments."""

from __future__ import annotations

from typing import Any, Mapping

from . import audit, catalog, ledger
from .auth import Caller
from .pages import page_of, rfc3339


def render_wallet(wallet: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "user_id": wallet["user_id"],
        "coins": catalog.normalize(wallet.get("coins", {})),
        "balance_dirhams": wallet.get("balance_dirhams", 0),
        "held_dirhams": wallet.get("held_dirhams", 0),
        "kyc_status": wallet.get("kyc_status", "none"),
        "stats": wallet.get("stats", {}),
        "updated_at": rfc3339(wallet["updated_at"]),
    }


def get_wallet(db, uid: str) -> dict[str, Any]:
    """The caller's wallet, created empty on first read."""
    from google.api_core import exceptions as api_exceptions

    ref = db.collection(ledger.WALLETS).document(uid)
    snapshot = ref.get()
    if not snapshot.exists:
        try:
            ref.create(ledger.empty_wallet(uid, ledger.now_utc()))
        except api_exceptions.Conflict:
            pass  # created by a concurrent first read or a first payment
        snapshot = ref.get()
    return render_wallet(snapshot.to_dict())


def list_transactions(db, uid: str, *, limit: int, cursor: str | None, entry_type: str | None) -> dict[str, Any]:
    """The user's ledger entries, newest first, optionally of one type."""
    from google.cloud import firestore

    entries = db.collection(ledger.LEDGER)
    query = entries.where(filter=firestore.FieldFilter("user_ids", "array_contains", uid))
    if entry_type is not None:
        query = query.where(filter=firestore.FieldFilter("type", "==", entry_type))
    return page_of(
        entries,
        query,
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


def check_balance(db, uid: str, amount_dirhams: int) -> dict[str, Any]:
    """Whether the wallet can pay `amount_dirhams`, and with which coins and change."""
    snapshot = db.collection(ledger.WALLETS).document(uid).get()
    coins = snapshot.get("coins") if snapshot.exists else {}
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
    db, admin: Caller, *, user_id: str, coins: Mapping[str, int], reason: str, idempotency: ledger.Idempotency
) -> ledger.Response:
    """An admin correction: positive counts are issued from the treasury, negative ones
    retired to it. Never drives a wallet below zero (409 insufficient_funds)."""
    added = {symbol: count for symbol, count in coins.items() if count > 0}
    removed = {symbol: -count for symbol, count in coins.items() if count < 0}
    entry = ledger.Entry(
        type="admin_adjust",
        postings=ledger.issue(user_id, added) + ledger.retire(user_id, removed),
        memo={"reason": reason},
    )

    def operation(reader: ledger.Reader) -> ledger.Plan:
        before = reader.wallet(user_id).get("coins", {})
        trail = audit.record(
            reader, actor=admin.uid, action="adjust_balance", target=f"user:{user_id}",
            before={"coins": before}, after={"coins": catalog.add(before, coins)}, reason=reason,
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

        return ledger.Plan(entry=entry, respond=respond, documents=dict([trail]))

    return ledger.execute(db, operation, idempotency=idempotency, actor=admin.uid)


def set_kyc(db, admin: Caller, *, user_id: str, status: str, note: str | None) -> dict[str, Any]:
    """An admin sets a user's KYC status; the wallet keeps it, its history keeps every change."""
    wallet_ref = db.collection(ledger.WALLETS).document(user_id)

    def operation(reader: ledger.Reader) -> ledger.Plan:
        wallet = reader.wallet(user_id)
        previous = wallet.get("kyc_status", "none")
        change = {"status": status, "previous": previous, "note": note, "by": admin.uid, "at": reader.now}
        history = wallet_ref.collection("kyc_history").document()
        trail = audit.record(
            reader, actor=admin.uid, action="kyc_set", target=f"user:{user_id}",
            before={"kyc_status": previous}, after={"kyc_status": status}, reason=note,
        )
        updated = {**wallet, "kyc_status": status, "kyc_note": note, "kyc_updated_at": reader.now}
        return ledger.Plan(
            entry=None,
            documents={wallet_ref: updated, history: change, trail[0]: trail[1]},
            respond=lambda outcome: ledger.Response(200, render_wallet(updated)),
        )

    return ledger.execute(db, operation, actor=admin.uid).body
