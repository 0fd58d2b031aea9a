"""What the benchmarks share: recording the documents a call reads and writes, the raw
floor built from them, and percentiles.

The raw floor of an operation is what its documents cost bare: the reads and writes one
call really made (same databases, same data, so the same sizes), replayed as plain
client calls: gets and creates outside a transaction as they were, and each run of
transactional gets and sets as one transaction. A document the call creates anew (an
entry, an event, a key record) gets a fresh id on every replay; one it reads or updates
in place (a wallet) is replayed onto a mirror beside it (`raw_` + its collection), so the
measured operation's own documents are left alone. Which is which is told by comparing
two calls: a path that differs between them is new on each call.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Touch:
    kind: str  # "get" | "create" outside a transaction; "tx_get" | "tx_set" inside one
    client: Any
    path: str
    data: Any = None
    merge: bool = False


class Recorder:
    """Records every document read and write by wrapping the client library's calls."""

    def __init__(self) -> None:
        self.touches: list[Touch] = []
        self._lock = threading.Lock()

    def install(self) -> None:
        from google.cloud.firestore_v1 import document, transaction

        recorder = self
        get, create, set_ = document.DocumentReference.get, document.DocumentReference.create, transaction.Transaction.set

        def recorded_get(ref, *args, **kwargs):
            kind = "tx_get" if kwargs.get("transaction") is not None else "get"
            recorder._add(Touch(kind, ref._client, ref.path))
            return get(ref, *args, **kwargs)

        def recorded_create(ref, data, *args, **kwargs):
            recorder._add(Touch("create", ref._client, ref.path, data))
            return create(ref, data, *args, **kwargs)

        def recorded_set(tx, ref, data, merge=False):
            recorder._add(Touch("tx_set", ref._client, ref.path, data, bool(merge)))
            return set_(tx, ref, data, merge=merge)

        document.DocumentReference.get = recorded_get
        document.DocumentReference.create = recorded_create
        transaction.Transaction.set = recorded_set

    def _add(self, touch: Touch) -> None:
        with self._lock:
            self.touches.append(touch)

    def take(self) -> list[Touch]:
        with self._lock:
            taken, self.touches = self.touches, []
        return taken


def counts(touches: list[Touch]) -> tuple[int, int]:
    """(reads, writes) of one call."""
    reads = sum(t.kind in ("get", "tx_get") for t in touches)
    return reads, len(touches) - reads


def floor(first: list[Touch], second: list[Touch]) -> Callable[[], None]:
    """The raw floor of an operation from two calls' touches: a path that differs between
    the two is created anew by each call (a fresh id on each replay); one that does not is
    replayed onto its mirror."""
    from google.cloud import firestore

    assert [t.kind for t in first] == [t.kind for t in second], "the two calls touched different documents"
    fresh = [a.path != b.path for a, b in zip(first, second)]

    ids: dict[str, str] = {}  # within one replay, a fresh document is the same one throughout

    def ref(touch: Touch, anew: bool):
        collection, _, rest = touch.path.partition("/")
        path = f"raw_{collection}/{rest}"
        if anew:
            path = path.rsplit("/", 1)[0] + "/" + ids.setdefault(touch.path, uuid.uuid4().hex)
        return touch.client.document(path)

    # Consecutive transactional touches make one transaction.
    steps: list[list[tuple[Touch, bool]]] = []
    for touch, anew in zip(second, fresh):
        inside = touch.kind.startswith("tx_")
        if inside and steps and steps[-1][0][0].kind.startswith("tx_"):
            steps[-1].append((touch, anew))
        else:
            steps.append([(touch, anew)])

    def replay() -> None:
        ids.clear()
        for step in steps:
            touch, anew = step[0]
            if touch.kind == "get":
                ref(touch, anew).get()
            elif touch.kind == "create":
                ref(touch, anew).create(touch.data)
            else:
                run_transaction(touch.client, step)

    def run_transaction(client, step) -> None:
        @firestore.transactional
        def body(transaction):
            for touch, anew in step:
                if touch.kind == "tx_get":
                    ref(touch, anew).get(transaction=transaction)
                else:
                    transaction.set(ref(touch, anew), touch.data, merge=touch.merge)

        body(client.transaction())

    replay()  # once untimed: the mirrors exist, with their sizes, before measuring
    return replay


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
