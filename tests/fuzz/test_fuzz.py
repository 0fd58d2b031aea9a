"""The fuzzing tier: Schemathesis generates requests from the OpenAPI document
(docs/openapi.json, which tests/unit/test_openapi.py keeps identical to what the stack
serves at /api/coins/openapi.json) (valid ones and broken ones: wrong types, missing and unknown fields, odd
ids and keys) and sends them over HTTP, one at a time, to a stack of its own. Every
response must be no 5xx and conform to the document (status declared, content type,
body schema, headers); afterwards the admin's reconciliation must be ok: no fuzzed
request created or lost a coin.

Bounded: FUZZ_EXAMPLES examples per operation (about two minutes in all on 2 cores).
Callers: an admin's token on admin-only operations, a user's on the others.
"""

from __future__ import annotations

import os

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from local.emulator import free_port
from local.tokens import mint
from tests.conftest import ROOT
from tests.stack import start_stack, stop_stack

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
USER, ADMIN = "fuzz-user", "fuzz-admin"
counts = {"requests": 0}


@pytest.fixture(scope="session")
def fuzz_stack():
    port = free_port()
    process, _ = start_stack("--port", str(port), "--firestore-port", str(free_port()), "--fatora-port", str(free_port()))
    base = f"http://127.0.0.1:{port}"
    # Something to spend: the user has coins, so valid payments can go through.
    adjust = requests.post(
        f"{base}/api/admin/coins/adjust-balance",
        timeout=30,
        headers={"Authorization": f"Bearer {mint(ADMIN, admin=True)}", "Idempotency-Key": "fuzz-seed"},
        json={"user_id": USER, "coins": {"GRC": 2, "GBC": 10}, "reason": "fuzz seed"},
    )
    assert adjust.status_code == 200, adjust.text
    yield base
    assert stop_stack(process) == 0


# Loaded at collection, so that each operation is a test of its own.
SCHEMA = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.json")
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.mark.parametrize("operation", OPERATIONS, ids=[operation.label for operation in OPERATIONS])
def test_no_request_gets_a_5xx_or_breaks_the_contract(operation, fuzz_stack):
    admin = bool(operation.definition.raw.get("x-admin"))
    headers = {"Authorization": f"Bearer {mint(ADMIN, admin=True) if admin else mint(USER)}"}

    @given(case=st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)))
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    def fuzz(case):
        counts["requests"] += 1
        counts[case.meta.generation.mode.value if case.meta else "unknown"] = (
            counts.get(case.meta.generation.mode.value if case.meta else "unknown", 0) + 1
        )
        case.call_and_validate(base_url=fuzz_stack, headers=headers, checks=CHECKS, allow_redirects=False, timeout=30)

    fuzz()


def test_after_the_fuzzing_reconciliation_is_ok(fuzz_stack):
    """Runs after the fuzzed operations (pytest keeps the file's order)."""
    assert counts["requests"] > 0, "nothing was fuzzed"
    report = requests.get(
        f"{fuzz_stack}/api/admin/coins/reconciliation", timeout=60, headers={"Authorization": f"Bearer {mint(ADMIN, admin=True)}"}
    ).json()
    assert report["ok"], report["problems"][:5]
    print(f"fuzzing: {counts}; reconciliation checked {report['checked']}")
