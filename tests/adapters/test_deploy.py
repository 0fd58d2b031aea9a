"""The deploy, by its dry run (`DRY_RUN=1 make deploy`): every function of main.py is
deployed exactly once with the right trigger, the right public/private setting and a
chosen capacity, built by our own build account; nothing else is deployed; every
secret comes from Secret Manager and a re-run keeps the ones a function has; the IAM
works in a project with conditional bindings and limits Firestore to our two databases;
an existing coins database elsewhere stops the deploy first; every declared schedule
has its job with a deadline that covers the function; and neither the project's
default Hosting site nor the app's `(default)` rules are touched. The steps the deploy
runs itself (retries, the database check) are driven here with a fake runner."""

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from deploy import deploy
from tests.conftest import ROOT

PROJECT, REGION = "guild-4f46b", "me-central1"
RUNTIME = f"serviceAccount:coins-runtime@{PROJECT}.iam.gserviceaccount.com"
BUILDER = f"coins-builder@{PROJECT}.iam.gserviceaccount.com"


def dry_run_lines(*variables):
    """(comment, argv) per step of `DRY_RUN=1 make deploy`: the step's comment and the
    command it runs (for `a || b` the command b; for `a || true` the command a)."""
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
    steps, comment = [], ""
    for line in result.stdout.splitlines():
        if line.startswith("# "):
            comment = line[2:]
        elif line:
            words = shlex.split(line)
            if words[-2:] == ["||", "true"]:
                words = words[:-2]
            steps.append((comment, words[len(words) - words[::-1].index("||") :] if "||" in words else words))
    return steps


def plan(*variables):
    return [argv for _, argv in dry_run_lines(*variables)]


@pytest.fixture(scope="module")
def dry_run():
    return plan()


def deployed(commands):
    return {argv[3]: argv for argv in commands if argv[:3] == ["gcloud", "functions", "deploy"]}


def flag(argv, name):
    values = [arg.split("=", 1)[1] for arg in argv if arg.startswith(f"--{name}=")]
    return values


def variables_of(argv):
    [env] = flag(argv, "set-env-vars")
    return dict(item.split("=", 1) for item in env.removeprefix("^;^").split(";"))


def test_every_function_of_main_is_deployed_exactly_once_and_nothing_else(dry_run):
    names = [argv[3] for argv in dry_run if argv[:3] == ["gcloud", "functions", "deploy"]]
    assert sorted(names) == sorted(function.name for function in deploy.functions())
    assert len(names) == len(set(names)) >= 49
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
            assert flag(argv, "trigger-location") == [REGION]
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
    for function in http:
        private = function.kind is registry.Kind.PRIVATE
        argv = deployed(dry_run)[function.name]
        assert ("--no-allow-unauthenticated" if private else "--allow-unauthenticated") in argv, function.name
        assert (function.name in bindings) == private, function.name
        assert private == (function.spec.access.value == "service"), function.name
    assert {"purchases_reconcile", "escrow_timer", "escrows_sweep", "coins_repair", "reconcile_daily"} <= bindings


def test_every_build_runs_as_our_builder_which_the_deploy_creates_and_grants_the_builder_role(dry_run):
    for argv in deployed(dry_run).values():
        assert flag(argv, "build-service-account") == [f"projects/{PROJECT}/serviceAccounts/{BUILDER}"]
    created = [argv for argv in dry_run if argv[:4] == ["gcloud", "iam", "service-accounts", "create"]]
    assert [argv[4] for argv in created] == ["coins-runtime", "coins-invoker", "coins-builder"]
    [grant] = [argv for argv in dry_run if f"--member=serviceAccount:{BUILDER}" in argv]
    assert grant[:4] == ["gcloud", "projects", "add-iam-policy-binding", PROJECT]
    assert flag(grant, "role") == ["roles/cloudbuild.builds.builder"] and flag(grant, "condition") == ["None"]
    first_deploy = next(i for i, argv in enumerate(dry_run) if argv[:3] == ["gcloud", "functions", "deploy"])
    assert dry_run.index(grant) < first_deploy


def test_project_level_bindings_always_say_their_condition(dry_run):
    """gcloud asks which condition is meant (and fails in non-interactive mode) when
    the project's policy has a conditional binding and the command names none."""
    project_level = [argv for argv in dry_run if argv[:2] == ["gcloud", "projects"] and "iam-policy-binding" in argv[2]]
    assert len(project_level) == 4  # the builder, Firestore (added, and the old one removed), Eventarc
    for argv in project_level:
        [condition] = flag(argv, "condition")
        assert condition == "None" or flag(argv, "role") == ["roles/datastore.user"], argv


def test_firestore_is_granted_on_our_two_databases_only_and_no_longer_project_wide(dry_run):
    grants = [argv for argv in dry_run if "--role=roles/datastore.user" in argv]
    [add] = [argv for argv in grants if argv[2] == "add-iam-policy-binding"]
    [remove] = [argv for argv in grants if argv[2] == "remove-iam-policy-binding"]
    assert f"--member={RUNTIME}" in add and f"--member={RUNTIME}" in remove
    [condition] = flag(add, "condition")
    fields = dict(part.split("=", 1) for part in condition.split(","))
    assert fields["expression"] == (
        f'resource.name == "projects/{PROJECT}/databases/guild-coins"'
        f' || resource.name == "projects/{PROJECT}/databases/(default)"'
    )
    assert fields["title"]
    # The unconditional grant of earlier deploys goes, once the conditional one is there.
    assert flag(remove, "condition") == ["None"] and dry_run.index(add) < dry_run.index(remove)
    assert not [argv for argv in grants if argv not in (add, remove)]


def test_the_database_check_comes_before_anything_else():
    (comment, first), (_, second) = dry_run_lines()[:2]
    assert first == [
        "gcloud",
        "firestore",
        "databases",
        "describe",
        "--database=guild-coins",
        "--format=json",
        f"--project={PROJECT}",
    ]
    assert "stop" in comment and REGION in comment
    assert second[:3] == ["gcloud", "services", "enable"]


DESCRIBED = {
    "name": f"projects/{PROJECT}/databases/guild-coins",
    "locationId": REGION,
    "type": "FIRESTORE_NATIVE",
    "concurrencyMode": "PESSIMISTIC",
    "deleteProtectionState": "DELETE_PROTECTION_ENABLED",
}


def test_an_existing_coins_database_in_another_location_stops_the_deploy():
    elsewhere = json.dumps({**DESCRIBED, "locationId": "eur3"})
    error = deploy.database_location_error(0, elsewhere, REGION)
    assert error is not None and "eur3" in error and REGION in error and "Nothing was deployed" in error
    assert deploy.database_location_error(0, json.dumps({**DESCRIBED, "type": "DATASTORE_MODE"}), REGION)


def test_a_coins_database_in_region_or_none_at_all_goes_on():
    assert deploy.database_location_error(0, json.dumps(DESCRIBED), REGION) is None
    # Not there (NOT_FOUND, or the API not enabled yet): created later, in REGION.
    assert deploy.database_location_error(1, "", REGION) is None


def test_the_check_stops_the_real_run_before_any_other_command():
    target = deploy.Target(PROJECT, REGION, f"{PROJECT}-coins")
    check = deploy.plan(target)[0]
    ran = []

    def gcloud(argv, **kwargs):
        ran.append(argv)
        return subprocess.CompletedProcess(argv, 0, json.dumps({**DESCRIBED, "locationId": "us-central1"}), "")

    with pytest.raises(SystemExit, match="us-central1"):
        deploy.execute(check, run=gcloud)
    assert ran == [check.run]


def failing(times):
    """A runner that fails `times` times, then succeeds; it records every call."""
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 1 if len(calls) <= times else 0, "", "")

    return run, calls


def test_a_binding_naming_a_new_service_account_is_retried_with_backoff():
    step = deploy.Step("a binding", ("gcloud", "projects", "add-iam-policy-binding"), retry=True)
    run, calls = failing(2)
    slept: list[float] = []
    deploy.execute(step, run=run, sleep=slept.append)
    assert len(calls) == 3 and slept == list(deploy.RETRY_DELAYS[:2])


def test_the_retries_are_bounded():
    step = deploy.Step("a binding", ("gcloud", "projects", "add-iam-policy-binding"), retry=True)
    run, calls = failing(100)
    slept: list[float] = []
    with pytest.raises(SystemExit, match="a binding failed"):
        deploy.execute(step, run=run, sleep=slept.append)
    assert len(calls) == len(deploy.RETRY_DELAYS) + 1 and slept == list(deploy.RETRY_DELAYS)
    assert deploy.RETRY_DELAYS == tuple(sorted(deploy.RETRY_DELAYS)) and sum(deploy.RETRY_DELAYS) <= 180


def test_a_step_without_retries_fails_at_once():
    run, calls = failing(1)
    with pytest.raises(SystemExit):
        deploy.execute(deploy.Step("a function", ("gcloud", "functions", "deploy")), run=run, sleep=lambda s: None)
    assert len(calls) == 1


def test_the_dry_run_says_which_steps_are_retried():
    for comment, argv in dry_run_lines():
        binding = argv[2:3] in (["add-iam-policy-binding"], ["add-invoker-policy-binding"]) or argv[3:4] == [
            "add-iam-policy-binding"
        ]
        assert ("retried" in comment) == binding, (comment, argv)


def test_every_scheduled_job_the_code_declares_is_deployed_on_its_schedule(dry_run):
    jobs = {}
    for argv in dry_run:
        if argv[:3] == ["gcloud", "scheduler", "jobs"] and argv[4] == "http":
            jobs.setdefault(re.sub("^coins-", "", argv[5]), {})[argv[3]] = argv
    declared = deploy.scheduled()
    assert {"purchases_reconcile", "escrows_sweep", "coins_repair", "reconcile_daily"} <= {f.name for f in declared}
    assert set(jobs) == {function.name for function in declared}
    for function in declared:
        assert set(jobs[function.name]) == {"create", "update"}
        for argv in jobs[function.name].values():
            assert flag(argv, "schedule") == [function.schedule.cron] and flag(argv, "time-zone") == ["Asia/Qatar"]
    assert flag(jobs["reconcile_daily"]["create"], "schedule") == ["30 2 * * *"]
    assert flag(jobs["coins_repair"]["update"], "schedule") == ["*/15 * * * *"]


def test_the_scheduler_waits_longer_than_the_function_may_run(dry_run):
    timeouts = {function.name: function.resources.timeout_seconds for function in deploy.scheduled()}
    for argv in dry_run:
        if argv[:3] == ["gcloud", "scheduler", "jobs"] and argv[4] == "http":
            [deadline] = flag(argv, "attempt-deadline")
            seconds = int(deadline.removesuffix("s"))
            assert timeouts[argv[5].removeprefix("coins-")] < seconds <= 30 * 60, argv
    assert timeouts["escrows_sweep"] == 540 and deploy.attempt_deadline(540) == 570
    with pytest.raises(ValueError):
        deploy.attempt_deadline(1780)  # past Cloud Scheduler's 30 minutes


def test_resources_are_what_each_function_declares(dry_run):
    argv = deployed(dry_run)
    assert (flag(argv["reconcile_daily"], "memory"), flag(argv["reconcile_daily"], "timeout")) == (["1Gi"], ["540s"])
    assert (flag(argv["coins_repair"], "memory"), flag(argv["coins_repair"], "timeout")) == (["512Mi"], ["540s"])
    assert (flag(argv["coins_wallet"], "memory"), flag(argv["coins_wallet"], "timeout")) == (["256Mi"], ["60s"])


def test_every_function_has_a_chosen_capacity(dry_run):
    for function in deploy.functions():
        argv = deployed(dry_run)[function.name]
        chosen = deploy.capacity(function)
        assert chosen.why
        assert flag(argv, "max-instances") == [str(chosen.max_instances)], function.name
        assert flag(argv, "concurrency") == [str(chosen.concurrency)], function.name
        # Above one request at a time, Cloud Run wants a whole CPU and Python the threads.
        assert float(flag(argv, "cpu")[0]) >= 1 and variables_of(argv)["THREADS"] == str(chosen.concurrency)
    assert not set(deploy.CAPACITY) - {function.name for function in deploy.functions()}, "a row for no function"


def test_capacity_caps_the_public_urls_and_runs_each_sweep_once(dry_run):
    argv = deployed(dry_run)
    for function in deploy.functions():
        if function.spec and function.spec.access.value == "public":
            assert int(flag(argv[function.name], "max-instances")[0]) <= 5, function.name
        if function.schedule:
            assert (flag(argv[function.name], "max-instances"), flag(argv[function.name], "concurrency")) == (["1"], ["1"])
    for webhook in ("coins_fatora_webhook", "coins_sadad_webhook", "coins_catalog"):
        assert int(flag(argv[webhook], "max-instances")[0]) <= 5
    for money in ("coins_purchase_create", "coins_job_payment", "coins_escrow_release", "coins_withdrawal_create"):
        assert flag(argv[money], "concurrency") == ["8"] and flag(argv[money], "max-instances") == ["20"]


def test_every_secret_comes_from_secret_manager_and_nothing_local_ships(dry_run):
    for argv in deployed(dry_run).values():
        variables = variables_of(argv)
        assert not [v for v in variables if re.search("KEY|SECRET|TOKEN|PASSWORD", v)], variables
        assert not {"LOCAL_SERVICE_SECRET", "FIRESTORE_EMULATOR_HOST", "FIREBASE_AUTH_EMULATOR_HOST"} & set(variables)
        assert variables["COINS_DATABASE"] == "guild-coins"
        assert flag(argv, "update-secrets") == ["FATORA_API_KEY=fatora-api-key:latest"]
    readers = [argv[3] for argv in dry_run if argv[:3] == ["gcloud", "secrets", "add-iam-policy-binding"]]
    assert readers == ["fatora-api-key"]


def test_a_re_run_keeps_the_secrets_a_function_has(dry_run):
    """--set-secrets replaces a function's whole set, so a re-run without a flag of an
    earlier one would drop that secret: the deploy only adds and updates."""
    for argv in deployed(dry_run).values():
        assert not flag(argv, "set-secrets") and "--clear-secrets" not in argv and not flag(argv, "remove-secrets")


def test_make_deploy_passes_every_option_of_the_deploy():
    every = {
        "PROJECT=p",
        "REGION=r",
        "SITE=s",
        "ADMIN_UIDS=a",
        "WITH_EXPO_TOKEN=1",
        "WITH_WEBHOOK_TOKEN=1",
        "WITH_BIGQUERY=1",
        "SADAD_MID=7",
        "SADAD_DOMAIN=d",
    }
    result = subprocess.run(["make", "-n", "deploy", *sorted(every)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    [command] = [shlex.split(line) for line in result.stdout.splitlines() if "deploy.deploy" in line]
    passed = {arg for arg in command if arg.startswith("--")}
    options = {action.option_strings[-1] for action in deploy.parser()._actions if action.option_strings}
    # --dry-run comes from DRY_RUN in the environment, make's and the script's alike.
    assert passed == options - {"--help", "--dry-run"}


def test_with_bigquery_the_ledger_of_guild_coins_streams_to_bigquery_through_firebase_s_extension():
    commands = plan("WITH_BIGQUERY=1")
    [extensions] = [argv for argv in commands if argv[:2] == ["firebase", "deploy"] and "extensions" in argv]
    assert extensions[extensions.index("--only") + 1] == "extensions" and "--non-interactive" in extensions
    target = deploy.Target(PROJECT, REGION, f"{PROJECT}-coins", with_bigquery=True)
    assert deploy.deploy_config(target)["extensions"] == {deploy.BIGQUERY_INSTANCE: "firebase/firestore-bigquery-export@0.3.1"}
    params = deploy.bigquery_params(target)
    assert (params["DATABASE"], params["COLLECTION_PATH"], params["DATABASE_REGION"]) == ("guild-coins", "ledger", REGION)
    assert "extensions" not in deploy.deploy_config(deploy.Target(PROJECT, REGION, f"{PROJECT}-coins"))
    assert not [argv for argv in plan() if "extensions" in argv], "only when asked for"


def test_the_optional_secrets_are_reachable_from_make():
    commands = plan("WITH_EXPO_TOKEN=1", "WITH_WEBHOOK_TOKEN=1")
    for argv in deployed(commands).values():
        assert flag(argv, "update-secrets") == [
            "FATORA_API_KEY=fatora-api-key:latest,"
            "EXPO_ACCESS_TOKEN=expo-access-token:latest,"
            "FATORA_WEBHOOK_TOKEN=fatora-webhook-token:latest"
        ]
    readers = [argv[3] for argv in commands if argv[:3] == ["gcloud", "secrets", "add-iam-policy-binding"]]
    assert readers == ["fatora-api-key", "expo-access-token", "fatora-webhook-token"]


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
        assert flag(argv, "update-secrets") == ["FATORA_API_KEY=fatora-api-key:latest,SADAD_SECRET_KEY=sadad-secret-key:latest"]
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
