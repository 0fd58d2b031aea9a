"""Identity verification (KYC), which withdrawals require: a user submits their name,
Qatar ID number and the documents the app uploaded; an admin verifies or rejects, and
the user is told. The wallet keeps the status; `kyc/{uid}` keeps the submission with
the full QID, for admins only (rules close it to clients); everywhere else the QID is
masked, as bank details are. Every change is kept in `wallets/{uid}/kyc_history`.
A verified user cannot resubmit; a rejected one (or one still pending) can.
"""

from __future__ import annotations

from typing import Any, Mapping

from . import audit, errors, ledger, store
from .auth import Caller
from .domain import Account, EventKind, KycStatus
from .store import Store, Where
from .times import moment
from .wallets import render_wallet


def mask_qid(qid: str) -> str:
    return "•••••••" + qid[-4:]


def submit(db: Store, caller: Caller, *, full_name: str, qid_number: str, document_urls: tuple[str, ...]) -> dict[str, Any]:
    """The user's submission: the wallet's KYC becomes `pending`. Moves no money, so it
    takes no Idempotency-Key: submitting again replaces the pending submission."""

    def operation(reader: ledger.Reader) -> ledger.Plan:
        wallet = reader.wallet(caller.uid)
        previous = wallet.get("kyc_status", KycStatus.NONE)
        if previous == KycStatus.VERIFIED:
            raise errors.InvalidState("Your identity is verified already.", status=previous)
        submission = {
            "user_id": caller.uid,
            "full_name": full_name,
            "qid_number": qid_number,
            "document_urls": list(document_urls),
            "status": KycStatus.PENDING,
            "submitted_at": reader.now,
        }
        updated = {
            **wallet,
            "kyc_status": KycStatus.PENDING,
            "kyc_submitted_at": reader.now,
            "kyc_qid_masked": mask_qid(qid_number),
            "kyc_note": None,
        }
        documents = {
            store.wallet(caller.uid): updated,
            store.kyc(caller.uid): submission,
            store.kyc_change(caller.uid, store.new_id()): {
                "status": KycStatus.PENDING,
                "previous": previous,
                "by": caller.uid,
                "qid_masked": mask_qid(qid_number),
                "documents": len(document_urls),
                "at": reader.now,
            },
        }
        return ledger.Plan(
            entry=None,
            documents=documents,
            events=(ledger.Event(EventKind.KYC_SUBMITTED, {"user_id": caller.uid}),),
            respond=lambda outcome: ledger.Response(200, render_wallet(updated)),
        )

    return ledger.execute(db, operation, actor=caller.uid, language=caller.language).body


def decide(db: Store, admin: Caller, *, user_id: str, status: KycStatus, note: str | None) -> dict[str, Any]:
    """An admin sets a user's KYC status (verified or rejected after a review; any status
    to correct one); the user is told. Moves no money, so it takes no Idempotency-Key:
    setting a status twice writes the same status."""

    def operation(reader: ledger.Reader) -> ledger.Plan:
        wallet = reader.wallet(user_id)
        previous = wallet.get("kyc_status", KycStatus.NONE)
        change = {"status": status, "previous": previous, "note": note, "by": admin.uid, "at": reader.now}
        updated = {**wallet, "kyc_status": status, "kyc_note": note, "kyc_updated_at": reader.now}
        documents: dict[store.Doc, Mapping[str, Any]] = {
            store.wallet(user_id): updated,
            store.kyc_change(user_id, store.new_id()): change,
            **audit.record(
                actor=admin.uid,
                action="kyc_set",
                target=str(Account.user(user_id)),
                now=reader.now,
                before={"kyc_status": previous},
                after={"kyc_status": status},
                reason=note,
            ),
        }
        if reader.kyc(user_id) is not None:
            documents[store.kyc(user_id)] = {"status": status, "decided_by": admin.uid, "decided_at": reader.now, "note": note}
        told = (
            (ledger.Event(EventKind.KYC_DECIDED, {"user_id": user_id, "status": status, "note": note}),)
            if status != previous
            else ()
        )
        return ledger.Plan(
            entry=None, documents=documents, events=told, respond=lambda outcome: ledger.Response(200, render_wallet(updated))
        )

    return ledger.execute(db, operation, actor=admin.uid).body


# The admins' queue: submissions waiting for a decision (the console counts it too).
QUEUE = (Where("kyc_status", "==", KycStatus.PENDING),)


def list_pending(db: Store, *, limit: int, cursor: str | None) -> dict[str, Any]:
    """The admins' queue: submissions waiting, oldest first, with the documents and the
    full QID (admins only)."""

    def render(wallet: Mapping[str, Any]) -> dict[str, Any]:
        return render_submission(db.get(store.kyc(wallet["user_id"])) or {"user_id": wallet["user_id"]})

    return db.page(
        store.WALLETS,
        QUEUE,
        limit=limit,
        cursor=cursor,
        # A submission decided since the page was read still marks where the next begins.
        owns=lambda wallet: "kyc_submitted_at" in wallet,
        render=render,
        newest_first=False,
        order_by="kyc_submitted_at",
    )


def render_submission(submission: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "user_id": submission["user_id"],
        "status": submission.get("status"),
        "full_name": submission.get("full_name"),
        "qid_number": submission.get("qid_number"),
        "document_urls": submission.get("document_urls", []),
        "submitted_at": moment(submission, "submitted_at"),
        "note": submission.get("note"),
    }
