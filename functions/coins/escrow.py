"""Job payments through escrow: lock, release (amount - fee to the freelancer, the fee to
`platform:fees`), refund, dispute, and automatic release.

Every transition is decided inside the ledger transaction from the escrow document as
read there, so that a release racing a refund, or five releases of one escrow, have
exactly one effect. The escrow's coins are the balance of the account `escrow:{id}`,
kept on its document by the ledger.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Mapping

from . import audit, catalog, config, errors, ledger, logs
from .auth import Caller
from .pages import moment

ESCROWS = "escrows"
# One escrow per job: `escrow_jobs/{job_id}` is created in the same transaction as the escrow.
ESCROW_JOBS = "escrow_jobs"
LOCKED, RELEASED, REFUNDED, DISPUTED = "locked", "released", "refunded", "disputed"
# Who acts when nobody does: the task and the sweeper.
AUTO_RELEASE_ACTOR = "system:auto-release"


def account(escrow_id: str) -> str:
    return f"escrow:{escrow_id}"


def render(escrow: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": escrow["id"],
        "status": escrow["status"],
        "job_id": escrow["job_id"],
        "client_id": escrow["client_id"],
        "freelancer_id": escrow["freelancer_id"],
        "amount_dirhams": escrow["amount_dirhams"],
        "fee_dirhams": escrow["fee_dirhams"],
        "coins": escrow.get("coins", {}),
        "auto_release_at": moment(escrow, "auto_release_at"),
        "created_at": moment(escrow, "created_at"),
        "released_at": moment(escrow, "released_at"),
        "refunded_at": moment(escrow, "refunded_at"),
        "disputed_at": moment(escrow, "disputed_at"),
        "dispute_reason": escrow.get("dispute_reason"),
    }


def lock(
    db, client: Caller, *, job_id: str, freelancer_id: str, amount_dirhams: int, idempotency: ledger.Idempotency
) -> ledger.Response:
    """The client pays a job: coins worth the amount move from the client's wallet to a
    new escrow (with change from the treasury when no exact combination exists)."""
    if freelancer_id == client.uid:
        raise errors.ValidationFailed(fields=[{"field": "freelancer_id", "message": "a client cannot pay itself"}])
    ref = db.collection(ESCROWS).document()
    job_ref = db.collection(ESCROW_JOBS).document(job_id)
    delay = timedelta(seconds=config.settings().escrow_auto_release_seconds)

    def operation(reader: ledger.Reader) -> ledger.Plan:
        if reader.document(job_ref) is not None:
            raise errors.InvalidState("This job already has an escrow.", job_id=job_id)
        wallet = reader.wallet(client.uid)
        postings, _ = ledger.pay(ledger.user_account(client.uid), account(ref.id), wallet["coins"], amount_dirhams)
        escrow = {
            "id": ref.id,
            "status": LOCKED,
            "job_id": job_id,
            "client_id": client.uid,
            "freelancer_id": freelancer_id,
            "amount_dirhams": amount_dirhams,
            "fee_dirhams": catalog.job_fee_dirhams(amount_dirhams),
            "auto_release_at": reader.now + delay,
            "created_at": reader.now,
            "updated_at": reader.now,
        }
        entry = ledger.Entry(
            "escrow_lock", postings, refs={"escrow_id": ref.id, "job_id": job_id}, parties=(client.uid, freelancer_id)
        )
        held = catalog.add({}, {p.tier: p.count for p in postings if p.destination == account(ref.id)})
        return ledger.Plan(
            entry=entry,
            documents={ref: escrow, job_ref: {"escrow_id": ref.id, "client_id": client.uid, "created_at": reader.now}},
            respond=lambda outcome: ledger.Response(201, render({**escrow, "coins": held})),
        )

    return ledger.execute(db, operation, actor=client.uid, idempotency=idempotency)


def get(db, caller: Caller, escrow_id: str) -> dict[str, Any]:
    snapshot = db.collection(ESCROWS).document(escrow_id).get()
    if not snapshot.exists or not _may_see(caller, snapshot.to_dict()):
        raise errors.NotFound()
    return render(snapshot.to_dict())


def _may_see(caller: Caller, escrow: Mapping[str, Any]) -> bool:
    return caller.admin or caller.uid in (escrow["client_id"], escrow["freelancer_id"])


# Transitions. Each reads the escrow inside the transaction and checks who may do what
# in which state: a stranger learns nothing (404), a party without the right gets 403, a
# finished escrow answers 409.


# A party who may not finish the escrow its way: the freelancer cannot release (pay
# themselves), the client cannot refund (take the money back) while it is locked.
EXCLUDED_PARTY = {RELEASED: "freelancer", REFUNDED: "client"}
VERB = {RELEASED: "release", REFUNDED: "refund"}


def finish(db, caller: Caller, escrow_id: str, status: str, *, idempotency: ledger.Idempotency | None) -> ledger.Response:
    """Release (by the client) or refund (by the freelancer) while locked; an admin may
    do either, also on a disputed escrow."""
    excluded = EXCLUDED_PARTY[status]

    def allowed(escrow: Mapping[str, Any]) -> None:
        if caller.uid == escrow[f"{excluded}_id"] and not caller.admin:
            raise errors.Forbidden(f"The {excluded} cannot {VERB[status]} an escrow.")
        _require_state(escrow, admin=caller.admin)
        return None

    return _finish(db, caller.uid, escrow_id, status, allowed, caller, idempotency)


def auto_release(db, escrow_id: str, now: datetime | None = None) -> str:
    """Releases an escrow that is still `locked` past its time (the task, the sweeper);
    anything else is a no-op. Returns what happened."""
    now = now or ledger.now_utc()

    def allowed(escrow: Mapping[str, Any]) -> str | None:
        if escrow["status"] != LOCKED:
            return f"skipped: {escrow['status']}"
        if escrow["auto_release_at"] > now:
            return "skipped: not due"
        return None

    try:
        response = _finish(db, AUTO_RELEASE_ACTOR, escrow_id, RELEASED, allowed, None, None)
    except errors.NotFound:
        logs.warning("auto-release for an unknown escrow", escrow_id=escrow_id)
        return "skipped: unknown escrow"
    return response.body.get("outcome", RELEASED)


def _require_state(escrow: Mapping[str, Any], *, admin: bool) -> None:
    """Returns if the caller may finish the escrow in its state; raises 409 otherwise."""
    if escrow["status"] == LOCKED or (escrow["status"] == DISPUTED and admin):
        return
    if escrow["status"] == DISPUTED:
        raise errors.InvalidState("A disputed escrow is resolved by an admin.", status=DISPUTED)
    raise errors.InvalidState(f"The escrow is already {escrow['status']}.", status=escrow["status"])


def _finish(db, actor: str, escrow_id: str, status: str, allowed, caller: Caller | None, idempotency) -> ledger.Response:
    ref = db.collection(ESCROWS).document(escrow_id)

    def operation(reader: ledger.Reader) -> ledger.Plan:
        escrow = reader.document(ref)
        if escrow is None or (caller is not None and not _may_see(caller, escrow)):
            raise errors.NotFound()
        skip = allowed(escrow)
        if skip is not None:
            return ledger.Plan(entry=None, respond=lambda outcome: ledger.Response(200, {"outcome": skip}))
        held, client, freelancer = escrow["coins"], escrow["client_id"], escrow["freelancer_id"]
        if status == RELEASED:
            postings, taken = ledger.pay(
                account(escrow_id), ledger.PLATFORM_FEES, held, escrow["fee_dirhams"], change_to=ledger.user_account(freelancer)
            )
            postings += ledger.transfer(account(escrow_id), ledger.user_account(freelancer), catalog.add(held, taken, sign=-1))
        else:
            postings = ledger.transfer(account(escrow_id), ledger.user_account(client), held)
        changes = {"status": status, f"{status}_at": reader.now, f"{status}_by": actor, "updated_at": reader.now}
        documents: dict[Any, dict[str, Any]] = {ref: changes}
        if caller is not None and caller.admin:
            trail_ref, trail = audit.record(
                reader, actor=actor, action=f"escrow_{status}", target=account(escrow_id),
                before={"status": escrow["status"]}, after={"status": status},
            )
            documents[trail_ref] = trail
        entry = ledger.Entry(
            "escrow_release" if status == RELEASED else "escrow_refund",
            postings,
            refs={"escrow_id": escrow_id, "job_id": escrow["job_id"]},
            memo={"from_status": escrow["status"]},
            parties=(client, freelancer),
        )
        return ledger.Plan(
            entry=entry,
            documents=documents,
            respond=lambda outcome: ledger.Response(200, render({**escrow, **changes, "coins": {}})),
        )

    return ledger.execute(db, operation, actor=actor, idempotency=idempotency)


def dispute(db, caller: Caller, escrow_id: str, *, reason: str) -> dict[str, Any]:
    """The client or the freelancer stops the automatic release; an admin then decides."""
    ref = db.collection(ESCROWS).document(escrow_id)

    def operation(reader: ledger.Reader) -> ledger.Plan:
        escrow = reader.document(ref)
        if escrow is None or not _may_see(caller, escrow):
            raise errors.NotFound()
        if caller.uid not in (escrow["client_id"], escrow["freelancer_id"]):
            raise errors.Forbidden("Only the client or the freelancer can dispute an escrow.")
        if escrow["status"] != LOCKED:
            raise errors.InvalidState(f"The escrow is {escrow['status']}; only a locked escrow can be disputed.")
        changes = {
            "status": DISPUTED,
            "disputed_at": reader.now,
            "disputed_by": caller.uid,
            "dispute_reason": reason,
            "updated_at": reader.now,
        }
        return ledger.Plan(
            entry=None, documents={ref: changes}, respond=lambda outcome: ledger.Response(200, render({**escrow, **changes}))
        )

    return ledger.execute(db, operation, actor=caller.uid).body


def sweep(db, now: datetime | None = None) -> dict[str, int]:
    """Releases escrows still `locked` past their time, oldest first, in a bounded batch,
    through the same path as the task: for tasks that were lost or never created."""
    from google.cloud import firestore

    now = now or ledger.now_utc()
    query = (
        db.collection(ESCROWS)
        .where(filter=firestore.FieldFilter("status", "==", LOCKED))
        .where(filter=firestore.FieldFilter("auto_release_at", "<=", now))
        .order_by("auto_release_at")
        .limit(config.ESCROW_SWEEP_BATCH_MAX)
    )
    counts: dict[str, int] = {}
    for snapshot in query.stream():
        outcome = auto_release(db, snapshot.id, now)
        counts[outcome] = counts.get(outcome, 0) + 1
    logs.info("escrows swept", **counts)
    return counts
