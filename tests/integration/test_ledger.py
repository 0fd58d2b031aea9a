"""The transaction module against the real emulator: postings, sequence numbers,
refusals that change nothing, idempotency, and contention."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from coins import catalog, config, errors, idempotency, ledger, postings, store
from coins.domain import Account, EntryType
from tests.money import fresh_id, snapshot_all


def issue_plan(uid, coins, refs=None):
    def operation(reader):
        entry = postings.Entry(EntryType.ADMIN_ADJUST, postings.issue(uid, coins), refs=refs or {})
        return ledger.Plan(entry=entry, respond=lambda o: ledger.Response(200, {"entry_id": o.entry_id}))

    return operation


def spend_all_plan(payer, payee):
    """What a payment does: read the payer's wallet, select coins for an amount, move them."""

    def operation(reader):
        coins = reader.wallet(payer)["coins"]
        amount = catalog.value_dirhams(coins)
        selection = catalog.select(coins, amount) if amount else None
        if selection is None:
            raise errors.InsufficientFunds(shortfall_dirhams=500)
        moved = tuple(postings.Posting(s, c, Account.user(payer), Account.user(payee)) for s, c in selection.pay.items())
        return ledger.Plan(entry=postings.Entry(EntryType.ESCROW_LOCK, moved), respond=lambda o: ledger.Response(201, {}))

    return operation


def test_an_entry_moves_coins_and_numbers_it_per_wallet(db):
    alice = fresh_id()
    ledger.execute(db, issue_plan(alice, {"GPC": 1}), idempotency=None, actor="admin")
    response = ledger.execute(db, issue_plan(alice, {"GBC": 2}), idempotency=None, actor="admin")

    wallet = db.collection("wallets").document(alice).get().to_dict()
    assert wallet["coins"] == {"GBC": 2, "GPC": 1}
    assert wallet["balance_dirhams"] == 11_000
    assert wallet["seq"] == 2
    entry = db.collection("ledger").document(response.body["entry_id"]).get().to_dict()
    assert entry["users"][alice] == {
        "coins_delta": {"GBC": 2},
        "amount_dirhams": 1_000,
        "balance_after_dirhams": 11_000,
        "coins_after": {"GBC": 2, "GPC": 1},
        "seq": 2,
    }
    assert entry["accounts"] == ["treasury", f"user:{alice}"]
    assert entry["user_ids"] == [alice]


def test_hot_accounts_are_never_documents(db):
    ledger.execute(db, issue_plan(fresh_id(), {"GRC": 1}), idempotency=None, actor="admin")
    collections = {c.id for c in db.collections()}
    assert collections == {"wallets", "ledger", "ledger_effects"}, "the entry, its wallet and its pending effects marker"
    assert not db.collection("wallets").document("treasury").get().exists


def test_a_posting_that_would_overdraw_a_wallet_is_refused_and_changes_nothing(db):
    alice, bob = fresh_id(), fresh_id()
    ledger.execute(db, issue_plan(alice, {"GSC": 1}), idempotency=None, actor="admin")
    before = snapshot_all(db)

    def overdraw(reader):
        moved = (postings.Posting("GPC", 1, Account.user(alice), Account.user(bob)),)
        return ledger.Plan(entry=postings.Entry(EntryType.ESCROW_LOCK, moved), respond=lambda o: ledger.Response(200, {}))

    with pytest.raises(errors.InsufficientFunds) as refused:
        ledger.execute(db, overdraw, idempotency=None, actor=alice)
    assert refused.value.details["missing_coins"] == {"GPC": -1}
    assert snapshot_all(db) == before


def test_an_unbalanced_or_empty_entry_is_a_programming_error(db):
    def empty(reader):
        return ledger.Plan(entry=postings.Entry(EntryType.ADMIN_ADJUST, ()), respond=lambda o: ledger.Response(200, {}))

    with pytest.raises(AssertionError):
        ledger.execute(db, empty, idempotency=None, actor="admin")
    assert snapshot_all(db) == {}


def test_a_replayed_key_returns_the_first_response_without_doing_the_work_again(db):
    alice = fresh_id()
    key = ledger.Idempotency.of("admin", "k1", "op", {"coins": {"GBC": 1}})
    first = ledger.execute(db, issue_plan(alice, {"GBC": 1}), idempotency=key, actor="admin")
    second = ledger.execute(db, issue_plan(alice, {"GBC": 1}), idempotency=key, actor="admin")
    assert second == first
    assert db.collection("wallets").document(alice).get().get("coins") == {"GBC": 1}
    assert len(list(db.collection("ledger").stream())) == 1


def test_a_key_reused_with_another_body_is_refused(db):
    alice = fresh_id()
    ledger.execute(db, issue_plan(alice, {"GBC": 1}), idempotency=ledger.Idempotency.of("a", "k", "op", {"n": 1}), actor="a")
    with pytest.raises(errors.IdempotencyKeyReused):
        ledger.execute(db, issue_plan(alice, {"GBC": 5}), idempotency=ledger.Idempotency.of("a", "k", "op", {"n": 2}), actor="a")
    assert db.collection("wallets").document(alice).get().get("coins") == {"GBC": 1}


def test_keys_are_scoped_to_their_caller(db):
    alice = fresh_id()
    ledger.execute(db, issue_plan(alice, {"GBC": 1}), idempotency=ledger.Idempotency.of("a", "k", "op", {}), actor="a")
    ledger.execute(db, issue_plan(alice, {"GBC": 1}), idempotency=ledger.Idempotency.of("b", "k", "op", {}), actor="b")
    assert db.collection("wallets").document(alice).get().get("coins") == {"GBC": 2}


def test_a_refusal_is_stored_and_replayed_even_after_the_balance_changes(db):
    alice, bob = fresh_id(), fresh_id()
    key = ledger.Idempotency.of(alice, "pay-1", "op", {})
    with pytest.raises(errors.InsufficientFunds):
        ledger.execute(db, spend_all_plan(alice, bob), idempotency=key, actor=alice)
    ledger.execute(db, issue_plan(alice, {"GBC": 1}), idempotency=None, actor="admin")
    replay = ledger.execute(db, spend_all_plan(alice, bob), idempotency=key, actor=alice)
    assert replay.status == 409
    assert replay.body["error"]["code"] == "insufficient_funds"
    assert db.collection("wallets").document(alice).get().get("coins") == {"GBC": 1}


def test_a_record_being_worked_on_answers_request_in_progress(db):
    key = ledger.Idempotency.of("a", "slow", "op", {})
    # Another request holds the key (a two-phase operation around a gateway call, say).
    assert isinstance(idempotency.claim(db, key, ledger.now_utc()), idempotency.Claim)
    with pytest.raises(errors.RequestInProgress):
        ledger.execute(db, issue_plan(fresh_id(), {"GBC": 1}), idempotency=key, actor="a", answer_wait_seconds=0.3)
    assert len(list(db.collection("ledger").stream())) == 0


def test_a_crashed_requests_claim_is_taken_over_once_its_lease_runs_out(db):
    alice = fresh_id()
    key = ledger.Idempotency.of("a", "crashed", "op", {})
    # A request that claimed the key a lease ago and died.
    lease = timedelta(seconds=config.IDEMPOTENCY_LEASE_SECONDS + 1)
    idempotency.claim(db, key, ledger.now_utc() - lease)
    response = ledger.execute(db, issue_plan(alice, {"GBC": 1}), idempotency=key, actor="a")
    assert response.status == 200
    assert db.collection("wallets").document(alice).get().get("coins") == {"GBC": 1}
    assert db.get(key.doc)["state"] == "done"


def test_a_request_whose_claim_was_taken_over_does_no_work(db):
    """Work around an outside call holds a claim (purchases do); if it runs past its
    lease, another request with the key takes the claim over, and the late one's last
    step does nothing."""
    alice = fresh_id()
    key = ledger.Idempotency.of("a", "slow-one", "op", {})
    now = ledger.now_utc()
    mine = idempotency.claim(db, key, now)
    lease = timedelta(seconds=config.IDEMPOTENCY_LEASE_SECONDS + 1)
    assert isinstance(idempotency.claim(db, key, now + lease), idempotency.Claim), "taken over"
    with pytest.raises(errors.RequestInProgress):
        ledger.execute(db, issue_plan(alice, {"GBC": 1}), claim=mine, actor="a")
    assert not db.collection("wallets").document(alice).get().exists
    assert db.get(key.doc)["state"] == "in_progress", "the other request's claim stands"


def test_a_keyed_operation_reads_and_answers_its_key_in_its_own_transaction(db):
    """One round trip: no claim is written before the work; the record appears with the
    response, in the work's commit."""
    alice = fresh_id()
    key = ledger.Idempotency.of("a", "one-trip", "op", {})
    writes = []
    original = db.create

    def counting_create(doc, data):
        writes.append(str(doc))
        return original(doc, data)

    db.create = counting_create
    try:
        ledger.execute(db, issue_plan(alice, {"GBC": 1}), idempotency=key, actor="a")
    finally:
        del db.create
    assert writes == [], "no separate claim commit"
    assert db.get(key.doc)["state"] == "done"


def test_a_failure_that_stored_nothing_releases_the_key_for_a_retry(db):
    alice = fresh_id()
    key = ledger.Idempotency.of("a", "retry-me", "op", {})

    def broken(reader):
        raise errors.Unavailable()

    with pytest.raises(errors.Unavailable):
        ledger.execute(db, broken, idempotency=key, actor="a")
    assert db.get(key.doc) is None
    assert ledger.execute(db, issue_plan(alice, {"GBC": 1}), idempotency=key, actor="a").status == 200


def test_an_expired_record_no_longer_binds_its_key(db):
    alice = fresh_id()
    key = ledger.Idempotency.of("a", "old", "op", {})
    past = ledger.now_utc() - timedelta(days=2)
    ledger.execute(db, issue_plan(alice, {"GBC": 1}), idempotency=key, actor="a", clock=lambda: past)
    record = db.get(key.doc)
    assert record["expires_at"] - record["created_at"] >= timedelta(hours=24)
    ledger.execute(db, issue_plan(alice, {"GBC": 1}), idempotency=key, actor="a")
    assert db.collection("wallets").document(alice).get().get("coins") == {"GBC": 2}


def test_ten_concurrent_spends_of_a_whole_balance_succeed_exactly_once(db):
    payer, payees = fresh_id(), [fresh_id() for _ in range(10)]
    ledger.execute(db, issue_plan(payer, {"GRC": 1, "GBC": 3}), idempotency=None, actor="admin")
    barrier = threading.Barrier(10)

    def spend(payee):
        barrier.wait()
        try:
            ledger.execute(db, spend_all_plan(payer, payee), idempotency=None, actor=payer)
            return "ok"
        except errors.InsufficientFunds:
            return "insufficient_funds"

    with ThreadPoolExecutor(10) as pool:
        outcomes = list(pool.map(spend, payees))
    assert sorted(outcomes) == ["insufficient_funds"] * 9 + ["ok"]
    winners = [p for p in payees if db.collection("wallets").document(p).get().exists]
    assert len(winners) == 1
    assert db.collection("wallets").document(winners[0]).get().get("balance_dirhams") == 51_500
    assert db.collection("wallets").document(payer).get().get("balance_dirhams") == 0


def test_twenty_concurrent_calls_with_one_key_do_the_work_once(db):
    alice = fresh_id()
    key = ledger.Idempotency.of("admin", "same", "op", {"x": 1})
    barrier = threading.Barrier(20)

    def call(_):
        barrier.wait()
        try:
            return ledger.execute(db, issue_plan(alice, {"GPC": 1}), idempotency=key, actor="admin")
        except errors.RequestInProgress as error:
            return error.code

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(call, range(20)))
    responses = [r for r in results if isinstance(r, ledger.Response)]
    assert all(r == "request_in_progress" for r in results if not isinstance(r, ledger.Response))
    assert len({r.body["entry_id"] for r in responses}) == 1, "every response is the one stored"
    assert db.collection("wallets").document(alice).get().get("coins") == {"GPC": 1}
    assert len(list(db.collection("ledger").stream())) == 1


def test_the_business_document_changes_state_in_the_same_transaction_as_the_money(db):
    alice, purchase_id = fresh_id(), fresh_id("p")
    db.set(store.purchase(purchase_id), {"id": purchase_id, "user_id": alice, "status": "pending", "coins": {"GGC": 2}})

    def pay(reader):
        doc = reader.purchase(purchase_id)
        if doc["status"] != "pending":
            raise errors.InvalidState(status=doc["status"])
        entry = postings.Entry(EntryType.PURCHASE_ISSUE, postings.issue(alice, doc["coins"]), refs={"purchase_id": purchase_id})
        return ledger.Plan(
            entry=entry,
            documents={store.purchase(purchase_id): {"status": "paid", "entry_id": reader.entry_id}},
            respond=lambda outcome: ledger.Response(200, {"entry_id": outcome.entry_id}),
        )

    first = ledger.execute(db, pay, idempotency=None, actor="webhook")
    with pytest.raises(errors.InvalidState):
        ledger.execute(db, pay, idempotency=None, actor="webhook")
    assert db.get(store.purchase(purchase_id)) == {
        "id": purchase_id,
        "user_id": alice,
        "status": "paid",
        "coins": {"GGC": 2},
        "entry_id": first.body["entry_id"],
    }
    entry = db.collection("ledger").document(first.body["entry_id"]).get().to_dict()
    assert entry["refs"] == {"purchase_id": purchase_id}
    assert db.collection("wallets").document(alice).get().get("coins") == {"GGC": 2}
