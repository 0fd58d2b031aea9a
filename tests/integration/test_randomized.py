"""Random sequences of every money operation, through the services, with the whole
ledger replayed after each step: every tier sums to zero and every wallet and hold
equals its replay. At the end the trigger's vault and a reconciliation agree."""

import random
from datetime import timedelta

import pytest

from coins import catalog, clients, effects, errors, escrow, ledger, reconciliation, wallets, withdrawals
from coins.auth import Caller
from tests import factories
from tests.money import assert_conserved, assert_vault_matches_ledger

USERS = [f"r{i}" for i in range(4)]
ADMIN = Caller("r-admin", admin=True)
STEPS = 40


class NothingToActOn(Exception):
    """A step drew an operation on escrows or withdrawals before any existed."""


def key(rng):
    return ledger.Idempotency.of("random", f"k{rng.random()}", "op", {})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_operations_conserve_every_coin(db, task_queue, seed):
    rng = random.Random(seed)
    escrows: list[str] = []
    open_withdrawals: list[str] = []
    for uid in USERS:
        wallets.set_kyc(db, ADMIN, user_id=uid, status="verified", note=None)
    outcomes: dict[str, int] = {}

    def adjust():
        coins = {rng.choice(catalog.SYMBOLS[1:5]): rng.choice([1, 2, 3, -1])}
        wallets.adjust_balance(db, ADMIN, user_id=rng.choice(USERS), coins=coins, reason="random", idempotency=key(rng))

    def pay():
        client, freelancer = rng.sample(USERS, 2)
        amount = rng.randint(1, 60) * catalog.GRID_DIRHAMS
        job_id = factories.job(client, freelancer)
        response = escrow.lock(db, clients.app_db(), Caller(client), job_id=job_id, freelancer_id=None,
                               amount_dirhams=amount, idempotency=key(rng))
        escrows.append(response.body["id"])

    def finish():
        if not escrows:
            raise NothingToActOn()
        escrow_id = rng.choice(escrows)
        held = db.collection("escrows").document(escrow_id).get().to_dict()
        action = rng.choice([escrow.Action.RELEASE, escrow.Action.REFUND])
        party = held["client_id"] if action is escrow.Action.RELEASE else held["freelancer_id"]
        caller = rng.choice([Caller(party), ADMIN])
        escrow.finish(db, caller, escrow_id, action, idempotency=key(rng))

    def dispute():
        if not escrows:
            raise NothingToActOn()
        held = db.collection("escrows").document(rng.choice(escrows)).get().to_dict()
        escrow.dispute(db, Caller(held["client_id"]), held["id"], reason="random")

    def auto():
        escrow.sweep(db, now=ledger.now_utc() + timedelta(days=4))

    def withdraw():
        response = withdrawals.create(db, Caller(rng.choice(USERS)), amount_dirhams=rng.randint(1, 30) * catalog.GRID_DIRHAMS,
                                      coins=None, method="wallet", destination={"wallet_id": "w-1234"}, idempotency=key(rng))
        open_withdrawals.append(response.body["id"])

    def admin_withdrawal():
        if not open_withdrawals:
            raise NothingToActOn()
        withdrawal_id = rng.choice(open_withdrawals)
        action = rng.choice([withdrawals.approve, withdrawals.pay, withdrawals.reject])
        extra = {withdrawals.approve: {"notes": None}, withdrawals.pay: {"payment_reference": "r"}, withdrawals.reject: {"reason": "r"}}
        action(db, ADMIN, withdrawal_id, idempotency=key(rng), **extra[action])

    operations = [adjust, adjust, adjust, pay, pay, finish, dispute, auto, withdraw, admin_withdrawal]
    for _ in range(STEPS):
        operation = rng.choice(operations)
        try:
            operation()
            outcome = operation.__name__
        except (errors.InsufficientFunds, errors.InvalidState, errors.WithdrawalPending, errors.Forbidden) as refused:
            outcome = f"{operation.__name__}: {refused.code}"
        except NothingToActOn:
            outcome = f"{operation.__name__}: nothing to act on"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        assert_conserved(db)
    # Refusals are part of the test, but most steps must have moved something.
    assert sum(n for name, n in outcomes.items() if ":" not in name) >= STEPS // 3, outcomes

    for snapshot in db.collection("ledger").stream():
        effects.apply(db, task_queue, snapshot.id)
    assert_vault_matches_ledger(db)
    report = reconciliation.run(db)
    assert report["ok"], report["problems"]
