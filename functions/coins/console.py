"""What the operators' console reads: how many wait in each queue, the users, one user
at a glance, and the vault. Read-only."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Mapping

from . import catalog, effects, escrow, kyc, ledger, limits, purchases, signals, store, wallets, withdrawals
from .auth import Caller
from .domain import EntryType, KycStatus, VaultClass, new_wallet
from .purchases import review
from .store import Store, Where
from .times import dated, moment, rfc3339

RECENT = 20  # items of each kind on a user's page
DAYS = 90  # the vault's daily series
# Above every character an id may hold: `prefix <= uid < prefix + PREFIX_END` are the
# uids that begin with `prefix`.
PREFIX_END = "\uf8ff"


def queues(db: Store) -> dict[str, int]:
    """How many wait in each of the admins' queues: count aggregations over the queues'
    own filters (the documents are not read)."""
    return {
        "withdrawals": db.count(store.WITHDRAWALS, withdrawals.QUEUE),
        "kyc": db.count(store.WALLETS, kyc.QUEUE),
        "disputes": db.count(store.ESCROWS, escrow.DISPUTE_QUEUE),
        "purchases": db.count(store.PURCHASES, review.QUEUE),
    }


def users(db: Store, *, prefix: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
    """Wallets: the most recently changed first, or, given a prefix, those whose uid
    begins with it, in the order of their uids."""
    if prefix:
        return db.page(
            store.WALLETS,
            (Where("user_id", ">=", prefix), Where("user_id", "<", prefix + PREFIX_END)),
            limit=limit,
            cursor=cursor,
            owns=lambda wallet: wallet["user_id"].startswith(prefix),
            render=wallets.render_wallet,
            newest_first=False,
            order_by="user_id",
        )
    # Every wallet is on this list: a cursor may name any of them.
    return db.page(
        store.WALLETS,
        (),
        limit=limit,
        cursor=cursor,
        owns=lambda wallet: True,
        render=wallets.render_wallet,
        order_by="updated_at",
    )


def user(db: Store, uid: str) -> dict[str, Any]:
    """A user's wallet, recent history, open holds, escrows, withdrawals, purchases,
    KYC (with the submission and its history) and velocity limits."""
    wallet = db.get(store.wallet(uid)) or new_wallet(uid, ledger.now_utc())
    as_user = Caller(uid)
    escrows = escrow.list_for(db, as_user, role=None, status=None, job_id=None, limit=RECENT, cursor=None)["items"]
    user_withdrawals = withdrawals.list_own(db, as_user, limit=RECENT, cursor=None)["items"]
    submission = db.get(store.kyc(uid))
    recent_limits = db.get(store.limits(uid)) or {}
    now = ledger.now_utc()
    return {
        "wallet": wallets.render_wallet(wallet),
        "history": wallets.list_transactions(db, uid, limit=RECENT, cursor=None, entry_type=None)["items"],
        "open_holds": {
            "withdrawals": [w for w in user_withdrawals if w["status"] in withdrawals.OPEN],
            "escrows_as_client": [e for e in escrows if e["client_id"] == uid and e["status"] in escrow.OPEN],
        },
        "escrows": escrows,
        "withdrawals": user_withdrawals,
        "purchases": purchases.list_for(db, as_user, user_id=None, limit=RECENT, cursor=None)["items"],
        "kyc": {
            "status": wallet.get("kyc_status", KycStatus.NONE),
            "submission": kyc.render_submission(submission) if submission else None,
            "history": [
                dated(change) for change in db.subcollection(store.wallet(uid), store.KYC_HISTORY, order_by="at", limit=RECENT)
            ],
        },
        "limits": {
            "lifted_until": moment(recent_limits, "lifted_until"),
            **{kind: _usage(recent_limits, kind, now) for kind in limits.Kind},
        },
        # The fraud signals still within their window: why, and since when.
        "signals": signals.render(signals.active(wallet.get("signals"), now)),
    }


def _usage(document: Mapping[str, Any], kind: limits.Kind, now: datetime) -> dict[str, Any]:
    limit = limits.limit_of(kind)
    recent = [event for event in document.get(kind, []) if event["at"] > now - limit.window]
    return {
        "used_count": len(recent),
        "count_max": limit.count_max,
        "used_dirhams": sum(e["amount_dirhams"] for e in recent),
        "amount_max_dirhams": limit.amount_max_dirhams,
        "window_seconds": int(limit.window.total_seconds()),
    }


def vault(db: Store, days: int = DAYS) -> dict[str, Any]:
    """Coins outstanding per tier and in QAR, what escrows, withdrawals and refunds hold,
    fees earned, coins issued and retired, and a daily series for the last `days` days,
    from the trigger's sharded aggregates (no scan of the ledger)."""
    total = effects.read_vault(db)
    today = ledger.now_utc().date()
    series = []
    for offset in range(days - 1, -1, -1):
        day = (today - timedelta(days=offset)).isoformat()
        daily = effects.read_vault(db, day)
        series.append(
            {
                "day": day,
                "entries": sum(daily["entries"].values()),
                **_flows(daily),
                "fees_dirhams": catalog.value_dirhams(daily["balances"].get(VaultClass.PLATFORM_FEES, {})),
            }
        )
    balances = total["balances"]
    return {
        "outstanding": _amount({tier: -count for tier, count in balances.get(VaultClass.TREASURY, {}).items()}),
        "users": _amount(balances.get(VaultClass.USERS, {})),
        "held": {name: _amount(balances.get(name, {})) for name in (VaultClass.ESCROW, VaultClass.WITHDRAWAL, VaultClass.REFUND)},
        "fees": _amount(balances.get(VaultClass.PLATFORM_FEES, {})),
        **_flows(total),
        "entries": total["entries"],
        "daily": series,
        "as_of": rfc3339(ledger.now_utc()),
    }


def _amount(coins: Mapping[str, int]) -> dict[str, Any]:
    coins = catalog.normalize(coins)
    return {"coins": coins, "dirhams": catalog.value_dirhams(coins)}


def _flows(aggregate: Mapping[str, Any]) -> dict[str, int]:
    """Coins into circulation (bought, or adjusted by admins) and out of it (withdrawals
    paid, refunds), in dirhams, from the treasury's outflow per entry type."""

    def flow(entry_type: EntryType) -> int:
        return catalog.value_dirhams(aggregate["flows"].get(entry_type, {}))

    return {
        "issued_dirhams": flow(EntryType.PURCHASE_ISSUE),
        "adjusted_dirhams": flow(EntryType.ADMIN_ADJUST),
        "retired_dirhams": -(flow(EntryType.WITHDRAWAL_PAID) + flow(EntryType.REFUND_PAID)),
    }
