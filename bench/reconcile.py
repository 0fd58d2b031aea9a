"""Benchmark: how long reconciliation and the repair take as the ledger grows, against
the emulator.

    .venv/bin/python -m bench.reconcile [--entries 10000]

Writes synthetic but consistent history in batches (issue entries to many wallets, each
with the trigger's applied marker, and the wallet documents and the vault's shards to
match), then times `reconciliation.run` at half and at the full size, so the growth per
entry shows, and one run of the repair (coins.repair) with nothing pending, whose cost
must not grow with the history: it asks the `pending_since` index, not the ledger. (The
emulator answers that query by scanning in memory; production reads the index.)
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

from local.emulator import FirestoreEmulator  # noqa: E402
from local.stack import configure_environment  # noqa: E402

WALLETS = 500
BATCH = 500


def write_history(db, start: int, count: int) -> None:
    from coins import ledger, store
    from coins.domain import new_wallet

    now = ledger.now_utc()
    batch = db.batch()
    for i in range(start, start + count):
        entry_id = f"e{i:08d}"
        uid = f"u{i % WALLETS:04d}"
        batch.set(
            db.collection("ledger").document(entry_id),
            {
                "id": entry_id,
                "type": "admin_adjust",
                "postings": [{"tier": "GBC", "count": 1, "from": "treasury", "to": f"user:{uid}", "change": False}],
                "accounts": ["treasury", f"user:{uid}"],
                "user_ids": [uid],
                "users": {},
                "parties": [uid],
                "refs": {},
                "memo": {},
                "actor": "bench",
                "created_at": now,
            },
        )
        # The trigger's marker: this entry's effects (the vault shard below) are applied.
        batch.set(
            db.document(*store.effects_marker(entry_id).path),
            {"entry_id": entry_id, "type": "admin_adjust", "applied_at": now, "failed": [], "pending_since": None},
        )
        if (i - start + 1) % (BATCH // 2) == 0:
            batch.commit()
            batch = db.batch()
    batch.commit()
    total = start + count
    batch = db.batch()
    for w in range(WALLETS):
        coins = len(range(w, total, WALLETS))
        batch.set(
            db.collection("wallets").document(f"u{w:04d}"),
            {**new_wallet(f"u{w:04d}", now), "coins": {"GBC": coins}, "balance_dirhams": 500 * coins},
        )
    batch.commit()
    shard = db.document(*store.vault_shard(0).path)
    shard.set(
        {"entries": {"admin_adjust": total}, "balances": {"treasury": {"GBC": -total}, "users": {"GBC": total}}, "flows": {}}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    args = parser.parse_args()
    half = args.entries // 2
    with FirestoreEmulator() as emulator:
        configure_environment(emulator.address)
        from coins import clients, ledger, reconciliation, repair

        coins_db = clients.store()  # the coins database (COINS_DATABASE), written here directly
        db = coins_db.client
        later = ledger.now_utc() + timedelta(hours=1)  # every entry is past the repair's age
        print(f"reconciliation against the Firestore emulator on 127.0.0.1 ({WALLETS} wallets)")
        print(f"{'entries':>10}{'seconds':>10}{'s per 10k entries':>20}{'repair run ms':>16}")
        written = 0
        for size in (half, args.entries):
            write_history(db, written, size - written)
            written = size
            started = time.perf_counter()
            report = reconciliation.run(coins_db)
            elapsed = time.perf_counter() - started
            assert report["ok"], report["problems"][:3]
            assert report["checked"]["entries"] == size
            started = time.perf_counter()
            repaired = repair.run(coins_db, clients.app_db(), lambda: None, lambda: None, now=later)
            repair_ms = (time.perf_counter() - started) * 1000
            assert repaired == {"effects": {"repaired": 0, "failed": 0}, "outbox": {"repaired": 0, "failed": 0}}, repaired
            print(f"{size:>10}{elapsed:>10.2f}{elapsed / size * 10_000:>20.2f}{repair_ms:>16.1f}")


if __name__ == "__main__":
    main()
