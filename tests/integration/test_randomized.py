"""Random sequences of every money operation, through the services, with the whole
ledger replayed after each step: every tier sums to zero and every wallet, hold and
purchase equals its replay. At the end the trigger's vault and a reconciliation agree.
Escrows go through every transition of their table, timers included; purchases through
both gateways (their sandboxes over HTTP) are paid, declined, left In Progress,
refunded, reviewed and swept."""

import json
import random
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from coins import (
    catalog,
    clients,
    effects,
    errors,
    escrow,
    kyc,
    ledger,
    purchases,
    reconciliation,
    store,
    wallets,
    withdrawals,
)
from coins import sadad as sadad_wire
from coins.auth import Caller
from coins.gateways import Name
from tests import factories
from tests.money import assert_conserved, assert_vault_matches_ledger

USERS = [f"r{i}" for i in range(4)]
ADMIN = Caller("r-admin", admin=True)
STEPS = 80
# The refusals a random step may meet and that the test means: anything else fails it.
MEANT = (errors.InsufficientFunds, errors.InvalidState, errors.WithdrawalPending, errors.Forbidden, errors.ValidationFailed)


class NothingToActOn(Exception):
    """A step drew an operation on escrows or withdrawals before any existed."""


def key(rng):
    return ledger.Idempotency.of("random", f"k{rng.random()}", "op", {})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_operations_conserve_every_coin(db, task_queue, fatora, sadad, seed):
    rng = random.Random(seed)
    escrows: list[str] = []
    open_withdrawals: list[str] = []
    bought: list[str] = []
    # Every notification comes from a step, not from a sandbox in the background.
    fatora.faults.webhooks_enabled = sadad.faults.webhooks_enabled = False
    for uid in USERS:
        kyc.decide(db, ADMIN, user_id=uid, status="verified", note=None)
    outcomes: dict[str, int] = {}

    def pick_escrow():
        if not escrows:
            raise NothingToActOn()
        held = db.get(store.escrow(rng.choice(escrows)))
        return held, Caller(held["client_id"]), Caller(held["freelancer_id"])

    def adjust():
        coins = {rng.choice(catalog.SYMBOLS[1:5]): rng.choice([1, 2, 3, -1])}
        wallets.adjust_balance(db, ADMIN, user_id=rng.choice(USERS), coins=coins, reason="random", idempotency=key(rng))

    def fund():
        client, freelancer = rng.sample(USERS, 2)
        amount = rng.randint(1, 60) * catalog.GRID_DIRHAMS
        job_id = factories.job(client, freelancer)
        response = escrow.lock(
            db,
            clients.app_db(),
            Caller(client),
            job_id=job_id,
            milestone=rng.choice(["1", "2"]),
            freelancer_id=None,
            amount_dirhams=amount,
            idempotency=key(rng),
        )
        escrows.append(response.body["id"])

    def submit():
        held, client, freelancer = pick_escrow()
        escrow.submit(db, rng.choice([freelancer, client]), held["id"], note=None)

    def request_changes():
        held, client, freelancer = pick_escrow()
        escrow.request_changes(db, client, held["id"], note="again")

    def release():
        held, client, freelancer = pick_escrow()
        amount = rng.choice([None, rng.randint(1, 20) * catalog.GRID_DIRHAMS])
        escrow.release(
            db, rng.choice([client, client, ADMIN, freelancer]), held["id"], amount_dirhams=amount, idempotency=key(rng)
        )

    def request_refund():
        held, client, freelancer = pick_escrow()
        escrow.request_refund(db, client, held["id"], reason="random")

    def refund():
        held, client, freelancer = pick_escrow()
        escrow.refund(db, rng.choice([freelancer, ADMIN, client]), held["id"], idempotency=key(rng))

    def dispute():
        held, client, freelancer = pick_escrow()
        escrow.dispute(db, rng.choice([client, freelancer]), held["id"], reason="random", evidence_urls=())

    def resolve():
        held, client, freelancer = pick_escrow()
        share = rng.randint(0, 12) * catalog.GRID_DIRHAMS
        escrow.resolve(db, ADMIN, held["id"], freelancer_dirhams=share, note="random", idempotency=key(rng))

    def windows_end():
        escrow.sweep(db, now=ledger.now_utc() + timedelta(days=4))

    def withdraw():
        response = withdrawals.create(
            db,
            Caller(rng.choice(USERS)),
            amount_dirhams=rng.randint(1, 30) * catalog.GRID_DIRHAMS,
            coins=None,
            method="wallet",
            destination={"wallet_id": "w-1234"},
            idempotency=key(rng),
        )
        open_withdrawals.append(response.body["id"])

    def admin_withdrawal():
        if not open_withdrawals:
            raise NothingToActOn()
        withdrawal_id = rng.choice(open_withdrawals)
        action = rng.choice([withdrawals.approve, withdrawals.pay, withdrawals.reject])
        extra = {
            withdrawals.approve: {"notes": None},
            withdrawals.pay: {"payment_reference": "r"},
            withdrawals.reject: {"reason": "r"},
        }
        action(db, ADMIN, withdrawal_id, idempotency=key(rng), **extra[action])

    def pick_purchase():
        if not bought:
            raise NothingToActOn()
        return db.get(store.purchase(rng.choice(bought)))

    def buy():
        name = rng.choice([Name.FATORA, Name.SADAD])
        buyer = Caller(rng.choice(USERS))
        response = purchases.create(
            db,
            clients.gateway,
            name,
            buyer,
            coins={rng.choice(catalog.SYMBOLS[:4]): rng.randint(1, 2)},
            pack_id=None,
            language="en",
            payer=purchases.payer_of(name, buyer, email="r@example.com", mobile_no="97450000000"),
            idempotency=key(rng),
        )
        bought.append(response.body["id"])

    def pay():
        """The payer at the gateway (pay, decline, or SADAD's In Progress), then the
        browser's return (Fatora) or the webhook (SADAD) names the order."""
        purchase = pick_purchase()
        decision = rng.choice(["pay", "pay", "decline"])
        if purchase["gateway"] == Name.FATORA:
            token = purchase["checkout_url"].rsplit("/", 1)[1]
            base = purchase["checkout_url"].split("/checkout/")[0]
            answer = requests.post(f"{base}/checkout/{token}/{decision}", allow_redirects=False, timeout=10)
            if answer.status_code != 303:
                raise NothingToActOn()  # paid or declined already
            query = dict(parse_qsl(urlsplit(answer.headers["Location"]).query))
            purchases.receive_browser(db, clients.gateway, Name.FATORA, query=query, body=b"", content_type="")
            return
        if purchase["id"] not in sadad.orders:
            form = purchase["checkout"]
            assert requests.post(form["action"], data=form["fields"], timeout=10).status_code == 200
        order = sadad.order_of(purchase["id"])
        order.status = {"pay": rng.choice([sadad_wire.SUCCESSFUL, sadad_wire.IN_PROGRESS]), "decline": sadad_wire.FAILED}[
            decision
        ]
        body = json.dumps(sadad.webhook_payload(order)).encode()
        purchases.receive_webhook(db, clients.gateway, Name.SADAD, query={}, body=body, content_type="application/json")

    def refund_purchase():
        purchase = pick_purchase()
        purchases.refund(db, clients.gateway, ADMIN, purchase["id"], reason="random", idempotency=key(rng))

    def review():
        waiting = purchases.list_review(db, limit=20, cursor=None)["items"]
        if not waiting:
            raise NothingToActOn()
        purchase = rng.choice(waiting)
        action = rng.choice(["issue", "refund", "dismiss"])
        purchases.resolve(db, clients.gateway, ADMIN, purchase["id"], action=action, note="random", idempotency=key(rng))

    def sweep_purchases():
        later = rng.choice([timedelta(minutes=16), timedelta(hours=25), timedelta(hours=49)])
        purchases.reconcile_pending(db, clients.gateway, clients.offered_gateways(), now=ledger.now_utc() + later)

    operations = [
        buy,
        buy,
        pay,
        pay,
        refund_purchase,
        review,
        sweep_purchases,
        adjust,
        adjust,
        adjust,
        fund,
        fund,
        fund,
        submit,
        submit,
        request_changes,
        release,
        release,
        request_refund,
        refund,
        dispute,
        resolve,
        windows_end,
        withdraw,
        admin_withdrawal,
    ]
    for _ in range(STEPS):
        operation = rng.choice(operations)
        try:
            operation()
            outcome = operation.__name__
        except MEANT as refused:
            outcome = f"{operation.__name__}: {refused.code}"
        except NothingToActOn:
            outcome = f"{operation.__name__}: nothing to act on"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        assert_conserved(db)
    # Refusals are part of the test, but many steps must have moved something.
    assert sum(n for name, n in outcomes.items() if ":" not in name) >= STEPS // 3, outcomes

    for snapshot in db.collection("ledger").stream():
        effects.apply(db, snapshot.id)
    assert_vault_matches_ledger(db)
    report = reconciliation.run(db)
    assert report["ok"], report["problems"]
