"""Deploys GUILD Coins into a Firebase project, with the tools Google documents:

    make deploy PROJECT=<project id> REGION=<region> [SITE=<hosting site>] [ADMIN_UIDS=a,b]
    DRY_RUN=1 make deploy PROJECT=... REGION=...      prints every command, runs none

What it does, in order (every step can run again: what exists is left or updated):
1. enables the APIs; creates the `guild-coins` Firestore database in REGION if missing;
2. creates two service accounts: `coins-runtime` (the functions run as it) and
   `coins-invoker` (the identity of Cloud Tasks' and Cloud Scheduler's OIDC tokens);
3. the Cloud Tasks queue with its retry settings, and the minimal IAM: the runtime may
   enqueue and delete tasks on that queue, mint tokens as the invoker, read the secrets,
   use Firestore and receive Eventarc events;
4. every function of functions/main.py, once each: HTTP functions with their own auth
   are public (`--allow-unauthenticated`: the app's Firebase ID token is checked in the
   code); the scheduler and task targets are private (only `coins-invoker` may invoke
   them); the document triggers are Eventarc triggers on the `guild-coins` database,
   with retries. Secrets come from Secret Manager (`--set-secrets`), never from the repo;
5. the Cloud Scheduler jobs (sweepers every 15 minutes, reconciliation daily) with OIDC;
6. the coins database's rules and indexes, and Hosting (`/api/**` rewrites, public/) on
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
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
DEPLOY_CONFIG = ROOT / "firebase.deploy.json"  # generated, git-ignored

RUNTIME = "python311"
DATABASE = "guild-coins"
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

    @property
    def base_url(self) -> str:
        return f"https://{self.region}-{self.project}.cloudfunctions.net"

    def account(self, name: str) -> str:
        return f"{name}@{self.project}.iam.gserviceaccount.com"


@dataclass(frozen=True)
class Step:
    what: str
    run: tuple[str, ...]
    # Run `run` only if this command fails (something to create only when missing).
    unless: tuple[str, ...] | None = None

    def line(self) -> str:
        run = shlex.join(self.run)
        return f"{shlex.join(self.unless)} >/dev/null 2>&1 || {run}" if self.unless else run


def functions():
    """Every function of main.py, as its decorators declare it (coins.registry)."""
    sys.path.insert(0, str(FUNCTIONS))
    from coins import registry

    return registry.functions()


def environment(target: Target, private: list) -> dict[str, str]:
    """What every function reads (coins/config.py), without a secret among it."""
    site = f"https://{target.site}.web.app"
    return {
        "GOOGLE_CLOUD_PROJECT": target.project,
        "COINS_DATABASE": DATABASE,
        "APP_DATABASE": "(default)",
        "SERVICE_AUDIENCE": ",".join(f"{target.base_url}/{f.name}" for f in private),
        "SERVICE_ACCOUNTS": target.account("coins-invoker"),
        "TASKS_LOCATION": target.region,
        "TASKS_QUEUE": QUEUE,
        "ESCROW_TIMER_URL": f"{target.base_url}/escrow_timer",
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
    steps = [Step("enable the APIs", ("gcloud", "services", "enable", *APIS, p))]
    steps.append(
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
        )
    )
    for name, title in (("coins-runtime", "GUILD Coins functions"), ("coins-invoker", "GUILD Coins scheduler and tasks")):
        steps.append(
            Step(
                f"service account {name}",
                ("gcloud", "iam", "service-accounts", "create", name, f"--display-name={title}", p),
                unless=("gcloud", "iam", "service-accounts", "describe", target.account(name), p),
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
        )
    )
    for secret in secrets.values():
        steps.append(
            Step(
                f"runtime: read the secret {secret}",
                ("gcloud", "secrets", "add-iam-policy-binding", secret, member, "--role=roles/secretmanager.secretAccessor", p),
            )
        )
    for role in ("roles/datastore.user", "roles/eventarc.eventReceiver"):
        steps.append(
            Step(f"runtime: {role}", ("gcloud", "projects", "add-iam-policy-binding", target.project, member, f"--role={role}"))
        )
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
                )
            )
        if function.kind == "trigger":
            steps.append(
                Step(
                    f"Eventarc may call {function.name}",
                    ("gcloud", "functions", "add-invoker-policy-binding", function.name, f"--region={r}", member, p),
                )
            )
    for name, schedule in ((f.name, f.schedule) for f in found if f.schedule is not None):
        url = f"{target.base_url}/{name}"
        flags = (
            f"--location={r}",
            f"--schedule={schedule.cron}",
            f"--time-zone={schedule.time_zone}",
            f"--uri={url}",
            "--http-method=POST",
            f"--oidc-service-account-email={invoker}",
            f"--oidc-token-audience={url}",
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
    return steps


def deploy_function(target: Target, function, env: dict[str, str], secrets: dict[str, str], runtime: str) -> Step:
    from coins import registry

    memory, timeout = function.resources.memory, f"{function.resources.timeout_seconds}s"
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
        f"--timeout={timeout}",
        f"--service-account={runtime}",
        # "^;^" makes ";" the separator, since SERVICE_AUDIENCE holds commas.
        "--set-env-vars=^;^" + ";".join(f"{k}={v}" for k, v in env.items()),
        "--set-secrets=" + ",".join(f"{var}={secret}:latest" for var, secret in secrets.items()),
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


def deploy_config(target: Target) -> dict:
    """firebase.json for the deploy: only our site, only the coins database, the
    region of this deploy in the rewrites."""
    config = json.loads((ROOT / "firebase.json").read_text())
    hosting = {**config["hosting"], "site": target.site}
    hosting["rewrites"] = [
        {**rule, "function": {**rule["function"], "region": target.region}} if isinstance(rule.get("function"), dict) else rule
        for rule in hosting["rewrites"]
    ]
    return {"firestore": [db for db in config["firestore"] if db["database"] == DATABASE], "hosting": hosting}


def main() -> None:
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
    parser.add_argument("--dry-run", action="store_true", default=bool(os.environ.get("DRY_RUN")))
    args = parser.parse_args()
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
    )
    steps = plan(target)
    config = json.dumps(deploy_config(target), indent=2)
    if args.dry_run:
        print(f"# write {DEPLOY_CONFIG.name}: hosting site {site}, database {DATABASE}, rewrites to {args.region}")
        for step in steps:
            print(f"# {step.what}")
            print(step.line())
        return
    DEPLOY_CONFIG.write_text(config + "\n")
    for step in steps:
        print(f"==> {step.what}", flush=True)
        if step.unless and subprocess.run(step.unless, cwd=ROOT, capture_output=True).returncode == 0:
            print("    exists", flush=True)
            continue
        subprocess.run(step.run, cwd=ROOT, check=True)


if __name__ == "__main__":
    main()
