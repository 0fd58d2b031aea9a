"""What each event tells whom, in English and Arabic: pure, from the event's facts.

An outbox event (`ledger.Event`) records what happened; `for_event` turns it into one
notice per person concerned (the parties, and the configured admins for what needs an
operator), each ready to be written in the app's notification schema in the reader's
language.

Amounts are shown in QAR, as the app shows them: in the texts with Western digits and the
currency after the number ("1,000.50 QAR", "1,000.50 ر.ق"), never with a sign (a minus
flips in right-to-left text, so a notice says the direction in words); in
`metadata.amount` as a JSON number of QAR (110, 1000.5). The Arabic says things in the
GUILD app's words, chosen once in `AR_TERMS`.

Whatever a notice quotes rather than writes (a note or reason someone typed, a milestone's
name, an id, a day) is wrapped in Unicode isolates (FIRST STRONG ISOLATE ... POP
DIRECTIONAL ISOLATE), so a note in one script cannot reorder the sentence of the other
around it. That is done in both languages: an Arabic note in an English notice has the
same problem mirrored, and the isolates are invisible either way. Labels ("Reason:",
"السبب:") introduce what is quoted, and are left out with it when it is empty.

`actionUrl` is the app's deep link (`guild://...`). The notices of what has a receipt (a
paid purchase, a paid withdrawal, an escrow's release, refund or split, for both parties) also carry
`metadata.receiptUrl`: the API path of that receipt (`/api/coins/purchase/{id}/receipt`,
`/api/coins/withdrawal/{id}/receipt`, `/api/coins/escrow/{id}/receipt`), relative to the
API's origin; the app joins it to its base URL and fetches it with the user's Firebase ID
token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .app import Notification
from .domain import EventKind

PAYMENT, DISPUTE, SYSTEM = "payment", "dispute", "system"  # the app's notification types used here
MEDIUM, HIGH, URGENT = "medium", "high", "urgent"

# The GUILD app's Arabic words for what the notices name, so each is said one way only.
# Escrow is حساب الضمان, named wherever the English says escrow. Release is صرف (paid
# out); تحرير reads as "edit". A job is a وظيفة, as the app's screens say, not مهمة.
# سحب is the app's word for a withdrawal (a cash-out) and for nothing else: a refund is
# استرداد, and the coins a refund takes back are استُرجعت, never سُحبت.
AR_TERMS: Mapping[str, str] = {
    "escrow": "حساب الضمان",
    "release": "صرف",  # the verbal noun: تم صرف الدفعة
    "was released": "صُرف",
    "will be released": "سيُصرف",
    "the job": "الوظيفة",
    "for this job": "لهذه الوظيفة",
    "withdrawal": "سحب",
    "the withdrawal": "السحب",
    "refund": "استرداد",
    "the refund": "الاسترداد",
    "were taken back": "استُرجعت",
    "before the deadline": "قبل انتهاء المهلة",
    "reason": "السبب",
    "note": "ملاحظة",
    "QAR": "ر.ق",
}
EN_LABELS: Mapping[str, str] = {"reason": "Reason", "note": "Note"}

FIRST_STRONG_ISOLATE, POP_DIRECTIONAL_ISOLATE = "\u2068", "\u2069"
# Embeddings, overrides and isolates inside quoted text would escape or unbalance the
# isolate around it (a stray POP DIRECTIONAL ISOLATE ends it early), so they are dropped.
_BIDI_CONTROLS = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])


@dataclass(frozen=True)
class Notice:
    user_id: str
    type: str
    priority: str
    # language -> (title, description)
    texts: Mapping[str, tuple[str, str]]
    link: str | None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def in_language(self, language: str) -> Notification:
        title, description = self.texts.get(language) or self.texts["en"]
        return Notification(
            user_id=self.user_id,
            type=self.type,
            title=title,
            description=description,
            priority=self.priority,
            action_url=self.link,
            metadata=dict(self.metadata),
        )


def qar(dirhams: int) -> str:
    """100050 -> "1,000.50"; 10000 -> "100.00"; -500 -> "5.00": the size of an amount in
    QAR with two decimals (as the receipts write it), whose direction the sentence says in
    words."""
    whole, cents = divmod(abs(dirhams), 100)
    return f"{whole:,}.{cents:02d}"


def qar_value(dirhams: int) -> int | float:
    """An amount for `metadata.amount` (and the job's escrow summary): QAR as a JSON
    number, an int when whole (every coin value and escrow amount is), otherwise the float
    of its two decimals (100050 -> 1000.5), which JSON writes as those decimals."""
    return dirhams // 100 if dirhams % 100 == 0 else round(dirhams / 100, 2)


def problem_count_ar(n: int) -> str:
    """The Arabic of "n problems", the noun agreeing with the number: one and two are said by
    the noun (مشكلة واحدة, مشكلتان), 3 to 10 take the plural (and so do 103 to 110: the last
    two digits decide), everything else the singular (11 مشكلة, 100 مشكلة)."""
    if n == 1:
        return "مشكلة واحدة"
    if n == 2:
        return "مشكلتان"
    return f"{n} مشكلات" if 3 <= n % 100 <= 10 else f"{n} مشكلة"


def problem_count_en(n: int) -> str:
    return "1 problem" if n == 1 else f"{n} problems"


def for_event(event: Mapping[str, Any], *, admins: tuple[str, ...], link_base: str) -> list[Notice]:
    """The notices of one outbox event (none for a kind nobody hears about)."""
    kind, facts = EventKind(event["kind"]), event.get("facts", {})
    build = _BUILDERS.get(kind)
    return build(facts, admins, link_base) if build else []


def _isolated(text: Any) -> str:
    """Quoted text (a note, a reason, an id) kept to its own direction inside a sentence."""
    return FIRST_STRONG_ISOLATE + str(text).translate(_BIDI_CONTROLS) + POP_DIRECTIONAL_ISOLATE


def _labelled(language: str, label: str, text: str | None) -> str:
    """The label and the quoted text ("Reason: ..." / "السبب: ..."), or nothing when there is no text."""
    if not text or not text.strip():
        return ""
    name = AR_TERMS[label] if language == "ar" else EN_LABELS[label]
    return f"{name}: {_isolated(text.strip())}"


def _sentences(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def _en(dirhams: int) -> str:
    return f"{qar(dirhams)} QAR"


def _ar(dirhams: int) -> str:
    return f"{qar(dirhams)} {AR_TERMS['QAR']}"


def _metadata(
    facts: Mapping[str, Any], amount_dirhams: int | None, kind: EventKind, receipt: str | None = None
) -> dict[str, Any]:
    names = {"job_id": "jobId", "escrow_id": "escrowId", "purchase_id": "purchaseId", "withdrawal_id": "withdrawalId"}
    metadata: dict[str, Any] = {"kind": kind, **{app_name: facts[ours] for ours, app_name in names.items() if facts.get(ours)}}
    if amount_dirhams is not None:
        metadata["amount"] = qar_value(amount_dirhams)
        metadata["currency"] = "QAR"
    if receipt is not None:
        metadata["receiptUrl"] = receipt
    return metadata


def _receipt(what: str, id_: str) -> str:
    """The API path of a receipt, relative to the API's origin (coins' receipt endpoints)."""
    return f"/api/coins/{what}/{id_}/receipt"


def _purchase(kind: EventKind):
    def build(facts, admins, base):
        amount, purchase_id = facts.get("value_dirhams"), facts["purchase_id"]
        link = f"{base}coins/purchase/{purchase_id}"
        if kind is EventKind.COINS_ISSUED:
            texts = {
                "en": ("Coins added", f"GUILD Coins worth {_en(amount)} are in your wallet."),
                "ar": ("تمت إضافة العملات", f"أُضيفت إلى محفظتك عملات GUILD بقيمة {_ar(amount)}."),
            }
            meta = _metadata(facts, amount, kind, _receipt("purchase", purchase_id))
            return [Notice(facts["user_id"], PAYMENT, MEDIUM, texts, link, meta)]
        meta = _metadata(facts, amount, kind)
        if kind is EventKind.PURCHASE_REFUNDED and facts.get("unissued"):
            # A payment whose coins were never issued (late, or of another amount): its money back.
            paid = facts.get("price_dirhams", amount)
            texts = {
                "en": ("Payment refunded", f"Your payment of {_en(paid)} was refunded; no coins had been added for it."),
                "ar": (
                    f"تم {AR_TERMS['refund']} المبلغ",
                    f"تم {AR_TERMS['refund']} دفعتك البالغة {_ar(paid)}، ولم تكن قد أُضيفت عنها أي عملات.",
                ),
            }
            return [Notice(facts["user_id"], PAYMENT, HIGH, texts, link, _metadata(facts, paid, kind))]
        if kind is EventKind.PURCHASE_REFUNDED:
            texts = {
                "en": ("Purchase refunded", f"Your payment was refunded; the coins worth {_en(amount)} were taken back."),
                "ar": (
                    f"تم {AR_TERMS['refund']} المبلغ",
                    f"تم {AR_TERMS['refund']} دفعتك، و{AR_TERMS['were taken back']} العملات بقيمة {_ar(amount)}.",
                ),
            }
            return [Notice(facts["user_id"], PAYMENT, HIGH, texts, link, meta)]
        if kind is EventKind.PURCHASE_FAILED:
            texts = {
                "en": ("Payment not completed", "Your coin purchase was not completed; no coins were added."),
                "ar": ("لم يكتمل الدفع", "لم تكتمل عملية شراء العملات، ولم تُضَف أي عملات إلى محفظتك."),
            }
            return [Notice(facts["user_id"], PAYMENT, MEDIUM, texts, link, meta)]
        texts = {
            "en": ("Payment under review", "We are checking your payment; your coins follow once it is confirmed."),
            "ar": ("الدفعة قيد المراجعة", "نتحقق من دفعتك، وستصلك العملات بعد تأكيدها."),
        }
        reason = facts.get("reason")
        admin = {
            "en": (
                "Purchase needs review",
                _sentences(f"Purchase {_isolated(purchase_id)}.", _labelled("en", "reason", reason)),
            ),
            "ar": (
                "عملية شراء بحاجة إلى مراجعة",
                _sentences(f"عملية الشراء {_isolated(purchase_id)}.", _labelled("ar", "reason", reason)),
            ),
        }
        return [Notice(facts["user_id"], PAYMENT, MEDIUM, texts, link, meta)] + [
            Notice(uid, PAYMENT, HIGH, admin, link, meta) for uid in admins
        ]

    return build


def _adjusted(facts, admins, base):
    """An admin's correction, in the direction it went: added to or taken from the balance."""
    amount, reason = facts["amount_dirhams"], facts.get("reason")
    if amount > 0:
        en, ar = f"{_en(amount)} was added to your balance.", f"أُضيف {_ar(amount)} إلى رصيدك."
    elif amount < 0:
        en, ar = f"{_en(amount)} was taken from your balance.", f"خُصم {_ar(amount)} من رصيدك."
    else:
        en, ar = "Your coins were exchanged; your balance is unchanged.", "تم تعديل عملاتك، ولم يتغير رصيدك."
    texts = {
        "en": ("Balance adjusted", _sentences(en, _labelled("en", "reason", reason))),
        "ar": ("تم تعديل الرصيد", _sentences(ar, _labelled("ar", "reason", reason))),
    }
    return [
        Notice(
            facts["user_id"], PAYMENT, MEDIUM, texts, f"{base}coins/wallet", _metadata(facts, amount, EventKind.BALANCE_ADJUSTED)
        )
    ]


def _escrow(kind: EventKind):
    """The other party hears of what one party did; both hear of what the system or an
    admin did; admins hear of disputes."""

    def build(facts, admins, base):
        link, meta = f"{base}coins/escrow/{facts['escrow_id']}", _metadata(facts, facts["amount_dirhams"], kind)
        client, freelancer = facts["client_id"], facts["freelancer_id"]
        amount, m = facts["amount_dirhams"], _isolated(facts.get("milestone") or "1")
        escrow, job = AR_TERMS["escrow"], AR_TERMS["the job"]

        def with_note(language: str, sentence: str) -> str:
            return _sentences(
                sentence, _labelled(language, "reason", facts.get("reason")), _labelled(language, "note", facts.get("note"))
            )

        if kind is EventKind.ESCROW_FUNDED:
            return [
                Notice(
                    client,
                    PAYMENT,
                    MEDIUM,
                    {
                        "en": ("Payment held in escrow", f"{_en(amount)} is held in escrow until the work is done."),
                        "ar": (f"الدفعة محجوزة في {escrow}", f"تم حجز {_ar(amount)} في {escrow} حتى اكتمال العمل."),
                    },
                    link,
                    meta,
                ),
                Notice(
                    freelancer,
                    PAYMENT,
                    HIGH,
                    {
                        "en": ("Job funded", f"{_en(amount)} is held in escrow for your work."),
                        "ar": (f"تم تمويل {job}", f"تم حجز {_ar(amount)} في {escrow} مقابل عملك."),
                    },
                    link,
                    meta,
                ),
            ]
        if kind is EventKind.ESCROW_SUBMITTED:
            return [
                Notice(
                    client,
                    PAYMENT,
                    HIGH,
                    {
                        "en": (
                            "Work submitted",
                            with_note(
                                "en",
                                f"Milestone {m} is ready for your review; {_en(amount)} will be released to the freelancer "
                                "if you do not respond before the deadline.",
                            ),
                        ),
                        "ar": (
                            "تم تسليم العمل",
                            with_note(
                                "ar",
                                f"المرحلة {m} جاهزة لمراجعتك، و{AR_TERMS['will be released']} {_ar(amount)} للمستقل "
                                f"إن لم ترد {AR_TERMS['before the deadline']}.",
                            ),
                        ),
                    },
                    link,
                    meta,
                )
            ]
        if kind is EventKind.ESCROW_CHANGES_REQUESTED:
            return [
                Notice(
                    freelancer,
                    PAYMENT,
                    HIGH,
                    {
                        "en": ("Changes requested", with_note("en", f"The client asked for changes to milestone {m}.")),
                        "ar": ("طُلبت تعديلات", with_note("ar", f"طلب العميل تعديلات على المرحلة {m}.")),
                    },
                    link,
                    meta,
                )
            ]
        if kind is EventKind.ESCROW_RELEASED:
            net, fee, gross = facts["paid_dirhams"], facts["fee_dirhams"], facts["released_dirhams"]
            receipt = _receipt("escrow", facts["escrow_id"])
            released = f"تم {AR_TERMS['release']} الدفعة"
            return [
                Notice(
                    freelancer,
                    PAYMENT,
                    HIGH,
                    {
                        "en": ("Payment released", f"{_en(net)} is in your wallet ({_en(fee)} platform fee)."),
                        "ar": (released, f"أُضيف {_ar(net)} إلى محفظتك (رسوم المنصة {_ar(fee)})."),
                    },
                    link,
                    {**meta, "amount": qar_value(net), "receiptUrl": receipt},
                ),
                Notice(
                    client,
                    PAYMENT,
                    MEDIUM,
                    {
                        "en": ("Payment released", f"{_en(gross)} was released to the freelancer."),
                        "ar": (released, f"تم {AR_TERMS['release']} {_ar(gross)} للمستقل."),
                    },
                    link,
                    {**meta, "amount": qar_value(gross), "receiptUrl": receipt},
                ),
            ]
        if kind is EventKind.ESCROW_REFUND_REQUESTED:
            return [
                Notice(
                    freelancer,
                    PAYMENT,
                    HIGH,
                    {
                        "en": (
                            "Refund requested",
                            with_note(
                                "en", f"The client asks for the {_en(amount)} back; accept or dispute it before the deadline."
                            ),
                        ),
                        "ar": (
                            f"طُلب {AR_TERMS['refund']}",
                            with_note(
                                "ar",
                                f"يطلب العميل {AR_TERMS['refund']} {_ar(amount)}، فاقبل الطلب أو اعترض عليه "
                                f"{AR_TERMS['before the deadline']}.",
                            ),
                        ),
                    },
                    link,
                    meta,
                )
            ]
        if kind is EventKind.ESCROW_REFUNDED:
            back = facts["refunded_dirhams"]
            back_meta = {**meta, "amount": qar_value(back), "receiptUrl": _receipt("escrow", facts["escrow_id"])}
            title = f"أُعيد المبلغ من {escrow}"
            return [
                Notice(
                    client,
                    PAYMENT,
                    HIGH,
                    {
                        "en": ("Escrow refunded", f"{_en(back)} is back in your wallet."),
                        "ar": (title, f"عاد مبلغ {_ar(back)} إلى محفظتك."),
                    },
                    link,
                    back_meta,
                ),
                Notice(
                    freelancer,
                    PAYMENT,
                    MEDIUM,
                    {
                        "en": ("Escrow refunded", f"{_en(back)} held for this job went back to the client."),
                        "ar": (title, f"عاد إلى العميل مبلغ {_ar(back)} الذي كان محجوزًا {AR_TERMS['for this job']}."),
                    },
                    link,
                    back_meta,
                ),
            ]
        if kind is EventKind.ESCROW_RESOLVED:
            share, back = facts["paid_dirhams"], facts["client_dirhams"]
            texts = {
                "en": (
                    "Dispute resolved",
                    with_note(
                        "en",
                        _sentences(
                            f"{_en(share)} was released to the freelancer (after fees)." if share else "",
                            f"{_en(back)} went back to the client." if back else "",
                        ),
                    ),
                ),
                "ar": (
                    "تم حل النزاع",
                    with_note(
                        "ar",
                        _sentences(
                            f"{AR_TERMS['was released']} {_ar(share)} للمستقل (بعد الرسوم)." if share else "",
                            f"أُعيد {_ar(back)} إلى العميل." if back else "",
                        ),
                    ),
                ),
            }
            settled = {**meta, "receiptUrl": _receipt("escrow", facts["escrow_id"])}
            return [Notice(uid, DISPUTE, HIGH, texts, link, settled) for uid in (client, freelancer)]
        other = freelancer if facts.get("disputed_by") == client else client
        title = (
            ("Refund request declined", f"رُفض طلب {AR_TERMS['the refund']}")
            if facts.get("declined_refund")
            else ("Payment disputed", "نزاع على الدفعة")
        )
        escrow_id = _isolated(facts["escrow_id"])
        admin = {
            "en": ("Dispute opened", with_note("en", f"Escrow {escrow_id} ({_en(amount)}).")),
            "ar": ("نزاع جديد", with_note("ar", f"{escrow} {escrow_id} ({_ar(amount)}).")),
        }
        return [
            Notice(
                other,
                DISPUTE,
                HIGH,
                {
                    "en": (title[0], with_note("en", f"A dispute was opened on {_en(amount)}.")),
                    "ar": (title[1], with_note("ar", f"فُتح نزاع على مبلغ {_ar(amount)}.")),
                },
                link,
                meta,
            )
        ] + [Notice(uid, DISPUTE, HIGH, admin, link, meta) for uid in admins]

    return build


def _withdrawal(kind: EventKind):
    def build(facts, admins, base):
        amount, withdrawal_id = facts["amount_dirhams"], facts["withdrawal_id"]
        link, meta = f"{base}coins/withdrawal/{withdrawal_id}", _metadata(facts, amount, kind)
        withdrawal = AR_TERMS["withdrawal"]
        if kind is EventKind.WITHDRAWAL_REQUESTED:
            large = bool(facts.get("large"))
            texts = {
                "en": ("Large withdrawal request" if large else "Withdrawal request", f"{_en(amount)}, to approve and pay."),
                "ar": (
                    f"طلب {withdrawal} كبير" if large else f"طلب {withdrawal}",
                    f"مبلغ {_ar(amount)} بانتظار الموافقة والدفع.",
                ),
            }
            return [Notice(uid, PAYMENT, URGENT if large else HIGH, texts, link, meta) for uid in admins]
        if kind is EventKind.WITHDRAWAL_PAID:
            meta = _metadata(facts, amount, kind, _receipt("withdrawal", withdrawal_id))
        reason = facts.get("reason")
        # Where the money goes: the account outside GUILD the withdrawal names.
        to = (
            {"en": "mobile wallet", "ar": "محفظتك الإلكترونية"}
            if facts.get("method") == "wallet"
            else {"en": "bank account", "ar": "حسابك البنكي"}
        )
        texts = {
            EventKind.WITHDRAWAL_APPROVED: {
                "en": (
                    "Withdrawal approved",
                    f"Your withdrawal of {_en(amount)} is approved and will be sent to your {to['en']}.",
                ),
                "ar": (
                    f"تمت الموافقة على {AR_TERMS['the withdrawal']}",
                    f"تمت الموافقة على {withdrawal} {_ar(amount)}، وسيُحوَّل المبلغ إلى {to['ar']}.",
                ),
            },
            EventKind.WITHDRAWAL_PAID: {
                "en": ("Withdrawal paid", f"{_en(amount)} was sent to your {to['en']}."),
                "ar": (f"تم تحويل مبلغ {AR_TERMS['the withdrawal']}", f"تم تحويل {_ar(amount)} إلى {to['ar']}."),
            },
            EventKind.WITHDRAWAL_REJECTED: {
                "en": (
                    "Withdrawal rejected",
                    _sentences(f"{_en(amount)} is back in your wallet.", _labelled("en", "reason", reason)),
                ),
                "ar": (
                    f"رُفض طلب {AR_TERMS['the withdrawal']}",
                    _sentences(f"عاد مبلغ {_ar(amount)} إلى محفظتك.", _labelled("ar", "reason", reason)),
                ),
            },
        }[kind]
        return [Notice(facts["user_id"], PAYMENT, HIGH, texts, link, meta)]

    return build


def _reconciliation(facts, admins, base):
    n, day = facts["problem_count"], facts["day"]
    texts = {
        "en": ("Reconciliation found problems", f"{problem_count_en(n)} in the reconciliation of {_isolated(day)}."),
        "ar": ("مشكلات في المطابقة", f"{problem_count_ar(n)} في مطابقة {_isolated(day)}."),
    }
    return [Notice(uid, PAYMENT, URGENT, texts, None, {"kind": EventKind.RECONCILIATION_PROBLEM, "day": day}) for uid in admins]


def _fraud_signal(facts, admins, base):
    """The admins hear of a fraud signal once per user per window (coins.signals)."""
    uid, high = facts["user_id"], facts["level"] == "high"
    texts = {
        "en": ("Unusual activity", f"User {_isolated(uid)}: {facts['why']}. Nothing is blocked; have a look."),
        "ar": ("نشاط غير معتاد", f"المستخدم {_isolated(uid)}: {_why_ar(facts)}. لم يُمنع أي إجراء، يُرجى المراجعة."),
    }
    meta = {"kind": EventKind.FRAUD_SIGNAL, "userId": uid, "signal": facts["signal"]}
    return [Notice(admin, SYSTEM, HIGH if high else MEDIUM, texts, None, meta) for admin in admins]


def _why_ar(facts) -> str:
    if facts["signal"] == "many_entries":
        return "عدد كبير من القيود خلال 24 ساعة"
    return f"طلبات {AR_TERMS['withdrawal']} بمبالغ كبيرة خلال 7 أيام"


def _kyc(kind: EventKind):
    def build(facts, admins, base):
        uid = facts["user_id"]
        if kind is EventKind.KYC_SUBMITTED:
            texts = {
                "en": ("Identity to verify", f"User {_isolated(uid)} submitted their ID."),
                "ar": ("هوية بانتظار التحقق", f"أرسل المستخدم {_isolated(uid)} هويته للتحقق."),
            }
            return [Notice(admin, SYSTEM, MEDIUM, texts, None, {"kind": kind, "userId": uid}) for admin in admins]
        verified = facts["status"] == "verified"
        note = facts.get("note")
        texts = (
            {
                "en": ("Identity verified", "You can now withdraw coins."),
                "ar": ("تم التحقق من هويتك", f"يمكنك الآن {AR_TERMS['withdrawal']} العملات."),
            }
            if verified
            else {
                "en": ("Identity not verified", _sentences("Please submit your ID again.", _labelled("en", "note", note))),
                "ar": ("تعذّر التحقق من هويتك", _sentences("يُرجى إرسال هويتك مرة أخرى.", _labelled("ar", "note", note))),
            }
        )
        return [Notice(uid, SYSTEM, HIGH, texts, f"{base}coins/kyc", {"kind": kind, "status": facts["status"]})]

    return build


_BUILDERS = {
    EventKind.KYC_SUBMITTED: _kyc(EventKind.KYC_SUBMITTED),
    EventKind.KYC_DECIDED: _kyc(EventKind.KYC_DECIDED),
    EventKind.COINS_ISSUED: _purchase(EventKind.COINS_ISSUED),
    EventKind.PURCHASE_FAILED: _purchase(EventKind.PURCHASE_FAILED),
    EventKind.PURCHASE_IN_REVIEW: _purchase(EventKind.PURCHASE_IN_REVIEW),
    EventKind.PURCHASE_REFUNDED: _purchase(EventKind.PURCHASE_REFUNDED),
    EventKind.BALANCE_ADJUSTED: _adjusted,
    **{kind: _escrow(kind) for kind in EventKind if kind.startswith("escrow_")},
    EventKind.WITHDRAWAL_REQUESTED: _withdrawal(EventKind.WITHDRAWAL_REQUESTED),
    EventKind.WITHDRAWAL_APPROVED: _withdrawal(EventKind.WITHDRAWAL_APPROVED),
    EventKind.WITHDRAWAL_PAID: _withdrawal(EventKind.WITHDRAWAL_PAID),
    EventKind.WITHDRAWAL_REJECTED: _withdrawal(EventKind.WITHDRAWAL_REJECTED),
    EventKind.RECONCILIATION_PROBLEM: _reconciliation,
    EventKind.FRAUD_SIGNAL: _fraud_signal,
}
