"""Small factories for the things money tests start from. Each merges overrides into
valid defaults, makes fresh ids, goes through the public API (so every document is one
the code itself wrote), and fails the test at once if the API refuses."""

from __future__ import annotations

from typing import Any

from coins import catalog
from tests.money import fresh_id

ADMIN = "factory-admin"
QAR = catalog.DIRHAMS_PER_QAR
BANK = {"method": "bank_transfer", "destination": {"iban": "QA58DOHB00001234567890ABCDEFG", "account_name": "Alice A"}}


def wallet(api, coins: dict[str, int] | None = None, *, uid: str | None = None, kyc: str | None = None) -> str:
    """A user holding `coins` (issued by an admin adjustment), with a KYC status if given."""
    uid = uid or fresh_id()
    if kyc is not None:
        response = _at(api, "admin_kyc_set", "POST", f"/api/admin/coins/kyc/{uid}", ADMIN, {"status": kyc}, admin=True)
        assert response.status_code == 200, response.get_json()
    if coins:
        response = api.adjust(ADMIN, uid, coins)
        assert response.status_code == 200, response.get_json()
    return uid


def job(client: str, freelancer: str | None = None, *, job_id: str | None = None, **fields: Any) -> str:
    """A job in the app's database as the app writes it (local/jobs.py); `fields`
    replace or add app fields as they are."""
    from datetime import datetime, timezone

    from coins import clients
    from local.jobs import job_document

    job_id = job_id or fresh_id("job")
    data = {**job_document(job_id, client, freelancer, datetime.now(timezone.utc)), **fields}
    clients.app_db().client.collection("jobs").document(job_id).set(data)
    return job_id


def escrow(
    api, client: str, *, freelancer: str | None = None, amount_dirhams: int = 100 * QAR, **overrides: Any
) -> dict[str, Any]:
    """A locked escrow the client pays for a new job (the client must hold the amount)."""
    freelancer = freelancer or fresh_id("free")
    return _pay(api, client, {"job_id": job(client, freelancer), "amount_dirhams": amount_dirhams, **overrides})


def escrow_on(api, client: str, job_id: str, *, milestone: str, amount_dirhams: int = 100 * QAR) -> dict[str, Any]:
    """A locked escrow for one milestone of an existing job."""
    return _pay(api, client, {"job_id": job_id, "milestone": milestone, "amount_dirhams": amount_dirhams})


def _pay(api, client: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.call("coins_job_payment", "POST", uid=client, key=fresh_id("k"), body=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def withdrawal(api, uid: str, **overrides: Any) -> dict[str, Any]:
    """A requested withdrawal of 100 QAR to a Qatar bank account (the user must be KYC
    verified and hold the amount)."""
    body = {"amount_dirhams": 100 * QAR, **BANK, **overrides}
    response = api.call("coins_withdrawal_create", "POST", uid=uid, key=fresh_id("k"), body=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def purchase(api, uid: str, **overrides: Any) -> dict[str, Any]:
    """A pending purchase of the starter pack, with its checkout URL (needs the `fatora`
    sandbox fixture)."""
    body = overrides or {"pack_id": "starter"}
    response = api.call("coins_purchase_create", "POST", uid=uid, key=fresh_id("k"), body=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _at(api, function: str, method: str, path: str, uid: str, body: Any, *, admin: bool = False):
    """A call at a path with ids (`/api/coins/escrow/{id}/...`), as the app makes it."""
    import json

    from local.tokens import mint

    headers = {"Authorization": f"Bearer {mint(uid, admin=admin)}", "Idempotency-Key": fresh_id("k")}
    return api.client(function).open(path, method=method, headers=headers, data=json.dumps(body), content_type="application/json")
