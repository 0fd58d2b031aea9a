"""What each event tells whom, in English and Arabic: pure, from the event's facts.

An outbox event (`ledger.Event`) records what happened; `for_event` turns it into one
notice per person concerned (the parties, and the configured admins for what needs an
operator), each ready to be written in the app's notification schema in the reader's
language. Amounts are shown in QAR, as the app shows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .app import Notification
from .domain import EventKind

PAYMENT, DISPUTE, SYSTEM = "payment", "dispute", "system"  # the app's notification types used here
MEDIUM, HIGH, URGENT = "medium", "high", "urgent"


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
    """100050 -> "1,000.50"; 10000 -> "100"."""
    whole, cents = divmod(abs(dirhams), 100)
    text = f"{whole:,}" + (f".{cents:02d}" if cents else "")
    return ("-" if dirhams < 0 else "") + text


def qar_value(dirhams: int) -> int | str:
    """An amount for `metadata.amount`: whole QAR as a number (every coin value and
    escrow amount is), otherwise exact text; never a float."""
    return dirhams // 100 if dirhams % 100 == 0 else qar(dirhams)


def for_event(event: Mapping[str, Any], *, admins: tuple[str, ...], link_base: str) -> list[Notice]:
    """The notices of one outbox event (none for a kind nobody hears about)."""
    kind, facts = EventKind(event["kind"]), event.get("facts", {})
    build = _BUILDERS.get(kind)
    return build(facts, admins, link_base) if build else []


def _metadata(facts: Mapping[str, Any], amount_dirhams: int | None, kind: EventKind) -> dict[str, Any]:
    names = {"job_id": "jobId", "escrow_id": "escrowId", "purchase_id": "purchaseId", "withdrawal_id": "withdrawalId"}
    metadata: dict[str, Any] = {"kind": kind, **{app_name: facts[ours] for ours, app_name in names.items() if facts.get(ours)}}
    if amount_dirhams is not None:
        metadata["amount"] = qar_value(amount_dirhams)
        metadata["currency"] = "QAR"
    return metadata


def _purchase(kind: EventKind):
    def build(facts, admins, base):
        amount = facts.get("value_dirhams")
        link = f"{base}coins/purchase/{facts['purchase_id']}"
        meta = _metadata(facts, amount, kind)
        if kind is EventKind.COINS_ISSUED:
            texts = {
                "en": ("Coins added", f"GUILD Coins worth {qar(amount)} QAR are in your wallet."),
                "ar": ("تمت إضافة العملات", f"أُضيفت إلى محفظتك عملات GUILD بقيمة {qar(amount)} ر.ق."),
            }
            return [Notice(facts["user_id"], PAYMENT, MEDIUM, texts, link, meta)]
        if kind is EventKind.PURCHASE_REFUNDED:
            texts = {
                "en": ("Purchase refunded", f"Your payment is refunded; the coins worth {qar(amount)} QAR were taken back."),
                "ar": ("تم استرداد المبلغ", f"تم استرداد دفعتك، وسُحبت العملات بقيمة {qar(amount)} ر.ق."),
            }
            return [Notice(facts["user_id"], PAYMENT, HIGH, texts, link, meta)]
        if kind is EventKind.PURCHASE_FAILED:
            texts = {
                "en": ("Payment not completed", "Your coin purchase was not completed; no coins were added."),
                "ar": ("لم يكتمل الدفع", "لم تكتمل عملية شراء العملات، ولم تُضف أي عملات."),
            }
            return [Notice(facts["user_id"], PAYMENT, MEDIUM, texts, link, meta)]
        texts = {
            "en": ("Payment under review", "We are checking your payment; your coins follow once it is confirmed."),
            "ar": ("الدفعة قيد المراجعة", "نتحقق من دفعتك، وستصلك العملات بعد تأكيدها."),
        }
        admin = {
            "en": ("Purchase needs review", f"Purchase {facts['purchase_id']}: {facts.get('reason', '')}"),
            "ar": ("عملية شراء تحتاج مراجعة", f"عملية الشراء {facts['purchase_id']}: {facts.get('reason', '')}"),
        }
        return [Notice(facts["user_id"], PAYMENT, MEDIUM, texts, link, meta)] + [
            Notice(uid, PAYMENT, HIGH, admin, link, meta) for uid in admins
        ]

    return build


def _adjusted(facts, admins, base):
    amount = facts["amount_dirhams"]
    texts = {
        "en": ("Balance adjusted", f"{qar(amount)} QAR: {facts.get('reason', '')}"),
        "ar": ("تم تعديل الرصيد", f"{qar(amount)} ر.ق: {facts.get('reason', '')}"),
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
        a, m = qar(facts["amount_dirhams"]), facts.get("milestone", "1")
        note = facts.get("note") or facts.get("reason") or ""
        if kind is EventKind.ESCROW_FUNDED:
            return [
                Notice(
                    client,
                    PAYMENT,
                    MEDIUM,
                    {
                        "en": ("Payment held in escrow", f"{a} QAR is held until the work is done."),
                        "ar": ("تم حجز الدفعة", f"تم حجز {a} ر.ق حتى اكتمال العمل."),
                    },
                    link,
                    meta,
                ),
                Notice(
                    freelancer,
                    PAYMENT,
                    HIGH,
                    {
                        "en": ("Job funded", f"{a} QAR is held in escrow for your work."),
                        "ar": ("تم تمويل المهمة", f"تم حجز {a} ر.ق لعملك."),
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
                            f"Milestone {m} is ready for your review; {a} QAR is released if you do not respond in time.",
                        ),
                        "ar": ("تم تسليم العمل", f"المرحلة {m} جاهزة لمراجعتك، وسيُحرَّر {a} ر.ق إن لم ترد في الوقت المحدد."),
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
                    {"en": ("Changes requested", f"Milestone {m}: {note}"), "ar": ("طُلبت تعديلات", f"المرحلة {m}: {note}")},
                    link,
                    meta,
                )
            ]
        if kind is EventKind.ESCROW_RELEASED:
            net, fee, gross = qar(facts["paid_dirhams"]), qar(facts["fee_dirhams"]), qar(facts["released_dirhams"])
            paid_meta = {**meta, "amount": qar_value(facts["paid_dirhams"])}
            return [
                Notice(
                    freelancer,
                    PAYMENT,
                    HIGH,
                    {
                        "en": ("Payment released", f"{net} QAR is in your wallet ({fee} QAR platform fee)."),
                        "ar": ("تم تحرير الدفعة", f"أُضيف {net} ر.ق إلى محفظتك (رسوم المنصة {fee} ر.ق)."),
                    },
                    link,
                    paid_meta,
                ),
                Notice(
                    client,
                    PAYMENT,
                    MEDIUM,
                    {
                        "en": ("Payment released", f"{gross} QAR was released to the freelancer."),
                        "ar": ("تم تحرير الدفعة", f"تم تحرير {gross} ر.ق للمستقل."),
                    },
                    link,
                    {**meta, "amount": qar_value(facts["released_dirhams"])},
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
                            f"The client asks for the {a} QAR back: {note}. Accept or dispute it in time.",
                        ),
                        "ar": ("طُلب استرداد", f"يطلب العميل استرداد {a} ر.ق: {note}. اقبل الطلب أو اعترض عليه في الوقت المحدد."),
                    },
                    link,
                    meta,
                )
            ]
        if kind is EventKind.ESCROW_REFUNDED:
            back = qar(facts["refunded_dirhams"])
            back_meta = {**meta, "amount": qar_value(facts["refunded_dirhams"])}
            return [
                Notice(
                    client,
                    PAYMENT,
                    HIGH,
                    {
                        "en": ("Escrow refunded", f"{back} QAR is back in your wallet."),
                        "ar": ("تم استرداد الدفعة", f"عاد {back} ر.ق إلى محفظتك."),
                    },
                    link,
                    back_meta,
                ),
                Notice(
                    freelancer,
                    PAYMENT,
                    MEDIUM,
                    {
                        "en": ("Escrow refunded", f"{back} QAR held for this job went back to the client."),
                        "ar": ("تم استرداد الدفعة", f"عاد {back} ر.ق المحجوز لهذه المهمة إلى العميل."),
                    },
                    link,
                    back_meta,
                ),
            ]
        if kind is EventKind.ESCROW_RESOLVED:
            share, back = qar(facts["paid_dirhams"]), qar(facts["client_dirhams"])
            texts = {
                "en": ("Dispute resolved", f"{share} QAR to the freelancer (after fees), {back} QAR back to the client. {note}"),
                "ar": ("تم حل النزاع", f"{share} ر.ق للمستقل (بعد الرسوم) و{back} ر.ق للعميل. {note}"),
            }
            return [Notice(uid, DISPUTE, HIGH, texts, link, meta) for uid in (client, freelancer)]
        other = freelancer if facts.get("disputed_by") == client else client
        title = (
            ("Refund request declined", "رُفض طلب الاسترداد")
            if facts.get("declined_refund")
            else ("Payment disputed", "نزاع على الدفعة")
        )
        admin = {
            "en": ("Dispute opened", f"Escrow {facts['escrow_id']} ({a} QAR): {note}"),
            "ar": ("نزاع جديد", f"الضمان {facts['escrow_id']} ({a} ر.ق): {note}"),
        }
        return [
            Notice(
                other,
                DISPUTE,
                HIGH,
                {"en": (title[0], f"A dispute was opened on {a} QAR: {note}"), "ar": (title[1], f"فُتح نزاع على {a} ر.ق: {note}")},
                link,
                meta,
            )
        ] + [Notice(uid, DISPUTE, HIGH, admin, link, meta) for uid in admins]

    return build


def _withdrawal(kind: EventKind):
    def build(facts, admins, base):
        amount = facts["amount_dirhams"]
        a, link, meta = qar(amount), f"{base}coins/withdrawal/{facts['withdrawal_id']}", _metadata(facts, amount, kind)
        if kind is EventKind.WITHDRAWAL_REQUESTED:
            large = bool(facts.get("large"))
            texts = {
                "en": ("Large withdrawal request" if large else "Withdrawal request", f"{a} QAR, to approve and pay."),
                "ar": ("طلب سحب كبير" if large else "طلب سحب", f"{a} ر.ق بانتظار الموافقة والدفع."),
            }
            return [Notice(uid, PAYMENT, URGENT if large else HIGH, texts, link, meta) for uid in admins]
        texts = {
            EventKind.WITHDRAWAL_APPROVED: {
                "en": ("Withdrawal approved", f"Your withdrawal of {a} QAR is approved and will be paid."),
                "ar": ("تمت الموافقة على السحب", f"تمت الموافقة على سحب {a} ر.ق وسيتم الدفع."),
            },
            EventKind.WITHDRAWAL_PAID: {
                "en": ("Withdrawal paid", f"{a} QAR was sent to your account."),
                "ar": ("تم دفع السحب", f"أُرسل {a} ر.ق إلى حسابك."),
            },
            EventKind.WITHDRAWAL_REJECTED: {
                "en": ("Withdrawal rejected", f"{a} QAR is back in your wallet. {facts.get('reason') or ''}".strip()),
                "ar": ("تم رفض السحب", f"عاد {a} ر.ق إلى محفظتك. {facts.get('reason') or ''}".strip()),
            },
        }[kind]
        return [Notice(facts["user_id"], PAYMENT, HIGH, texts, link, meta)]

    return build


def _reconciliation(facts, admins, base):
    n, day = facts["problem_count"], facts["day"]
    texts = {
        "en": ("Reconciliation found problems", f"{n} problem(s) in the reconciliation of {day}."),
        "ar": ("مشكلات في المطابقة", f"{n} مشكلة في مطابقة {day}."),
    }
    return [Notice(uid, PAYMENT, URGENT, texts, None, {"kind": EventKind.RECONCILIATION_PROBLEM, "day": day}) for uid in admins]


def _fraud_signal(facts, admins, base):
    """The admins hear of a fraud signal once per user per window (coins.signals)."""
    uid, high = facts["user_id"], facts["level"] == "high"
    texts = {
        "en": ("Unusual activity", f"User {uid}: {facts['why']}. Nothing is blocked; have a look."),
        "ar": ("نشاط غير معتاد", f"المستخدم {uid}: {_why_ar(facts)}. لم يُمنع أي شيء؛ يُرجى المراجعة."),
    }
    meta = {"kind": EventKind.FRAUD_SIGNAL, "userId": uid, "signal": facts["signal"]}
    return [Notice(admin, SYSTEM, HIGH if high else MEDIUM, texts, None, meta) for admin in admins]


def _why_ar(facts) -> str:
    if facts["signal"] == "many_entries":
        return "عدد كبير من القيود في 24 ساعة"
    return "مبالغ سحب كبيرة مطلوبة خلال 7 أيام"


def _kyc(kind: EventKind):
    def build(facts, admins, base):
        if kind is EventKind.KYC_SUBMITTED:
            texts = {
                "en": ("Identity to verify", f"User {facts['user_id']} submitted their ID."),
                "ar": ("هوية بانتظار التحقق", f"أرسل المستخدم {facts['user_id']} هويته."),
            }
            return [Notice(uid, SYSTEM, MEDIUM, texts, None, {"kind": kind, "userId": facts["user_id"]}) for uid in admins]
        verified = facts["status"] == "verified"
        note = facts.get("note") or ""
        texts = (
            {"en": ("Identity verified", "You can now withdraw coins."), "ar": ("تم التحقق من هويتك", "يمكنك الآن سحب العملات.")}
            if verified
            else {
                "en": ("Identity not verified", f"Please submit your ID again. {note}".strip()),
                "ar": ("لم يتم التحقق من هويتك", f"يرجى إرسال هويتك مرة أخرى. {note}".strip()),
            }
        )
        return [Notice(facts["user_id"], SYSTEM, HIGH, texts, f"{base}coins/kyc", {"kind": kind, "status": facts["status"]})]

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
