"""The OpenAPI document: built from the code, committed in step with it, and the
conformance checker that holds every response of the other tiers to it."""

import json
import re
from pathlib import Path

import pytest

from coins import openapi
from tests.conformance import Conformance

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "openapi.json"


@pytest.fixture(scope="module")
def document():
    return openapi.build()


def test_the_committed_document_is_the_one_the_code_builds(document):
    assert COMMITTED.read_text() == openapi.render(document), (
        "docs/openapi.json is stale: regenerate it with `make openapi` and commit it"
    )


def test_every_endpoint_path_is_firebase_json_rewrite_to_it(document):
    """The paths the functions declare (and the document shows) are where Hosting sends."""
    rules = json.loads((ROOT / "firebase.json").read_text())["hosting"]["rewrites"]
    rewrites = {rule["function"]["functionId"]: rule["source"] for rule in rules}
    declared = {spec.name: re.sub(r"\{\w+\}", "*", spec.path) for spec in openapi.specs()}
    assert declared == rewrites
    assert {spec.path for spec in openapi.specs()} == set(document["paths"])


def test_money_moves_only_with_a_bearer_token_and_an_idempotency_key(document):
    release = document["paths"]["/api/coins/escrow/{id}/release"]["post"]
    assert release["security"] == [{"firebase": []}]
    key = next(p for p in release["parameters"] if p["name"] == "Idempotency-Key")
    assert key["in"] == "header" and key["required"] is True
    assert document["paths"]["/api/coins/catalog"]["get"]["security"] == []
    adjust = document["paths"]["/api/admin/coins/adjust-balance"]["post"]
    assert adjust["x-admin"] is True
    assert adjust["responses"]["409"]["content"]["application/json"]["schema"]["properties"]["error"]["properties"]["code"][
        "enum"
    ] == [
        "insufficient_funds",
        "request_in_progress",
    ]


def test_request_and_response_models_are_the_code_s(document):
    schemas = document["components"]["schemas"]
    assert schemas["CheckBalance"]["additionalProperties"] is False
    assert schemas["CheckBalance"]["properties"]["amount_dirhams"]["type"] == "integer"
    assert set(schemas["Wallet"]["required"]) >= {"user_id", "coins", "balance_dirhams", "held_dirhams"}
    limit = next(p for p in document["paths"]["/api/coins/transactions"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["in"] == "query" and limit["schema"]["maximum"] >= 1


def test_the_endpoint_serves_the_document(document):
    from functions_framework import create_app

    response = create_app(target="coins_openapi", source=str(ROOT / "functions" / "main.py")).test_client().get("/")
    assert response.status_code == 200 and response.content_type == "application/json"
    assert response.get_json() == json.loads(openapi.render(document))


# The checker itself: each kind of non-conformance is caught.


def wallet_body(**changes):
    body = {
        "user_id": "u1",
        "coins": {"GBC": 1},
        "balance_dirhams": 500,
        "held_dirhams": 0,
        "kyc_status": "none",
        "kyc_qid_masked": None,
        "stats": {},
        "updated_at": "2026-11-27T00:00:00Z",
    }
    return json.dumps({**body, **changes}).encode()


@pytest.mark.parametrize(
    "status, content_type, body, problem",
    [
        (200, "application/json", wallet_body(), None),
        (201, "application/json", wallet_body(), "status 201 is not declared"),
        (200, "application/json", wallet_body(surprise=1), "surprise"),
        (200, "application/json", wallet_body(balance_dirhams="500"), "balance_dirhams"),
        (200, "text/html", b"<p>hi</p>", "not JSON"),
        (401, "application/json", b'{"error": {"code": "unauthenticated", "message": "m", "details": {}}}', None),
        (401, "application/json", b'{"error": {"code": "forbiddenish", "message": "m", "details": {}}}', "forbiddenish"),
        (
            409,
            "application/json",
            b'{"error": {"code": "invalid_state", "message": "m", "details": {}}}',
            "status 409 is not declared",
        ),
    ],
)
def test_the_checker_catches_each_kind_of_mismatch(document, status, content_type, body, problem):
    checker = Conformance(document)
    checker.check("coins_wallet", status, content_type, body)
    problems = checker.take()
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0]


def test_paths_find_their_operation(document):
    checker = Conformance(document)
    assert checker.operation_for("POST", "/api/coins/escrow/e1/release") == "coins_escrow_release"
    assert checker.operation_for("GET", "/api/coins/escrow/e1") == "coins_escrow_get"
    assert checker.operation_for("POST", "/", "coins_fatora_webhook") == "coins_fatora_webhook_post"
    assert checker.operation_for("GET", "/api/coins/nowhere") is None
