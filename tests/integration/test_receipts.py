"""Receipts and monthly statements over HTTP, read as a person reads them: the PDF's text
as poppler extracts it (`pdftotext -layout`), in English and Arabic, checked against the
documents and the ledger; a statement's balances and holds against a replay of the
ledger written here, over a month whose first entries were made the month before; who
may read what; and a receipt drawn as an image that is not blank."""

import csv
import io
import itertools
import re
import subprocess
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from coins import clients, ledger, store
from local.tokens import mint
from tests import factories
from tests.money import fresh_id, wait_for

QAR = 100
ADMIN = "receipts-admin"
QATAR = ZoneInfo("Asia/Qatar")
ORIGINAL_CLOCK = ledger.now_utc
# The dirhams of one coin of each tier, written out here so that the replays below do
# not lean on the code they check.
TIER_DIRHAMS = {"GBC": 500, "GSC": 1_000, "GGC": 5_000, "GPC": 10_000, "GDC": 20_000, "GRC": 50_000}
# The bidirectional controls (LRM, RLM, the embeddings and overrides, the isolates):
# pdftotext marks the runs of an Arabic line with embeddings of its own, stripped here
# (the receipts themselves draw none: coins.receipts.sheet).
BIDI_CONTROLS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# An amount as the receipts write it: "1,358.50 QAR" or "1,358.50 ر.ق". In an Arabic line
# poppler gives the runs in reading order but puts the space of "1,358.50 ر.ق" before the
# number, so between the number and ر.ق any space (or none) is allowed.
AMOUNT = re.compile(r"(?<![\d.,])(\d{1,3}(?:,\d{3})*)\.(\d{2})(?: QAR|\s*ر\.ق)")
# A count alone in a cell (not part of an amount, an id or a time).
COUNT = re.compile(r"(?<![\w.,:-])(\d+)(?![\w.,:%-])")
# Arabic words are asserted without the letters lam and alef side by side: the font draws
# them as one ligature, which poppler extracts in the reverse order ("عملات" comes out
# "عمالت"), so a word holding لا cannot be found as it is written.
ARABIC = {
    "purchase": "إيصال شراء",
    "withdrawal": "إيصال سحب",
    "escrow": "إيصال مدفوعات حساب الضمان",
    "statement": "كشف حساب شهري",
}
ENGLISH = {
    "purchase": "Receipt: coin purchase",
    "withdrawal": "Receipt: withdrawal",
    "escrow": "Receipt: escrow payments",
    "statement": "Monthly statement",
}


# Reading what the endpoints answer.


def get(api, function, path, uid, *, admin=False, query=None, headers=None):
    """A GET at a path with ids, as the app makes it."""
    sent = {"Authorization": f"Bearer {mint(uid, admin=admin)}", **(headers or {})}
    return api.client(function).get(path, headers=sent, query_string=query)


def receipt(api, kind, object_id, uid, **options):
    return get(api, f"coins_{kind}_receipt", f"/api/coins/{kind}/{object_id}/receipt", uid, **options)


def statement(api, month, uid, **options):
    return get(api, "coins_statement", f"/api/coins/statements/{month}", uid, **options)


def downloaded(response, content_type, filename):
    """The file of a 200 answer, sent as a download that no cache keeps."""
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.headers["Content-Type"].split(";")[0] == content_type
    assert response.headers["Content-Disposition"] == f'attachment; filename="{filename}"'
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_data()


def pdf_text(response, filename):
    data = downloaded(response, "application/pdf", filename)
    assert data.startswith(b"%PDF-")
    return text_of(data)


def text_of(pdf):
    """The text a reader copies out of the PDF, without the bidirectional controls."""
    done = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True, timeout=60)
    return BIDI_CONTROLS.sub("", done.stdout.decode())


def refused(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.get_json()["error"]["code"] == code


def language_of(text, kind):
    """Which language the document is written in, by its title (only one is there)."""
    english, arabic = ENGLISH[kind] in text, ARABIC[kind] in text
    assert english != arabic, text[:400]
    return "en" if english else "ar"


def said(dirhams, language):
    """The pattern of an amount as a receipt in `language` writes it."""
    number = re.escape(f"{dirhams // QAR:,}.{dirhams % QAR:02d}")
    unit = " QAR" if language == "en" else r"\s*ر\.ق"
    return re.compile(rf"(?<![\d.,]){number}{unit}")


def amounts_in(line, language):
    """The amounts of a line in the order of its columns: an Arabic line is laid out right
    to left, so poppler's left-to-right layout gives its columns the other way round."""
    found = [int(whole.replace(",", "")) * QAR + int(cents) for whole, cents in AMOUNT.findall(line)]
    return found if language == "en" else found[::-1]


def row(text, label, language):
    """The amounts on the one line that has `label` and an amount."""
    [line] = [line for line in text.splitlines() if label in line and AMOUNT.search(line)]
    return amounts_in(line, language)


def qatar_minute(moment):
    return moment.astimezone(QATAR).strftime("%Y-%m-%d %H:%M")


def at_minute(moment):
    """The date and time of `moment` in Qatar as a line shows them: in an Arabic sheet the
    two runs read right to left (the date, then the time), so text extraction, which goes
    left to right, gives the time first."""
    day, minute = moment.astimezone(QATAR).strftime("%Y-%m-%d"), moment.astimezone(QATAR).strftime("%H:%M")
    return re.compile(f"{day} {minute}|{minute} {day}")


# A paid purchase, through the Fatora sandbox.


def paid_purchase(api, db, fatora, buyer, body):
    purchase = factories.purchase(api, buyer, **body)
    fatora.decide(purchase["id"], pay=True)
    wait_for(lambda: db.get(store.purchase(purchase["id"]))["status"] == "paid")
    return db.get(store.purchase(purchase["id"]))


def test_a_paid_purchase_receipt_holds_the_order_the_reference_the_coins_the_fee_and_the_total(api, db, fatora):
    buyer = fresh_id("buyer")
    # A custom amount: several tiers, a thousands separator and cents in the price.
    bought = paid_purchase(api, db, fatora, buyer, {"amount_dirhams": 1_235 * QAR})
    purchase_id, value, price = bought["id"], bought["value_dirhams"], bought["price_dirhams"]
    fee = price - value
    assert (value, fee * 10, price) == (123_500, value, 135_850), "the platform's 10 % on the coins' value"
    filename = f"guild-coins-receipt-{purchase_id}.pdf"
    for language, labels in (("en", ("Platform fee (10%)", "Total paid")), ("ar", ("رسوم المنصة", "إجمالي المدفوع"))):
        text = pdf_text(receipt(api, "purchase", purchase_id, buyer, query={"lang": language}), filename)
        assert language_of(text, "purchase") == language
        assert purchase_id in text and bought["gateway_reference"] in text
        assert ("رقم الطلب" in text) == (language == "ar")
        assert row(text, labels[0], language) == [fee]
        assert row(text, labels[1], language) == [price]
        assert said(value, language).search(text), "the coins' value"
        # One line per tier bought: its count and its value.
        for symbol, count in bought["coins"].items():
            [line] = [line for line in text.splitlines() if f"({symbol}" in line or f"{symbol})" in line]
            assert [int(n) for n in COUNT.findall(line)] == [count], line
            assert amounts_in(line, language) == [count * TIER_DIRHAMS[symbol]], line
        assert sum(count * TIER_DIRHAMS[symbol] for symbol, count in bought["coins"].items()) == value
        assert at_minute(bought["paid_at"]).search(text)
        assert not re.search("Refunded|المبلغ المسترد", text)


def test_a_receipt_is_in_the_language_asked_else_the_requests_else_the_remembered_one_else_english(api, db, fatora):
    buyer = fresh_id("buyer")
    purchase_id = paid_purchase(api, db, fatora, buyer, {"pack_id": "pro"})["id"]
    filename = f"guild-coins-receipt-{purchase_id}.pdf"

    def read(**options):
        return language_of(pdf_text(receipt(api, "purchase", purchase_id, buyer, **options), filename), "purchase")

    assert read() == "en", "nothing known of the buyer: English"
    assert read(headers={"Accept-Language": "fr"}) == "en", "not a language of ours"
    assert read(query={"lang": "ar"}) == "ar"
    assert read(headers={"Accept-Language": "ar-QA, en;q=0.5"}) == "ar"
    assert read(headers={"Accept-Language": "ar"}, query={"lang": "en"}) == "en", "?lang wins over the header"
    clients.app_db().client.collection("users").document(buyer).set({"language": "ar"})
    assert read() == "ar", "the language the app keeps for the buyer"
    assert read(headers={"Accept-Language": "en"}) == "en", "the request's own header wins over it"


def test_only_the_buyer_and_admins_read_a_purchase_receipt_and_only_once_it_is_paid(api, db, fatora):
    buyer, stranger = fresh_id("buyer"), fresh_id("stranger")
    purchase_id = paid_purchase(api, db, fatora, buyer, {"pack_id": "starter"})["id"]
    filename = f"guild-coins-receipt-{purchase_id}.pdf"
    assert purchase_id in pdf_text(receipt(api, "purchase", purchase_id, ADMIN, admin=True), filename)
    refused(receipt(api, "purchase", purchase_id, stranger), 404, "not_found")
    refused(receipt(api, "purchase", "NoSuchPurchase", buyer), 404, "not_found")
    pending = factories.purchase(api, buyer)["id"]
    refused(receipt(api, "purchase", pending, buyer), 409, "invalid_state")
    refused(receipt(api, "purchase", pending, ADMIN, admin=True), 409, "invalid_state")
    for query in ({"lang": "fr"}, {"lang": ""}, {"format": "pdf"}, {"language": "ar"}):
        refused(receipt(api, "purchase", purchase_id, buyer, query=query), 422, "validation_failed")


def test_a_refunded_payment_whose_coins_were_never_issued_has_no_receipt(api, db):
    """A late payment, or one of another amount, refunded by an admin before any coins
    were issued: the purchase is refunded, yet no coins were bought."""
    buyer, purchase_id = fresh_id("buyer"), fresh_id("P")
    refunded = {"id": purchase_id, "user_id": buyer, "status": "refunded", "gateway": "fatora", "coins": {"GBC": 1}}
    db.client.document(*store.purchase(purchase_id).path).set(
        {**refunded, "value_dirhams": 500, "price_dirhams": 550, "currency": "QAR", "gateway_fee_dirhams": 14}
    )
    answer = receipt(api, "purchase", purchase_id, buyer)
    refused(answer, 409, "invalid_state")
    assert "No coins were issued" in answer.get_json()["error"]["message"]


def test_a_refunded_purchase_receipt_says_it_was_refunded_and_how_much(api, db, fatora):
    buyer = fresh_id("buyer")
    bought = paid_purchase(api, db, fatora, buyer, {"pack_id": "pro"})
    path = f"/api/admin/coins/purchase/{bought['id']}/refund"
    refunded = api.client("admin_purchase_refund").post(
        path,
        data='{"reason": "asked by the buyer"}',
        headers={"Authorization": f"Bearer {mint(ADMIN, admin=True)}", "Idempotency-Key": fresh_id("k")},
        content_type="application/json",
    )
    assert refunded.status_code == 200 and refunded.get_json()["status"] == "refunded", refunded.get_json()
    price = db.get(store.purchase(bought["id"]))["price_dirhams"]
    filename = f"guild-coins-receipt-{bought['id']}.pdf"
    english = pdf_text(receipt(api, "purchase", bought["id"], buyer), filename)
    assert row(english, "Refunded", "en") == [price]
    assert re.search(r"This purchase was refunded: " + said(price, "en").pattern, english)
    arabic = pdf_text(receipt(api, "purchase", bought["id"], buyer, query={"lang": "ar"}), filename)
    assert row(arabic, "المبلغ المسترد", "ar") == [price]
    assert "تم استرداد مبلغ هذه العملية" in arabic


# A paid withdrawal.


def admin_step(api, withdrawal_id, action, body):
    response = api.client(f"coins_withdrawal_{action}").post(
        f"/api/coins/withdrawal/{withdrawal_id}/{action}",
        json=body,
        headers={"Authorization": f"Bearer {mint(ADMIN, admin=True)}", "Idempotency-Key": fresh_id("k")},
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_a_paid_withdrawal_receipt_holds_the_amount_the_masked_account_the_reference_and_the_times(api, db, monkeypatch):
    owner, stranger = factories.wallet(api, {"GPC": 2}, kyc="verified"), fresh_id("stranger")
    with monkeypatch.context() as patched:  # asked for three hours before it is paid
        stamped_at(patched, ledger.now_utc() - timedelta(hours=3))
        withdrawal_id = factories.withdrawal(api, owner, amount_dirhams=150 * QAR)["id"]
    refused(receipt(api, "withdrawal", withdrawal_id, owner), 409, "invalid_state")
    admin_step(api, withdrawal_id, "approve", {})
    refused(receipt(api, "withdrawal", withdrawal_id, owner), 409, "invalid_state")
    reference = fresh_id("TRX-")
    admin_step(api, withdrawal_id, "paid", {"payment_reference": reference})
    cashed = db.get(store.withdrawal(withdrawal_id))
    iban = factories.BANK["destination"]["iban"]
    filename = f"guild-coins-withdrawal-{withdrawal_id}.pdf"
    assert qatar_minute(cashed["created_at"]) != qatar_minute(cashed["paid_at"])
    labels = {
        "en": ("Amount", "Transfer reference", "Requested", "Paid "),
        "ar": ("المبلغ", "مرجع التحويل", "تاريخ الطلب", "وقت الدفع"),
    }
    for language, (amount, transfer, requested, paid) in labels.items():
        text = pdf_text(receipt(api, "withdrawal", withdrawal_id, owner, query={"lang": language}), filename)
        assert language_of(text, "withdrawal") == language
        assert withdrawal_id in text
        assert row(text, amount, language) == [150 * QAR]
        [line] = [line for line in text.splitlines() if transfer in line]
        assert reference in line
        assert iban[-4:] in text and iban not in text and iban[:-4] not in text and iban[4:-4] not in text
        assert re.search(r"•+ " + iban[-4:], text), "the account shown by its last 4 characters"
        for label, moment in ((requested, cashed["created_at"]), (paid, cashed["paid_at"])):
            [line] = [line for line in text.splitlines() if label in line and re.search(r"\d{2}:\d{2}", line)]
            assert at_minute(moment).search(line), (label, line)
    assert withdrawal_id in pdf_text(receipt(api, "withdrawal", withdrawal_id, ADMIN, admin=True), filename)
    refused(receipt(api, "withdrawal", withdrawal_id, stranger), 404, "not_found")
    refused(receipt(api, "withdrawal", "NoSuchWithdrawal", owner), 404, "not_found")


# An escrow's payments.


def escrow_act(api, escrow_id, action, uid, body=None):
    response = api.client(f"coins_escrow_{action.replace('-', '_')}").post(
        f"/api/coins/escrow/{escrow_id}/{action}",
        json=body if body is not None else {},
        headers={"Authorization": f"Bearer {mint(uid)}", "Idempotency-Key": fresh_id("k")},
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def payment_rows(text, label, language):
    """The escrow receipt's payments of one kind: [gross, fee, net, back to the client]."""
    return [amounts_in(line, language) for line in text.splitlines() if f" {label} " in f" {line} " and AMOUNT.search(line)]


def total_row(text, language):
    return row(text, "Total" if language == "en" else "المجموع", language)


def test_both_parties_escrow_receipts_add_up_to_what_was_released_and_the_fee(api, db):
    client, freelancer, stranger = fresh_id("client"), fresh_id("free"), fresh_id("stranger")
    factories.wallet(api, {"GPC": 1}, uid=client)
    # The freelancer's first wallet read asks for Arabic: remembered, their receipts follow it.
    wallet = api.call("coins_wallet", uid=freelancer, headers={"Accept-Language": "ar"})
    assert wallet.status_code == 200
    escrow_id = factories.escrow(api, client, freelancer=freelancer, amount_dirhams=100 * QAR)["id"]
    refused(receipt(api, "escrow", escrow_id, client), 409, "invalid_state")
    escrow_act(api, escrow_id, "release", client, {"amount_dirhams": 40 * QAR})
    filename = f"guild-coins-escrow-{escrow_id}.pdf"
    for reader, language, label in ((client, "en", "Still held in escrow"), (freelancer, "ar", "ما زال محجوز")):
        text = pdf_text(receipt(api, "escrow", escrow_id, reader), filename)
        assert row(text, label, language) == [60 * QAR], "what the partial release left"
    escrow_act(api, escrow_id, "release", client)
    held = db.get(store.escrow(escrow_id))
    released, fee = held["released_dirhams"], held["fee_dirhams"]
    assert (released, fee) == (100 * QAR, 10 * QAR), "90/10 on the whole, though paid in two parts"
    for reader, language in ((client, "en"), (freelancer, "ar")):
        text = pdf_text(receipt(api, "escrow", escrow_id, reader), filename)
        assert language_of(text, "escrow") == language
        assert escrow_id in text and held["job_id"] in text
        rows = payment_rows(text, "Release" if language == "en" else "صرف", language)
        assert len(rows) == 2, text
        assert [gross for gross, *_ in rows] == [40 * QAR, 60 * QAR]
        for gross, row_fee, net, to_client in rows:
            assert net == gross - row_fee and to_client == 0
        sums = [sum(column) for column in zip(*rows)]
        assert sums == [released, fee, released - fee, 0] == total_row(text, language)
        assert not re.search("Still held|ما زال محجوز", text), "nothing is left in the escrow"
    assert escrow_id in pdf_text(receipt(api, "escrow", escrow_id, ADMIN, admin=True), filename)
    refused(receipt(api, "escrow", escrow_id, stranger), 404, "not_found")
    refused(receipt(api, "escrow", "NoSuchEscrow", client), 404, "not_found")


def test_a_refunded_escrow_receipt_shows_the_refund_back_to_the_client(api, db):
    client, freelancer = fresh_id("client"), fresh_id("free")
    factories.wallet(api, {"GPC": 1}, uid=client)
    escrow_id = factories.escrow(api, client, freelancer=freelancer, amount_dirhams=100 * QAR)["id"]
    escrow_act(api, escrow_id, "release", client, {"amount_dirhams": 20 * QAR})
    escrow_act(api, escrow_id, "request-refund", client, {"reason": "stopped replying"})
    escrow_act(api, escrow_id, "refund", freelancer)
    held = db.get(store.escrow(escrow_id))
    assert (held["status"], held["released_dirhams"], held["fee_dirhams"], held["refunded_dirhams"]) == (
        "refunded",
        20 * QAR,
        0,
        80 * QAR,
    ), "a fee of 2 QAR rounds to nothing on the 5 QAR grid"
    filename = f"guild-coins-escrow-{escrow_id}.pdf"
    for language, release, refund in (("en", "Release", "Refund"), ("ar", "صرف", "استرداد")):
        text = pdf_text(receipt(api, "escrow", escrow_id, freelancer, query={"lang": language}), filename)
        # Gross, fee, net to the freelancer, back to the client: 20 QAR released, then 80 back.
        assert payment_rows(text, release, language) == [[20 * QAR, 0, 20 * QAR, 0]]
        assert payment_rows(text, refund, language) == [[0, 0, 0, 80 * QAR]]
        assert total_row(text, language) == [20 * QAR, 0, 20 * QAR, 80 * QAR]


# Monthly statements.


def month_of(moment):
    return moment.astimezone(QATAR).strftime("%Y-%m")


def month_bounds(month):
    year, number = (int(part) for part in month.split("-"))
    start = datetime(year, number, 1, tzinfo=QATAR)
    return start, datetime(year + number // 12, number % 12 + 1, 1, tzinfo=QATAR)


def stamped_at(patched, moment):
    """Makes the ledger's clock read from `moment` on, a millisecond later at each reading
    (entries of one instant would be ordered by id, not as they were made). Entries and
    the business documents take `created_at` from `ledger.now_utc`."""
    readings = itertools.count()

    def clock():
        return moment + timedelta(milliseconds=next(readings))

    patched.setattr(ledger, "now_utc", clock)


def dirhams_moved(entry, account):
    """What `entry`'s postings put into `account` (negative: took out), replayed here."""
    value = 0
    for posting in entry["postings"]:
        worth = TIER_DIRHAMS[posting["tier"]] * posting["count"]
        value += worth * ((posting["to"] == account) - (posting["from"] == account))
    return value


def balance_before(entries, account, moment):
    return sum(dirhams_moved(entry, account) for entry in entries if entry["created_at"] < moment)


def dirhams(cell):
    """A CSV amount ("-150.00", QAR with two decimals) in dirhams."""
    whole, _, cents = cell.lstrip("-").partition(".")
    assert len(cents) == 2, cell
    return (-1 if cell.startswith("-") else 1) * (int(whole) * QAR + int(cents))


def parsed_csv(data):
    """(the opening row, the entries' rows, the closing row, {"start"|"end": {hold: dirhams}})."""
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    kinds = [row["type"] for row in rows]
    assert kinds.count("opening_balance") == kinds.count("closing_balance") == 1
    opening, closing = kinds.index("opening_balance"), kinds.index("closing_balance")
    held = {
        moment: {row["reference"]: dirhams(row["held_qar"]) for row in rows if row["type"] == f"held_at_{moment}"}
        for moment in ("start", "end")
    }
    assert kinds[: opening + 1 + len(held["start"])] == ["opening_balance"] + ["held_at_start"] * len(held["start"])
    assert kinds[closing:] == ["closing_balance"] + ["held_at_end"] * len(held["end"])
    for moment, row in (("start", rows[opening]), ("end", rows[closing])):
        assert dirhams(row["held_qar"]) == sum(held[moment].values())
    return rows[opening], rows[opening + 1 + len(held["start"]) : closing], rows[closing], held


def hold_amounts(text, account):
    """The statement's holds table, in English: what `account` held at the start and end."""
    kind, _, hold_id = account.partition(":")
    return row(text, f"{kind} {hold_id}", "en")


@pytest.fixture
def two_months(api, db, monkeypatch):
    """Alice's last month and this one (Qatar time): a balance, an escrow she partly
    releases and a withdrawal, still held when this month begins; then, at the first
    hour of this month (still last month in UTC) and now, the rest released, the
    withdrawal paid, another escrow and adjustments."""
    alice, bob = fresh_id("alice"), fresh_id("bob")
    now = ledger.now_utc()
    month = month_of(now)
    start, _ = month_bounds(month)
    last_month = month_of(start - timedelta(days=1))
    with monkeypatch.context() as patched:
        stamped_at(patched, start - timedelta(minutes=7))
        factories.wallet(api, {"GRC": 1, "GPC": 2}, uid=alice, kyc="verified")
        first = factories.escrow(api, alice, freelancer=bob, amount_dirhams=200 * QAR)["id"]
        escrow_act(api, first, "release", alice, {"amount_dirhams": 50 * QAR})
        withdrawal_id = factories.withdrawal(api, alice)["id"]
        # Between the month's start in Qatar and now: an entry a month in UTC would misplace.
        stamped_at(patched, start + min(timedelta(hours=1), (now - start) / 2))
        assert api.adjust(ADMIN, alice, {"GSC": 1}).status_code == 200
    assert ledger.now_utc is ORIGINAL_CLOCK, "the clock is restored"
    escrow_act(api, first, "release", alice)
    admin_step(api, withdrawal_id, "approve", {})
    admin_step(api, withdrawal_id, "paid", {"payment_reference": fresh_id("TRX-")})
    factories.escrow(api, alice, freelancer=bob, amount_dirhams=100 * QAR)
    assert api.adjust(ADMIN, alice, {"GBC": 1}).status_code == 200
    if month_of(ledger.now_utc()) != month:
        pytest.skip("the month changed while the test ran (midnight in Qatar on the 1st)")
    return alice, bob, month, last_month


def test_a_statement_replays_the_ledger_from_the_months_opening_to_its_closing(api, db, two_months):
    alice, bob, month, last_month = two_months
    entries = [snapshot.to_dict() for snapshot in db.collection("ledger").stream()]
    wallet = f"user:{alice}"
    holds = [f"escrow:{e.id}" for e in db.collection("escrows").stream() if e.get("client_id") == alice]
    holds += [f"withdrawal:{w.id}" for w in db.collection("withdrawals").stream() if w.get("user_id") == alice]
    assert len(holds) == 3
    listed, closing_of = {}, {}
    for asked in (month, last_month):
        start, end = month_bounds(asked)
        data = downloaded(statement(api, asked, alice, query={"format": "csv"}), "text/csv", f"guild-coins-statement-{asked}.csv")
        first, lines, last, held = parsed_csv(data)
        opening, closing = dirhams(first["balance_qar"]), dirhams(last["balance_qar"])
        for moment, bound in (("start", start), ("end", end)):
            replayed = {hold: balance_before(entries, hold, bound) for hold in holds}
            assert held[moment] == {hold: value for hold, value in replayed.items() if value}, moment
        assert opening == balance_before(entries, wallet, start)
        assert closing == balance_before(entries, wallet, end)
        assert sum(dirhams(line["in_qar"]) - dirhams(line["out_qar"]) for line in lines) == closing - opening
        # Every entry that moved Alice's coins or her holds in the month, each once.
        touching = [
            e["id"]
            for e in entries
            if start <= e["created_at"] < end and any(dirhams_moved(e, account) for account in (wallet, *holds))
        ]
        assert touching and Counter(line["entry_id"] for line in lines) == Counter(touching)
        for line in lines:
            [entry] = [e for e in entries if e["id"] == line["entry_id"]]
            moved = dirhams_moved(entry, wallet)
            assert dirhams(line["in_qar"]) - dirhams(line["out_qar"]) == moved
            assert dirhams(line["balance_qar"]) == balance_before(entries, wallet, entry["created_at"]) + moved
            assert dirhams(line["held_change_qar"]) == sum(dirhams_moved(entry, hold) for hold in holds)
            assert datetime.fromisoformat(line["time_qatar"]).utcoffset() == timedelta(hours=3)
        # The holds, at the start and the end, in the PDF's table.
        text = pdf_text(statement(api, asked, alice, query={"lang": "en"}), f"guild-coins-statement-{asked}.pdf")
        for hold in holds:
            replayed = [balance_before(entries, hold, start), balance_before(entries, hold, end)]
            if any(replayed):
                assert hold_amounts(text, hold) == replayed, hold
            else:
                assert hold.partition(":")[2] not in text, "a hold of nothing this month is not listed"
        listed[asked] = [e["type"] for e in entries if e["id"] in {line["entry_id"] for line in lines}]
        closing_of[asked] = closing
    # Last month's statement has the entries made then, and only those.
    assert sorted(listed[last_month]) == ["admin_adjust", "escrow_lock", "escrow_release", "withdrawal_hold"]
    assert sorted(listed[month]) == ["admin_adjust", "admin_adjust", "escrow_lock", "escrow_release", "withdrawal_paid"]
    # This month's closing is the wallet as it is.
    assert db.get(store.wallet(alice))["balance_dirhams"] == closing_of[month]


def test_the_statement_pdf_says_the_opening_and_closing_balances_in_both_languages(api, db, two_months):
    alice, bob, month, last_month = two_months
    first, _, last, _ = parsed_csv(statement(api, month, alice, query={"format": "csv"}).get_data())
    amounts = [dirhams(first["balance_qar"]), dirhams(last["balance_qar"])]
    assert amounts[0] != amounts[1], "the month moved Alice's balance"
    filename = f"guild-coins-statement-{month}.pdf"
    # "الرصيد الافتتاحي" holds a lam-alef (ال|افتتاحي): the opening line is found by what follows it.
    for language, labels in (("en", ("Opening balance", "Closing balance")), ("ar", ("فتتاحي", "الرصيد الختامي"))):
        text = pdf_text(statement(api, month, alice, query={"lang": language}), filename)
        assert language_of(text, "statement") == language
        assert [row(text, label, language) for label in labels] == [[amounts[0]], [amounts[1]]]
        assert month in text and alice in text


def same_but_the_closing_moment(one, other):
    def rows(data):
        return [
            row[1:] if row[2] in ("closing_balance", "held_at_end") else row for row in csv.reader(io.StringIO(data.decode()))
        ]

    return rows(one) == rows(other)


def test_an_admin_reads_a_users_statement_and_nobody_else_does(api, db, two_months):
    alice, bob, month, _ = two_months
    own = statement(api, month, alice, query={"format": "csv"})
    as_admin = statement(api, month, ADMIN, admin=True, query={"format": "csv", "user_id": alice})
    csv_file = f"guild-coins-statement-{month}.csv"
    # The same statement, but for the moment of its closing: this month's is "so far", now.
    assert same_but_the_closing_moment(downloaded(as_admin, "text/csv", csv_file), downloaded(own, "text/csv", csv_file))
    refused(statement(api, month, bob, query={"user_id": alice}), 403, "forbidden")
    assert downloaded(statement(api, month, bob, query={"format": "csv", "user_id": bob}), "text/csv", csv_file)
    refused(statement(api, "2026-13", alice), 404, "not_found")
    refused(statement(api, "2099-01", alice), 404, "not_found")  # not begun
    refused(statement(api, "26-01", alice), 404, "not_found")
    refused(statement(api, month, alice, query={"format": "xls"}), 422, "validation_failed")
    refused(statement(api, month, alice, query={"lang": "fr"}), 422, "validation_failed")
    refused(statement(api, month, alice, query={"month": month}), 422, "validation_failed")


def test_a_month_too_busy_for_a_pdf_is_asked_for_as_csv(api, db, two_months, monkeypatch):
    from coins import config

    alice, _, month, _ = two_months
    monkeypatch.setattr(config, "STATEMENT_PDF_LINES_MAX", 2)
    answer = statement(api, month, alice)
    refused(answer, 422, "validation_failed")
    assert answer.get_json()["error"]["details"]["fields"][0]["field"] == "format"
    assert downloaded(statement(api, month, alice, query={"format": "csv"}), "text/csv", f"guild-coins-statement-{month}.csv")


def test_the_freelancer_s_statement_has_what_was_paid_to_them_not_the_client_s_lock(api, db):
    client, freelancer = factories.wallet(api, {"GPC": 1}), fresh_id("free")
    escrow = factories.escrow(api, client, freelancer=freelancer, amount_dirhams=100 * QAR)["id"]
    escrow_act(api, escrow, "release", client)
    month = month_of(ledger.now_utc())
    _, lines, last, _ = parsed_csv(statement(api, month, freelancer, query={"format": "csv"}).get_data())
    assert [(line["type"], line["in_qar"]) for line in lines] == [("escrow_release", "90.00")]
    assert last["balance_qar"] == "90.00" and last["held_qar"] == "0.00"
    _, lines, last, held = parsed_csv(statement(api, month, client, query={"format": "csv"}).get_data())
    assert [(line["type"], line["out_qar"], line["held_change_qar"]) for line in lines][-2:] == [
        ("escrow_lock", "100.00", "100.00"),
        ("escrow_release", "0.00", "-100.00"),
    ]


# What a person sees.


@pytest.mark.parametrize("language", ["en", "ar"])
def test_a_receipt_drawn_as_an_image_is_not_blank(api, db, language, tmp_path):
    owner = factories.wallet(api, {"GPC": 1}, kyc="verified")
    withdrawal_id = factories.withdrawal(api, owner)["id"]
    admin_step(api, withdrawal_id, "approve", {})
    admin_step(api, withdrawal_id, "paid", {"payment_reference": "TRX-1"})
    response = receipt(api, "withdrawal", withdrawal_id, owner, query={"lang": language})
    pdf = downloaded(response, "application/pdf", f"guild-coins-withdrawal-{withdrawal_id}.pdf")
    page = tmp_path / "receipt"
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-singlefile", "-", str(page)], input=pdf, check=True, timeout=60)
    image = Image.open(page.with_suffix(".png")).convert("L")
    shades = image.histogram()  # how many pixels of each grey, black (0) to white (255)
    dark, light = sum(shades[:128]), sum(shades[225:])
    pixels = image.width * image.height
    assert image.width > 300 and image.height > 400, "an A4 page at 50 dpi"
    assert 0.001 * pixels < dark < 0.2 * pixels, "some ink, not a black page"
    assert light > 0.7 * pixels, "mostly paper"
