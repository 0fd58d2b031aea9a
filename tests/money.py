"""Helpers for tests that move money: fresh ids, the local API, and the conservation
check that runs after every integration and e2e test."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

from coins import effects, reconciliation
from coins.store import Store
from local.tokens import mint


def fresh_id(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def assert_conserved(db) -> None:
    """The checks of reconciliation, except the trigger's lagging vault: every tier sums
    to zero over all accounts, nothing but the treasury is below zero, and every wallet,
    hold and purchase agrees with the ledger's replay."""
    report = reconciliation.run(db, vault=False)
    assert report["ok"], report["problems"]


def assert_vault_matches_ledger(db) -> None:
    """The trigger's sharded running totals equal the replay of the ledger, class by class:
    the derived balances of the treasury and platform:fees among them."""
    expected = effects.class_balances(reconciliation.replay(db))
    vault = effects.read_vault(db)["balances"]
    assert {k: v for k, v in vault.items() if v} == {k: v for k, v in expected.items() if v}


def snapshot_all(db) -> dict[str, dict[str, Any]]:
    """Every document of every collection and subcollection of both databases (the
    coins' by path, the app's as `app:path`): a refused request must leave all of them
    as they were."""
    from coins import clients

    state: dict[str, dict[str, Any]] = {}

    def visit(collection, prefix: str) -> None:
        for ref in collection.list_documents():
            snapshot = ref.get()
            if snapshot.exists:
                state[prefix + ref.path] = snapshot.to_dict()
            for child in ref.collections():
                visit(child, prefix)

    for client, prefix in ((db.client, ""), (clients.app_db().client, "app:")):
        for collection in client.collections():
            visit(collection, prefix)
    return state


class Database(Store):
    """The coins database as the tests see it: the services' Store, plus the raw client's
    reads (`db.collection(...)`) for assertions."""

    def __getattr__(self, name: str):
        return getattr(self.client, name)


class Api:
    """Calls the HTTP functions in-process (functions_framework test clients), as the
    app would: JSON bodies, Bearer tokens, Idempotency-Key headers."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, function: str):
        with self._lock:  # concurrent tests' threads share one app per function
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


def wait_for(condition, timeout_seconds: float = 60.0, interval_seconds: float = 0.05):
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


def document_event(collection: str, document_id: str, database: str = "guild-coins"):
    """The headers and body of the CloudEvent Eventarc sends when `collection/document_id`
    is created in `database` (binary mode, a DocumentEventData protobuf)."""
    from cloudevents.conversion import to_binary
    from cloudevents.http import CloudEvent
    from google.events.cloud.firestore import DocumentEventData

    name = f"projects/demo-guild/databases/{database}/documents/{collection}/{document_id}"
    event = CloudEvent(
        {
            "type": "google.cloud.firestore.document.v1.created",
            "source": f"//firestore.googleapis.com/projects/demo-guild/databases/{database}",
            "subject": f"documents/{collection}/{document_id}",
        },
        DocumentEventData.serialize(DocumentEventData(value={"name": name})),
    )
    return to_binary(event)


class RecordedTasks:
    """A TaskScheduler that records the tasks it is given and delivers none: the test
    runs them, or only looks at them."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, dict]] = []

    def schedule(self, task_id: str, at, payload: dict) -> None:
        self.tasks.append((task_id, payload))

    def cancel(self, task_id: str) -> None:
        pass
