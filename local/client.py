"""Calls to a local stack as the app makes them (a local ID token, an Idempotency-Key),
for the tests and benchmarks that drive one over HTTP, and bursts of them at once."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import requests

from local.tokens import mint

# What a mobile client waits for an answer before it gives up (and retries).
CLIENT_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Answer:
    """What one call got: the status ("timeout" or "no answer" when none came), the
    body's text, and how long it took."""

    status: int | str
    text: str
    seconds: float

    def json(self) -> Any:
        import json

        return json.loads(self.text)


def call(
    base: str,
    method: str,
    path: str,
    uid: str | None = None,
    body: Any = None,
    *,
    key: str | None = None,
    admin: bool = False,
    headers: dict[str, str] | None = None,
    timeout: float = CLIENT_TIMEOUT_SECONDS,
) -> Answer:
    """One request, with `uid`'s local ID token. A POST gets a fresh Idempotency-Key
    unless `key` is given (`key=""` sends none); a GET only the one it is given."""
    sent = dict(headers or {})
    if uid is not None:
        sent["Authorization"] = f"Bearer {mint(uid, admin=admin)}"
    if key is None and method != "GET":
        key = uuid.uuid4().hex
    if key:
        sent["Idempotency-Key"] = key
    started = time.perf_counter()
    try:
        response = requests.request(method, base + path, json=body, headers=sent, timeout=timeout)
    except requests.Timeout:
        return Answer("timeout", "", time.perf_counter() - started)
    except requests.RequestException:
        # Refused, reset, or cut off in the middle of the answer (a process that died).
        return Answer("no answer", "", time.perf_counter() - started)
    return Answer(response.status_code, response.text, time.perf_counter() - started)


def at_once(calls: list[Callable[[], Answer]]) -> tuple[float, list[Answer]]:
    """Runs the calls all at once (released together by a barrier): (wall seconds, answers)."""
    barrier = threading.Barrier(len(calls))

    def run(one: Callable[[], Answer]) -> Answer:
        barrier.wait()
        return one()

    started = time.perf_counter()
    with ThreadPoolExecutor(len(calls)) as pool:
        answers = list(pool.map(run, calls))
    return time.perf_counter() - started, answers
