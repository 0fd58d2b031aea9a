"""A person's monthly statement: the opening balance, every entry of the month that moved
their wallet or their holds, with its type in words and what it moved in and out, what was held for them
(escrows they funded, their withdrawals, their purchases' refunds) at the start and the
end, and the closing balance. As PDF, or as CSV for a spreadsheet.

A month is the calendar month in Asia/Qatar. Everything is replayed from the person's
own ledger entries (`parties` holds them), from their first: the balances are the
postings' sums, not a counter, so the statement agrees with the ledger to the dirham.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from .. import catalog, postings, store
from ..domain import HOLD_KINDS, Account, EntryType
from ..store import Store, Where
from ..times import qatar
from .sheet import Column, Sheet
from .words import entry_words, qar, qatar_date, qatar_time, words

# Before the first entry of any ledger.
EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)
# The entries that put a person's own coins on hold: the holds they fund are theirs.
HOLDING = (EntryType.ESCROW_LOCK, EntryType.WITHDRAWAL_HOLD, EntryType.REFUND_HOLD)


@dataclass(frozen=True)
class Line:
    entry_id: str
    at: datetime
    type: str
    reference: str
    money_in: int  # dirhams into the wallet
    money_out: int  # dirhams out of the wallet
    held_change: int  # dirhams onto (+) or off (-) the person's holds
    balance: int  # the wallet after the entry
    held: int  # all that is held for the person after the entry


@dataclass
class Statement:
    user_id: str
    month: str
    start: datetime
    end: datetime
    until: datetime  # the end, or now for the month under way
    opening: int = 0
    closing: int = 0
    held_at_start: dict[Account, int] = field(default_factory=dict)
    held_at_end: dict[Account, int] = field(default_factory=dict)
    lines: list[Line] = field(default_factory=list)


def bounds(month: str) -> tuple[datetime, datetime]:
    """ "2026-11" -> its first moment and the next month's, in Qatar time."""
    year, number = (int(part) for part in month.split("-"))
    start = datetime(year, number, 1, tzinfo=qatar())
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=qatar())
    return start, end


def of(db: Store, uid: str, month: str, now: datetime) -> Statement:
    start, end = bounds(month)
    entries = db.between(store.LEDGER, "created_at", EPOCH, end, where=(Where("parties", "array_contains", uid),))
    return replay(uid, month, entries, now=now)


def replay(uid: str, month: str, entries: Iterable[Mapping[str, Any]], *, now: datetime) -> Statement:
    """The statement of `month` from the person's entries in order of time, from their
    first. An entry that moved neither their wallet nor their holds (the client's lock of
    an escrow, seen by its freelancer) is not theirs to read."""
    start, end = bounds(month)
    statement = Statement(uid, month, start, end, min(end, now))
    wallet, mine = Account.user(uid), list(entries)
    moved = [postings.add_postings({}, entry["postings"]) for entry in mine]
    # Their holds: those their own coins went onto, whatever the order of entries of one instant.
    owned = {
        account
        for entry, accounts in zip(mine, moved)
        if entry["type"] in HOLDING and catalog.value_dirhams(accounts.get(wallet, {})) < 0
        for account in accounts
        if account.kind in HOLD_KINDS
    }
    balance, opened = 0, False
    held: dict[Account, int] = {}
    for entry, accounts in zip(mine, moved):
        if not opened and entry["created_at"] >= start:
            statement.opening, statement.held_at_start, opened = balance, _nonzero(held), True
        delta = catalog.value_dirhams(accounts.get(wallet, {}))
        held_change = 0
        for account in owned & accounts.keys():
            change = catalog.value_dirhams(accounts[account])
            held[account] = held.get(account, 0) + change
            held_change += change
        balance += delta
        if opened and (delta or held_change):
            statement.lines.append(
                Line(
                    entry["id"],
                    entry["created_at"],
                    entry["type"],
                    _reference(entry.get("refs") or {}),
                    max(delta, 0),
                    max(-delta, 0),
                    held_change,
                    balance,
                    sum(held.values()),
                )
            )
    if not opened:
        statement.opening, statement.held_at_start = balance, _nonzero(held)
    statement.closing, statement.held_at_end = balance, _nonzero(held)
    return statement


def pdf(statement: Statement, language: str) -> bytes:
    w = words(language)
    sheet = Sheet(language, title=w["statement_title"], footer=w["footer"])
    sheet.heading(w["statement_title"], f"{statement.month} · {statement.user_id}")
    sheet.facts(
        [
            (w["user"], statement.user_id),
            (w["month"], statement.month),
            (w["opening"], qar(statement.opening, language)),
            (w["closing"], qar(statement.closing, language)),
        ],
        emphasis=(w["closing"],),
    )
    sheet.section(w["entries"])
    if statement.lines:
        sheet.table(
            [
                Column(w["date"], 1.5),
                Column(w["what"], 3.0),
                Column(w["reference"], 1.9),
                Column(w["money_in"], 1.5, numeric=True),
                Column(w["money_out"], 1.5, numeric=True),
                Column(w["balance"], 1.6, numeric=True),
                Column(w["held"], 1.5, numeric=True),
            ],
            [
                [
                    qatar_date(line.at),
                    entry_words(line.type, language),
                    line.reference,
                    qar(line.money_in, language) if line.money_in else "",
                    qar(line.money_out, language) if line.money_out else "",
                    qar(line.balance, language),
                    qar(line.held, language),
                ]
                for line in statement.lines
            ],
            total=[
                "",
                w["total"],
                "",
                qar(sum(line.money_in for line in statement.lines), language),
                qar(sum(line.money_out for line in statement.lines), language),
                qar(statement.closing, language),
                qar(sum(statement.held_at_end.values()), language),
            ],
        )
    else:
        sheet.note(w["no_entries"])
    if statement.until < statement.end:
        sheet.note(w["so_far"].format(time=qatar_time(statement.until)))
    sheet.section(w["holds"])
    holds = sorted(statement.held_at_start.keys() | statement.held_at_end.keys(), key=str)
    if holds:
        sheet.table(
            [Column(w["hold"], 4), Column(w["at_start"], 1.5, numeric=True), Column(w["at_end"], 1.5, numeric=True)],
            [
                [
                    _hold_words(account, language),
                    qar(statement.held_at_start.get(account, 0), language),
                    qar(statement.held_at_end.get(account, 0), language),
                ]
                for account in holds
            ],
            total=[
                w["total"],
                qar(sum(statement.held_at_start.values()), language),
                qar(sum(statement.held_at_end.values()), language),
            ],
        )
    else:
        sheet.note(w["no_holds"])
    return sheet.pdf()


CSV_COLUMNS = ("time_qatar", "entry_id", "type", "reference", "in_qar", "out_qar", "held_change_qar", "balance_qar", "held_qar")


def csv_text(statement: Statement) -> str:
    """One row per entry, between the opening and closing rows (each with the balance and
    all that was held) and the rows of what was held at the start and at the end, hold by
    hold; amounts in QAR with two decimals (a spreadsheet's numbers), times in Qatar time
    with their offset."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)

    def moment(kind: str, at: datetime, balance: int, held: Mapping[Account, int]) -> None:
        when = at.astimezone(qatar()).isoformat(timespec="seconds")
        writer.writerow([when, "", f"{kind}_balance", "", "", "", "", _decimal(balance), _decimal(sum(held.values()))])
        for account, value in sorted(held.items(), key=lambda item: str(item[0])):
            writer.writerow(
                [
                    when,
                    "",
                    f"held_at_{'start' if kind == 'opening' else 'end'}",
                    str(account),
                    "",
                    "",
                    "",
                    "",
                    _decimal(value),
                ]
            )

    moment("opening", statement.start, statement.opening, statement.held_at_start)
    for line in statement.lines:
        writer.writerow(
            [
                line.at.astimezone(qatar()).isoformat(timespec="seconds"),
                line.entry_id,
                line.type,
                line.reference,
                _decimal(line.money_in),
                _decimal(line.money_out),
                _decimal(line.held_change),
                _decimal(line.balance),
                "",
            ]
        )
    moment("closing", statement.until, statement.closing, statement.held_at_end)
    return out.getvalue()


def filename(statement: Statement, extension: str) -> str:
    return f"guild-coins-statement-{statement.month}.{extension}"


def _reference(refs: Mapping[str, Any]) -> str:
    for name in ("job_id", "purchase_id", "withdrawal_id", "escrow_id"):
        if refs.get(name):
            return str(refs[name])
    return ""


def _hold_words(account: Account, language: str) -> str:
    return words(language)[f"hold_{account.kind}"].format(id=account.id)


def _nonzero(held: Mapping[Account, int]) -> dict[Account, int]:
    return {account: value for account, value in held.items() if value}


def _decimal(dirhams: int) -> str:
    whole, cents = divmod(abs(dirhams), 100)
    return f"{'-' if dirhams < 0 else ''}{whole}.{cents:02d}"
