"""What people read in their notifications, without an emulator: every event's notices
built from the facts its module records, read as a Gulf Arabic reader would (the app's
words, no minus signs, quoted text isolated from the sentence around it), with amounts
in `metadata` as JSON numbers of QAR and links to the receipts that exist."""

import json
import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coins import catalog, notices
from coins.domain import EventKind

QAR = catalog.DIRHAMS_PER_QAR
ADMINS = ("ops-one", "ops-two")
FSI, PDI = "\u2068", "\u2069"
ISOLATED = re.compile(f"{FSI}[^{FSI}{PDI}]*{PDI}")

# What a person typed, and the ids a notice may name: each must reach the text isolated.
NOTE, REASON, MILESTONE = "make the logo bigger", "the client stopped answering", "Design v2"
PURCHASE, ESCROW, WITHDRAWAL, USER, DAY = "pur-7Qx", "esc-41b", "wd-9k2", "user-Lm3", "2026-11-27"
CLIENT, FREELANCER = "client-Ab1", "free-Cd2"
QUOTED = (NOTE, REASON, MILESTONE, PURCHASE, ESCROW, WITHDRAWAL, USER, DAY)

ESCROW_FACTS = {
    "escrow_id": ESCROW,
    "job_id": "job-5",
    "milestone": MILESTONE,
    "client_id": CLIENT,
    "freelancer_id": FREELANCER,
    "amount_dirhams": 100_050,
}
WITHDRAWAL_FACTS = {"withdrawal_id": WITHDRAWAL, "user_id": USER, "amount_dirhams": 50 * QAR, "large": True}
PURCHASE_FACTS = {"user_id": USER, "purchase_id": PURCHASE, "value_dirhams": 110_050}

# Facts as coins.escrow, withdrawals, purchases, wallets, kyc, ledger and reconciliation
# record them, one representative set (or more) per kind.
FACTS = {
    EventKind.COINS_ISSUED: [PURCHASE_FACTS],
    EventKind.PURCHASE_FAILED: [PURCHASE_FACTS],
    EventKind.PURCHASE_IN_REVIEW: [{**PURCHASE_FACTS, "reason": REASON}],
    EventKind.PURCHASE_REFUNDED: [PURCHASE_FACTS, {**PURCHASE_FACTS, "price_dirhams": 121_055, "unissued": True}],
    EventKind.BALANCE_ADJUSTED: [
        {"user_id": USER, "amount_dirhams": 150 * QAR, "reason": REASON},
        {"user_id": USER, "amount_dirhams": -105_050, "reason": REASON},
        {"user_id": USER, "amount_dirhams": 0, "reason": REASON},
    ],
    EventKind.ESCROW_FUNDED: [ESCROW_FACTS],
    EventKind.ESCROW_SUBMITTED: [{**ESCROW_FACTS, "note": NOTE}],
    EventKind.ESCROW_CHANGES_REQUESTED: [{**ESCROW_FACTS, "note": NOTE}],
    EventKind.ESCROW_RELEASED: [
        {**ESCROW_FACTS, "released_dirhams": 100 * QAR, "paid_dirhams": 90 * QAR, "fee_dirhams": 10 * QAR, "partial": True}
    ],
    EventKind.ESCROW_REFUND_REQUESTED: [{**ESCROW_FACTS, "reason": REASON}],
    EventKind.ESCROW_REFUNDED: [{**ESCROW_FACTS, "refunded_dirhams": 100_050}],
    EventKind.ESCROW_DISPUTED: [
        {**ESCROW_FACTS, "disputed_by": CLIENT, "reason": REASON, "declined_refund": False},
        {**ESCROW_FACTS, "disputed_by": FREELANCER, "reason": REASON, "declined_refund": True},
    ],
    EventKind.ESCROW_RESOLVED: [
        {
            **ESCROW_FACTS,
            "outcome": "split",
            "freelancer_dirhams": 60 * QAR,
            "paid_dirhams": 55 * QAR,
            "fee_dirhams": 5 * QAR,
            "client_dirhams": 40_050,
            "note": NOTE,
        },
        {
            **ESCROW_FACTS,
            "outcome": "refunded",
            "freelancer_dirhams": 0,
            "paid_dirhams": 0,
            "fee_dirhams": 0,
            "client_dirhams": 100_050,
            "note": NOTE,
        },
    ],
    EventKind.WITHDRAWAL_REQUESTED: [WITHDRAWAL_FACTS, {**WITHDRAWAL_FACTS, "large": False}],
    EventKind.WITHDRAWAL_APPROVED: [{**WITHDRAWAL_FACTS, "reason": None}],
    EventKind.WITHDRAWAL_PAID: [{**WITHDRAWAL_FACTS, "reason": None}],
    EventKind.WITHDRAWAL_REJECTED: [{**WITHDRAWAL_FACTS, "reason": REASON}],
    EventKind.RECONCILIATION_PROBLEM: [{"day": DAY, "problem_count": 3}],
    EventKind.KYC_SUBMITTED: [{"user_id": USER}],
    EventKind.KYC_DECIDED: [
        {"user_id": USER, "status": "verified", "note": None},
        {"user_id": USER, "status": "rejected", "note": NOTE},
    ],
    EventKind.FRAUD_SIGNAL: [
        {"user_id": USER, "signal": "many_entries", "level": "medium", "why": "41 ledger entries in 24 hours (more than 40)"},
        {"user_id": USER, "signal": "large_withdrawals", "level": "high", "why": "20,000.00 QAR requested in withdrawals"},
    ],
}
# Where سحب (a cash-out) belongs: the withdrawals, the verified ID that allows them, and
# the signal about large ones. Never a refund.
ABOUT_WITHDRAWALS = {
    EventKind.WITHDRAWAL_REQUESTED,
    EventKind.WITHDRAWAL_APPROVED,
    EventKind.WITHDRAWAL_PAID,
    EventKind.WITHDRAWAL_REJECTED,
    EventKind.KYC_DECIDED,
    EventKind.FRAUD_SIGNAL,
}
RECEIPTS = {
    EventKind.COINS_ISSUED: f"/api/coins/purchase/{PURCHASE}/receipt",
    EventKind.WITHDRAWAL_PAID: f"/api/coins/withdrawal/{WITHDRAWAL}/receipt",
    EventKind.ESCROW_RELEASED: f"/api/coins/escrow/{ESCROW}/receipt",
}


def built():
    """(kind, facts, notice) for every representative event."""
    for kind, examples in FACTS.items():
        for facts in examples:
            event = {"kind": kind, "facts": facts}
            for notice in notices.for_event(event, admins=ADMINS, link_base="guild://"):
                yield kind, facts, notice


def arabic():
    for kind, facts, notice in built():
        for text in notice.texts["ar"]:
            yield kind, facts, text


def test_every_kind_of_event_is_represented_and_tells_someone():
    assert set(FACTS) == set(EventKind)
    assert {kind for kind, _, _ in built()} == set(EventKind)


@pytest.mark.parametrize("word", ["تحرير", "يُحرَّر", "يحرر", "مهمة", "سُحبت"])
def test_the_arabic_never_says_edit_for_release_task_for_job_or_withdrawn_for_refunded(word):
    said = [text for _, _, text in arabic() if word in text]
    assert said == []


def test_the_arabic_names_escrow_job_and_release_in_the_apps_words():
    texts = [text for kind, _, text in arabic() if kind.startswith("escrow_")]
    assert any("حساب الضمان" in text for text in texts)
    assert any("الوظيفة" in text for text in texts)
    assert any("تم صرف الدفعة" == text for text in texts)
    assert any("سيُصرف" in text for text in texts)


def test_no_amount_in_either_language_is_shown_with_a_minus_sign():
    for kind, _, notice in built():
        for language in ("en", "ar"):
            for text in notice.texts[language]:
                unquoted = ISOLATED.sub("", text)
                assert not re.search(r"[-\u2212]\s*\d", unquoted), (kind, text)


def test_a_balance_adjustment_says_its_direction_in_words():
    down = {"kind": EventKind.BALANCE_ADJUSTED, "facts": {"user_id": USER, "amount_dirhams": -105_050, "reason": ""}}
    up = {"kind": EventKind.BALANCE_ADJUSTED, "facts": {"user_id": USER, "amount_dirhams": 150 * QAR, "reason": None}}
    [taken], [added] = (notices.for_event(e, admins=ADMINS, link_base="guild://") for e in (down, up))
    assert taken.texts["ar"][1] == "خُصم 1,050.50 ر.ق من رصيدك."
    assert taken.texts["en"][1] == "1,050.50 QAR was taken from your balance."
    assert added.texts["ar"][1] == "أُضيف 150.00 ر.ق إلى رصيدك."
    assert added.texts["en"][1] == "150.00 QAR was added to your balance."
    assert taken.metadata["amount"] == -1050.5, "the sign stays in the number"


def test_everything_quoted_reaches_the_texts_and_only_inside_isolates():
    seen = set()
    for kind, _, notice in built():
        for language in ("en", "ar"):
            for text in notice.texts[language]:
                assert text.count(FSI) == text.count(PDI), text
                unquoted = ISOLATED.sub("", text)
                for quoted in QUOTED:
                    assert quoted not in unquoted, (kind, language, text)
                    if f"{FSI}{quoted}{PDI}" in text:
                        seen.add((language, quoted))
    named = [quoted for quoted in QUOTED if quoted != WITHDRAWAL]  # a withdrawal's id is in its link only
    assert seen == {(language, quoted) for language in ("en", "ar") for quoted in named}


def test_quoted_text_cannot_break_out_of_its_isolate():
    facts = {**ESCROW_FACTS, "note": f"{PDI}\u202eevil{PDI}"}
    [notice] = notices.for_event({"kind": EventKind.ESCROW_CHANGES_REQUESTED, "facts": facts}, admins=(), link_base="")
    assert notice.texts["ar"][1].endswith(f"ملاحظة: {FSI}evil{PDI}")


@pytest.mark.parametrize(
    "kind, facts, en, ar",
    [
        (
            EventKind.ESCROW_CHANGES_REQUESTED,
            {**ESCROW_FACTS, "note": NOTE},
            f"Note: {FSI}{NOTE}{PDI}",
            f"ملاحظة: {FSI}{NOTE}{PDI}",
        ),
        (
            EventKind.WITHDRAWAL_REJECTED,
            {**WITHDRAWAL_FACTS, "reason": REASON},
            f"Reason: {FSI}{REASON}{PDI}",
            f"السبب: {FSI}{REASON}{PDI}",
        ),
    ],
)
def test_quoted_text_comes_after_its_label(kind, facts, en, ar):
    [notice] = notices.for_event({"kind": kind, "facts": facts}, admins=(), link_base="")
    assert notice.texts["en"][1].endswith(en) and notice.texts["ar"][1].endswith(ar)


@pytest.mark.parametrize("empty", [None, "", "   "])
def test_no_label_is_left_dangling_when_there_is_nothing_to_quote(empty):
    examples = [
        (kind, {**facts, **{key: empty for key in ("note", "reason") if key in facts}})
        for kind, many in FACTS.items()
        for facts in many
    ]
    for kind, facts in examples:
        for notice in notices.for_event({"kind": kind, "facts": facts}, admins=ADMINS, link_base=""):
            for text in (*notice.texts["en"], *notice.texts["ar"]):
                assert not re.search("Reason|Note|السبب|ملاحظة", text), (kind, text)
                assert f"{FSI}{PDI}" not in text and not text.endswith((":", " ")), (kind, text)


def test_sahb_is_said_only_of_withdrawals():
    told = {kind for kind, _, text in arabic() if "سحب" in text}
    assert told <= ABOUT_WITHDRAWALS
    assert {EventKind.WITHDRAWAL_PAID, EventKind.KYC_DECIDED} <= told


def test_a_refunded_purchase_takes_its_coins_back_in_words_of_a_refund():
    [notice] = notices.for_event({"kind": EventKind.PURCHASE_REFUNDED, "facts": PURCHASE_FACTS}, admins=(), link_base="")
    assert notice.texts["ar"] == ("تم استرداد المبلغ", "تم استرداد دفعتك، واستُرجعت العملات بقيمة 1,100.50 ر.ق.")


def test_a_refunded_payment_whose_coins_never_were_says_so_and_the_money_paid():
    facts = {**PURCHASE_FACTS, "price_dirhams": 121_055, "unissued": True}
    [notice] = notices.for_event({"kind": EventKind.PURCHASE_REFUNDED, "facts": facts}, admins=(), link_base="")
    assert notice.texts["en"][1] == "Your payment of 1,210.55 QAR was refunded; no coins had been added for it."
    assert notice.texts["ar"][1] == "تم استرداد دفعتك البالغة 1,210.55 ر.ق، ولم تكن قد أُضيفت عنها أي عملات."
    assert notice.metadata["amount"] == 1210.55 and "receiptUrl" not in notice.metadata


def test_the_escrow_refund_reads_as_correct_arabic():
    facts = {**ESCROW_FACTS, "refunded_dirhams": 100 * QAR}
    client, freelancer = notices.for_event({"kind": EventKind.ESCROW_REFUNDED, "facts": facts}, admins=(), link_base="")
    assert client.texts["ar"] == ("أُعيد المبلغ من حساب الضمان", "عاد مبلغ 100.00 ر.ق إلى محفظتك.")
    assert freelancer.texts["ar"][1] == "عاد إلى العميل مبلغ 100.00 ر.ق الذي كان محجوزًا لهذه الوظيفة."


def test_the_windows_end_before_the_deadline_in_both_languages():
    for kind in (EventKind.ESCROW_SUBMITTED, EventKind.ESCROW_REFUND_REQUESTED):
        [notice] = notices.for_event({"kind": kind, "facts": FACTS[kind][0]}, admins=(), link_base="")
        assert "before the deadline" in notice.texts["en"][1] and " in time" not in notice.texts["en"][1]
        assert "قبل انتهاء المهلة" in notice.texts["ar"][1] and "في الوقت المحدد" not in notice.texts["ar"][1]


@pytest.mark.parametrize(
    "n, words",
    [
        (1, "مشكلة واحدة"),
        (2, "مشكلتان"),
        (3, "3 مشكلات"),
        (10, "10 مشكلات"),
        (11, "11 مشكلة"),
        (99, "99 مشكلة"),
        (100, "100 مشكلة"),
        (102, "102 مشكلة"),
        (103, "103 مشكلات"),
        (111, "111 مشكلة"),
    ],
)
def test_a_count_of_problems_agrees_with_its_number_in_arabic(n, words):
    assert notices.problem_count_ar(n) == words


def test_the_reconciliation_notice_counts_its_problems_in_both_languages():
    event = {"kind": EventKind.RECONCILIATION_PROBLEM, "facts": {"day": DAY, "problem_count": 2}}
    [notice] = notices.for_event(event, admins=("ops-one",), link_base="")
    assert notice.texts["ar"][1] == f"مشكلتان في مطابقة {FSI}{DAY}{PDI}."
    assert notice.texts["en"][1] == f"2 problems in the reconciliation of {FSI}{DAY}{PDI}."


def test_metadata_amounts_are_numbers_of_qar():
    amounts = [notice.metadata["amount"] for _, _, notice in built() if "amount" in notice.metadata]
    assert amounts and all(type(amount) in (int, float) for amount in amounts)
    assert 1100.5 in amounts and 1000.5 in amounts and 90 in amounts and -1050.5 in amounts


def test_each_notice_carries_the_amount_it_speaks_of():
    for kind, facts, notice in built():
        if "amount" not in notice.metadata:
            continue
        # What was paid back, for a payment whose coins never were; what moved, otherwise.
        keys = ("price_dirhams",) if facts.get("unissued") else ("amount_dirhams", "value_dirhams", "paid_dirhams")
        spoken = {facts.get(key) for key in (*keys, "released_dirhams", "refunded_dirhams")}
        assert round(notice.metadata["amount"] * 100) in spoken, (kind, notice.metadata)


@pytest.mark.parametrize("dirhams, value", [(100_050, 1000.5), (11_000, 110), (50, 0.5), (1, 0.01), (-150, -1.5), (0, 0)])
def test_qar_value_is_int_when_whole_and_the_exact_decimal_otherwise(dirhams, value):
    got = notices.qar_value(dirhams)
    assert got == value and type(got) is type(value)


@given(st.integers(min_value=-(10**13), max_value=10**13))
def test_qar_value_round_trips_to_its_dirhams_through_json(dirhams):
    value = notices.qar_value(dirhams)
    assert isinstance(value, int) == (dirhams % 100 == 0) and not isinstance(value, bool)
    assert Decimal(json.dumps(value)) * 100 == dirhams, "JSON writes exactly the two decimals"
    assert round(value * 100) == dirhams


def test_receipts_are_linked_exactly_from_a_paid_purchase_a_paid_withdrawal_and_an_escrow_s_payments():
    linked = {}
    for kind, _, notice in built():
        if "receiptUrl" in notice.metadata:
            linked.setdefault(kind, set()).add((notice.user_id, notice.metadata["receiptUrl"]))
        assert notice.link is None or notice.link.startswith("guild://"), "actionUrl stays the deep link"
    assert linked == {
        EventKind.COINS_ISSUED: {(USER, RECEIPTS[EventKind.COINS_ISSUED])},
        EventKind.WITHDRAWAL_PAID: {(USER, RECEIPTS[EventKind.WITHDRAWAL_PAID])},
        **{
            kind: {(FREELANCER, RECEIPTS[EventKind.ESCROW_RELEASED]), (CLIENT, RECEIPTS[EventKind.ESCROW_RELEASED])}
            for kind in (EventKind.ESCROW_RELEASED, EventKind.ESCROW_REFUNDED, EventKind.ESCROW_RESOLVED)
        },
    }


def test_qar_shows_the_size_of_an_amount_with_western_digits():
    assert [notices.qar(d) for d in (100_050, 10_000, -500, 5)] == ["1,000.50", "100.00", "5.00", "0.05"]
