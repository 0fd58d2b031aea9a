"""What the receipts and statements say, in English and Arabic, and how they write
amounts and times: QAR with two decimals and Western digits, as the app shows them
("110.00 QAR", "110.00 ر.ق"); times in Asia/Qatar, with the zone said.

The Arabic follows the app's glossary (escrow حساب الضمان, release صرف, job وظيفة,
withdrawal سحب, refund استرداد).
"""

from __future__ import annotations

from datetime import datetime
from typing import Mapping

from ..domain import EntryType
from ..times import qatar

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "purchase_title": "Receipt: coin purchase",
        "withdrawal_title": "Receipt: withdrawal",
        "escrow_title": "Receipt: escrow payments",
        "statement_title": "Monthly statement",
        "footer": "GUILD Coins, Doha, Qatar. Amounts in Qatari riyals (QAR). Times in Qatar time (UTC+3).",
        "order_id": "Order",
        "buyer": "Buyer",
        "paid_at": "Paid",
        "gateway": "Paid through",
        "gateway_reference": "Transaction reference",
        "coins": "Coins",
        "tier": "Coin tier",
        "count": "Count",
        "value": "Value",
        "coin_value": "Coin value",
        "platform_fee": "Platform fee ({percent}%)",
        "total_paid": "Total paid",
        "refunded": "Refunded",
        "refunded_note": "This purchase was refunded: {amount} on {time}.",
        "refund_pending_note": "A refund of {amount} was asked for on {time} and is being made.",
        "withdrawal_id": "Withdrawal",
        "holder": "Account holder",
        "amount": "Amount",
        "method": "Method",
        "destination": "Paid to",
        "transfer_reference": "Transfer reference",
        "requested_at": "Requested",
        "escrow_id": "Escrow",
        "job": "Job",
        "milestone": "Milestone",
        "client": "Client",
        "freelancer": "Freelancer",
        "funded": "Held in escrow",
        "time": "Time",
        "date": "Date",
        "what": "Type",
        "gross": "Gross",
        "fee": "Platform fee",
        "net": "Net to freelancer",
        "to_client": "Back to client",
        "release": "Release",
        "refund": "Refund",
        "split": "Dispute settled",
        "total": "Total",
        "still_held": "Still held in escrow",
        "user": "Account",
        "month": "Month",
        "opening": "Opening balance",
        "closing": "Closing balance",
        "money_in": "In",
        "money_out": "Out",
        "balance": "Balance",
        "reference": "Reference",
        "payments": "Payments",
        "entries": "Transactions",
        "no_entries": "No entries this month.",
        "holds": "Held (escrow, withdrawals, refunds)",
        "hold": "Held for",
        "at_start": "At the start",
        "at_end": "At the end",
        "no_holds": "Nothing was held at the start or the end of the month.",
        "hold_escrow": "escrow {id}",
        "hold_withdrawal": "withdrawal {id}",
        "hold_refund": "refund of purchase {id}",
        "method_bank_transfer": "Bank transfer",
        "method_wallet": "Mobile wallet",
        "held": "Held",
        "so_far": "The month is not over: the closing balance is as of {time}.",
    },
    "ar": {
        "purchase_title": "إيصال شراء عملات",
        "withdrawal_title": "إيصال سحب",
        "escrow_title": "إيصال مدفوعات حساب الضمان",
        "statement_title": "كشف حساب شهري",
        "footer": "عملات GUILD، الدوحة، قطر. المبالغ بالريال القطري (ر.ق). الأوقات بتوقيت قطر (UTC+3).",
        "order_id": "رقم الطلب",
        "buyer": "المشتري",
        "paid_at": "وقت الدفع",
        "gateway": "بوابة الدفع",
        "gateway_reference": "مرجع العملية",
        "coins": "العملات",
        "tier": "فئة العملة",
        "count": "العدد",
        "value": "القيمة",
        "coin_value": "قيمة العملات",
        "platform_fee": "رسوم المنصة ({percent}%)",
        "total_paid": "إجمالي المدفوع",
        "refunded": "المبلغ المسترد",
        "refunded_note": "تم استرداد مبلغ هذه العملية ({amount}) بتاريخ {time}.",
        "refund_pending_note": "طُلب استرداد {amount} بتاريخ {time} وهو قيد التنفيذ.",
        "withdrawal_id": "رقم السحب",
        "holder": "صاحب الحساب",
        "amount": "المبلغ",
        "method": "طريقة التحويل",
        "destination": "حُوّل إلى",
        "transfer_reference": "مرجع التحويل",
        "requested_at": "تاريخ الطلب",
        "escrow_id": "رقم حساب الضمان",
        "job": "الوظيفة",
        "milestone": "المرحلة",
        "client": "العميل",
        "freelancer": "المستقل",
        "funded": "المحجوز في حساب الضمان",
        "time": "الوقت",
        "date": "التاريخ",
        "what": "النوع",
        "gross": "الإجمالي",
        "fee": "رسوم المنصة",
        "net": "الصافي للمستقل",
        "to_client": "المُعاد إلى العميل",
        "release": "صرف",
        "refund": "استرداد",
        "split": "تسوية نزاع",
        "total": "المجموع",
        "still_held": "ما زال محجوزًا في حساب الضمان",
        "user": "الحساب",
        "month": "الشهر",
        "opening": "الرصيد الافتتاحي",
        "closing": "الرصيد الختامي",
        "money_in": "وارد",
        "money_out": "صادر",
        "balance": "الرصيد",
        "reference": "المرجع",
        "payments": "المدفوعات",
        "entries": "الحركات",
        "no_entries": "لا توجد قيود في هذا الشهر.",
        "holds": "المبالغ المحجوزة (حساب الضمان، السحب، الاسترداد)",
        "hold": "محجوز لـ",
        "at_start": "في بداية الشهر",
        "at_end": "في نهاية الشهر",
        "no_holds": "لم يكن أي مبلغ محجوزًا في بداية الشهر ولا في نهايته.",
        "hold_escrow": "حساب الضمان {id}",
        "hold_withdrawal": "السحب {id}",
        "hold_refund": "استرداد الشراء {id}",
        "method_bank_transfer": "تحويل بنكي",
        "method_wallet": "محفظة إلكترونية",
        "held": "المحجوز",
        "so_far": "لم ينتهِ الشهر بعد: الرصيد الختامي كما هو في {time}.",
    },
}

ENTRY_WORDS: dict[str, dict[EntryType, str]] = {
    "en": {
        EntryType.PURCHASE_ISSUE: "Coins bought",
        EntryType.ESCROW_LOCK: "Paid into escrow",
        EntryType.ESCROW_RELEASE: "Escrow released",
        EntryType.ESCROW_REFUND: "Escrow refunded",
        EntryType.ESCROW_SPLIT: "Escrow dispute settled",
        EntryType.REFUND_HOLD: "Purchase refund: coins taken back",
        EntryType.REFUND_PAID: "Purchase refunded: money returned",
        EntryType.REFUND_REVERSED: "Purchase refund refused: coins returned",
        EntryType.WITHDRAWAL_HOLD: "Withdrawal requested",
        EntryType.WITHDRAWAL_PAID: "Withdrawal paid",
        EntryType.WITHDRAWAL_REJECTED: "Withdrawal rejected: coins returned",
        EntryType.ADMIN_ADJUST: "Balance adjusted by GUILD",
    },
    "ar": {
        EntryType.PURCHASE_ISSUE: "شراء عملات",
        EntryType.ESCROW_LOCK: "دفع إلى حساب الضمان",
        EntryType.ESCROW_RELEASE: "صرف من حساب الضمان",
        EntryType.ESCROW_REFUND: "استرداد من حساب الضمان",
        EntryType.ESCROW_SPLIT: "تسوية نزاع على حساب الضمان",
        EntryType.REFUND_HOLD: "استرداد شراء: استُرجعت العملات",
        EntryType.REFUND_PAID: "تم رد مبلغ الشراء",
        EntryType.REFUND_REVERSED: "رُفض استرداد الشراء: أُعيدت العملات",
        EntryType.WITHDRAWAL_HOLD: "طلب سحب",
        EntryType.WITHDRAWAL_PAID: "تم تحويل مبلغ السحب",
        EntryType.WITHDRAWAL_REJECTED: "رُفض السحب: أُعيدت العملات",
        EntryType.ADMIN_ADJUST: "تعديل الرصيد من GUILD",
    },
}


def words(language: str) -> Mapping[str, str]:
    return WORDS[language]


def qar(dirhams: int, language: str) -> str:
    """110050 -> "1,100.50 QAR" / "1,100.50 ر.ق" (the amount alone; a sign is the
    caller's to say in words or by its column)."""
    whole, cents = divmod(abs(dirhams), 100)
    return f"{whole:,}.{cents:02d} " + ("ر.ق" if language == "ar" else "QAR")


def qatar_time(moment: datetime | None) -> str:
    """ "2026-11-03 21:04", in Qatar time (every sheet's footer says the zone)."""
    if moment is None:
        return "—"
    return moment.astimezone(qatar()).strftime("%Y-%m-%d %H:%M")


def qatar_date(moment: datetime) -> str:
    return moment.astimezone(qatar()).strftime("%Y-%m-%d")


def entry_words(entry_type: str, language: str) -> str:
    try:
        return ENTRY_WORDS[language][EntryType(entry_type)]
    except ValueError:
        return entry_type
