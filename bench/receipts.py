"""Benchmark: what a receipt costs, against the real emulator, in one run: rendering a
purchase receipt (English, Arabic) and a statement of 300 entries in-process, the peak
memory of a process that serves one receipt beside one that serves the wallet, and cold
start: a fresh process that imports main and serves its first receipt, beside one
serving its first wallet request and one importing the runtime dependencies alone.

    make bench            (or: .venv/bin/python -m bench.receipts [--renders N] [--cold-starts N])
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]  # noqa: E402 - before the project's imports

from bench.ledger import cold_start, first_request  # noqa: E402
from local.emulator import FirestoreEmulator  # noqa: E402
from local.stack import configure_environment  # noqa: E402
from local.tokens import mint  # noqa: E402

BUYER, PURCHASE_ID, STATEMENT_ENTRIES = "bench-alice", "benchreceipt00000001", 300
PEAK_RSS = """
import resource, sys
{serve}
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_mib(code: str, env: dict[str, str]) -> float:
    import subprocess

    run = subprocess.run([sys.executable, "-c", PEAK_RSS.format(serve=code)], env=env, check=True, capture_output=True, text=True)
    return int(run.stdout.split()[-1]) / 1024  # ru_maxrss is in KiB on Linux


def timed(call, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=20)
    parser.add_argument("--cold-starts", type=int, default=7)
    args = parser.parse_args()

    with FirestoreEmulator() as emulator:
        configure_environment(emulator.address)
        from coins import clients, ledger, postings, receipts, store, times
        from coins.domain import EntryType
        from coins.receipts import statements

        db = clients.store()
        paid = datetime(2026, 11, 3, 18, 1, tzinfo=timezone.utc)
        purchase = {
            "id": PURCHASE_ID,
            "user_id": BUYER,
            "status": "paid",
            "gateway": "sadad",
            "gateway_reference": "SD-884512",
            "coins": {"GGC": 2, "GSC": 1, "GBC": 1},
            "value_dirhams": 11500,
            "price_dirhams": 12650,
            "paid_at": paid,
            "entry_id": "bench-issue-entry",
        }
        db.client.document(*store.purchase(PURCHASE_ID).path).set(purchase)

        first = timed(lambda: receipts.purchase_pdf(purchase, "ar"), 1)[0]
        english = timed(lambda: receipts.purchase_pdf(purchase, "en"), args.renders)
        arabic = timed(lambda: receipts.purchase_pdf(purchase, "ar"), args.renders)
        size = len(receipts.purchase_pdf(purchase, "ar"))

        funding = postings.Entry(EntryType.ADMIN_ADJUST, postings.issue(BUYER, {"GBC": 1}))
        with contextlib.redirect_stdout(io.StringIO()):
            for _ in range(STATEMENT_ENTRIES):
                ledger.execute(
                    db, lambda reader: ledger.Plan(funding, lambda o: ledger.Response(200, {})), idempotency=None, actor="bench"
                )
        now = datetime.now(timezone.utc)
        month = now.astimezone(times.qatar()).strftime("%Y-%m")
        made = statements.of(db, BUYER, month, now)
        read = timed(lambda: statements.of(db, BUYER, month, now), 3)
        rendered = timed(lambda: statements.pdf(made, "ar"), 3)

        env = dict(os.environ, BENCH_TOKEN=mint(BUYER))
        receipt = first_request("coins_purchase_receipt", f"/{PURCHASE_ID}")
        wallet = first_request("coins_wallet")
        peak_receipt, peak_wallet = peak_rss_mib(receipt, env), peak_rss_mib(wallet, env)
        started = cold_start(args.cold_starts, env, {"receipt": receipt, "wallet": wallet})

    print("receipts, in-process (fonts loaded once per process, then cached by the OS)")
    print(f"  first render in this process (Arabic, loads fpdf2's font tables)   {first:8.1f} ms")
    print(f"  purchase receipt, English: median {statistics.median(english):.1f} ms over {args.renders}")
    print(f"  purchase receipt, Arabic:  median {statistics.median(arabic):.1f} ms over {args.renders}; {size / 1024:.0f} KiB")
    print(
        f"  statement of {len(made.lines)} entries: read {statistics.median(read):.0f} ms, "
        f"render (Arabic) {statistics.median(rendered):.0f} ms"
    )
    print(f"peak RSS of a fresh process serving one receipt {peak_receipt:.0f} MiB; one wallet request {peak_wallet:.0f} MiB")
    bare = started["dependencies"]
    print(
        f"cold start, median of {args.cold_starts} fresh processes: first receipt {started['receipt']:.0f} ms "
        f"({started['receipt'] / bare:.2f}x), first wallet request {started['wallet']:.0f} ms ({started['wallet'] / bare:.2f}x), "
        f"the runtime dependencies alone {bare:.0f} ms"
    )


if __name__ == "__main__":
    main()
