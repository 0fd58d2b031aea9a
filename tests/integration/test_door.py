"""Ids from outside are checked once, at the door, before they become document ids:
path ids (404), body and query ids (422), token uids (403). Every answer of every
function is the JSON envelope, also for paths the framework's router cannot match.
Found by fuzzing: Firestore refuses ids such as `__x__` and answered 500 after the
money had moved."""

import pytest

from local.tokens import mint
from tests import factories
from tests.conftest import SERVICE_HEADERS
from tests.integration.test_authorization import MATRIX, PAGES
from tests.money import fresh_id, snapshot_all

# Ids Firestore reserves or refuses, and ids outside ours.
BAD_IDS = ["__x__", "__victim__", "____", "a.b", "x" * 129, "é", "a b"]
PATH_ROWS = [(function, method, path) for function, method, path, _, _ in MATRIX if path and "{" in path and "?" not in path]


def envelope(response):
    assert response.content_type == "application/json", response.data[:200]
    return response.get_json()["error"]


@pytest.mark.parametrize("function, method, path", PATH_ROWS)
@pytest.mark.parametrize("bad", ["__x__", "__probe__", "a.b"])
def test_a_path_id_that_cannot_be_a_document_id_is_404_and_changes_nothing(api, db, function, method, path, bad):
    api.adjust("door-admin", "door-user", {"GPC": 1})
    before = snapshot_all(db)
    url = path.split("{")[0] + bad + path.split("}")[1]
    response = api.client(function).open(
        url,
        method=method,
        headers={"Authorization": f"Bearer {mint('door-admin', admin=True)}", "Idempotency-Key": fresh_id("k")},
        json={"reason": "r", "status": "verified", "payment_reference": "r"} if method == "POST" else None,
    )
    assert response.status_code == 404
    if function in PAGES:  # a browser's: a page saying so
        assert response.content_type.startswith("text/html") and b"<form" not in response.data
    else:
        assert envelope(response)["code"] == "not_found"
    assert snapshot_all(db) == before


@pytest.mark.parametrize("bad", BAD_IDS)
def test_a_job_payment_to_a_freelancer_id_firestore_refuses_is_422_and_pays_nothing(api, db, bad):
    client = fresh_id()
    api.adjust("door-admin", client, {"GPC": 1})
    job = factories.job(client, fresh_id("free"))
    before = snapshot_all(db)
    response = api.call(
        "coins_job_payment",
        "POST",
        uid=client,
        key=fresh_id("k"),
        body={"job_id": job, "freelancer_id": bad, "amount_dirhams": 10_000},
    )
    assert response.status_code == 422
    assert [f["field"] for f in envelope(response)["details"]["fields"]] == ["freelancer_id"]
    assert snapshot_all(db) == before


@pytest.mark.parametrize(
    "function, body, field",
    [
        ("coins_job_payment", {"job_id": "__x__", "freelancer_id": "f", "amount_dirhams": 500}, "job_id"),
        ("admin_adjust_balance", {"user_id": "__x__", "coins": {"GBC": 1}, "reason": "r"}, "user_id"),
        ("escrow_timer", {"escrow_id": "__x__"}, "escrow_id"),
    ],
)
def test_a_body_id_that_cannot_be_a_document_id_is_422(api, db, function, body, field):
    response = api.call(function, "POST", uid="door-admin", admin=True, key=fresh_id("k"), body=body, headers=SERVICE_HEADERS)
    assert response.status_code == 422
    assert field in [f["field"] for f in envelope(response)["details"]["fields"]]
    assert snapshot_all(db) == {}


def test_a_query_id_that_cannot_be_a_document_id_is_422(api, db):
    response = api.call("coins_purchases_list", uid="door-admin", admin=True, query={"user_id": "__x__"})
    assert response.status_code == 422


@pytest.mark.parametrize("uid", ["__probe__", "a/b", "a.b"])
@pytest.mark.parametrize(
    "function, method, body",
    [
        ("coins_wallet", "GET", None),
        ("coins_check_balance", "POST", {"amount_dirhams": 500}),
        ("coins_job_payment", "POST", {"job_id": "j", "freelancer_id": "f", "amount_dirhams": 500}),
    ],
)
def test_a_token_whose_uid_cannot_be_a_document_id_is_403(api, db, uid, function, method, body):
    response = api.call(function, method, uid=uid, key=fresh_id("k"), body=body)
    assert response.status_code == 403
    assert envelope(response)["code"] == "forbidden"
    assert snapshot_all(db) == {}


@pytest.mark.parametrize("path", ["/api/coins/escrow/b%0A/release", "/b%0A", "/%0A/x/y/z", "/api/coins/escrow/%00"])
def test_a_path_the_router_cannot_match_still_gets_the_json_envelope(api, path):
    response = api.client("coins_escrow_release").post(path, headers={"Authorization": f"Bearer {mint('u')}"})
    assert response.status_code == 404
    assert envelope(response)["code"] == "not_found"


def test_over_http_too_a_routing_miss_is_the_json_envelope(functions_server):
    import requests

    response = requests.post(f"{functions_server}/api/coins/escrow/b%0A/release", timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_cursors_that_decode_to_reserved_ids_are_refused(api, db):
    import base64

    cursor = base64.urlsafe_b64encode(b"__x__").decode().rstrip("=")
    response = api.call("coins_transactions", uid=fresh_id(), query={"cursor": cursor})
    assert response.status_code == 422
    assert snapshot_all(db) == {}


def test_a_production_like_environment_refuses_unsigned_tokens_and_the_local_secret(api, db, monkeypatch):
    """Unsigned tokens and the local stack's secret mean something only where Firestore is
    the emulator: with FIRESTORE_EMULATOR_HOST gone, the same configuration lets nobody in."""
    assert api.call("coins_wallet", uid="alice").status_code == 200
    assert api.call("escrows_sweep", "POST", headers=SERVICE_HEADERS).status_code == 200
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST")  # the client made already still reaches the emulator
    wallet = api.call("coins_wallet", uid="alice")
    assert wallet.status_code == 401 and envelope(wallet)["code"] == "unauthenticated"
    sweep = api.call("escrows_sweep", "POST", headers=SERVICE_HEADERS)
    assert sweep.status_code == 401 and envelope(sweep)["code"] == "unauthenticated"
