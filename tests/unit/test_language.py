"""The language a person reads: the Accept-Language header read as RFC 9110 says, the one
rule that picks a language (coins.language), and, over the dict-backed store, that the
ledger remembers a user's language only on a wallet their own request writes anyway."""

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coins import app, catalog, escrow, kyc, language, ledger, postings, store
from coins.app import Job
from coins.auth import Caller
from coins.domain import EntryType, KycStatus
from tests.unit.memory import MemoryStore

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
QAR = catalog.DIRHAMS_PER_QAR


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("ar-QA,ar;q=0.9,en;q=0.8", "ar"),
        ("en-US", "en"),
        ("AR", "ar"),
        ("fr", None),
        ("*", None),
        ("", None),
        (None, None),
        ("fr-FR, fr;q=0.9, ar;q=0.5", "ar"),  # the best of ours the reader accepts
        ("en;q=0.5, ar;q=0.6", "ar"),
        ("en, ar", "en"),  # a tie goes to the range written first
        ("ar;q=0, en;q=0.1", "en"),  # q=0: not this one
        ("ar;q=0", None),
        ("ar ; q=0.9 , en ;q=0.8", "ar"),  # whitespace around the separators
        ("ar;q=1.5, en", "en"),  # a malformed range is skipped, the others count
        ("ar;level=1, en", "en"),
        ("arabic, en-GB", "en"),  # a range counts by its primary subtag only
        ("ar-", None),
        (";;,,", None),
        ("en;q=", None),
        ("ar" + ", en" * 200, None),  # too long to read range by range
    ],
)
def test_accept_language_names_one_of_ours_or_none(header, expected):
    assert language.from_header(header) == expected


@settings(max_examples=500, deadline=None)  # a CPU stall on CI is no failure of the property
@given(st.text(max_size=400))
def test_any_header_text_names_one_of_ours_or_none_and_never_raises(header):
    assert language.from_header(header) in (None, *language.LANGUAGES)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["ar", "en", "fr", "ar-QA", "*", "en;q=0.3", "ar;q=0.7", "x;q=1", ";", " "]), max_size=12))
def test_headers_made_of_ranges_name_one_of_ours_or_none(ranges):
    assert language.from_header(",".join(ranges)) in (None, *language.LANGUAGES)


@pytest.mark.parametrize(
    ("app_language", "remembered", "expected"),
    [
        ("ar", "en", "ar"),  # the app's own field wins
        ("en", "ar", "en"),
        (None, "ar", "ar"),  # else what the user's requests asked for
        ("fr", "ar", "ar"),
        (None, None, "en"),  # else English
        (None, "fr", "en"),
        (None, 7, "en"),
    ],
)
def test_the_app_field_wins_then_the_remembered_language_then_english(app_language, remembered, expected):
    assert language.preferred(app_language, remembered) == expected


def test_the_app_user_has_no_language_until_the_app_writes_one_of_ours():
    assert app.parse_user("u1", None).language is None
    assert app.parse_user("u2", {"language": "fr"}).language is None
    assert app.parse_user("u3", {"locale": "ar-QA"}).language == "ar"


# What the ledger remembers, over the dict-backed store.


def issue(db: MemoryStore, uid: str, coins: dict[str, int]) -> None:
    def operation(reader):
        entry = postings.Entry(EntryType.ADMIN_ADJUST, postings.issue(uid, coins))
        return ledger.Plan(entry, respond=lambda outcome: ledger.Response(200, {}))

    ledger.execute(db, operation, actor="admin", clock=lambda: NOW)


class App:
    def job(self, job_id):
        return Job(job_id, "client", "freelancer", "Logo")


def fund(db: MemoryStore, client: Caller, milestone: str) -> dict:
    key = ledger.Idempotency.of(client.uid, f"fund-{milestone}", "op", {})
    return escrow.lock(
        db, App(), client, job_id="job-1", milestone=milestone, freelancer_id=None, amount_dirhams=5 * QAR, idempotency=key
    ).body


def test_a_payment_remembers_the_payers_language_on_their_wallet_and_a_later_one_switches_it():
    db = MemoryStore()
    issue(db, "client", {"GBC": 2})
    fund(db, Caller("client", language="ar"), "1")
    assert db.get(store.wallet("client"))["language"] == "ar"
    fund(db, Caller("client", language="en"), "2")
    assert db.get(store.wallet("client"))["language"] == "en"


def test_a_request_without_a_language_of_ours_leaves_the_remembered_one():
    db = MemoryStore()
    issue(db, "client", {"GBC": 2})
    fund(db, Caller("client", language="ar"), "1")
    fund(db, Caller("client"), "2")
    assert db.get(store.wallet("client"))["language"] == "ar"


def test_only_the_callers_own_wallet_learns_their_language():
    db = MemoryStore()
    issue(db, "client", {"GBC": 1})
    held = fund(db, Caller("client"), "1")
    key = ledger.Idempotency.of("client", "release", "op", {})
    escrow.release(db, Caller("client", language="ar"), held["id"], amount_dirhams=None, idempotency=key)
    assert "language" not in db.get(store.wallet("freelancer")), "the freelancer's wallet is not the caller's"
    assert "language" not in db.get(store.wallet("client")), "the release did not write the client's wallet"


def test_a_transaction_that_does_not_write_the_wallet_writes_no_language():
    db = MemoryStore()

    def operation(reader):
        return ledger.Plan(None, respond=lambda outcome: ledger.Response(200, {}), documents={store.limits("bob"): {"x": 1}})

    ledger.execute(db, operation, actor="bob", language="ar")
    assert db.get(store.wallet("bob")) is None


def test_a_kyc_submission_remembers_the_language_and_an_admins_decision_does_not_change_it():
    db = MemoryStore()
    kyc.submit(db, Caller("alice", language="ar"), full_name="Alice A", qid_number="28763400001", document_urls=())
    assert db.get(store.wallet("alice"))["language"] == "ar"
    kyc.decide(db, Caller("ops", admin=True, language="en"), user_id="alice", status=KycStatus.VERIFIED, note=None)
    wallet = db.get(store.wallet("alice"))
    assert (wallet["kyc_status"], wallet["language"]) == (KycStatus.VERIFIED, "ar")
