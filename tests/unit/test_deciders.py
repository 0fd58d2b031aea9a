"""The fast tier: the pure deciders and the unit of work over a dict-backed store
(tests/unit/memory.py), no emulator. What a key's record answers, what one ledger
transaction writes, the escrow's transitions with their money, and what a purchase
settlement decides. Money is replayed after each: every tier sums to zero."""

from datetime import datetime, timedelta, timezone

import pytest

from coins import catalog, errors, escrow, ledger, postings, purchases, store
from coins import idempotency as keys
from coins.app import Job
from coins.auth import Caller
from coins.domain import Account, EntryType
from coins.gateways import Status, Verification
from coins.purchases import settlement
from tests.unit.memory import MemoryStore

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
QAR = catalog.DIRHAMS_PER_QAR


def conserved(db: MemoryStore) -> postings.Balances:
    balances: postings.Balances = {}
    for entry in db.collection(store.LEDGER).values():
        postings.add_postings(balances, entry["postings"])
    assert postings.conservation_problems(balances) == []
    for uid, wallet in db.collection(store.WALLETS).items():
        assert catalog.normalize(wallet.get("coins", {})) == catalog.normalize(balances.get(Account.user(uid), {}))
    return balances


def issue(db: MemoryStore, uid: str, coins: dict[str, int], key: ledger.Idempotency | None = None) -> ledger.Response:
    def operation(reader):
        return ledger.Plan(
            postings.Entry(EntryType.ADMIN_ADJUST, postings.issue(uid, coins)),
            respond=lambda outcome: ledger.Response(200, {"entry_id": outcome.entry_id}),
        )

    return ledger.execute(db, operation, actor="admin", idempotency=key, clock=lambda: NOW)


# What a key's record answers.

KEY = ledger.Idempotency.of("alice", "k1", "op", {"x": 1})


def record(**fields):
    return {
        "fingerprint": KEY.fingerprint,
        "state": "done",
        "status": 201,
        "response_json": '{"id":"e1"}',
        "expires_at": NOW + timedelta(hours=1),
        "locked_until": NOW + timedelta(minutes=1),
        **fields,
    }


def test_a_stored_answer_is_replayed_exactly():
    assert keys.stored_answer(record(), KEY, NOW) == ledger.Response(201, {"id": "e1"})


@pytest.mark.parametrize("stored", [None, record(expires_at=NOW), record(state="in_progress", locked_until=NOW)])
def test_no_record_an_expired_one_or_a_lapsed_claim_leaves_the_key_free(stored):
    assert keys.stored_answer(stored, KEY, NOW) is None


def test_a_key_held_by_a_request_at_work_is_in_progress_and_one_used_for_another_body_is_refused():
    with pytest.raises(errors.RequestInProgress):
        keys.stored_answer(record(state="in_progress"), KEY, NOW)
    with pytest.raises(errors.IdempotencyKeyReused):
        keys.stored_answer(record(fingerprint="another"), KEY, NOW)


# One ledger transaction.


def test_one_transaction_writes_the_wallet_the_entry_its_pending_marker_and_the_answer():
    db = MemoryStore()
    response = issue(db, "alice", {"GPC": 2}, KEY)
    entry_id = response.body["entry_id"]
    assert db.commits == 1
    assert db.get(store.wallet("alice"))["coins"] == {"GPC": 2} and db.get(store.wallet("alice"))["seq"] == 1
    assert db.get(store.entry(entry_id))["users"]["alice"]["amount_dirhams"] == 200 * QAR
    assert db.get(store.effects_marker(entry_id)) == {"entry_id": entry_id, "type": "admin_adjust", "pending_since": NOW}
    assert db.get(KEY.doc)["state"] == "done"
    assert issue(db, "alice", {"GPC": 2}, KEY) == response, "a replay"
    assert db.get(store.wallet("alice"))["coins"] == {"GPC": 2}, "done once"
    conserved(db)


def test_a_refusal_is_stored_under_the_key_and_changes_nothing_else():
    db = MemoryStore()
    issue(db, "bob", {"GBC": 1})

    def overdraw(reader):
        moved = (postings.Posting("GPC", 1, Account.user("bob"), Account.user("carol")),)
        return ledger.Plan(postings.Entry(EntryType.ESCROW_LOCK, moved), respond=lambda outcome: ledger.Response(201, {}))

    key = ledger.Idempotency.of("bob", "k", "op", {})
    with pytest.raises(errors.InsufficientFunds):
        ledger.execute(db, overdraw, actor="bob", idempotency=key)
    assert db.get(key.doc)["status"] == 409
    assert db.get(store.wallet("carol")) is None and len(db.collection(store.LEDGER)) == 1
    conserved(db)


# The escrow's transitions, with their money.


class App:
    """The app's job, as coins.app reads it."""

    def job(self, job_id):
        return Job(job_id, "client", "freelancer", "Logo")


def fund(db, amount_dirhams=100 * QAR, milestone="1"):
    key = ledger.Idempotency.of("client", f"fund-{milestone}", "op", {})
    return escrow.lock(
        db,
        App(),
        Caller("client"),
        job_id="job-1",
        milestone=milestone,
        freelancer_id=None,
        amount_dirhams=amount_dirhams,
        idempotency=key,
    ).body


def test_a_release_in_two_parts_pays_what_paying_at_once_would():
    db = MemoryStore()
    issue(db, "client", {"GPC": 1})
    held = fund(db)
    part = escrow.release(
        db, Caller("client"), held["id"], amount_dirhams=50 * QAR, idempotency=ledger.Idempotency.of("client", "r1", "op", {})
    ).body
    assert (part["status"], part["released_dirhams"], part["fee_dirhams"]) == ("funded", 50 * QAR, 5 * QAR)
    rest = escrow.release(
        db, Caller("client"), held["id"], amount_dirhams=None, idempotency=ledger.Idempotency.of("client", "r2", "op", {})
    ).body
    assert (rest["status"], rest["released_dirhams"], rest["fee_dirhams"]) == ("released", 100 * QAR, 10 * QAR)
    balances = conserved(db)
    assert catalog.value_dirhams(balances[Account.user("freelancer")]) == 90 * QAR
    assert db.get(store.escrow_milestone("job-1", "1"))["open_escrow_id"] is None, "the milestone can be funded again"


def test_a_refund_request_the_freelancer_accepts_gives_everything_back():
    db = MemoryStore()
    issue(db, "client", {"GPC": 1})
    held = fund(db)
    asked = escrow.request_refund(db, Caller("client"), held["id"], reason="not needed")
    assert asked["status"] == "refund_requested" and asked["refund_response_ends_at"]
    refunded = escrow.refund(db, Caller("freelancer"), held["id"], idempotency=ledger.Idempotency.of("freelancer", "f", "op", {}))
    assert refunded.body["status"] == "refunded"
    assert catalog.value_dirhams(conserved(db)[Account.user("client")]) == 100 * QAR


def test_one_open_escrow_per_milestone_and_a_stranger_sees_nothing():
    db = MemoryStore()
    issue(db, "client", {"GPC": 2})
    held = fund(db)
    with pytest.raises(errors.InvalidState):
        escrow.lock(
            db,
            App(),
            Caller("client"),
            job_id="job-1",
            milestone="1",
            freelancer_id=None,
            amount_dirhams=100 * QAR,
            idempotency=ledger.Idempotency.of("client", "again", "op", {}),
        )
    with pytest.raises(errors.NotFound):
        escrow.submit(db, Caller("stranger"), held["id"], note=None)
    conserved(db)


# What a purchase settlement decides.


def purchase(**fields):
    return {
        "id": "p1",
        "user_id": "alice",
        "status": "pending",
        "gateway": "fatora",
        "coins": {"GPC": 1},
        "price_dirhams": 110 * QAR,
        **fields,
    }


def verified(status=Status.PAID, amount=110 * QAR, currency="QAR", mode="live"):
    return Verification("p1", "t1", status, amount, currency, mode)


class Now:
    now, entry_id = NOW, "entry-1"


@pytest.mark.parametrize(
    "before, verification, outcome, status",
    [
        (purchase(), verified(), purchases.Outcome.PAID, "paid"),
        (purchase(), verified(amount=100 * QAR), purchases.Outcome.NEEDS_REVIEW, None),
        (purchase(), verified(mode="test"), purchases.Outcome.NEEDS_REVIEW, None),
        (purchase(), verified(status=Status.FAILED), purchases.Outcome.FAILED, "failed"),
        (purchase(status="paid"), verified(), purchases.Outcome.ALREADY_PAID, None),
        (purchase(status="refunded"), verified(), purchases.Outcome.REFUNDED, None),
        (purchase(status="expired"), verified(), purchases.Outcome.NEEDS_REVIEW, None),
        (purchase(), verified(status=Status.PENDING), purchases.Outcome.UNCHANGED, None),
        (purchase(), verified(status=Status.IN_PROGRESS), purchases.Outcome.UNCHANGED, None),
        (purchase(gateway="sadad"), verified(), purchases.Outcome.PAID, "paid"),
        (purchase(gateway="sadad"), verified(mode=None), purchases.Outcome.NEEDS_REVIEW, None),
    ],
)
def test_a_settlement_decides_from_the_purchase_and_what_the_gateway_verified(before, verification, outcome, status):
    decided, entry, changes = settlement.decide(before, verification, False, Now(), "live")
    assert decided is outcome
    assert changes.get("status") == status
    assert (entry is not None) == (outcome is purchases.Outcome.PAID), "coins are issued only for a verified, matching payment"
    if outcome is purchases.Outcome.NEEDS_REVIEW:
        assert changes["needs_review"] is True and changes["review_reason"]


class TwoAttempts:
    """A gateway asked by reference whose order has two transactions: the payer's first
    attempt went through, their second (newer) was declined."""

    name, required_mode, asks_by_reference = "sadad", "live", True

    def verify(self, order_id, reference):
        paid = reference == "SD-first"
        return Verification(order_id, reference, Status.PAID if paid else Status.FAILED, 11_000, "QAR", "live")


def test_the_sweeper_keeps_the_answer_that_says_most_of_several_attempts():
    db = MemoryStore()
    pending = {
        "id": "p1",
        "user_id": "alice",
        "status": "pending",
        "gateway": "sadad",
        "coins": {"GPC": 1},
        "value_dirhams": 10_000,
        "price_dirhams": 11_000,
        "needs_review": False,
        "created_at": NOW - timedelta(hours=1),
        "reference_hints": ["SD-first", "SD-second"],  # newest last: asked first
    }
    db.set(store.purchase("p1"), pending)
    assert settlement._sweep(db, lambda name: TwoAttempts(), pending, NOW) == "paid"
    assert db.get(store.purchase("p1"))["status"] == "paid" and db.get(store.purchase("p1"))["gateway_reference"] == "SD-first"
    conserved(db)
