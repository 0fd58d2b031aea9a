"""Withdrawals: a KYC-verified user asks to cash coins out; the coins move to a hold
(`withdrawal:{id}`); an admin approves, then pays by hand (the coins go back to the
treasury: they leave circulation) or rejects (they return to the user).

requested -> approved | rejected;  approved -> paid | rejected.
One open withdrawal per user: the wallet names it (`open_withdrawal_id`), in the same
transaction as the hold. The full destination lives in an admin-only subdocument;
everything else shows it masked.
"""

from __future__ import annotations

from typing import Any, Mapping

from . import audit, catalog, config, errors, ledger
from .auth import Caller
from .pages import moment, page_of

WITHDRAWALS = "withdrawals"
PRIVATE = "private"  # withdrawals/{id}/private/destination: the unmasked destination
REQUESTED, APPROVED, PAID, REJECTED = "requested", "approved", "paid", "rejected"
OPEN = (REQUESTED, APPROVED)


def account(withdrawal_id: str) -> str:
    return f"withdrawal:{withdrawal_id}"


def mask(destination: Mapping[str, str]) -> dict[str, str]:
    """Every value shown by its last 4 characters only."""
    return {key: "•••• " + value[-4:] for key, value in destination.items()}


def render(withdrawal: Mapping[str, Any], destination: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
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
    db,
    caller: Caller,
    *,
    amount_dirhams: int | None,
    coins: Mapping[str, int] | None,
    method: str,
    destination: Mapping[str, str],
    idempotency: ledger.Idempotency,
) -> ledger.Response:
    ref = db.collection(WITHDRAWALS).document()
    wallet_ref = db.collection(ledger.WALLETS).document(caller.uid)
    threshold = config.settings().withdrawal_large_dirhams

    def operation(reader: ledger.Reader) -> ledger.Plan:
        wallet = reader.wallet(caller.uid)
        if wallet.get("kyc_status") != "verified":
            raise errors.KycRequired(kyc_status=wallet.get("kyc_status", "none"))
        if wallet.get("open_withdrawal_id"):
            raise errors.WithdrawalPending(withdrawal_id=wallet["open_withdrawal_id"])
        source, hold = ledger.user_account(caller.uid), account(ref.id)
        if coins is not None:
            postings, amount = ledger.transfer(source, hold, coins), catalog.value_dirhams(coins)
        else:
            postings, _ = ledger.pay(source, hold, wallet["coins"], amount_dirhams)
            amount = amount_dirhams
        withdrawal = {
            "id": ref.id,
            "user_id": caller.uid,
            "status": REQUESTED,
            "amount_dirhams": amount,
            "method": method,
            "destination_masked": mask(destination),
            "large": amount >= threshold,
            "created_at": reader.now,
            "updated_at": reader.now,
        }
        held = catalog.add({}, {p.tier: p.count for p in postings if p.destination == hold})
        return ledger.Plan(
            entry=ledger.Entry("withdrawal_hold", postings, refs={"withdrawal_id": ref.id}),
            documents={
                ref: withdrawal,
                ref.collection(PRIVATE).document("destination"): {"method": method, **destination},
                wallet_ref: {"open_withdrawal_id": ref.id, "held_dirhams": amount},
            },
            respond=lambda outcome: ledger.Response(201, render({**withdrawal, "coins": held})),
        )

    return ledger.execute(db, operation, actor=caller.uid, idempotency=idempotency)


def get(db, caller: Caller, withdrawal_id: str) -> dict[str, Any]:
    """The owner sees the destination masked; an admin sees it whole (the admin detail view)."""
    ref = db.collection(WITHDRAWALS).document(withdrawal_id)
    snapshot = ref.get()
    if not snapshot.exists or not (caller.admin or snapshot.get("user_id") == caller.uid):
        raise errors.NotFound()
    destination = None
    if caller.admin:
        private = ref.collection(PRIVATE).document("destination").get().to_dict() or {}
        destination = {k: v for k, v in private.items() if k != "method"}
    return render(snapshot.to_dict(), destination)


def list_own(db, caller: Caller, *, limit: int, cursor: str | None) -> dict[str, Any]:
    from google.cloud import firestore

    collection = db.collection(WITHDRAWALS)
    query = collection.where(filter=firestore.FieldFilter("user_id", "==", caller.uid))
    return page_of(collection, query, limit=limit, cursor=cursor, owns=lambda d: d.get("user_id") == caller.uid, render=render)


def list_pending(db, *, limit: int, cursor: str | None) -> dict[str, Any]:
    """The admin queue: requested and approved, oldest first, destinations masked."""
    from google.cloud import firestore

    collection = db.collection(WITHDRAWALS)
    query = collection.where(filter=firestore.FieldFilter("status", "in", list(OPEN)))
    return page_of(
        collection, query, limit=limit, cursor=cursor, owns=lambda d: d.get("status") in OPEN, render=render, newest_first=False
    )


def approve(db, admin: Caller, withdrawal_id: str, *, notes: str | None, idempotency) -> ledger.Response:
    return _transition(db, admin, withdrawal_id, APPROVED, {"notes": notes}, notes, idempotency)


def pay(db, admin: Caller, withdrawal_id: str, *, payment_reference: str, idempotency) -> ledger.Response:
    return _transition(db, admin, withdrawal_id, PAID, {"payment_reference": payment_reference}, payment_reference, idempotency)


def reject(db, admin: Caller, withdrawal_id: str, *, reason: str, idempotency) -> ledger.Response:
    return _transition(db, admin, withdrawal_id, REJECTED, {"reason": reason}, reason, idempotency)


ALLOWED_FROM = {APPROVED: (REQUESTED,), PAID: (APPROVED,), REJECTED: (REQUESTED, APPROVED)}


def _transition(db, admin: Caller, withdrawal_id: str, status: str, fields: dict, reason, idempotency) -> ledger.Response:
    ref = db.collection(WITHDRAWALS).document(withdrawal_id)

    def operation(reader: ledger.Reader) -> ledger.Plan:
        withdrawal = reader.document(ref)
        if withdrawal is None:
            raise errors.NotFound()
        if withdrawal["user_id"] == admin.uid:
            raise errors.Forbidden("An admin cannot act on their own withdrawal.")
        if withdrawal["status"] not in ALLOWED_FROM[status]:
            raise errors.InvalidState(f"The withdrawal is {withdrawal['status']}.", status=withdrawal["status"])
        changes = {**fields, "status": status, f"{status}_at": reader.now, f"{status}_by": admin.uid, "updated_at": reader.now}
        trail_ref, trail = audit.record(
            reader, actor=admin.uid, action=f"withdrawal_{status}", target=account(withdrawal_id),
            before={"status": withdrawal["status"]}, after={"status": status}, reason=reason,
        )
        documents: dict[Any, dict[str, Any]] = {ref: changes, trail_ref: trail}
        entry = None
        held, owner = withdrawal["coins"], withdrawal["user_id"]
        if status in (PAID, REJECTED):
            # The hold ends: the wallet no longer has an open withdrawal.
            documents[db.collection(ledger.WALLETS).document(owner)] = {"open_withdrawal_id": None, "held_dirhams": 0}
            destination = ledger.TREASURY if status == PAID else ledger.user_account(owner)
            entry = ledger.Entry(
                "withdrawal_paid" if status == PAID else "withdrawal_rejected",
                ledger.transfer(account(withdrawal_id), destination, held),
                refs={"withdrawal_id": withdrawal_id},
                memo={"reason": reason} if reason else {},
                parties=(owner,),
            )
        after = {**withdrawal, **changes, "coins": {} if entry else held}
        return ledger.Plan(entry=entry, documents=documents, respond=lambda outcome: ledger.Response(200, render(after)))

    return ledger.execute(db, operation, actor=admin.uid, idempotency=idempotency)
