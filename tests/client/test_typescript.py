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
    # 4 tests against the stack (test/flow.test.ts), 4 of checkoutHtml (test/checkout.test.ts).
    assert "# pass 8" in run.stdout and "# fail 0" in run.stdout, run.stdout[-3000:]


APP_TSCONFIG = {
    # What an Expo app's TypeScript checks with (expo/tsconfig.base): strict, DOM and ESNext
    # libraries; no skipLibCheck, so the package's own declarations are checked too.
    "compilerOptions": {
        "strict": True,
        "noEmit": True,
        "module": "nodenext",
        "moduleResolution": "nodenext",
        "target": "ES2022",
        "lib": ["ES2022", "DOM"],
        "types": [],
    },
    "include": ["*.ts"],
}
GOOD = """
import { checkoutHtml, createCoinsClient, randomKey, type CheckoutForm, type Escrow } from "@guild/coins-client";

const coins = createCoinsClient({ baseUrl: "https://example.test", getIdToken: async () => "token", newKey: randomKey });
export async function pay(): Promise<Escrow["status"]> {
  const escrow = await coins.payJob({ job_id: "job-1", amount_dirhams: 10_000 });
  await coins.dispute(escrow.id, "not delivered", ["https://files.example/evidence.png"]);
  return escrow.status;
}
const form: CheckoutForm = { action: "https://sadadqa.com/webpurchase", method: "POST", fields: { ORDER_ID: "pur-1" } };
export const page: string = checkoutHtml(form);
"""
BAD = """
import { createCoinsClient } from "@guild/coins-client";

const coins = createCoinsClient({ baseUrl: "https://example.test", getIdToken: async () => "token" });
export const wrong = coins.payJob({ job_id: 1, amount: "100" });
"""
# SADAD's form is POSTed: a GET must not compile (nor must a form without its fields).
BAD_CHECKOUT = """
import { checkoutHtml } from "@guild/coins-client";

export const get = checkoutHtml({ action: "https://sadadqa.com/webpurchase", method: "GET", fields: {} });
export const bare = checkoutHtml({ action: "https://sadadqa.com/webpurchase", method: "POST" });
"""


def test_the_packed_client_installs_and_type_checks_in_a_fresh_project_under_strict(tmp_path):
    """As the app's developers would use it: `npm pack`, laid into a new project's
    node_modules as npm installs it, compiled with --strict. A wrong call must fail to
    compile: the types are real, not `any`."""
    import json
    import shutil
    import tarfile

    npm_installed()
    packed = (
        subprocess.run(
            ["npm", "pack", "--silent", "--pack-destination", str(tmp_path)],
            cwd=CLIENT,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    with tarfile.open(tmp_path / packed) as tarball:
        names = set(tarball.getnames())
    assert {"package/dist/src/index.js", "package/dist/src/index.d.ts", "package/dist/src/schema.d.ts"} <= names
    assert not any(name.startswith(("package/test", "package/dist/test", "package/src")) for name in names), sorted(names)

    # What `npm install <tarball>` lays out, without the network: the package where npm puts
    # it, and its dependencies as the lockfile pinned them (npm ci put them here).
    app = tmp_path / "app"
    modules = app / "node_modules"
    (modules / "@guild").mkdir(parents=True)
    (app / "package.json").write_text(json.dumps({"name": "app", "version": "0.0.0", "private": True, "type": "module"}))
    with tarfile.open(tmp_path / packed) as tarball:
        tarball.extractall(tmp_path / "unpacked", filter="data")
    (tmp_path / "unpacked" / "package").rename(modules / "@guild" / "coins-client")
    for dependency in ("openapi-fetch", "openapi-typescript-helpers"):
        shutil.copytree(CLIENT / "node_modules" / dependency, modules / dependency)
    (app / "tsconfig.json").write_text(json.dumps(APP_TSCONFIG))
    tsc = str(CLIENT / "node_modules" / ".bin" / "tsc")
    (app / "good.ts").write_text(GOOD)
    good = subprocess.run([tsc, "-p", "."], cwd=app, capture_output=True, text=True)
    assert good.returncode == 0, good.stdout + good.stderr
    (app / "bad.ts").write_text(BAD)
    bad = subprocess.run([tsc, "-p", "."], cwd=app, capture_output=True, text=True)
    assert bad.returncode != 0 and "bad.ts" in bad.stdout and "good.ts" not in bad.stdout, bad.stdout
    (app / "bad.ts").unlink()
    (app / "bad_checkout.ts").write_text(BAD_CHECKOUT)
    bad = subprocess.run([tsc, "-p", "."], cwd=app, capture_output=True, text=True)
    errors = [line for line in bad.stdout.splitlines() if "error TS" in line]
    assert bad.returncode != 0 and len(errors) == 2 and all(line.startswith("bad_checkout.ts(") for line in errors), bad.stdout
