"""Benchmark: a money operation's overhead over its raw floor, against the real emulator,
in one run: ledger.execute (a posting between two wallets with an idempotency key, as
every money request has) and an HTTP entry point (admin_adjust_balance through the
functions framework: token check, validation, logging), each beside the raw floor of the
documents it really read and wrote (bench/common.py); then cold start.

    make bench            (or: .venv/bin/python -m bench.ledger [--iterations N])

Prints median and p95 latency, the ratios, the reads and writes per operation, and cold
start: a fresh process that imports main and serves its first wallet request, beside a
fresh process that only imports the runtime dependencies. Measured runs interleave each
call with its floor, so that both see the same machine and emulator.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]  # noqa: E402 - before the project's imports

from bench.common import Recorder, counts, floor, percentile  # noqa: E402
from local.emulator import FirestoreEmulator  # noqa: E402
from local.stack import configure_environment  # noqa: E402
from local.tokens import mint  # noqa: E402

SOURCE = str(ROOT / "functions" / "main.py")
DEPENDENCIES = (
    "import firebase_admin, firebase_admin.auth, functions_framework, google.cloud.firestore, google.cloud.tasks_v2, pydantic"
)


def first_request(target: str, path: str = "/", status: int = 200) -> str:
    """The code of a fresh process that imports main and serves one GET to `target`."""
    return f"""
import os, sys
sys.path.insert(0, {str(ROOT / "functions")!r})
from functions_framework import create_app
client = create_app(target={target!r}, source={SOURCE!r}).test_client()
response = client.get({path!r}, headers={{"Authorization": "Bearer " + os.environ["BENCH_TOKEN"]}})
assert response.status_code == {status}, response.get_data(as_text=True)[:500]
"""


def measured(call, replay_floor, recorder, iterations):
    """(call ms, floor ms) samples, each call followed by its floor."""
    calls, floors = [], []
    for _ in range(iterations):
        started = time.perf_counter()
        call()
        calls.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        replay_floor()
        floors.append((time.perf_counter() - started) * 1000)
    recorder.take()
    return calls, floors


def floor_of(call, recorder):
    """The raw floor of `call` and its (reads, writes), from two recorded calls."""
    recorder.take()
    call()
    first = recorder.take()
    call()
    second = recorder.take()
    replay = floor(first, second)
    recorder.take()
    return replay, counts(second)


def wall_ms(code: str, env: dict[str, str]) -> float:
    """Wall ms of a fresh interpreter running `code`."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - started) * 1000


def cold_start(runs: int, env: dict[str, str], codes: dict[str, str]) -> dict[str, float]:
    """Median wall ms of fresh interpreters running each of `codes`, interleaved run by
    run so that all see the same machine; "dependencies" is added: the runtime's imports alone."""
    samples: dict[str, list[float]] = {name: [] for name in (*codes, "dependencies")}
    for _ in range(runs):
        for name, code in {**codes, "dependencies": DEPENDENCIES}.items():
            samples[name].append(wall_ms(code, env))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--cold-starts", type=int, default=5)
    args = parser.parse_args()
    n = args.iterations

    with FirestoreEmulator() as emulator:
        configure_environment(emulator.address)
        from functions_framework import create_app

        from coins import clients, ledger, postings
        from coins.domain import Account, EntryType

        coins_db = clients.store()
        recorder = Recorder()
        recorder.install()
        alice, bob = "bench-alice", "bench-bob"
        funding = postings.Entry(EntryType.ADMIN_ADJUST, postings.issue(alice, {"GBC": 10 * n + 100}))
        quiet = contextlib.redirect_stdout(io.StringIO())  # structured logs cost; where they go does not
        with quiet:
            ledger.execute(
                coins_db, lambda reader: ledger.Plan(funding, lambda o: ledger.Response(200, {})), idempotency=None, actor="bench"
            )

        def posting(reader):
            reader.wallet(alice), reader.wallet(bob)
            moved = (postings.Posting("GBC", 1, Account.user(alice), Account.user(bob)),)
            return ledger.Plan(
                postings.Entry(EntryType.ESCROW_LOCK, moved), lambda outcome: ledger.Response(201, {"id": outcome.entry_id})
            )

        def ledger_posting():
            key = ledger.Idempotency.of(alice, uuid.uuid4().hex, "bench", {})
            ledger.execute(coins_db, posting, idempotency=key, actor=alice)

        adjust = create_app(target="admin_adjust_balance", source=SOURCE).test_client()
        admin = mint("ops", admin=True)
        body = json.dumps({"user_id": "bench-carol", "coins": {"GBC": 1}, "reason": "bench"})

        def http_adjust():
            headers = {"Authorization": f"Bearer {admin}", "Idempotency-Key": uuid.uuid4().hex}
            response = adjust.post("/", data=body, headers=headers, content_type="application/json")
            assert response.status_code == 200, response.get_json()

        results = {}
        with quiet:
            for name, call in (("ledger.execute, keyed posting", ledger_posting), ("HTTP admin_adjust_balance", http_adjust)):
                replay, touched = floor_of(call, recorder)
                for _ in range(10):  # warm both paths (imports, connections)
                    call(), replay()
                results[name] = (*measured(call, replay, recorder, n), touched)

        env = dict(os.environ, BENCH_TOKEN=mint("bench-alice"))
        started = cold_start(args.cold_starts, env, {"wallet": first_request("coins_wallet")})
        cold, bare = started["wallet"], started["dependencies"]

    print(f"money operations beside their raw floor, {n} iterations each, Firestore emulator on 127.0.0.1")
    print(f"{'':34}{'median ms':>10}{'p95 ms':>10}{'reads':>8}{'writes':>8}")
    for name, (calls, floors, (reads, writes)) in results.items():
        for label, samples in (("  raw floor, same documents", floors), (name, calls)):
            print(f"{label:34}{statistics.median(samples):>10.2f}{percentile(samples, 0.95):>10.2f}{reads:>8}{writes:>8}")
        print(
            f"  ratio: median {statistics.median(calls) / statistics.median(floors):.2f}x, "
            f"p95 {percentile(calls, 0.95) / percentile(floors, 0.95):.2f}x"
        )
    print(
        f"cold start, median of {args.cold_starts} fresh processes: import main and serve the first wallet request "
        f"{cold:.0f} ms; import the runtime dependencies alone {bare:.0f} ms ({cold / bare:.2f}x)"
    )


if __name__ == "__main__":
    main()
