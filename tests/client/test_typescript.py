"""The TypeScript client tier: clients/typescript is compiled (its types checked against
the generated schema) and its tests run under Node's test runner against a local stack
of their own: a purchase through the Fatora sandbox, a job paid, submitted, approved.
`make test` installs its packages first (`npm ci`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from local.emulator import free_port
from tests.conftest import ROOT
from tests.stack import start_stack, stop_stack

CLIENT = ROOT / "clients" / "typescript"


def npm_installed() -> None:
    assert (CLIENT / "node_modules" / ".bin" / "tsc").exists(), "run `make test` (or `cd clients/typescript && npm ci`) first"


def test_the_generated_types_are_those_of_the_committed_document(tmp_path):
    npm_installed()
    generated = tmp_path / "schema.d.ts"
    subprocess.run(
        [
            str(CLIENT / "node_modules" / ".bin" / "openapi-typescript"),
            str(ROOT / "docs" / "openapi.json"),
            "--default-non-nullable",
            "false",
            "-o",
            str(generated),
        ],
        cwd=CLIENT,
        check=True,
        capture_output=True,
    )
    assert generated.read_text() == (CLIENT / "src" / "schema.d.ts").read_text(), (
        "clients/typescript/src/schema.d.ts is stale: `cd clients/typescript && npm run types`, and commit it"
    )


@pytest.fixture(scope="module")
def stack():
    port, firestore_port = free_port(), free_port()
    process, lines = start_stack("--port", str(port), "--firestore-port", str(firestore_port), "--fatora-port", str(free_port()))
    yield f"http://127.0.0.1:{port}", firestore_port
    assert stop_stack(process) == 0


def test_the_client_drives_a_job_from_purchase_to_approval(stack):
    npm_installed()
    base, firestore_port = stack
    subprocess.run(
        [
            sys.executable,
            "-m",
            "local.jobs",
            "job-ts",
            "client-ts",
            "freelancer-ts",
            "--firestore",
            f"127.0.0.1:{firestore_port}",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "COINS_BASE_URL": base, "JOB_ID": "job-ts", "CLIENT_UID": "client-ts", "FREELANCER_UID": "freelancer-ts"}
    run = subprocess.run(["npm", "test", "--silent"], cwd=CLIENT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert "# pass 3" in run.stdout and "# fail 0" in run.stdout, run.stdout[-3000:]
