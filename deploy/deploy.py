"""Deploys GUILD Coins into a Firebase project, with the tools Google documents:

    make deploy PROJECT=<project id> REGION=<region> [SITE=<hosting site>] [ADMIN_UIDS=a,b]
                [WITH_EXPO_TOKEN=1] [WITH_WEBHOOK_TOKEN=1] [WITH_BIGQUERY=1] [SADAD_MID=<id> [SADAD_DOMAIN=<domain>]]
    DRY_RUN=1 make deploy PROJECT=... REGION=...      prints every command, runs none

What it does, in order (every step can run again: what exists is left or updated):
1. checks, before anything else, that an existing `guild-coins` database is a Firestore
   (native) database in REGION, and stops with an error if not: a database cannot move,
   and the document triggers must be in its location;
2. enables the APIs; creates the `guild-coins` Firestore database in REGION if missing;
3. creates three service accounts: `coins-runtime` (the functions run as it),
   `coins-invoker` (the identity of Cloud Tasks' and Cloud Scheduler's OIDC tokens) and
   `coins-builder` (Cloud Build builds the functions as it, with the builder role);
4. the Cloud Tasks queue with its retry settings, and the minimal IAM: the runtime may
   enqueue and delete tasks on that queue, mint tokens as the invoker, read the secrets,
   use the two Firestore databases it needs (an IAM condition) and receive Eventarc
   events. Every binding is retried with backoff: a new service account takes a while
   to be seen by IAM. Project-level bindings carry `--condition` always (`None` where
   unconditional), since gcloud otherwise asks which one is meant once the project's
   policy has any conditional binding;
5. every function of functions/main.py, once each, built as `coins-builder`, with the
   capacity CAPACITY (or DEFAULT_CAPACITY) chooses for it: HTTP functions with their own
   auth are public (`--allow-unauthenticated`: the app's Firebase ID token is checked in
   the code); the scheduler and task targets are private (only `coins-invoker` may
   invoke them); the document triggers are Eventarc triggers on the `guild-coins`
   database, with retries. Secrets come from Secret Manager (`--update-secrets`: ones
   a function already has are kept), never from the repo;
6. a Cloud Scheduler job for every schedule the code declares (coins.registry), with
   OIDC and an attempt deadline that covers the function's timeout;
7. the coins database's rules and indexes, and Hosting (`/api/**` rewrites, public/) on
   a site of our own, SITE (default `<project>-coins`): `firebase deploy --only
   firestore,hosting` with a generated config naming only that site and only the
   `guild-coins` database, so the project's default site (the GUILD admin portal) and
   the app's `(default)` rules are never touched.

What must exist first (see README, "Deploy to your project"): the project on the Blaze
plan, `gcloud` and `firebase` signed in as an owner, and the secret `fatora-api-key` in
Secret Manager.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
DEPLOY_CONFIG = ROOT / "firebase.deploy.json"  # generated, git-ignored

RUNTIME = "python311"
DATABASE = "guild-coins"
APP_DATABASE = "(default)"
QUEUE = "escrow-timers"
# Secret Manager secret -> the environment variable the functions read.
SECRETS = {"FATORA_API_KEY": "fatora-api-key"}
OPTIONAL_SECRETS = {"EXPO_ACCESS_TOKEN": "expo-access-token"}
# The token of the webhook URL set up in Fatora's dashboard (`...?token=`), if one is used.
WEBHOOK_TOKEN_SECRET = {"FATORA_WEBHOOK_TOKEN": "fatora-webhook-token"}
# SADAD's secret key (its panel's live key), where SADAD is offered (a merchant id given).
SADAD_SECRET = {"SADAD_SECRET_KEY": "sadad-secret-key"}
APIS = (
    "cloudfunctions.googleapis.com",
    "run.googleapis.com",
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "cloudtasks.googleapis.com",
    "cloudscheduler.googleapis.com",
    "secretmanager.googleapis.com",
    "iam.googleapis.com",
    "pubsub.googleapis.com",
)
# Cloud Tasks retries of an escrow timer that failed (the sweeper is the net behind them).
QUEUE_RETRY = ("--max-attempts=20", "--min-backoff=10s", "--max-backoff=600s", "--max-doublings=5")
SERVICE_ACCOUNTS = {
    "coins-runtime": "GUILD Coins functions",
    "coins-invoker": "GUILD Coins scheduler and tasks",
    "coins-builder": "GUILD Coins builds",
}
# What Cloud Build needs to build a function from source (logs, the source bucket,
# Artifact Registry); without an account of ours gcloud falls back to the default
# compute account, which on newer projects lacks it and makes gcloud stop and ask.
BUILDER_ROLE = "roles/cloudbuild.builds.builder"
# A new service account is not seen by IAM at once: a binding naming it can fail for a
# minute or so. The waits between attempts of a binding (about two minutes in all).
RETRY_DELAYS = (5, 10, 20, 40, 60)
# Cloud Scheduler waits at most this long for an HTTP target (its default is 180 s).
SCHEDULER_DEADLINE_MAX = 30 * 60
# How much longer than the function's timeout the scheduler waits, so that the function's
# own timeout, not the scheduler's deadline, ends a run that is too long.
SCHEDULER_DEADLINE_MARGIN = 30


@dataclass(frozen=True)
class Capacity:
    """How far one function scales: at most `max_instances` instances, each serving
    `concurrency` requests at once, on as many threads (functions-framework's THREADS,
    as Google advises for Python). A request that finds no room waits a little, then is
    refused with 429: Cloud Tasks and Eventarc deliver it again, and a gateway's notice
    refused is settled by the purchases sweeper from the gateway's own record."""

    max_instances: int
    concurrency: int
    why: str


# The capacity of each function, chosen, never Cloud Run's defaults (one request per
# instance, so a burst is a cold start per request; up to 100 instances, so a flood of a
# public URL runs up the bill): by who may call it, unless the function is named below.
DEFAULT_CAPACITY = {
    "public": Capacity(
        3, 8, "unauthenticated (a gateway's notices, a payer's browser), so capped against a flood; the sweeper is the net"
    ),
    "user": Capacity(
        20,
        8,
        "the app's users: each request waits on Firestore, and one that moves money on its transaction, which"
        " contends only on the documents of the users it names (sleeping in its backoff when it does), so 8 at"
        " once per instance; 160 at once in all",
    ),
    "admin": Capacity(2, 8, "a handful of admins"),
    "service": Capacity(
        1, 1, "Cloud Scheduler's and Cloud Tasks' targets (sweeps, reconciliation): one run at a time, never two on the same work"
    ),
    "trigger": Capacity(5, 8, "Eventarc deliveries, waiting on Firestore and HTTP; Pub/Sub retries what finds no room"),
}
CAPACITY = {
    "coins_catalog": Capacity(5, 16, "public, read at every app start: no database read, so many at once; capped"),
    "coins_openapi": Capacity(1, 16, "public, one static document for developers"),
    "escrow_timer": Capacity(5, 8, "Cloud Tasks' target, one transaction a timer; the queue retries what finds no room"),
    "admin_reconciliation": Capacity(2, 1, "reconciliation on demand, in up to 1 GiB: one per instance"),
    **{
        name: Capacity(
            10, 4, "renders a PDF, CPU-bound (about 50 ms a receipt, 0.5 s a statement of 300 entries): 4 at once per instance"
        )
        for name in ("coins_purchase_receipt", "coins_withdrawal_receipt", "coins_escrow_receipt", "coins_statement")
    },
    "ledger_on_create": Capacity(
        4, 4, "every entry adds to one of the vault's 16 shards (about a write a second each): 16 at once in all"
    ),
}


@dataclass(frozen=True)
class Target:
    project: str
    region: str
    site: str
    admin_uids: str = ""
    with_expo_token: bool = False
    with_webhook_token: bool = False
    # SADAD's merchant id (MID) and the website domain its key is tied to (default: our
    # Hosting site's); without a merchant id, SADAD is not offered.
    sadad_merchant_id: str = ""
    sadad_website: str = ""
    # The ledger streamed to BigQuery for analysis (Firebase's "Stream Firestore to
    # BigQuery" extension).
    with_bigquery: bool = False

    @property
    def base_url(self) -> str:
        return f"https://{self.region}-{self.project}.cloudfunctions.net"

    def account(self, name: str) -> str:
        return f"{name}@{self.project}.iam.gserviceaccount.com"

    def database(self, name: str) -> str:
        return f"projects/{self.project}/databases/{name}"


@dataclass(frozen=True)
class Step:
    what: str
    run: tuple[str, ...]
    # Run `run` only if this command fails (something to create only when missing).
    unless: tuple[str, ...] | None = None
    # Try again after each of RETRY_DELAYS before giving up.
    retry: bool = False
    # A failure is no error (removing what may not be there).
    may_fail: bool = False
    # Decides from `run`'s exit status and output whether the deploy stops: the
    # message to stop with, or None to go on.
    check: Callable[[int, str], str | None] | None = None

    def line(self) -> str:
        run = shlex.join(self.run)
        if self.unless:
            return f"{shlex.join(self.unless)} >/dev/null 2>&1 || {run}"
        return f"{run} || true" if self.may_fail else run

    def comment(self) -> str:
        if self.retry:
            return f"{self.what} (retried {len(RETRY_DELAYS)} times, {RETRY_DELAYS[0]} s to {RETRY_DELAYS[-1]} s apart)"
        return self.what


Runner = Callable[..., subprocess.CompletedProcess]


def execute(step: Step, run: Runner = subprocess.run, sleep: Callable[[float], None] = time.sleep) -> None:
    """Runs one step; stops the deploy (SystemExit) where it fails or its check says so."""
    if step.check:
        result = run(step.run, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if error := step.check(result.returncode, result.stdout):
            sys.exit(error)
        return
    if step.unless and run(step.unless, cwd=ROOT, capture_output=True).returncode == 0:
        print("    exists", flush=True)
        return
    if step.may_fail:
        result = run(step.run, cwd=ROOT, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"    skipped: {(result.stderr.strip().splitlines() or ['failed'])[-1]}", flush=True)
        return
    for delay in (*RETRY_DELAYS, None) if step.retry else (None,):
        if run(step.run, cwd=ROOT).returncode == 0:
            return
        if delay is None:
            sys.exit(f"error: {step.what} failed: {shlex.join(step.run)}")
        print(f"    failed; trying again in {delay} s", flush=True)
        sleep(delay)


def database_location_error(returncode: int, described: str, region: str) -> str | None:
    """Whether the deploy must stop, from `gcloud firestore databases describe
    --format=json`: an existing coins database elsewhere than REGION, or not a Firestore
    (native) database. A database that is not there (the command failed) is created
    later, in REGION."""
    if returncode != 0:
        return None
    database = json.loads(described)
    location, kind = database.get("locationId", ""), database.get("type", "")
    if location.lower() != region.lower():
        return (
            f"error: the database {DATABASE} already exists in {location}, not in REGION={region}. A Firestore "
            f"database cannot move, and its document triggers must run in its location: deploy with "
            f"REGION={location} if Cloud Functions runs there, or move its data out and delete it first. "
            "Nothing was deployed."
        )
    if kind != "FIRESTORE_NATIVE":
        return f"error: the database {DATABASE} is {kind or 'of an unknown type'}, not a Firestore (native) database. Nothing was deployed."
    return None


def attempt_deadline(timeout_seconds: int) -> int:
    """How long Cloud Scheduler waits for a function that runs at most `timeout_seconds`."""
    deadline = timeout_seconds + SCHEDULER_DEADLINE_MARGIN
    if deadline > SCHEDULER_DEADLINE_MAX:
        raise ValueError(f"a scheduled function may run at most {SCHEDULER_DEADLINE_MAX - SCHEDULER_DEADLINE_MARGIN} s")
    return deadline


def functions():
    """Every function of main.py, as its decorators declare it (coins.registry)."""
    sys.path.insert(0, str(FUNCTIONS))
    from coins import registry

    return registry.functions()


def scheduled():
    """Every function main.py declares with a schedule (coins.registry)."""
    functions()
    from coins import registry

    return registry.scheduled()


def capacity(function) -> Capacity:
    """CAPACITY's line for the function, else the default for who may call it."""
    if function.name in CAPACITY:
        return CAPACITY[function.name]
    return DEFAULT_CAPACITY[function.spec.access.value if function.spec else "trigger"]


def environment(target: Target, private: list) -> dict[str, str]:
    """What every function reads (coins/config.py), without a secret among it."""
    site = f"https://{target.site}.web.app"
    return {
        "GOOGLE_CLOUD_PROJECT": target.project,
        "COINS_DATABASE": DATABASE,
        "APP_DATABASE": APP_DATABASE,
        "SERVICE_AUDIENCE": ",".join(f"{target.base_url}/{f.name}" for f in private),
        "SERVICE_ACCOUNTS": target.account("coins-invoker"),
        "TASKS_LOCATION": target.region,
        "TASKS_QUEUE": QUEUE,
        "ESCROW_TIMER_URL": f"{target.base_url}/escrow_timer",
        # The full reconciliation's next chunk, a task on the same queue.
        "RECONCILE_STEP_URL": f"{target.base_url}/reconcile_full_step",
        "TASKS_SERVICE_ACCOUNT": target.account("coins-invoker"),
        # Fatora's success_url and failure_url: our return endpoint, through our Hosting site.
        "PURCHASE_RETURN_URL": f"{site}/api/coins/purchase/return",
        "FATORA_REQUIRED_MODE": "live",
        "ADMIN_UIDS": target.admin_uids,
        # SADAD's CALLBACK_URL and our checkout page, through our Hosting site.
        "SITE_URL": site,
        **(
            {
                "SADAD_MERCHANT_ID": target.sadad_merchant_id,
                "SADAD_WEBSITE": target.sadad_website or f"{target.site}.web.app",
                "SADAD_REQUIRED_MODE": "live",
            }
            if target.sadad_merchant_id
            else {}
        ),
    }


def database_condition(target: Target) -> str:
    """The IAM condition of the runtime's roles/datastore.user: the coins database and the
    app's, nothing else of the project. It cannot be narrowed to the app's collections the
    adapter uses (jobs, users, notifications): IAM conditions on Firestore see only the
    database (resource type firestore.googleapis.com/Database, resource.name
    projects/P/databases/D); a document or collection is no IAM resource, and Security
    Rules, which do see paths, do not apply to server client libraries."""
    expression = " || ".join(f'resource.name == "{target.database(name)}"' for name in (DATABASE, APP_DATABASE))
    return f"expression={expression},title=guild-coins-databases,description=GUILD Coins databases only"


def project_binding(target: Target, what: str, member: str, role: str, condition: str = "None") -> Step:
    """A project-level binding, with `--condition` always: without it, gcloud asks which
    condition is meant once the project's policy has any conditional binding, and fails
    where it cannot ask."""
    argv = ("gcloud", "projects", "add-iam-policy-binding", target.project, member, f"--role={role}")
    return Step(what, (*argv, f"--condition={condition}"), retry=True)


def plan(target: Target) -> list[Step]:
    p, r = f"--project={target.project}", target.region
    runtime, invoker = target.account("coins-runtime"), target.account("coins-invoker")
    found = functions()
    private = [f for f in found if f.kind == "private"]
    env = environment(target, private)
    secrets = {
        **SECRETS,
        **(OPTIONAL_SECRETS if target.with_expo_token else {}),
        **(WEBHOOK_TOKEN_SECRET if target.with_webhook_token else {}),
        **(SADAD_SECRET if target.sadad_merchant_id else {}),
    }
    steps = [
        Step(
            f"stop unless an existing {DATABASE} is a Firestore database in {r}",
            ("gcloud", "firestore", "databases", "describe", f"--database={DATABASE}", "--format=json", p),
            check=lambda returncode, described: database_location_error(returncode, described, r),
        ),
        Step("enable the APIs", ("gcloud", "services", "enable", *APIS, p)),
        Step(
            f"the coins database {DATABASE}",
            (
                "gcloud",
                "firestore",
                "databases",
                "create",
                f"--database={DATABASE}",
                f"--location={r}",
                "--type=firestore-native",
                "--delete-protection",
                p,
            ),
            unless=("gcloud", "firestore", "databases", "describe", f"--database={DATABASE}", p),
        ),
    ]
    for name, title in SERVICE_ACCOUNTS.items():
        steps.append(
            Step(
                f"service account {name}",
                ("gcloud", "iam", "service-accounts", "create", name, f"--display-name={title}", p),
                unless=("gcloud", "iam", "service-accounts", "describe", target.account(name), p),
            )
        )
    steps.append(
        project_binding(
            target, f"builder: {BUILDER_ROLE}", f"--member=serviceAccount:{target.account('coins-builder')}", BUILDER_ROLE
        )
    )
    steps.append(
        Step(
            "the Cloud Tasks queue",
            ("gcloud", "tasks", "queues", "create", QUEUE, f"--location={r}", p),
            unless=("gcloud", "tasks", "queues", "describe", QUEUE, f"--location={r}", p),
        )
    )
    steps.append(Step("its retry settings", ("gcloud", "tasks", "queues", "update", QUEUE, f"--location={r}", *QUEUE_RETRY, p)))
    member = f"--member=serviceAccount:{runtime}"
    for role in ("roles/cloudtasks.enqueuer", "roles/cloudtasks.taskDeleter"):
        steps.append(
            Step(
                f"runtime: {role} on the queue",
                ("gcloud", "tasks", "queues", "add-iam-policy-binding", QUEUE, f"--location={r}", member, f"--role={role}", p),
                retry=True,
            )
        )
    steps.append(
        Step(
            "runtime: mint OIDC tokens as the invoker (tasks)",
            (
                "gcloud",
                "iam",
                "service-accounts",
                "add-iam-policy-binding",
                invoker,
                member,
                "--role=roles/iam.serviceAccountUser",
                p,
            ),
            retry=True,
        )
    )
    for secret in secrets.values():
        steps.append(
            Step(
                f"runtime: read the secret {secret}",
                ("gcloud", "secrets", "add-iam-policy-binding", secret, member, "--role=roles/secretmanager.secretAccessor", p),
                retry=True,
            )
        )
    steps.append(
        project_binding(
            target,
            f"runtime: roles/datastore.user on {DATABASE} and {APP_DATABASE} only",
            member,
            "roles/datastore.user",
            database_condition(target),
        )
    )
    steps.append(
        Step(
            "runtime: no project-wide roles/datastore.user (granted by earlier deploys)",
            (
                "gcloud",
                "projects",
                "remove-iam-policy-binding",
                target.project,
                member,
                "--role=roles/datastore.user",
                "--condition=None",
            ),
            may_fail=True,
        )
    )
    steps.append(project_binding(target, "runtime: roles/eventarc.eventReceiver", member, "roles/eventarc.eventReceiver"))
    for function in found:
        steps.append(deploy_function(target, function, env, secrets, runtime))
        if function.kind == "private":
            steps.append(
                Step(
                    f"only the invoker may call {function.name}",
                    (
                        "gcloud",
                        "functions",
                        "add-invoker-policy-binding",
                        function.name,
                        f"--region={r}",
                        f"--member=serviceAccount:{invoker}",
                        p,
                    ),
                    retry=True,
                )
            )
        if function.kind == "trigger":
            steps.append(
                Step(
                    f"Eventarc may call {function.name}",
                    ("gcloud", "functions", "add-invoker-policy-binding", function.name, f"--region={r}", member, p),
                    retry=True,
                )
            )
    for function in scheduled():
        name, schedule = function.name, function.schedule
        url = f"{target.base_url}/{name}"
        flags = (
            f"--location={r}",
            f"--schedule={schedule.cron}",
            f"--time-zone={schedule.time_zone}",
            f"--uri={url}",
            "--http-method=POST",
            f"--oidc-service-account-email={invoker}",
            f"--oidc-token-audience={url}",
            f"--attempt-deadline={attempt_deadline(function.resources.timeout_seconds)}s",
            p,
        )
        steps.append(
            Step(
                f"schedule {name}",
                ("gcloud", "scheduler", "jobs", "create", "http", f"coins-{name}", *flags),
                unless=("gcloud", "scheduler", "jobs", "describe", f"coins-{name}", f"--location={r}", p),
            )
        )
        steps.append(
            Step(f"schedule {name} (settings)", ("gcloud", "scheduler", "jobs", "update", "http", f"coins-{name}", *flags))
        )
    steps.append(
        Step(
            f"our Hosting site {target.site}",
            ("firebase", "hosting:sites:create", target.site, "--project", target.project),
            unless=("firebase", "hosting:sites:get", target.site, "--project", target.project),
        )
    )
    steps.append(
        Step(
            "rules and indexes of guild-coins, and our Hosting site",
            (
                "firebase",
                "deploy",
                "--only",
                "firestore,hosting",
                "--config",
                DEPLOY_CONFIG.name,
                "--project",
                target.project,
                "--non-interactive",
            ),
        )
    )
    if target.with_bigquery:
        steps.append(
            Step(
                f"the ledger streamed to BigQuery ({BIGQUERY_EXTENSION}, dataset guild_coins)",
                (
                    "firebase",
                    "deploy",
                    "--only",
                    "extensions",
                    "--config",
                    DEPLOY_CONFIG.name,
                    "--project",
                    target.project,
                    "--non-interactive",
                    "--force",
                ),
            )
        )
    return steps


def deploy_function(target: Target, function, env: dict[str, str], secrets: dict[str, str], runtime: str) -> Step:
    from coins import registry

    memory, timeout = function.resources.memory, f"{function.resources.timeout_seconds}s"
    chosen = capacity(function)
    argv = [
        "gcloud",
        "functions",
        "deploy",
        function.name,
        "--gen2",
        f"--project={target.project}",
        f"--region={target.region}",
        f"--runtime={RUNTIME}",
        f"--source={FUNCTIONS.relative_to(ROOT)}",
        f"--entry-point={function.name}",
        f"--memory={memory}",
        # A whole CPU: more than one request at a time needs it (below 1, Cloud Run
        # allows concurrency 1 only), and it is billed only while requests run.
        "--cpu=1",
        f"--timeout={timeout}",
        f"--max-instances={chosen.max_instances}",
        f"--concurrency={chosen.concurrency}",
        f"--service-account={runtime}",
        f"--build-service-account=projects/{target.project}/serviceAccounts/{target.account('coins-builder')}",
        # "^;^" makes ";" the separator, since SERVICE_AUDIENCE holds commas.
        "--set-env-vars=^;^" + ";".join(f"{k}={v}" for k, v in {**env, "THREADS": str(chosen.concurrency)}.items()),
        # --update-secrets, not --set-secrets (which replaces the whole set): a secret the
        # function already reads stays (`--remove-secrets` takes one away).
        "--update-secrets=" + ",".join(f"{var}={secret}:latest" for var, secret in secrets.items()),
    ]
    if function.kind == "trigger":
        argv += [
            f"--trigger-event-filters=type={registry.DOCUMENT_CREATED}",
            f"--trigger-event-filters=database={DATABASE}",
            f"--trigger-event-filters-path-pattern=document={function.document_pattern}",
            f"--trigger-location={target.region}",
            f"--trigger-service-account={runtime}",
            "--retry",
        ]
    else:
        argv += ["--trigger-http", "--allow-unauthenticated" if function.kind == "public" else "--no-allow-unauthenticated"]
    return Step(f"function {function.name} ({function.kind})", tuple(argv))


# Firebase's "Stream Firestore to BigQuery" (firebase/extensions, firestore-bigquery-export):
# its extension.yaml has a DATABASE parameter ("Firestore Instance ID") and a
# DATABASE_REGION that offers me-central1, so it listens to a named database such as
# guild-coins. Installed from the deploy's firebase.json ("extensions") with its
# parameters in extensions/<instance>.env (generated beside it, not committed).
BIGQUERY_INSTANCE = "coins-ledger-bigquery"
BIGQUERY_EXTENSION = "firebase/firestore-bigquery-export@0.3.1"
EXTENSIONS_DIR = ROOT / "extensions"


def bigquery_params(target: Target) -> dict[str, str]:
    """The extension's parameters: every ledger entry (immutable: no old data to keep)
    into guild_coins.ledger in the region, partitioned by day on the entry's time."""
    return {
        "DATABASE": DATABASE,
        "DATABASE_REGION": target.region,
        "COLLECTION_PATH": "ledger",
        "BIGQUERY_PROJECT_ID": target.project,
        "DATASET_ID": "guild_coins",
        "TABLE_ID": "ledger",
        "DATASET_LOCATION": target.region,
        "TABLE_PARTITIONING": "DAY",
        "TIME_PARTITIONING_FIELD": "created_at",
        "TIME_PARTITIONING_FIRESTORE_FIELD": "created_at",
        "TIME_PARTITIONING_FIELD_TYPE": "TIMESTAMP",
        "VIEW_TYPE": "view",
        "USE_NEW_SNAPSHOT_QUERY_SYNTAX": "yes",
        "EXCLUDE_OLD_DATA": "yes",
        "LOG_LEVEL": "warn",
    }


def deploy_config(target: Target) -> dict:
    """firebase.json for the deploy: only our site, only the coins database, the
    region of this deploy in the rewrites."""
    config = json.loads((ROOT / "firebase.json").read_text())
    hosting = {**config["hosting"], "site": target.site}
    hosting["rewrites"] = [
        {**rule, "function": {**rule["function"], "region": target.region}} if isinstance(rule.get("function"), dict) else rule
        for rule in hosting["rewrites"]
    ]
    deployed = {"firestore": [db for db in config["firestore"] if db["database"] == DATABASE], "hosting": hosting}
    if target.with_bigquery:
        deployed["extensions"] = {BIGQUERY_INSTANCE: BIGQUERY_EXTENSION}
    return deployed


def parser() -> argparse.ArgumentParser:
    """The options; the Makefile's `deploy` target passes every one (a test checks)."""
    parser = argparse.ArgumentParser(description="deploy GUILD Coins")
    parser.add_argument("--project", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--site", help="our Hosting site (default: <project>-coins); never the project's default site")
    parser.add_argument("--admin-uids", default=os.environ.get("ADMIN_UIDS", ""))
    parser.add_argument(
        "--with-expo-token", action="store_true", help="also read EXPO_ACCESS_TOKEN from the secret expo-access-token"
    )
    parser.add_argument(
        "--with-webhook-token", action="store_true", help="also read FATORA_WEBHOOK_TOKEN from the secret fatora-webhook-token"
    )
    parser.add_argument(
        "--sadad-merchant-id", default="", help="offer SADAD: its merchant id (the secret sadad-secret-key holds its key)"
    )
    parser.add_argument("--sadad-website", default="", help="the domain SADAD's key is tied to (default: <site>.web.app)")
    parser.add_argument("--with-bigquery", action="store_true", help="stream the ledger to BigQuery (Firebase's extension)")
    parser.add_argument("--dry-run", action="store_true", default=bool(os.environ.get("DRY_RUN")))
    return parser


def main() -> None:
    args = parser().parse_args()
    site = args.site or f"{args.project}-coins"
    if site == args.project:
        sys.exit("error: the project's default site belongs to the GUILD admin portal; choose another --site")
    target = Target(
        args.project,
        args.region,
        site,
        args.admin_uids,
        args.with_expo_token,
        args.with_webhook_token,
        args.sadad_merchant_id,
        args.sadad_website,
        args.with_bigquery,
    )
    steps = plan(target)
    config = json.dumps(deploy_config(target), indent=2)
    if args.dry_run:
        print(f"# write {DEPLOY_CONFIG.name}: hosting site {site}, database {DATABASE}, rewrites to {args.region}")
        if target.with_bigquery:
            print(f"# write extensions/{BIGQUERY_INSTANCE}.env: {json.dumps(bigquery_params(target))}")
        for step in steps:
            print(f"# {step.comment()}")
            print(step.line())
        return
    DEPLOY_CONFIG.write_text(config + "\n")
    if target.with_bigquery:
        EXTENSIONS_DIR.mkdir(exist_ok=True)
        params = "".join(f"{name}={value}\n" for name, value in bigquery_params(target).items())
        (EXTENSIONS_DIR / f"{BIGQUERY_INSTANCE}.env").write_text(params)
    for step in steps:
        print(f"==> {step.comment()}", flush=True)
        execute(step)


if __name__ == "__main__":
    main()
