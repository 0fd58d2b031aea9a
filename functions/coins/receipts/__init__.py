"""Receipts people can keep (PDF, English or Arabic): a paid purchase, a paid
withdrawal, an escrow's payments; and monthly statements (coins.receipts.statements).

Each is read from the documents and ledger entries it is about, for the people
concerned and admins only (another user's receipt is 404, as for the resources
themselves; another user's statement 403, as for their lists), and only once there is
something to show (a purchase whose coins were not issued, a withdrawal not paid, an
escrow nothing has left yet: 409). An escrow's payments are summed from its entries'
postings, what a statement says from the person's entries.

This package loads fpdf2, fontTools, Pillow and HarfBuzz: only the functions that
render import it (functions/main.py names it lazily), so no other function's cold start
carries them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from .. import catalog, config, errors, ledger, notify, postings, store
from ..auth import Caller
from ..domain import PLATFORM_FEES, Account, EntryType, EscrowStatus, PurchaseStatus, WithdrawalStatus
from ..escrow import held_dirhams
from ..purchases import states
from ..store import Store, Where
from . import statements
from .sheet import Column, Sheet
from .words import qar, qatar_time, words

PDF, CSV = "application/pdf", "text/csv"
# A statement's month, as the path names it (2026-11).
MONTH = re.compile(r"\A20[0-9]{2}-(0[1-9]|1[0-2])\Z")


# Why there is no receipt yet, a sentence a status.
NO_COINS = "No coins were issued for this purchase (its payment was refunded): there is no receipt."
NO_PURCHASE_RECEIPT = {
    PurchaseStatus.PENDING: "This purchase is not paid yet: its receipt comes once the payment is confirmed.",
    PurchaseStatus.FAILED: "This purchase failed, so nothing was paid: there is no receipt.",
    PurchaseStatus.EXPIRED: "This purchase expired unpaid: there is no receipt.",
}
NO_WITHDRAWAL_RECEIPT = {
    WithdrawalStatus.REQUESTED: "This withdrawal is not paid yet: its receipt comes once GUILD pays it.",
    WithdrawalStatus.APPROVED: "This withdrawal is approved but not paid yet: its receipt comes once GUILD pays it.",
    WithdrawalStatus.REJECTED: "This withdrawal was rejected, so nothing was paid: there is no receipt.",
}


@dataclass(frozen=True)
class File:
    content_type: str
    data: bytes
    filename: str


def language_for(call: Any) -> str:
    """The language of a receipt: `?lang=`, else the request's Accept-Language, else the
    one the caller reads (coins.notify.language_of: the app's field, else the remembered one)."""
    return call.query.lang or call.language or notify.language_of(call.db, call.app_db, call.uid)


def purchase(db: Store, caller: Caller, purchase_id: str, language: str) -> File:
    """Coins bought (tiers and counts), their value, the platform's 10 %, the total paid,
    the gateway and its reference, our order id, when, the buyer; and a refund if any."""
    bought = db.get(store.purchase(purchase_id))
    if bought is None or not (caller.admin or bought["user_id"] == caller.uid):
        raise errors.NotFound()
    if bought["status"] not in states.ISSUED or not bought.get("entry_id"):
        raise errors.InvalidState(NO_PURCHASE_RECEIPT.get(bought["status"], NO_COINS), status=bought["status"])
    return File(PDF, purchase_pdf(bought, language), f"guild-coins-receipt-{purchase_id}.pdf")


def purchase_pdf(bought: Mapping[str, Any], language: str) -> bytes:
    w, purchase_id = words(language), bought["id"]
    value, price = bought["value_dirhams"], bought["price_dirhams"]
    sheet = Sheet(language, title=w["purchase_title"], footer=w["footer"])
    sheet.heading(w["purchase_title"], f"{w['order_id']} {purchase_id}")
    sheet.facts(
        [
            (w["order_id"], purchase_id),
            (w["buyer"], _buyer(bought)),
            (w["paid_at"], qatar_time(bought.get("paid_at"))),
            (w["gateway"], states.gateway_words(bought)),
            (w["gateway_reference"], bought.get("gateway_reference") or "—"),
        ]
    )
    sheet.section(w["coins"])
    coins = [(symbol, count) for symbol, count in catalog.normalize(bought["coins"]).items() if count]
    sheet.table(
        [Column(w["tier"], 3), Column(w["count"], 1, numeric=True), Column(w["value"], 2, numeric=True)],
        [
            [
                f"{catalog.TIER_BY_SYMBOL[symbol].name} ({symbol})",
                str(count),
                qar(catalog.value_dirhams({symbol: count}), language),
            ]
            for symbol, count in coins
        ],
    )
    sheet.section(w["total_paid"])
    sheet.facts(
        [
            (w["coin_value"], qar(value, language)),
            (w["platform_fee"].format(percent=catalog.MARKUP_BPS // 100), qar(price - value, language)),
            (w["total_paid"], qar(price, language)),
        ],
        emphasis=(w["total_paid"],),
    )
    if bought["status"] == PurchaseStatus.REFUNDED:
        sheet.facts([(w["refunded"], qar(price, language))], emphasis=(w["refunded"],))
        sheet.note(w["refunded_note"].format(amount=qar(price, language), time=qatar_time(bought.get("refunded_at"))))
    elif bought["status"] == PurchaseStatus.REFUNDING:
        asked = (bought.get("refund") or {}).get("at")
        sheet.note(w["refund_pending_note"].format(amount=qar(price, language), time=qatar_time(asked)))
    return sheet.pdf()


def _buyer(bought: Mapping[str, Any]) -> str:
    """The payer's name and email as the gateway was given them, then the uid."""
    payer = bought.get("payer") or {}
    return " · ".join(str(part) for part in (payer.get("name"), payer.get("email"), bought["user_id"]) if part)


def withdrawal(db: Store, caller: Caller, withdrawal_id: str, language: str) -> File:
    """The amount, the destination masked, the transfer's reference, when asked and when paid."""
    cashed = db.get(store.withdrawal(withdrawal_id))
    if cashed is None or not (caller.admin or cashed["user_id"] == caller.uid):
        raise errors.NotFound()
    if cashed["status"] != WithdrawalStatus.PAID:
        raise errors.InvalidState(NO_WITHDRAWAL_RECEIPT[cashed["status"]], status=cashed["status"])
    return File(PDF, withdrawal_pdf(cashed, language), f"guild-coins-withdrawal-{withdrawal_id}.pdf")


def withdrawal_pdf(cashed: Mapping[str, Any], language: str) -> bytes:
    w, withdrawal_id = words(language), cashed["id"]
    sheet = Sheet(language, title=w["withdrawal_title"], footer=w["footer"])
    sheet.heading(w["withdrawal_title"], f"{w['withdrawal_id']} {withdrawal_id}")
    destination = ", ".join(str(value) for value in (cashed.get("destination_masked") or {}).values())
    sheet.facts(
        [
            (w["withdrawal_id"], withdrawal_id),
            (w["holder"], cashed["user_id"]),
            (w["amount"], qar(cashed["amount_dirhams"], language)),
            (w["method"], w.get(f"method_{cashed.get('method')}", "—")),
            (w["destination"], destination or "—"),
            (w["transfer_reference"], cashed.get("payment_reference") or "—"),
            (w["requested_at"], qatar_time(cashed.get("created_at"))),
            (w["paid_at"], qatar_time(cashed.get("paid_at"))),
        ],
        emphasis=(w["amount"],),
    )
    return sheet.pdf()


def escrow(db: Store, caller: Caller, escrow_id: str, language: str) -> File:
    """For both parties: the job and milestone, and each payment out of the escrow
    (release: gross, fee, net to the freelancer; refund; a dispute's split), from the
    postings of its entries."""
    held = db.get(store.escrow(escrow_id))
    if held is None or not (caller.admin or caller.uid in (held["client_id"], held["freelancer_id"])):
        raise errors.NotFound()
    payments = [payment_of(entry, held) for entry in _entries_of(db, escrow_id) if entry["type"] != EntryType.ESCROW_LOCK]
    if not payments:
        raise errors.InvalidState(
            "Nothing has been released or refunded from this escrow yet: its receipt lists payments.", status=held["status"]
        )
    return File(PDF, escrow_pdf(held, payments, language), f"guild-coins-escrow-{escrow_id}.pdf")


def escrow_pdf(held: Mapping[str, Any], payments: list[dict[str, Any]], language: str) -> bytes:
    w, escrow_id = words(language), held["id"]
    sheet = Sheet(language, title=w["escrow_title"], footer=w["footer"])
    sheet.heading(w["escrow_title"], f"{w['escrow_id']} {escrow_id}")
    sheet.facts(
        [
            (w["escrow_id"], escrow_id),
            (w["job"], held["job_id"]),
            (w["milestone"], str(held["milestone"])),
            (w["client"], held["client_id"]),
            (w["freelancer"], held["freelancer_id"]),
            (w["funded"], qar(held["amount_dirhams"], language)),
        ]
    )
    kinds = {EntryType.ESCROW_RELEASE: w["release"], EntryType.ESCROW_REFUND: w["refund"], EntryType.ESCROW_SPLIT: w["split"]}
    columns = [
        Column(w["time"], 2.3),
        Column(w["what"], 2),
        Column(w["gross"], 1.6, numeric=True),
        Column(w["fee"], 1.6, numeric=True),
        Column(w["net"], 1.9, numeric=True),
        Column(w["to_client"], 1.9, numeric=True),
    ]
    amounts = ("gross", "fee", "net", "to_client")
    rows = [
        [qatar_time(p["at"]), kinds.get(p["type"], p["type"]), *(qar(p[name], language) for name in amounts)] for p in payments
    ]
    total = ["", w["total"], *(qar(sum(p[name] for p in payments), language) for name in amounts)]
    sheet.section(w["payments"])
    sheet.table(columns, rows, total=total)
    if held["status"] not in (EscrowStatus.RELEASED, EscrowStatus.REFUNDED, EscrowStatus.SPLIT):
        sheet.facts([(w["still_held"], qar(held_dirhams(held), language))])
    return sheet.pdf()


def payment_of(entry: Mapping[str, Any], held: Mapping[str, Any]) -> dict[str, Any]:
    """What one entry paid out of the escrow, in dirhams: what the freelancer's wallet
    (net), the platform's fees and the client's wallet each gained by its postings (the
    treasury's change included); gross is the freelancer's side, net plus fee."""
    moved = postings.add_postings({}, entry["postings"])
    gained = {
        name: catalog.value_dirhams(moved.get(account, {}))
        for name, account in (
            ("net", Account.user(held["freelancer_id"])),
            ("fee", PLATFORM_FEES),
            ("to_client", Account.user(held["client_id"])),
        )
    }
    return {"type": entry["type"], "at": entry["created_at"], "gross": gained["net"] + gained["fee"], **gained}


def statement(db: Store, caller: Caller, month: str, *, user_id: str | None, language: str | None) -> File:
    """The caller's statement of a month, or, for an admin, the user's they name: as PDF in
    `language`, or as CSV without one."""
    if user_id is not None and user_id != caller.uid and not caller.admin:
        raise errors.Forbidden("Only an admin may read another user's statement.")
    if not MONTH.match(month):
        raise errors.NotFound("A statement is named by its month: YYYY-MM.")
    now = ledger.now_utc()
    if statements.bounds(month)[0] > now:
        raise errors.NotFound("This month has not begun: it has no statement yet.")
    made = statements.of(db, user_id or caller.uid, month, now)
    if language is None:
        return File(CSV, statements.csv_text(made).encode(), statements.filename(made, "csv"))
    if len(made.lines) > config.STATEMENT_PDF_LINES_MAX:
        message = f"{len(made.lines)} entries, more than a PDF holds ({config.STATEMENT_PDF_LINES_MAX}): ask for format=csv"
        raise errors.ValidationFailed(fields=[{"field": "format", "message": message}])
    return File(PDF, statements.pdf(made, language), statements.filename(made, "pdf"))


def _entries_of(db: Store, escrow_id: str):
    return db.query(store.LEDGER, (Where("refs.escrow_id", "==", escrow_id),), order_by="created_at")
