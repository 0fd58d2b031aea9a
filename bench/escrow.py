"""Benchmark: a milestone's life through the HTTP entry points (in-process test clients)
against the real emulator: job payment, submit, a partial release, the release of the
rest, each beside the raw floor of the documents it really read and wrote
(bench/common.py) in the same run; then N concurrent releases of N escrows of distinct clients, to
show that the platform's fee account serializes nothing.

    make bench     (or: .venv/bin/python -m bench.escrow [--iterations N])
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

from bench.common import Recorder, counts, floor, percentile  # noqa: E402
from local.emulator import PROJECT_ID, FirestoreEmulator  # noqa: E402
from local.stack import configure_environment  # noqa: E402
from local.tokens import mint  # noqa: E402

SOURCE = str(ROOT / "functions" / "main.py")


class Logs(io.StringIO):
    """Swallows the structured logs, counting the transactions that had to retry."""

    def __init__(self) -> None:
        super().__init__()
        self.aborted = 0
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        if '"transaction aborted"' in text:
            with self._lock:
                self.aborted += text.count('"transaction aborted"')
        return len(text)


def client_for(function: str):
    from functions_framework import create_app

    return create_app(target=function, source=SOURCE).test_client()


def post(client, path, uid, body=None, admin=False):
    headers = {"Authorization": f"Bearer {mint(uid, admin=admin)}", "Idempotency-Key": uuid.uuid4().hex}
    response = client.post(
        path, data=json.dumps(body) if body is not None else None, headers=headers, content_type="application/json"
    )
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


# The measured steps of a milestone: (label, key).
STEPS = (
    ("job payment (coins_job_payment)", "pay"),
    ("submit (coins_escrow_submit)", "submit"),
    ("partial release, 40 of 100 QAR", "partial"),
    ("release of the rest", "release"),
)


def measure(name, samples):
    return f"{name:34}{statistics.median(samples):>10.2f}{percentile(samples, 0.95):>10.2f}"


def seed_job(app, job_id: str, client: str, freelancer: str) -> None:
    """The app's job that the client pays (a job payment reads it first)."""
    from datetime import datetime, timezone

    from local.jobs import job_document

    app.collection("jobs").document(job_id).set(job_document(job_id, client, freelancer, datetime.now(timezone.utc)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    n = args.iterations
    with FirestoreEmulator() as emulator:
        configure_environment(emulator.address)
        from google.cloud import firestore

        app = firestore.Client(project=PROJECT_ID, database="(default)")
        recorder = Recorder()
        recorder.install()
        logs = Logs()
        adjust, pay = client_for("admin_adjust_balance"), client_for("coins_job_payment")
        submit, release = client_for("coins_escrow_submit"), client_for("coins_escrow_release")
        results: dict[str, list[float]] = {}
        touched: dict[str, tuple[int, int]] = {}
        recorded: dict[str, list] = {}  # a step's touches in the first milestone, then its floor
        with contextlib.redirect_stdout(logs):
            for i in range(n + 5):
                client, freelancer = f"client{i}", f"freelancer{i}"
                post(adjust, "/", "ops", {"user_id": client, "coins": {"GRC": 1}, "reason": "bench"}, admin=True)
                seed_job(app, f"job{i}", client, freelancer)
                recorder.take()
                escrow_id = None
                calls = {
                    "pay": lambda: post(
                        pay, "/", client, {"job_id": f"job{i}", "freelancer_id": freelancer, "amount_dirhams": 10_000}
                    ),
                    "submit": lambda: post(submit, f"/{escrow_id}", freelancer, {"note": "done"}),
                    "partial": lambda: post(release, f"/{escrow_id}", client, {"amount_dirhams": 4_000}),
                    "release": lambda: post(release, f"/{escrow_id}", client),
                }
                for _, key in STEPS:
                    started = time.perf_counter()
                    answer = calls[key]()
                    elapsed = (time.perf_counter() - started) * 1000
                    escrow_id = escrow_id or answer["id"]
                    touches = recorder.take()
                    if i == 0:
                        recorded[key] = touches
                        continue
                    if i == 1:  # the second milestone tells which documents are new each time
                        recorded[key] = floor(recorded[key], touches)
                        touched[key] = counts(touches)
                    started = time.perf_counter()
                    recorded[key]()
                    raw = (time.perf_counter() - started) * 1000
                    recorder.take()
                    if i >= 5:  # the first few warm imports and connections
                        results.setdefault(key, []).append(elapsed)
                        results.setdefault("raw_" + key, []).append(raw)

            concurrency = []
            for workers in (1, 8, 32):
                escrows = []
                for i in range(workers):
                    client, freelancer = f"c{workers}-{i}", f"f{workers}-{i}"
                    post(adjust, "/", "ops", {"user_id": client, "coins": {"GPC": 1}, "reason": "bench"}, admin=True)
                    seed_job(app, f"cj{workers}-{i}", client, freelancer)
                    body = {"job_id": f"cj{workers}-{i}", "freelancer_id": freelancer, "amount_dirhams": 10_000}
                    escrows.append((client, post(pay, "/", client, body)["id"]))
                clients = [client_for("coins_escrow_release") for _ in range(workers)]
                barrier = threading.Barrier(workers + 1)
                logs.aborted = 0

                def run(index, barrier=barrier, escrows=escrows, clients=clients):
                    barrier.wait()
                    client, escrow_id = escrows[index]
                    post(clients[index], f"/{escrow_id}", client)

                threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
                for thread in threads:
                    thread.start()
                barrier.wait()
                started = time.perf_counter()
                for thread in threads:
                    thread.join()
                elapsed = time.perf_counter() - started
                concurrency.append((workers, elapsed, logs.aborted))

    print(f"escrow through the HTTP entry points, {n} iterations, Firestore emulator on 127.0.0.1")
    print(f"{'':34}{'median ms':>10}{'p95 ms':>10}{'reads':>8}{'writes':>8}")
    for name, key in STEPS:
        reads, writes = touched[key]
        raw = "raw_" + key
        print(f"{measure('raw floor, same documents', results[raw])}{reads:>8}{writes:>8}")
        print(f"{measure(name, results[key])}{reads:>8}{writes:>8}")
        print(
            f"  ratio: median {statistics.median(results[key]) / statistics.median(results[raw]):.2f}x, "
            f"p95 {percentile(results[key], 0.95) / percentile(results[raw], 0.95):.2f}x"
        )
    print("concurrent releases of distinct escrows (all paying platform:fees)")
    print(f"{'N':>4}{'wall s':>10}{'releases/s':>12}{'contention retries':>20}")
    for workers, elapsed, aborted in concurrency:
        print(f"{workers:>4}{elapsed:>10.2f}{workers / elapsed:>12.1f}{aborted:>20}")


if __name__ == "__main__":
    main()
