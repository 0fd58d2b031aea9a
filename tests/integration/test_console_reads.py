"""What the operators' console reads: a user at a glance, and the vault with its daily
series, both checked against what the operations did."""

import json

from coins import catalog, effects
from local.tokens import mint
from tests import factories
from tests.money import fresh_id

QAR = catalog.DIRHAMS_PER_QAR


def admin_get(api, function, path="/"):
    response = api.client(function).get(path, headers={"Authorization": f"Bearer {mint('console-admin', admin=True)}"})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_a_user_at_a_glance(api, db):
    alice = factories.wallet(api, {"GPC": 2, "GGC": 1}, kyc="verified")
    escrow = factories.escrow(api, alice)
    withdrawal = factories.withdrawal(api, alice, amount_dirhams=50 * QAR)
    page = admin_get(api, "admin_user_get", f"/api/admin/coins/users/{alice}")
    assert page["wallet"]["balance_dirhams"] == 100 * QAR
    assert [h["type"] for h in page["history"]] == ["withdrawal_hold", "escrow_lock", "admin_adjust"]
    assert [w["id"] for w in page["open_holds"]["withdrawals"]] == [withdrawal["id"]]
    assert [e["id"] for e in page["open_holds"]["escrows_as_client"]] == [escrow["id"]]
    assert page["kyc"]["status"] == "verified" and page["kyc"]["history"][0]["status"] == "verified"
    assert page["limits"]["withdrawal"]["used_count"] == 1 and page["limits"]["job_payment"]["used_count"] == 1
    assert page["withdrawals"][0]["destination"]["iban"].startswith("••••"), "masked here; whole on the withdrawal's own page"
    unknown = admin_get(api, "admin_user_get", "/api/admin/coins/users/nobody-yet")
    assert unknown["wallet"]["balance_dirhams"] == 0 and unknown["history"] == []


def test_the_vault_adds_up(api, db):
    alice = factories.wallet(api, {"GRC": 1}, kyc="verified")
    escrow = factories.escrow(api, alice, amount_dirhams=100 * QAR)
    released = api.client("coins_escrow_release").post(
        f"/api/coins/escrow/{escrow['id']}/release",
        data=json.dumps({}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {mint(alice)}", "Idempotency-Key": fresh_id("k")},
    )
    assert released.status_code == 200
    factories.withdrawal(api, alice, amount_dirhams=50 * QAR)
    for snapshot in db.collection("ledger").stream():
        effects.apply(db, snapshot.id)
    vault = admin_get(api, "admin_vault")
    assert vault["outstanding"]["dirhams"] == 500 * QAR
    assert vault["fees"]["dirhams"] == 10 * QAR
    assert vault["held"]["withdrawal"]["dirhams"] == 50 * QAR and vault["held"]["escrow"]["dirhams"] == 0
    assert vault["users"]["dirhams"] == 440 * QAR
    assert vault["adjusted_dirhams"] == 500 * QAR and vault["retired_dirhams"] == 0
    # Summed over the series: the test may straddle midnight UTC.
    assert len(vault["daily"]) == 90
    assert sum(day["entries"] for day in vault["daily"]) == 4 and sum(day["fees_dirhams"] for day in vault["daily"]) == 10 * QAR
    assert sum(day["entries"] for day in vault["daily"][:-2]) == 0
