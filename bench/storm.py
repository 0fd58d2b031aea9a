"""Benchmark: a retry storm on one Idempotency-Key, and one wallet under many different
operations at once, over real HTTP (every function on one loopback port, as the local
stack serves them) against the real emulator.

    make bench            (or: .venv/bin/python -m bench.storm [--storms 32,64] [--hot 4,8,16,32])

Storm: N concurrent POSTs with one key (a flaky network, a double tap plus the client's
retries) on an admin adjustment, a job payment and a withdrawal. Hot wallet: N job
payments of distinct milestones by one client at once (an app that funds milestones with
`Promise.all`). Each line gives the wall time of the burst, the median and slowest
answer, the Firestore transaction attempts the burst made (counted in this process) and
the answers by status; a request that got no answer within the client's 30 s counts as
`timeout`. Every storm must do its work once, and every request of a hot burst must be
answered 201: the script fails otherwise.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import os
import statistics
import sys
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]  # noqa: E402 - before the project's imports

from local.client import CLIENT_TIMEOUT_SECONDS, Answer, at_once, call  # noqa: E402
from local.emulator import FirestoreEmulator  # noqa: E402
from local.stack import configure_environment  # noqa: E402

ADMIN = "bench-ops"
BANK = {"method": "bank_transfer", "destination": {"iban": "QA58DOHB00001234567890ABCDEFG", "account_name": "Bench"}}


class Attempts:
    """Counts Firestore transaction attempts in this process (every one goes through
    `Store.attempt`)."""

    def __init__(self) -> None:
        from coins import store

        self.count = 0
        self._lock = threading.Lock()
        original = store.Store.attempt
        attempts = self

        def counted(db, *args, **kwargs):
            with attempts._lock:
                attempts.count += 1
            return original(db, *args, **kwargs)

        store.Store.attempt = counted

    def take(self) -> int:
        with self._lock:
            taken, self.count = self.count, 0
        return taken


def line(label: str, wall: float, results: list[Answer], attempts: int) -> str:
    seconds = [answer.seconds for answer in results]
    answers = collections.Counter(str(answer.status) for answer in results)
    told = " ".join(f"{status}x{count}" for status, count in sorted(answers.items()))
    return (
        f"  {label:<34} wall {wall:6.2f} s  p50 {statistics.median(seconds):6.2f} s  max {max(seconds):6.2f} s  "
        f"attempts {attempts:4}  answers {told}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storms", default="32,64", help="storm sizes (requests with one key)")
    parser.add_argument("--hot", default="4,8,16,32", help="hot-wallet sizes (different operations on one wallet)")
    args = parser.parse_args()
    storms = [int(n) for n in args.storms.split(",")]
    hots = [int(n) for n in args.hot.split(",")]
    failures: list[str] = []

    with FirestoreEmulator() as emulator, contextlib.redirect_stdout(io.StringIO()) as logs:
        configure_environment(emulator.address)
        os.environ["LOCAL_SERVICE_SECRET"] = uuid.uuid4().hex
        os.environ["ADMIN_UIDS"] = ADMIN
        from coins import clients, store
        from local.jobs import job_document
        from local.stack import configure_tasks, serve_functions

        server = serve_functions(0)
        base = f"http://127.0.0.1:{server.server_port}"
        queue = configure_tasks(base)
        attempts = Attempts()
        jobs = clients.app_db().client.collection("jobs")
        coins_db = clients.store()
        report = []

        def fund(uid: str, coins: dict[str, int]) -> None:
            answer = call(
                base,
                "POST",
                "/api/admin/coins/adjust-balance",
                ADMIN,
                {"user_id": uid, "coins": coins, "reason": "bench"},
                admin=True,
            )
            assert answer.status == 200, answer.text

        def job(client: str) -> str:
            job_id = f"job-{uuid.uuid4().hex[:12]}"
            jobs.document(job_id).set(job_document(job_id, client, "bench-freelancer", datetime.now(timezone.utc)))
            return job_id

        def balance(uid: str) -> int | None:
            return (coins_db.get(store.wallet(uid)) or {}).get("balance_dirhams")

        def once(label: str, n: int, results: list[Answer], done_once: bool) -> None:
            bodies = {answer.text for answer in results if answer.status in (200, 201)}
            if len(bodies) != 1 or len(results) != n or not done_once:
                failures.append(f"{label} N={n}: {len(bodies)} distinct answers, work done once: {done_once}")

        report.append(
            f"storm: N concurrent requests with one Idempotency-Key, over HTTP (client timeout {CLIENT_TIMEOUT_SECONDS:.0f} s)"
        )
        for n in storms:
            user = f"bench-{uuid.uuid4().hex[:8]}"
            key = uuid.uuid4().hex
            attempts.take()
            body = {"user_id": user, "coins": {"GBC": 1}, "reason": "storm"}
            wall, results = at_once(
                [lambda: call(base, "POST", "/api/admin/coins/adjust-balance", ADMIN, body, key=key, admin=True)] * n
            )
            report.append(line(f"adjust-balance N={n}", wall, results, attempts.take()))
            once("adjust-balance", n, results, balance(user) == 500)

            client = f"bench-{uuid.uuid4().hex[:8]}"
            fund(client, {"GPC": 1})
            job_id = job(client)
            attempts.take()
            body = {"job_id": job_id, "amount_dirhams": 10_000}
            wall, results = at_once([lambda: call(base, "POST", "/api/coins/job-payment", client, body, key=key)] * n)
            report.append(line(f"job-payment N={n}", wall, results, attempts.take()))
            once("job-payment", n, results, balance(client) == 0)

            verified = call(base, "POST", f"/api/admin/coins/kyc/{client}", ADMIN, {"status": "verified"}, admin=True)
            assert verified.status == 200, verified.text
            fund(client, {"GPC": 1})
            attempts.take()
            body = {"amount_dirhams": 10_000, **BANK}
            key = uuid.uuid4().hex
            wall, results = at_once([lambda: call(base, "POST", "/api/coins/withdrawal", client, body, key=key)] * n)
            report.append(line(f"withdrawal N={n}", wall, results, attempts.take()))
            once("withdrawal", n, results, balance(client) == 0)

        report.append("hot wallet: N job payments of distinct milestones by one client at once, each with its own key")
        for n in hots:
            client = f"bench-{uuid.uuid4().hex[:8]}"
            fund(client, {"GPC": n})
            job_id = job(client)
            attempts.take()
            calls = [
                lambda m=m: call(
                    base,
                    "POST",
                    "/api/coins/job-payment",
                    client,
                    {"job_id": job_id, "milestone": f"m{m}", "amount_dirhams": 10_000},
                )
                for m in range(n)
            ]
            wall, results = at_once(calls)
            report.append(line(f"job payments N={n}", wall, results, attempts.take()))
            if any(answer.status != 201 for answer in results):
                failures.append(f"hot wallet N={n}: not every payment answered 201")
        queue.stop()
        server.shutdown()
    del logs
    print("\n".join(report))
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
