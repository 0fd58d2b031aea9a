"""The deploy, by its dry run (`DRY_RUN=1 make deploy`): every function of main.py is
deployed exactly once with the right trigger and the right public/private setting,
nothing else is deployed, every secret comes from Secret Manager, and neither the
project's default Hosting site nor the app's `(default)` rules are touched."""

import os
import re
import shlex
import subprocess
import sys

import pytest

from deploy import deploy
from tests.conftest import ROOT

PROJECT, REGION = "guild-4f46b", "me-central1"


def plan(*variables):
    # Only what the command line says: no SADAD_* of this session's local stack.
    kept = {name: value for name, value in os.environ.items() if not name.startswith("SADAD_")}
    env = {**kept, "DRY_RUN": "1", "PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin"}
    result = subprocess.run(
        ["make", "-s", "deploy", f"PROJECT={PROJECT}", f"REGION={REGION}", "ADMIN_UIDS=ops1,ops2", *variables],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    commands = [line for line in result.stdout.splitlines() if line and not line.startswith("#")]
    return [shlex.split(line.split(" || ")[-1]) for line in commands]


@pytest.fixture(scope="module")
def dry_run():
    return plan()


def deployed(commands):
    return {argv[3]: argv for argv in commands if argv[:3] == ["gcloud", "functions", "deploy"]}


def flag(argv, name):
    values = [arg.split("=", 1)[1] for arg in argv if arg.startswith(f"--{name}=")]
    return values


def test_every_function_of_main_is_deployed_exactly_once_and_nothing_else(dry_run):
    names = [argv[3] for argv in dry_run if argv[:3] == ["gcloud", "functions", "deploy"]]
    assert sorted(names) == sorted(function.name for function in deploy.functions())
    assert len(names) == len(set(names)) == 49
    for name, argv in deployed(dry_run).items():
        assert flag(argv, "entry-point") == [name] and flag(argv, "source") == ["functions"] and "--gen2" in argv


def test_triggers_are_firestore_events_on_the_coins_database_and_the_rest_is_http(dry_run):
    triggers = {f.name: f.document_pattern for f in deploy.functions() if f.kind == "trigger"}
    assert triggers == {"ledger_on_create": "ledger/{entryId}", "outbox_on_create": "outbox/{eventId}"}
    for name, argv in deployed(dry_run).items():
        if name in triggers:
            assert flag(argv, "trigger-event-filters") == [
                "type=google.cloud.firestore.document.v1.created",
                "database=guild-coins",
            ]
            assert flag(argv, "trigger-event-filters-path-pattern") == [f"document={triggers[name]}"]
            assert "--retry" in argv and "--trigger-http" not in argv
        else:
            assert "--trigger-http" in argv and not flag(argv, "trigger-event-filters")


def test_only_the_scheduler_and_task_targets_are_private_and_only_the_invoker_may_call_them(dry_run):
    from coins import registry

    invoker = f"serviceAccount:coins-invoker@{PROJECT}.iam.gserviceaccount.com"
    bindings = {
        argv[3]
        for argv in dry_run
        if argv[:3] == ["gcloud", "functions", "add-invoker-policy-binding"] and f"--member={invoker}" in argv
    }
    http = [function for function in deploy.functions() if function.kind is not registry.Kind.TRIGGER]
    assert len(http) == 47
    for function in http:
        private = function.kind is registry.Kind.PRIVATE
        argv = deployed(dry_run)[function.name]
        assert ("--no-allow-unauthenticated" if private else "--allow-unauthenticated") in argv, function.name
        assert (function.name in bindings) == private, function.name
    assert bindings == {"purchases_reconcile", "escrow_timer", "escrows_sweep", "coins_repair", "reconcile_daily"}


def test_every_scheduled_job_the_code_declares_is_deployed_on_its_schedule(dry_run):
    created = {
        re.sub("^coins-", "", argv[5]): argv for argv in dry_run if argv[:5] == ["gcloud", "scheduler", "jobs", "create", "http"]
    }
    assert set(created) == {"purchases_reconcile", "escrows_sweep", "coins_repair", "reconcile_daily"}
    for function in deploy.functions():
        if function.schedule is None:
            assert function.name not in created
            continue
        argv = created[function.name]
        assert flag(argv, "schedule") == [function.schedule.cron] and flag(argv, "time-zone") == ["Asia/Qatar"]
    assert flag(created["reconcile_daily"], "schedule") == ["30 2 * * *"]
    assert flag(created["coins_repair"], "schedule") == ["*/15 * * * *"]


def test_resources_are_what_each_function_declares(dry_run):
    argv = deployed(dry_run)
    assert (flag(argv["reconcile_daily"], "memory"), flag(argv["reconcile_daily"], "timeout")) == (["1Gi"], ["540s"])
    assert (flag(argv["coins_repair"], "memory"), flag(argv["coins_repair"], "timeout")) == (["512Mi"], ["540s"])
    assert (flag(argv["coins_wallet"], "memory"), flag(argv["coins_wallet"], "timeout")) == (["256Mi"], ["60s"])


def test_every_secret_comes_from_secret_manager_and_nothing_local_ships(dry_run):
    for argv in deployed(dry_run).values():
        [env] = flag(argv, "set-env-vars")
        variables = dict(item.split("=", 1) for item in env.removeprefix("^;^").split(";"))
        assert not [v for v in variables if re.search("KEY|SECRET|TOKEN|PASSWORD", v)], variables
        assert not {"LOCAL_SERVICE_SECRET", "FIRESTORE_EMULATOR_HOST", "FIREBASE_AUTH_EMULATOR_HOST"} & set(variables)
        assert variables["COINS_DATABASE"] == "guild-coins"
        assert flag(argv, "set-secrets") == ["FATORA_API_KEY=fatora-api-key:latest"]
    readers = [argv[3] for argv in dry_run if argv[:3] == ["gcloud", "secrets", "add-iam-policy-binding"]]
    assert readers == ["fatora-api-key"]


def variables_of(argv):
    [env] = flag(argv, "set-env-vars")
    return dict(item.split("=", 1) for item in env.removeprefix("^;^").split(";"))


def test_without_a_merchant_id_sadad_is_not_offered_and_its_key_not_read(dry_run):
    for argv in deployed(dry_run).values():
        assert not {"SADAD_MERCHANT_ID", "SADAD_WEBSITE"} & set(variables_of(argv))


def test_with_a_merchant_id_sadad_is_live_and_its_key_comes_from_secret_manager():
    commands = plan("SADAD_MID=7654321")
    for argv in deployed(commands).values():
        variables = variables_of(argv)
        assert variables["SADAD_MERCHANT_ID"] == "7654321" and variables["SADAD_REQUIRED_MODE"] == "live"
        assert variables["SADAD_WEBSITE"] == f"{PROJECT}-coins.web.app"
        assert variables["SITE_URL"] == f"https://{PROJECT}-coins.web.app"
        assert flag(argv, "set-secrets") == ["FATORA_API_KEY=fatora-api-key:latest,SADAD_SECRET_KEY=sadad-secret-key:latest"]
    readers = [argv[3] for argv in commands if argv[:3] == ["gcloud", "secrets", "add-iam-policy-binding"]]
    assert readers == ["fatora-api-key", "sadad-secret-key"]


def test_hosting_and_rules_go_to_our_site_and_our_database_only(dry_run):
    [firebase] = [argv for argv in dry_run if argv[:2] == ["firebase", "deploy"]]
    assert firebase[firebase.index("--only") + 1] == "firestore,hosting"
    assert firebase[firebase.index("--config") + 1] == "firebase.deploy.json"
    config = deploy.deploy_config(deploy.Target(PROJECT, REGION, f"{PROJECT}-coins"))
    assert config["hosting"]["site"] == f"{PROJECT}-coins" != PROJECT
    assert [db["database"] for db in config["firestore"]] == ["guild-coins"]
    assert {rule["function"]["region"] for rule in config["hosting"]["rewrites"]} == {REGION}
    assert not (ROOT / "firebase.deploy.json").exists(), "a dry run writes nothing"


def test_the_default_site_is_refused():
    result = subprocess.run(
        [sys.executable, "-m", "deploy.deploy", "--project", PROJECT, "--region", REGION, "--site", PROJECT, "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "admin portal" in result.stderr


def test_without_a_project_make_deploy_says_how_to_call_it():
    result = subprocess.run(["make", "-s", "deploy"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "usage: make deploy PROJECT=" in result.stderr
