"""The pure domain: accounts, the id rule, double entry, the transition tables, backoff."""

import subprocess
import sys

import pytest

from coins import backoff, errors, escrow, postings
from coins.auth import Caller
from coins.domain import PLATFORM_FEES, TREASURY, Account, EntryType, is_valid_id
from tests.conftest import ROOT


@pytest.mark.parametrize(
    "account", [Account.user("alice"), Account.escrow("E1"), Account.withdrawal("W_1"), TREASURY, PLATFORM_FEES]
)
def test_an_account_reads_back_what_it_writes(account):
    assert Account.parse(str(account)) == account


def test_accounts_are_written_as_the_ledger_has_always_stored_them():
    assert [str(a) for a in (Account.user("u1"), Account.escrow("e1"), TREASURY, PLATFORM_FEES)] == [
        "user:u1",
        "escrow:e1",
        "treasury",
        "platform:fees",
    ]
    assert Account.escrow("e").is_hold and not Account.user("u").is_hold and not TREASURY.is_hold


@pytest.mark.parametrize("text", ["", "user:", "bank:x", "treasury:x", "userx"])
def test_text_that_is_no_account_is_refused(text):
    with pytest.raises(ValueError):
        Account.parse(text)


@pytest.mark.parametrize(
    "value, ok",
    [
        ("alice", True),
        ("a-b_C9", True),
        ("x" * 128, True),
        ("", False),
        ("x" * 129, False),
        ("__x__", False),
        ("____", False),
        ("a/b", False),
        (".", False),
        ("..", False),
        ("a.b", False),
        ("é", False),
        ("a\n", False),
        (None, False),
        (5, False),
    ],
)
def test_the_id_rule(value, ok):
    assert is_valid_id(value) is ok


def posting(tier, count, source, destination):
    return postings.Posting(tier, count, source, destination)


def test_an_entry_balances_by_construction_and_its_deltas_say_so():
    alice, bob = Account.user("alice"), Account.user("bob")
    entry = postings.Entry(EntryType.ESCROW_LOCK, (posting("GPC", 2, alice, bob), posting("GBC", 1, bob, alice)))
    assert postings.deltas(entry) == {alice: {"GPC": -2, "GBC": 1}, bob: {"GPC": 2, "GBC": -1}}


@pytest.mark.parametrize(
    "entry",
    [
        postings.Entry(EntryType.ADMIN_ADJUST, ()),
        postings.Entry("admin_adjust", (posting("GBC", 1, TREASURY, Account.user("a")),)),
        postings.Entry(EntryType.ADMIN_ADJUST, (posting("GBC", 0, TREASURY, Account.user("a")),)),
        postings.Entry(EntryType.ADMIN_ADJUST, (posting("GBC", 1, TREASURY, TREASURY),)),
        postings.Entry(EntryType.ADMIN_ADJUST, (posting("XXX", 1, TREASURY, Account.user("a")),)),
    ],
)
def test_a_malformed_entry_is_a_programming_error(entry):
    with pytest.raises(AssertionError):
        postings.deltas(entry)


def test_paying_without_an_exact_combination_makes_change_through_the_treasury():
    client, hold = Account.user("c"), Account.escrow("e")
    moved, taken = postings.pay(client, hold, {"GRC": 1}, 10_000)
    assert taken == {"GRC": 1}
    assert postings.received(moved, hold) == {"GPC": 1}
    assert postings.received(moved, client) == {"GDC": 2}
    assert all(p.change for p in moved)
    assert not postings.tier_sums(postings.deltas(postings.Entry(EntryType.ESCROW_LOCK, moved)))


def test_conservation_names_an_unbalanced_tier_and_a_negative_account():
    balances = {TREASURY: {"GBC": -3}, Account.user("a"): {"GBC": 4, "GSC": -1}}
    assert postings.conservation_problems(balances) == [
        {"kind": "tier_not_balanced", "tier": "GBC", "sum": 1},
        {"kind": "tier_not_balanced", "tier": "GSC", "sum": -1},
        {"kind": "negative_balance", "account": "user:a", "coins": {"GSC": -1}},
    ]
    assert postings.conservation_problems({TREASURY: {"GBC": -1}, Account.user("a"): {"GBC": 1}}) == []


ESCROW = {"client_id": "client", "freelancer_id": "free", "status": "funded"}
CLIENT, FREELANCER, ADMIN_CALLER, STRANGER = Caller("client"), Caller("free"), Caller("ops", admin=True), Caller("stranger")
A = escrow.Action


@pytest.mark.parametrize(
    "caller, action, status, expected",
    [
        (FREELANCER, A.SUBMIT, "funded", "submitted"),
        (CLIENT, A.SUBMIT, "funded", errors.Forbidden),
        (FREELANCER, A.SUBMIT, "submitted", errors.InvalidState),
        (CLIENT, A.REQUEST_CHANGES, "submitted", "funded"),
        (CLIENT, A.REQUEST_CHANGES, "funded", errors.InvalidState),
        (CLIENT, A.RELEASE, "funded", None),
        (CLIENT, A.RELEASE, "submitted", None),
        (CLIENT, A.RELEASE, "refund_requested", errors.InvalidState),
        (CLIENT, A.RELEASE, "disputed", errors.InvalidState),
        (FREELANCER, A.RELEASE, "submitted", errors.Forbidden),
        (ADMIN_CALLER, A.RELEASE, "disputed", None),
        (None, A.RELEASE, "submitted", "released"),
        (None, A.RELEASE, "funded", errors.InvalidState),
        (CLIENT, A.REQUEST_REFUND, "submitted", "refund_requested"),
        (FREELANCER, A.REQUEST_REFUND, "funded", errors.Forbidden),
        (FREELANCER, A.REFUND, "refund_requested", "refunded"),
        (FREELANCER, A.REFUND, "funded", "refunded"),
        (CLIENT, A.REFUND, "funded", errors.Forbidden),
        (None, A.REFUND, "refund_requested", "refunded"),
        (None, A.REFUND, "submitted", errors.InvalidState),
        (CLIENT, A.DISPUTE, "submitted", "disputed"),
        (FREELANCER, A.DISPUTE, "refund_requested", "disputed"),
        (ADMIN_CALLER, A.DISPUTE, "funded", errors.Forbidden),
        (CLIENT, A.DISPUTE, "released", errors.InvalidState),
        (ADMIN_CALLER, A.RESOLVE, "disputed", None),
        (ADMIN_CALLER, A.RESOLVE, "funded", errors.InvalidState),
        (CLIENT, A.RESOLVE, "disputed", errors.Forbidden),
        (STRANGER, A.RELEASE, "funded", errors.NotFound),
    ],
)
def test_the_escrow_table_decides_who_moves_it_from_where_to_where(caller, action, status, expected):
    actor = escrow.Actor(caller)
    document = {**ESCROW, "status": status}
    if expected is None or isinstance(expected, str):
        assert escrow.transition(actor, document, action).to == expected
    else:
        with pytest.raises(expected):
            escrow.transition(actor, document, action)


def test_money_moves_on_exactly_the_rows_that_pay_or_refund():
    for row in escrow.TRANSITIONS:
        assert (row.entry is not None) == (row.action in (A.RELEASE, A.REFUND, A.RESOLVE)), row


def test_every_open_state_can_be_left_and_every_timed_state_ends_by_itself():
    reachable_from = {status: {row.to for row in escrow.TRANSITIONS if status in row.from_states} for status in escrow.OPEN}
    assert all(reachable_from.values())
    for status, window in escrow.TIMED.items():
        action = escrow.WHEN_WINDOW_ENDS[window]
        assert any(
            row.role is escrow.Role.SYSTEM and row.action is action and status in row.from_states for row in escrow.TRANSITIONS
        )


@pytest.mark.parametrize("attempt, ceiling", [(1, 0.2), (2, 0.4), (3, 0.8), (10, 3.0)])
def test_backoff_grows_and_is_capped(attempt, ceiling):
    delays = [backoff.delay_seconds(attempt, base_seconds=0.2, cap_seconds=3.0) for _ in range(200)]
    assert 0 <= min(delays) and max(delays) <= ceiling
    floored = [backoff.delay_seconds(attempt, base_seconds=0.2, cap_seconds=3.0, floor=0.5) for _ in range(200)]
    assert min(floored) >= ceiling / 2


def test_importing_main_loads_no_google_client_library():
    """Cold start: clients are imported when a function first needs one."""
    code = (
        "import sys; sys.path.insert(0, 'functions'); import main; "
        "print(sorted(m for m in sys.modules if m.startswith(('google.cloud.firestore', 'google.api_core', "
        "'firebase_admin', 'google.cloud.tasks', 'grpc', 'google.events'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
