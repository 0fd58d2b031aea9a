"""Fraud signals: more than 50 ledger entries for one user in 24 hours (medium), more
than 10,000 QAR asked in withdrawals in 7 days (high). Each flags the user (the console's
user page, beside their withdrawals in the queue) and tells the admins once per window;
neither blocks anything, and the user never sees them."""

from coins import catalog, store
from tests.integration.test_withdrawals import ADMIN, BANK, _get, act, request, verified_user
from tests.money import fresh_id

QAR = catalog.DIRHAMS_PER_QAR


def told(db, uid):
    return [
        e.to_dict()
        for e in db.collection("outbox").stream()
        if e.get("kind") == "fraud_signal" and e.get("facts")["user_id"] == uid
    ]


def test_more_than_50_entries_in_a_day_flag_the_user_and_tell_the_admins_once(api, db):
    uid = fresh_id()
    for _ in range(50):
        assert api.adjust("sg-admin", uid, {"GBC": 1}).status_code == 200
    assert "signals" not in (db.get(store.wallet(uid)) or {}) and told(db, uid) == [], "50 is not more than 50"
    for _ in range(5):
        assert api.adjust("sg-admin", uid, {"GBC": 1}).status_code == 200, "a signal blocks nothing"
    flag = db.get(store.wallet(uid))["signals"]["many_entries"]
    assert flag["level"] == "medium" and flag["why"].startswith("55 ledger entries in 24 hours")
    assert len(told(db, uid)) == 1, "once per user per window"
    view = _get(api, "admin_user_get", f"/api/admin/coins/users/{uid}", ADMIN, admin=True).get_json()
    assert view["signals"]["many_entries"]["why"] == flag["why"] and view["signals"]["many_entries"]["since"].endswith("Z")
    own = _get(api, "coins_wallet", "/", uid).get_json()
    assert "signals" not in own, "the user never sees it"


def test_more_than_10000_qar_asked_in_a_week_is_a_high_signal_beside_the_withdrawal(api, db):
    alice = verified_user(api, {"GRC": 30})
    first = request(api, alice, {"amount_dirhams": 6_000 * QAR, **BANK}).get_json()["id"]
    assert act(api, "approve", first).status_code == 200 and act(api, "paid", first).status_code == 200
    assert told(db, alice) == []
    second = request(api, alice, {"amount_dirhams": 5_000 * QAR, **BANK})
    assert second.status_code == 201, "informs, does not block"
    queue = _get(api, "coins_withdrawals_pending", "/", ADMIN, admin=True, query={"limit": 100}).get_json()["items"]
    [mine] = [w for w in queue if w["id"] == second.get_json()["id"]]
    assert mine["signals"]["large_withdrawals"]["level"] == "high"
    assert "11,000.00 QAR requested in withdrawals in 7 days" in mine["signals"]["large_withdrawals"]["why"]
    assert second.get_json()["signals"] is None, "not shown to the user"
    [event] = told(db, alice)
    assert event["facts"]["level"] == "high"


def test_a_signal_is_told_again_only_in_a_new_window():
    from datetime import datetime, timedelta, timezone

    from coins import signals

    now = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)
    flags, tell = signals.raised(None, signals.Signal.MANY_ENTRIES, "51", now)
    assert tell and flags["many_entries"]["since"] == now
    flags, tell = signals.raised(flags, signals.Signal.MANY_ENTRIES, "52", now + timedelta(hours=23))
    assert not tell and flags["many_entries"]["since"] == now and flags["many_entries"]["why"] == "52"
    flags, tell = signals.raised(flags, signals.Signal.MANY_ENTRIES, "51", now + timedelta(hours=25))
    assert tell and flags["many_entries"]["since"] == now + timedelta(hours=25)
    assert signals.active(flags, now + timedelta(hours=49)) == {}, "past its window: history"
    counts, total = signals.count_entry({"2026113010": 40, "2026120111": 7}, now)
    assert total == 8 and "2026113010" not in counts, "an hour more than a day old is dropped"
