"""Helpers for tests that move money: fresh ids, the local API, and the conservation
check that runs after every integration and e2e test."""

from __future__ import annotations

import json
import uuid
from typing import Any

from coins import catalog, ledger
from local.tokens import mint


def fresh_id(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def assert_conserved(db) -> dict[str, dict[str, int]]:
    """Replays the whole ledger: every tier sums to zero over all accounts, and every
    wallet document holds exactly what the ledger says it holds."""
    balances = ledger.replay(db)
    for symbol in catalog.SYMBOLS:
        total = sum(tiers.get(symbol, 0) for tiers in balances.values())
        assert total == 0, f"tier {symbol} sums to {total}, not zero"
    for snapshot in db.collection(ledger.WALLETS).stream():
        wallet = snapshot.to_dict()
        replayed = balances.get(ledger.user_account(snapshot.id), {})
        assert catalog.normalize(wallet["coins"]) == replayed, f"wallet {snapshot.id} differs from its replay"
        assert wallet["balance_dirhams"] == catalog.value_dirhams(replayed), f"wallet {snapshot.id} balance"
        assert all(count >= 0 for count in replayed.values()), f"wallet {snapshot.id} below zero"
    for kind, collection in ledger.HOLDING_COLLECTIONS.items():
        for snapshot in db.collection(collection).stream():
            replayed = balances.get(f"{kind}:{snapshot.id}", {})
            assert catalog.normalize(snapshot.to_dict().get("coins", {})) == replayed, f"{kind} {snapshot.id} differs from its replay"
    for account, tiers in balances.items():
        if account != ledger.TREASURY:
            assert all(count >= 0 for count in tiers.values()), f"{account} below zero: {tiers}"
    return balances


def assert_vault_matches_ledger(db) -> None:
    """The trigger's sharded running totals equal the replay of the ledger, class by class:
    the derived balances of the treasury and platform:fees among them."""
    from coins import effects

    expected = effects.class_balances(ledger.replay(db))
    vault = effects.read_vault(db)["balances"]
    assert {k: v for k, v in vault.items() if v} == {k: v for k, v in expected.items() if v}


def snapshot_all(db) -> dict[str, dict[str, Any]]:
    """Every document of the money collections, to show that a refused request changed nothing."""
    state = {}
    for collection in (ledger.WALLETS, ledger.LEDGER, ledger.IDEMPOTENCY):
        for snapshot in db.collection(collection).stream():
            state[f"{collection}/{snapshot.id}"] = snapshot.to_dict()
    return state


class Api:
    """Calls the HTTP functions in-process (functions_framework test clients), as the
    app would: JSON bodies, Bearer tokens, Idempotency-Key headers."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._clients: dict[str, Any] = {}

    def client(self, function: str):
        if function not in self._clients:
            from functions_framework import create_app

            self._clients[function] = create_app(target=function, source=self.source).test_client()
        return self._clients[function]

    def call(
        self,
        function: str,
        method: str = "GET",
        *,
        uid: str | None = None,
        admin: bool = False,
        token: str | None = None,
        body: Any = None,
        data: bytes | str | None = None,
        key: str | None = None,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ):
        all_headers = dict(headers or {})
        if token is None and uid is not None:
            token = mint(uid, admin=admin)
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        if key is not None:
            all_headers["Idempotency-Key"] = key
        if body is not None:
            data = json.dumps(body)
        return self.client(function).open(
            "/", method=method, headers=all_headers, data=data, query_string=query, content_type=content_type
        )

    def adjust(self, admin_uid: str, user_id: str, coins: dict[str, int], *, key: str | None = None, reason: str = "test"):
        return self.call(
            "admin_adjust_balance",
            "POST",
            uid=admin_uid,
            admin=True,
            key=key or fresh_id("k"),
            body={"user_id": user_id, "coins": coins, "reason": reason},
        )


def wait_for(condition, timeout_seconds: float = 15.0, interval_seconds: float = 0.05):
    """Polls `condition` until it returns something truthy (for webhooks and tasks, which
    arrive on their own schedule); fails the test at the timeout."""
    import time

    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval_seconds)
    raise AssertionError(f"condition not met within {timeout_seconds} s")
