"""The accountant's export: the ledger of a period as CSV, one row per posting, read in
pages by time and written as it is read (never the whole period in memory).

Each posting moves `count` coins of one tier from one account to another; within any
period the rows of a tier sum to zero over the accounts (what leaves one account enters
another), so a spreadsheet can check the books: per account and tier, the sum of
`count` where it is `to` less where it is `from` is the account's change in the period.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping

from . import catalog, store
from .store import Store
from .times import qatar, rfc3339

COLUMNS = (
    "entry_id",
    "time_utc",
    "time_qatar",
    "type",
    "from_account",
    "to_account",
    "tier",
    "count",
    "value_dirhams",
    "value_qar",
    "purchase_id",
    "escrow_id",
    "withdrawal_id",
    "job_id",
)
# Rows written per chunk of the answer.
ROWS_PER_CHUNK = 500


def rows(entry: Mapping[str, Any]) -> Iterator[tuple[Any, ...]]:
    """The CSV rows of one entry: one per posting."""
    created: datetime = entry["created_at"]
    refs = entry.get("refs", {})
    for posting in entry["postings"]:
        value = posting["count"] * catalog.TIER_BY_SYMBOL[posting["tier"]].value_dirhams
        yield (
            entry["id"],
            rfc3339(created),
            created.astimezone(qatar()).isoformat(timespec="seconds"),
            entry["type"],
            posting["from"],
            posting["to"],
            posting["tier"],
            posting["count"],
            value,
            f"{value // catalog.DIRHAMS_PER_QAR}.{value % catalog.DIRHAMS_PER_QAR:02d}",
            refs.get("purchase_id", ""),
            refs.get("escrow_id", ""),
            refs.get("withdrawal_id", ""),
            refs.get("job_id", ""),
        )


def ledger_csv(db: Store, start: datetime, end: datetime) -> Iterator[str]:
    """The CSV text of every posting of the entries created from `start` (included) to
    `end` (excluded), in order of time, in chunks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    written = 0
    for entry in db.between(store.LEDGER, "created_at", start, end):
        for row in rows(entry):
            writer.writerow(row)
            written += 1
            if written % ROWS_PER_CHUNK == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


def filename(start: datetime, end: datetime) -> str:
    def utc(moment: datetime) -> str:
        return moment.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")

    return f"guild-coins-ledger-{utc(start)}-{utc(end)}.csv"
