"""The local stack in the foreground: the Firestore emulator (with firestore.rules, and
document events pointed at this server), the Fatora and SADAD sandboxes, the Expo push
stand-in, and every function on one port.

    python -m local.stack [--port 5000] [--firestore-port 8080] [--fatora-port 5002]
                          [--sadad-port 5004] [--expo-port 5003] [--firestore HOST:PORT]

Prints the URLs, then `ready`. Ctrl-C or SIGTERM stops everything it started.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import threading
from pathlib import Path

from local.emulator import PROJECT_ID, EmulatorNotFound, FirestoreEmulator

ROOT = Path(__file__).resolve().parent.parent
# firebase-admin only needs the variable to accept the emulator's unsigned tokens;
# nothing has to listen there.
AUTH_EMULATOR_HOST = "127.0.0.1:9099"
WEBHOOK_PATH = "/api/coins/webhook/fatora"
SADAD_WEBHOOK_PATH = "/api/coins/webhook/sadad"
RETURN_PATH = "/api/coins/purchase/return"


def configure_environment(firestore_address: str) -> None:
    """What the functions read, in development: the emulator, the project, local tokens."""
    os.environ["FIRESTORE_EMULATOR_HOST"] = firestore_address
    os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = AUTH_EMULATOR_HOST
    os.environ["GOOGLE_CLOUD_PROJECT"] = PROJECT_ID
    functions_dir = str(ROOT / "functions")
    if functions_dir not in sys.path:
        sys.path.insert(0, functions_dir)


def start_fatora_sandbox(functions_base_url: str, port: int = 0):
    """Starts the Fatora sandbox with fresh credentials and points the functions at it:
    the payer comes back to our return endpoint, the webhook (as one would set it up in
    Fatora's dashboard, with a token of ours in its URL) goes to ours, and coins are
    issued for the sandbox's mode ("test")."""
    from local.fatora_sandbox import FatoraSandbox

    token = secrets.token_urlsafe(24)
    sandbox = FatoraSandbox(
        api_key=secrets.token_urlsafe(16), webhook_url=f"{functions_base_url}{WEBHOOK_PATH}?token={token}"
    ).serve(port)
    os.environ["FATORA_BASE_URL"] = sandbox.api_url
    os.environ["FATORA_API_KEY"] = sandbox.api_key
    os.environ["FATORA_WEBHOOK_TOKEN"] = token
    os.environ["FATORA_REQUIRED_MODE"] = sandbox.mode
    os.environ["PURCHASE_RETURN_URL"] = functions_base_url + RETURN_PATH
    return sandbox


def start_sadad_sandbox(functions_base_url: str, port: int | None = None):
    """Starts the SADAD sandbox and points the functions at it: the form is posted to its
    /webpurchase, the payer's callback comes to ours, the webhook (as set in SADAD's
    panel) to ours, and coins are issued for its mode ("test"). The merchant id, the
    secret key and the port are SADAD_MERCHANT_ID, SADAD_SECRET_KEY and SADAD_PORT when
    set (a test then signs as SADAD does), fresh ones otherwise."""
    from local.sadad_sandbox import SadadSandbox

    merchant_id = os.environ.get("SADAD_MERCHANT_ID") or str(secrets.randbelow(9_000_000) + 1_000_000)
    secret_key = os.environ.get("SADAD_SECRET_KEY") or secrets.token_urlsafe(18)
    sandbox = SadadSandbox(
        merchant_id=merchant_id,
        secret_key=secret_key,
        domain="127.0.0.1",
        webhook_url=functions_base_url + SADAD_WEBHOOK_PATH,
    ).serve(port if port is not None else int(os.environ.get("SADAD_PORT") or 0))
    os.environ.update(
        SADAD_MERCHANT_ID=merchant_id,
        SADAD_SECRET_KEY=secret_key,
        SADAD_WEBSITE=sandbox.domain,
        SADAD_CHECKOUT_URL=sandbox.checkout_url,
        SADAD_API_URL=sandbox.api_url,
        SADAD_REQUIRED_MODE="test" if sandbox.sandbox_mode else "live",
        SITE_URL=functions_base_url,
    )
    return sandbox


def start_expo_push(port: int = 0):
    """Starts the Expo push stand-in and points the functions at it."""
    from local.expo_push import ExpoPushStandIn

    expo = ExpoPushStandIn().serve(port)
    os.environ["EXPO_PUSH_URL"] = expo.url
    return expo


def configure_tasks(functions_base_url: str):
    """Escrow timers in development: the in-process queue in place of Cloud Tasks,
    delivering to this server with the stack's service secret. Returns the queue."""
    from coins import clients
    from coins.auth import LOCAL_SERVICE_SECRET_HEADER
    from local.tasks import LocalTaskQueue

    os.environ.setdefault("LOCAL_SERVICE_SECRET", secrets.token_urlsafe(24))
    headers = {LOCAL_SERVICE_SECRET_HEADER: os.environ["LOCAL_SERVICE_SECRET"]}
    queue = LocalTaskQueue(functions_base_url + "/escrow_timer", headers=headers)
    clients.install_scheduler(queue)
    return queue


def configure_reconcile_chain(functions_base_url: str):
    """The full replay's chunks in development: an in-process queue delivering each next
    step to `reconcile_full_step` on this server. Returns the queue."""
    from coins import clients
    from coins.auth import LOCAL_SERVICE_SECRET_HEADER
    from local.tasks import LocalTaskQueue

    headers = {LOCAL_SERVICE_SECRET_HEADER: os.environ["LOCAL_SERVICE_SECRET"]}
    queue = LocalTaskQueue(functions_base_url + "/reconcile_full_step", headers=headers)
    clients.install_scheduler(queue, "reconcile_full_step")
    return queue


def document_triggers() -> list[tuple[str, str]]:
    """(function, document pattern) of every document trigger main.py declares."""
    from coins import registry

    return [(function.name, function.document_pattern) for function in registry.triggers()]


def serve_functions(port: int = 0):
    """Every function on one port, in a background thread (each function logs one
    structured line per request; werkzeug's own line is left out). Returns the server."""
    from local import gateway
    from local.serving import in_background

    return in_background(gateway.build(), port, "functions")


def serve(
    port: int, firestore_address: str | None, firestore_port: int, fatora_port: int, sadad_port: int, expo_port: int
) -> None:
    from local import gateway

    emulator = None
    if firestore_address is None:
        emulator = FirestoreEmulator(
            port=firestore_port,
            rules_path=ROOT / "firestore.rules",
            functions_emulator=f"127.0.0.1:{port}",
            log_path=ROOT / ".firestore-emulator.log",
        ).start()
        firestore_address = emulator.address
    sandbox = sadad = server = queue = chain = expo = None
    try:
        configure_environment(firestore_address)
        base = f"http://127.0.0.1:{port}"
        # A restarted stack keeps the secret it was given (the crash tier's scheduler).
        os.environ.setdefault("LOCAL_SERVICE_SECRET", secrets.token_urlsafe(24))
        queue = configure_tasks(base)
        chain = configure_reconcile_chain(base)
        sandbox = start_fatora_sandbox(base, fatora_port)
        sadad = start_sadad_sandbox(base, sadad_port)
        expo = start_expo_push(expo_port)
        # Who hears about withdrawals, disputes and reviews on the local stack.
        os.environ.setdefault("ADMIN_UIDS", "ops")
        server = serve_functions(port)
        if emulator is not None:
            # The emulator delivers ledger events to this server (a running emulator
            # given with --firestore delivers wherever it was started to).
            from coins import config, registry

            for name, pattern in document_triggers():
                emulator.register_trigger(name, registry.DOCUMENT_CREATED, pattern, database=config.settings().coins_database)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
        signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
        print(f"Firestore emulator  http://{firestore_address}", flush=True)
        print(
            f"Fatora sandbox      {sandbox.base_url}  (returns to {base}{RETURN_PATH}, webhooks to {base}{WEBHOOK_PATH})",
            flush=True,
        )
        from coins import clients

        print(
            f"SADAD sandbox       {sadad.base_url}  (merchant {sadad.merchant_id}; callbacks to "
            f"{base}{clients.SADAD_CALLBACK_PATH}, webhooks to {base}{SADAD_WEBHOOK_PATH})",
            flush=True,
        )
        print(f"Expo push stand-in  {expo.url}  (what was pushed: {expo.url}/_sent)", flush=True)
        print(
            f"Triggers            {', '.join(name for name, _ in document_triggers())} on the "
            f"{os.environ.get('COINS_DATABASE', 'guild-coins')} database; escrow timers in-process, "
            f"review window {os.environ.get('ESCROW_REVIEW_WINDOW_SECONDS', '259200')} s",
            flush=True,
        )
        for pattern, name in gateway.rewrites():
            print(f"  {base}{pattern.pattern.strip('^$').replace(chr(92), '').replace('[^/]*', '{id}')}  ->  {name}", flush=True)
        print(f"Functions           {base}/<function name>: {', '.join(gateway.function_names())}", flush=True)
        print(f"Console             {base}/admin/  (sign in locally with any uid, admin ticked)", flush=True)
        print("Token               make token uid=alice [admin=1]", flush=True)
        print(f"Scheduler calls     -H 'X-Local-Service-Secret: {os.environ['LOCAL_SERVICE_SECRET']}'", flush=True)
        print("ready", flush=True)
        stop.wait()
    finally:
        if server is not None:
            server.shutdown()
        if sandbox is not None:
            sandbox.stop()
        if sadad is not None:
            sadad.stop()
        if queue is not None:
            queue.stop()
        if chain is not None:
            chain.stop()
        if expo is not None:
            expo.stop()
        if emulator is not None:
            emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="GUILD Coins local stack")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    parser.add_argument("--firestore-port", type=int, default=int(os.environ.get("FIRESTORE_PORT", "8080")))
    parser.add_argument("--fatora-port", type=int, default=int(os.environ.get("FATORA_PORT", "5002")))
    parser.add_argument("--sadad-port", type=int, default=int(os.environ.get("SADAD_PORT", "5004")))
    parser.add_argument("--expo-port", type=int, default=int(os.environ.get("EXPO_PORT", "5003")))
    parser.add_argument("--firestore", help="use a running emulator at HOST:PORT instead of starting one")
    args = parser.parse_args()
    try:
        serve(args.port, args.firestore, args.firestore_port, args.fatora_port, args.sadad_port, args.expo_port)
    except EmulatorNotFound as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    # Everything the stack started is stopped. Requests that were in flight may still be
    # retrying against the emulator that is gone, and a client library's exit hooks can
    # wait for them; nothing of that is worth keeping the process alive for.
    print("stopped", flush=True)
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
