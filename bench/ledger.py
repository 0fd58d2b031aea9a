"""Benchmark: a ledger posting between two wallets against the real emulator, beside a
raw Firestore transaction doing the same document reads and writes, in the same run.

    make bench            (or: .venv/bin/python -m bench.ledger [--iterations N])

Prints median and p95 latency of each, their ratio, and the reads and writes per
posting. Runs interleave the two, so that both see the same machine and emulator.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]  # noqa: E402 - before the project's imports

from bench.common import Counter, percentile  # noqa: E402
from local.emulator import PROJECT_ID, FirestoreEmulator  # noqa: E402
from local.stack import configure_environment  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()

    with FirestoreEmulator() as emulator:
        configure_environment(emulator.address)
        from google.cloud import firestore

        from coins import ledger, postings
        from coins.domain import Account, EntryType
        from coins.store import Store

        db = firestore.Client(project=PROJECT_ID)
        coins_db = Store(db)
        counter = Counter()
        counter.install()
        alice, bob = "bench-alice", "bench-bob"
        funding = postings.Entry(EntryType.ADMIN_ADJUST, postings.issue(alice, {"GBC": 10 * args.iterations}))
        with contextlib.redirect_stdout(io.StringIO()):
            ledger.execute(
                coins_db, lambda reader: ledger.Plan(funding, lambda o: ledger.Response(200, {})), idempotency=None, actor="bench"
            )

        def posting(reader):
            reader.wallet(alice), reader.wallet(bob)
            moved = (postings.Posting("GBC", 1, Account.user(alice), Account.user(bob)),)
            return ledger.Plan(postings.Entry(EntryType.ESCROW_LOCK, moved), lambda outcome: ledger.Response(201, {"id": outcome.entry_id}))

        def ledger_posting():
            key = ledger.Idempotency.of(alice, uuid.uuid4().hex, "bench", {})
            ledger.execute(coins_db, posting, idempotency=key, actor=alice)

        wallets = db.collection("raw_wallets")
        wallets.document(alice).set({"n": 10 * args.iterations})
        wallets.document(bob).set({"n": 0})

        def raw_transaction():
            # The same documents touched: a key record created, then in one transaction
            # three reads (key record, two wallets) and four writes (two wallets, the
            # entry, the key record).
            record = db.collection("raw_keys").document(uuid.uuid4().hex)
            record.create({"state": "in_progress"})

            @firestore.transactional
            def body(transaction):
                record.get(transaction=transaction)
                a = wallets.document(alice).get(transaction=transaction).get("n")
                b = wallets.document(bob).get(transaction=transaction).get("n")
                transaction.set(wallets.document(alice), {"n": a - 1})
                transaction.set(wallets.document(bob), {"n": b + 1})
                transaction.set(db.collection("raw_entries").document(), {"moved": 1})
                transaction.set(record, {"state": "done"})

            body(db.transaction())

        # Warm both paths (imports, connections) before measuring.
        for _ in range(10):
            with contextlib.redirect_stdout(io.StringIO()):
                ledger_posting()
            raw_transaction()
        counter.take()
        ledger_ms, raw_ms = [], []
        for _ in range(args.iterations):
            started = time.perf_counter()
            # The structured log line is part of the cost; where it goes is not.
            with contextlib.redirect_stdout(io.StringIO()):
                ledger_posting()
            ledger_ms.append((time.perf_counter() - started) * 1000)
        ledger_reads, ledger_writes = counter.take()
        for _ in range(args.iterations):
            started = time.perf_counter()
            raw_transaction()
            raw_ms.append((time.perf_counter() - started) * 1000)
        raw_reads, raw_writes = counter.take()

    n = args.iterations
    print(f"ledger posting between two wallets, {n} iterations each, Firestore emulator on 127.0.0.1")
    print(f"{'':28}{'median ms':>10}{'p95 ms':>10}{'reads':>8}{'writes':>8}")
    for name, samples, reads, writes in (
        ("raw transaction (baseline)", raw_ms, raw_reads, raw_writes),
        ("ledger.execute", ledger_ms, ledger_reads, ledger_writes),
    ):
        print(f"{name:28}{statistics.median(samples):>10.2f}{percentile(samples, 0.95):>10.2f}{reads / n:>8.1f}{writes / n:>8.1f}")
    print(f"ratio ledger/raw: median {statistics.median(ledger_ms) / statistics.median(raw_ms):.2f}x, "
          f"p95 {percentile(ledger_ms, 0.95) / percentile(raw_ms, 0.95):.2f}x")


if __name__ == "__main__":
    main()
