"""`make fatora-contract`, run against the local sandbox (the real Fatora is not reachable
from tests): it prints what Fatora answered, field by field, and exits 2 without a key."""

import os
import subprocess
import sys

from local.fatora_sandbox import FatoraSandbox
from tests.conftest import ROOT


def run(env):
    return subprocess.run(
        [sys.executable, "-m", "deploy.fatora_contract"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in {**os.environ, **env}.items() if v is not None},
    )


def test_without_a_key_it_says_what_to_set_and_exits_2():
    result = run({"FATORA_API_KEY": None, "FATORA_BASE_URL": None})
    assert result.returncode == 2 and "FATORA_API_KEY" in result.stderr


def test_against_a_fatora_it_prints_every_field_next_to_what_the_client_expects():
    sandbox = FatoraSandbox(api_key="contract-key").serve()
    try:
        result = run({"FATORA_API_KEY": "contract-key", "FATORA_BASE_URL": sandbox.api_url})
    finally:
        sandbox.stop()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "== checkout: Fatora answered" in out and "result.checkout_url" in out
    assert "== verify by order id: Fatora answered" in out
    assert "result.mode" in out and "Decimal" in out, "the amount is read as a number"
    assert "pay the checkout page in test mode" in out
