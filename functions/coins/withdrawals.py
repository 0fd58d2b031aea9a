"""Withdrawals: a KYC-verified user asks to cash coins out; the coins move to a hold
(`withdrawal:{id}`); an admin approves, then pays by hand (the coins go back to the
treasury: they leave circulation) or rejects (they return to the user).

requested -> approved | rejected;  approved -> paid | rejected  (`TRANSITIONS`).
One open withdrawal per user: the wallet names it (`open_withdrawal_id`), in the same
transaction as the hold. The full destination lives in an admin-only subdocument;
everything else shows it masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from . import audit, catalog, config, errors, ledger, limits, postings, signals, store
from .auth import Caller
from .domain import TREASURY, Account, EntryType, EventKind, KycStatus, WithdrawalStatus
from .store import Store, Where
from .times import moment

REQUESTED, APPROVED, PAID, REJECTED = (
    WithdrawalStatus.REQUESTED,
    WithdrawalStatus.APPROVED,
    WithdrawalStatus.PAID,
    WithdrawalStatus.REJECTED,
)
OPEN = (REQUESTED, APPROVED)


@dataclass(frozen=True)
class Transition:
    """An admin moves a withdrawal from one of `from_states` to `to`; `entry` names the
    ledger entry that ends the hold (None: no money moves), `event` what its owner hears."""

    from_states: tuple[WithdrawalStatus, ...]
    to: WithdrawalStatus
    entry: EntryType | None
    event: EventKind


TRANSITIONS = {
    APPROVED: Transition((REQUESTED,), APPROVED, None, EventKind.WITHDRAWAL_APPROVED),
    PAID: Transition((APPROVED,), PAID, EntryType.WITHDRAWAL_PAID, EventKind.WITHDRAWAL_PAID),
    REJECTED: Transition((REQUESTED, APPROVED), REJECTED, EntryType.WITHDRAWAL_REJECTED, EventKind.WITHDRAWAL_REJECTED),
}

# Said when a withdrawal is not in a state its table row starts from.
NOT_NOW = {
    APPROVED: "Only a requested withdrawal can be approved; this one is {state}.",
    PAID: "Only an approved withdrawal can be marked paid; this one is {state}.",
    REJECTED: "Only a requested or approved withdrawal can be rejected; this one is {state}.",
}


def facts(withdrawal: Mapping[str, Any]) -> dict[str, Any]:
    """What a withdrawal event tells (coins.notices turns it into words)."""
    return {
        "withdrawal_id": withdrawal["id"],
        "user_id": withdrawal["user_id"],
        "amount_dirhams": withdrawal["amount_dirhams"],
        "large": withdrawal["large"],
        "method": withdrawal["method"],
    }


def mask(destination: Mapping[str, str]) -> dict[str, str]:
    """Every value shown by its last 4 characters only."""
    return {key: "•••• " + value[-4:] for key, value in destination.items()}


def render(withdrawal: Mapping[str, Any], destination: Mapping[str, str] | None = None, *, admin: bool = False) -> dict[str, Any]:
    """`admin`: with the fraud signals the user had when asking (for the queue; never
    shown to the user)."""
    return {
        "signals": signals.render(withdrawal.get("signals")) if admin else None,
        "id": withdrawal["id"],
        "user_id": withdrawal["user_id"],
        "status": withdrawal["status"],
        "amount_dirhams": withdrawal["amount_dirhams"],
        "coins": withdrawal.get("coins", {}),
        "method": withdrawal["method"],
        "destination": dict(destination) if destination is not None else withdrawal["destination_masked"],
        "large": withdrawal["large"],
        "notes": withdrawal.get("notes"),
        "payment_reference": withdrawal.get("payment_reference"),
        "reason": withdrawal.get("reason"),
        "created_at": moment(withdrawal, "created_at"),
        "approved_at": moment(withdrawal, "approved_at"),
        "paid_at": moment(withdrawal, "paid_at"),
        "rejected_at": moment(withdrawal, "rejected_at"),
    }


def create(
    db: Store,
    caller: Caller,
    *,
    amount_dirhams: int | None,
    coins: Mapping[str, int] | None,
    method: str,
    destination: Mapping[str, str],
    idempotency: ledger.Idempotency,
) -> ledger.Response:
    withdrawal_id = store.new_id()
    source, hold = Account.user(caller.uid), Account.withdrawal(withdrawal_id)
    threshold = config.settings().withdrawal_large_dirhams

    def operation(reader: ledger.Reader) -> ledger.Plan:
        wallet = reader.wallet(caller.uid)
        if wallet.get("kyc_status") != KycStatus.VERIFIED:
            raise errors.KycRequired(kyc_status=wallet.get("kyc_status", KycStatus.NONE))
        if wallet.get("open_withdrawal_id"):
            raise errors.WithdrawalPending(withdrawal_id=wallet["open_withdrawal_id"])
        if coins is not None:
            moved, amount = postings.transfer(source, hold, coins), catalog.value_dirhams(coins)
        else:
            assert amount_dirhams is not None, "the request gives coins or an amount"
            moved, _ = postings.pay(source, hold, wallet["coins"], amount_dirhams)
            amount = amount_dirhams
        before_limits = reader.limits(caller.uid)
        counted = limits.admit(before_limits, limits.Kind.WITHDRAWAL, amount, withdrawal_id, reader.now)
        # A signal informs; the velocity limits above are what block.
        week = [
            event
            for event in (before_limits or {}).get(limits.Kind.WITHDRAWAL, [])
            if event["at"] > reader.now - signals.WINDOW[signals.Signal.LARGE_WITHDRAWALS]
        ]
        why = signals.withdrawals_signal(week, amount)
        on_wallet: dict[str, Any] = {"open_withdrawal_id": withdrawal_id, "held_dirhams": amount}
        told: tuple[ledger.Event, ...] = ()
        if why is not None:
            on_wallet["signals"], tell = signals.raised(wallet.get("signals"), signals.Signal.LARGE_WITHDRAWALS, why, reader.now)
            if tell:
                facts_of = {"user_id": caller.uid, "signal": signals.Signal.LARGE_WITHDRAWALS, "level": "high", "why": why}
                told = (ledger.Event(EventKind.FRAUD_SIGNAL, facts_of),)
        withdrawal = {
            "signals": signals.active(on_wallet.get("signals", wallet.get("signals")), reader.now),
            "id": withdrawal_id,
            "user_id": caller.uid,
            "status": REQUESTED,
            "amount_dirhams": amount,
            "method": method,
            "destination_masked": mask(destination),
            "large": amount >= threshold,
            "created_at": reader.now,
            "updated_at": reader.now,
        }
        return ledger.Plan(
            entry=postings.Entry(EntryType.WITHDRAWAL_HOLD, moved, refs={"withdrawal_id": withdrawal_id}),
            documents={
                store.withdrawal(withdrawal_id): withdrawal,
                store.withdrawal_destination(withdrawal_id): {"method": method, **destination},
                store.wallet(caller.uid): on_wallet,
                store.limits(caller.uid): counted,
            },
            events=(ledger.Event(EventKind.WITHDRAWAL_REQUESTED, facts(withdrawal)), *told),
            respond=lambda outcome: ledger.Response(201, render({**withdrawal, "coins": postings.received(moved, hold)})),
        )

    return ledger.execute(db, operation, actor=caller.uid, idempotency=idempotency, language=caller.language)


def get(db: Store, caller: Caller, withdrawal_id: str) -> dict[str, Any]:
    """The owner sees the destination masked; an admin sees it whole (the admin detail view)."""
    withdrawal = db.get(store.withdrawal(withdrawal_id))
    if withdrawal is None or not (caller.admin or withdrawal["user_id"] == caller.uid):
        raise errors.NotFound()
    destination = None
    if caller.admin:
        private = db.get(store.withdrawal_destination(withdrawal_id)) or {}
        destination = {k: v for k, v in private.items() if k != "method"}
    return render(withdrawal, destination, admin=caller.admin)


def list_own(db: Store, caller: Caller, *, limit: int, cursor: str | None) -> dict[str, Any]:
    return db.page(
        store.WITHDRAWALS,
        (Where("user_id", "==", caller.uid),),
        limit=limit,
        cursor=cursor,
        owns=lambda d: d.get("user_id") == caller.uid,
        render=render,
    )


# The admins' queue: what waits for them (the console counts it too).
QUEUE = (Where("status", "in", list(OPEN)),)


def list_pending(db: Store, *, limit: int, cursor: str | None) -> dict[str, Any]:
    """The admin queue: requested and approved, oldest first, destinations masked. The
    cursor may name a withdrawal that has left the queue since (an admin paid the last
    one shown): its place in the order still says where the next page starts."""
    return db.page(
        store.WITHDRAWALS,
        QUEUE,
        limit=limit,
        cursor=cursor,
        owns=lambda d: "created_at" in d,
        render=lambda withdrawal: render(withdrawal, admin=True),
        newest_first=False,
    )


def approve(db: Store, admin: Caller, withdrawal_id: str, *, notes: str | None, idempotency) -> ledger.Response:
    return _transition(db, admin, withdrawal_id, APPROVED, fields={"notes": notes}, reason=notes, idempotency=idempotency)


def pay(db: Store, admin: Caller, withdrawal_id: str, *, payment_reference: str, idempotency) -> ledger.Response:
    """The admin made the transfer: `payment_reference` identifies it at the bank."""
    return _transition(
        db, admin, withdrawal_id, PAID, fields={"payment_reference": payment_reference}, reason=None, idempotency=idempotency
    )


def reject(db: Store, admin: Caller, withdrawal_id: str, *, reason: str, idempotency) -> ledger.Response:
    return _transition(db, admin, withdrawal_id, REJECTED, fields={"reason": reason}, reason=reason, idempotency=idempotency)


def _transition(
    db: Store,
    admin: Caller,
    withdrawal_id: str,
    status: WithdrawalStatus,
    *,
    fields: dict[str, Any],
    reason: str | None,
    idempotency,
) -> ledger.Response:
    """`fields` are stored on the withdrawal and recorded on the ledger entry; `reason`
    is why the admin did it, for the audit log."""
    row, hold = TRANSITIONS[status], Account.withdrawal(withdrawal_id)

    def operation(reader: ledger.Reader) -> ledger.Plan:
        withdrawal = reader.withdrawal(withdrawal_id)
        if withdrawal is None:
            raise errors.NotFound()
        if withdrawal["user_id"] == admin.uid:
            raise errors.Forbidden("An admin cannot act on their own withdrawal.")
        if withdrawal["status"] not in row.from_states:
            raise errors.InvalidState(NOT_NOW[status].format(state=withdrawal["status"]), status=withdrawal["status"])
        changes = {**fields, "status": status, f"{status}_at": reader.now, f"{status}_by": admin.uid, "updated_at": reader.now}
        documents: dict[store.Doc, Mapping[str, Any]] = {
            store.withdrawal(withdrawal_id): changes,
            **audit.record(
                actor=admin.uid,
                action=f"withdrawal_{status}",
                target=str(hold),
                now=reader.now,
                before={"status": withdrawal["status"]},
                after={"status": status, **fields},
                reason=reason,
            ),
        }
        entry = None
        held, owner = withdrawal["coins"], withdrawal["user_id"]
        if row.entry is not None:
            # The hold ends: the wallet no longer has an open withdrawal.
            documents[store.wallet(owner)] = {"open_withdrawal_id": None, "held_dirhams": 0}
            destination = TREASURY if status is PAID else Account.user(owner)
            entry = postings.Entry(
                row.entry,
                postings.transfer(hold, destination, held),
                refs={"withdrawal_id": withdrawal_id},
                memo={key: value for key, value in fields.items() if value is not None},
                parties=(owner,),
            )
        after = {**withdrawal, **changes, "coins": {} if entry else held}
        told = ledger.Event(row.event, {**facts(withdrawal), "reason": fields.get("reason")})
        return ledger.Plan(
            entry=entry, documents=documents, events=(told,), respond=lambda outcome: ledger.Response(200, render(after))
        )

    return ledger.execute(db, operation, actor=admin.uid, idempotency=idempotency)
