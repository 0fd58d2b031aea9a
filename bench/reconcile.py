"""Benchmark: reconciliation as the ledger grows, against the emulator.

    .venv/bin/python -m bench.reconcile [--new 10000] [--small 10000] [--large 200000]

Writes synthetic but consistent history in batches (adjustment entries to many wallets,
one wallet per 40 entries, so that a larger history also has more accounts in its
checkpoint; each entry with the trigger's applied marker, and the wallet documents and
the vault's shard to match), older than the reconciliation lag. Then, for a small and
a large history:
- the full replay in chunks (`start_full` / `full_step`, each step run here as Cloud
  Tasks would run it), timed, with the process's peak memory and the longest step:
  it builds the checkpoint;
- `--new` new entries on top, and one incremental run over them, timed.
It prints the incremental runs' ratio (the large history's over the small one's: what
the history costs a daily run; the goal is at most 1.3x) and one run of the repair
(coins.repair) with nothing pending, whose cost must not grow with the history either.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

from local.emulator import FirestoreEmulator  # noqa: E402
from local.stack import configure_environment  # noqa: E402

ENTRIES_PER_WALLET = 40
BATCH = 500


def write_history(db, start: int, count: int, wallets: int, at) -> None:
    """Entries start..start+count, each one Bronze coin from the treasury to one of
    `wallets` wallets, created `at`; then every wallet and the vault as they add up."""
    from coins import store

    batch, pending = db.batch(), 0
    for i in range(start, start + count):
        entry_id = f"e{i:08d}"
        uid = f"u{i % wallets:05d}"
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
                "created_at": at,
            },
        )
        # The trigger's marker: this entry's effects (the vault shard below) are applied.
        batch.set(
            db.document(*store.effects_marker(entry_id).path),
            {"entry_id": entry_id, "type": "admin_adjust", "applied_at": at, "failed": [], "pending_since": None},
        )
        pending += 2
        if pending >= BATCH:
            batch.commit()
            batch, pending = db.batch(), 0
    batch.commit()


def write_wallets(db, total: int, wallets: int, at) -> None:
    from coins import store
    from coins.domain import new_wallet

    batch = db.batch()
    for w in range(wallets):
        coins = len(range(w, total, wallets))
        uid = f"u{w:05d}"
        batch.set(
            db.collection("wallets").document(uid),
            {**new_wallet(uid, at), "coins": {"GBC": coins}, "balance_dirhams": 500 * coins, "coins_at": at},
        )
        if (w + 1) % BATCH == 0:
            batch.commit()
            batch = db.batch()
    batch.commit()
    db.document(*store.vault_shard(0).path).set(
        {"entries": {"admin_adjust": total}, "balances": {"treasury": {"GBC": -total}, "users": {"GBC": total}}, "flows": {}}
    )


class count_queries:
    """Counts the queries a run makes (Store._query is where every one is built)."""

    def __init__(self, coins_db) -> None:
        self.count, self.store, original = 0, type(coins_db), type(coins_db)._query
        self.original = original

        def counted(inner_self, *args, **kwargs):
            self.count += 1
            return original(inner_self, *args, **kwargs)

        self.store._query = counted

    def stop(self) -> int:
        self.store._query = self.original
        return self.count


def query_floor(db) -> float:
    """What one query costs here whatever it returns: a range query on the ledger that
    finds nothing (median of 5). The emulator answers every query by scanning the
    collection; Firestore answers it from an index, whatever the collection's size."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    from coins import ledger

    probe = db.collection("ledger").where(filter=FieldFilter("created_at", ">", ledger.now_utc() + timedelta(days=1))).limit(1)
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        list(probe.stream())
        samples.append(time.perf_counter() - started)
    return sorted(samples)[2]


class Tasks:
    """The chain's Cloud Tasks, run one after another here."""

    def __init__(self) -> None:
        self.tasks: list[dict] = []

    def schedule(self, task_id, at, payload) -> None:
        self.tasks.append(payload)

    def cancel(self, task_id) -> None:
        pass


def full_replay(coins_db) -> tuple[float, float, float, int]:
    """(seconds, the process's peak resident MiB after it, longest step's seconds, steps)
    of a chunked full replay. (The peak is the process's high-water mark: the larger
    history runs second, so its figure is its own.)"""
    from coins import reconciliation

    tasks = Tasks()
    started = time.perf_counter()
    reconciliation.start_full(coins_db, tasks, by="bench")
    longest, steps, progress = 0.0, 0, None
    while tasks.tasks:
        step_started = time.perf_counter()
        progress = reconciliation.full_step(coins_db, tasks, tasks.tasks.pop(0)["run_id"])
        longest = max(longest, time.perf_counter() - step_started)
        steps += 1
    elapsed = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert progress is not None and progress["status"] == "done" and progress["ok"], progress
    return elapsed, peak_kib / 1024, longest, steps


def measure(history: int, new: int) -> dict:
    """A fresh emulator: `history` old entries, the chunked replay, `new` entries, one
    incremental run."""
    with FirestoreEmulator() as emulator:
        configure_environment(emulator.address)
        from coins import clients, ledger, reconciliation, repair

        clients.store.cache_clear()
        clients.app_db.cache_clear()
        coins_db = clients.store()
        db = coins_db.client
        old = ledger.now_utc() - timedelta(days=1)
        wallets = max(1, history // ENTRIES_PER_WALLET)
        write_history(db, 0, history, wallets, old)
        write_wallets(db, history, wallets, old)
        full_seconds, peak_mib, longest, steps = full_replay(coins_db)
        fresh = ledger.now_utc()  # after the replay's horizon, however long the writing took
        write_history(db, history, new, wallets, fresh)
        write_wallets(db, history + new, wallets, fresh)
        queries = count_queries(coins_db)
        started = time.perf_counter()
        report = reconciliation.incremental(coins_db)
        incremental_seconds = time.perf_counter() - started
        query_count = queries.stop()
        floor = query_floor(db)
        assert report["ok"], report["problems"][:3]
        assert report["checked"]["entries"] == new and report["checked"]["history_entries"] == history, report["checked"]
        started = time.perf_counter()
        later = ledger.now_utc() + timedelta(hours=1)  # every entry is past the repair's age
        repaired = repair.run(coins_db, clients.app_db(), lambda: None, lambda: None, now=later)
        repair_ms = (time.perf_counter() - started) * 1000
        assert repaired == {"effects": {"repaired": 0, "failed": 0}, "outbox": {"repaired": 0, "failed": 0}}, repaired
        return {
            "history": history,
            "wallets": wallets,
            "full_seconds": full_seconds,
            "peak_mib": peak_mib,
            "longest_step": longest,
            "steps": steps,
            "incremental_seconds": incremental_seconds,
            "queries": query_count,
            "query_floor": floor,
            "repair_ms": repair_ms,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=200_000)
    args = parser.parse_args()
    from coins import config

    print(
        f"reconciliation against the Firestore emulator on 127.0.0.1: {args.new} new entries on a history "
        f"(one wallet per {ENTRIES_PER_WALLET} entries; the full replay in chunks of {config.FULL_REPLAY_CHUNK})"
    )
    print(
        f"{'history':>9}{'wallets':>9}{'full replay s':>15}{'steps':>7}{'longest step s':>16}{'peak RSS MiB':>14}"
        f"{'incremental s':>15}{'queries':>9}{'query floor s':>15}{'repair ms':>11}"
    )
    rows = [measure(history, args.new) for history in (args.small, args.large)]
    for row in rows:
        print(
            f"{row['history']:>9}{row['wallets']:>9}{row['full_seconds']:>15.2f}{row['steps']:>7}{row['longest_step']:>16.2f}"
            f"{row['peak_mib']:>14.1f}{row['incremental_seconds']:>15.2f}{row['queries']:>9}{row['query_floor']:>15.3f}"
            f"{row['repair_ms']:>11.1f}"
        )
    print(f"incremental ratio: {rows[1]['incremental_seconds'] / rows[0]['incremental_seconds']:.2f}x")
    # The same, less what the emulator spends scanning for each query (Firestore's indexes
    # make that cost independent of the history).
    net = [row["incremental_seconds"] - row["queries"] * row["query_floor"] for row in rows]
    print(f"incremental ratio net of the emulator's per-query scan: {net[1] / net[0]:.2f}x")


if __name__ == "__main__":
    main()
