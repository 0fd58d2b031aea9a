"""The accountant's export: the ledger of a period as CSV, one row per posting, the
period's bounds kept exactly, every tier summing to zero over the accounts, each
account's change what the ledger says; bad periods refused."""

import csv
import io
from datetime import timedelta

import pytest

from coins import catalog, ledger, reconciliation
from coins.domain import Account
from local.tokens import mint
from tests import factories
from tests.money import fresh_id


def export(api, start, end, admin=True):
    return api.client("admin_ledger_export").get(
        "/api/admin/coins/ledger/export",
        query_string={"from": start, "to": end},
        headers={"Authorization": f"Bearer {mint('ex-admin', admin=admin)}"},
    )


def iso(moment):
    return moment.isoformat().replace("+00:00", "Z")


def parsed(answer):
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.content_type.startswith("text/csv")
    return list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))


def test_a_month_exports_every_posting_and_sums_to_zero_per_tier(api, db):
    started = ledger.now_utc()
    alice, bob = fresh_id(), fresh_id()
    assert api.adjust("ex-admin", alice, {"GRC": 1, "GBC": 3}).status_code == 200
    assert api.adjust("ex-admin", bob, {"GPC": 2}).status_code == 200
    job = factories.job(alice, bob)
    paid = api.call(
        "coins_job_payment",
        "POST",
        uid=alice,
        key=fresh_id("k"),
        body={"job_id": job, "amount_dirhams": 100 * catalog.DIRHAMS_PER_QAR},
    )
    assert paid.status_code == 201
    rows = parsed(export(api, iso(started - timedelta(minutes=1)), iso(ledger.now_utc() + timedelta(minutes=1))))
    entries = list(db.collection("ledger").stream())
    assert len({row["entry_id"] for row in rows}) == len(entries)
    assert len(rows) == sum(len(e.get("postings")) for e in entries), "one row per posting"
    change: dict = {}
    for row in rows:
        count = int(row["count"])
        assert int(row["value_dirhams"]) == count * catalog.TIER_BY_SYMBOL[row["tier"]].value_dirhams
        assert row["value_qar"] == f"{int(row['value_dirhams']) // 100}.{int(row['value_dirhams']) % 100:02d}"
        assert row["time_utc"].endswith("Z") and row["time_qatar"].endswith("+03:00")
        for account, sign in ((row["from_account"], -1), (row["to_account"], 1)):
            change.setdefault(account, {}).setdefault(row["tier"], 0)
            change[account][row["tier"]] += sign * count
    for tier in catalog.SYMBOLS:
        assert sum(tiers.get(tier, 0) for tiers in change.values()) == 0, tier
    replayed = reconciliation.replay(db)
    assert {Account.parse(a): catalog.normalize(t) for a, t in change.items() if catalog.normalize(t)} == {
        a: t for a, t in replayed.items() if t
    }, "each account's change is the ledger's"
    escrow_rows = [row for row in rows if row["escrow_id"]]
    assert escrow_rows and all(row["job_id"] == job for row in escrow_rows)


def test_the_period_s_bounds_are_kept_exactly(api, db):
    uid = fresh_id()
    for _ in range(3):
        assert api.adjust("ex-admin", uid, {"GBC": 1}).status_code == 200
    moments = sorted(e.get("created_at") for e in db.collection("ledger").stream())
    middle = parsed(export(api, iso(moments[1]), iso(moments[2])))
    assert len(middle) == 1, "from included, to excluded"
    assert parsed(export(api, iso(moments[2] + timedelta(microseconds=1)), iso(moments[2] + timedelta(days=1)))) == []


@pytest.mark.parametrize(
    "start, end, field",
    [
        ("2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z", "to"),
        ("2026-01-01T00:00:00", "2026-02-01T00:00:00Z", "from"),
        ("yesterday", "2026-02-01T00:00:00Z", "from"),
        ("2020-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "to"),
        ("2025-01-01T00:00:00Z", "2026-01-02T23:00:00Z", "to"),
    ],
    ids=["backwards", "no-zone", "not-a-time", "too-long", "a-day-and-23-hours-too-long"],
)
def test_a_bad_period_is_422_naming_its_bound(api, db, start, end, field):
    answer = export(api, start, end)
    error = answer.get_json()["error"]
    assert answer.status_code == 422 and error["code"] == "validation_failed"
    assert [item["field"] for item in error["details"]["fields"]] == [field], error


def test_only_an_admin_exports(api, db):
    assert export(api, "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", admin=False).status_code == 403
