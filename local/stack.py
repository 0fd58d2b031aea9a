"""The local stack in the foreground: the Firestore emulator (with firestore.rules, and
document events pointed at this server) and every function on one port.

    python -m local.stack [--port 5000] [--firestore-port 8080] [--firestore HOST:PORT]

Prints the URLs, then `ready`. Ctrl-C or SIGTERM stops everything it started.
Later capabilities (the ledger trigger, the task dispatcher, the Fatora sandbox) join
here as more `Service`s.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from local.emulator import PROJECT_ID, EmulatorNotFound, FirestoreEmulator

ROOT = Path(__file__).resolve().parent.parent
# firebase-admin only needs the variable to accept the emulator's unsigned tokens;
# nothing has to listen there.
AUTH_EMULATOR_HOST = "127.0.0.1:9099"


def configure_environment(firestore_address: str) -> None:
    """What the functions read, in development: the emulator, the project, local tokens."""
    os.environ["FIRESTORE_EMULATOR_HOST"] = firestore_address
    os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = AUTH_EMULATOR_HOST
    os.environ["GOOGLE_CLOUD_PROJECT"] = PROJECT_ID
    functions_dir = str(ROOT / "functions")
    if functions_dir not in sys.path:
        sys.path.insert(0, functions_dir)


def serve(port: int, firestore_address: str | None, firestore_port: int) -> None:
    import logging

    from werkzeug.serving import make_server

    # Each function logs one structured line per request; werkzeug's own line is noise.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    emulator = None
    if firestore_address is None:
        emulator = FirestoreEmulator(
            port=firestore_port,
            rules_path=ROOT / "firestore.rules",
            functions_emulator=f"127.0.0.1:{port}",
            log_path=ROOT / ".firestore-emulator.log",
        ).start()
        firestore_address = emulator.address
    try:
        configure_environment(firestore_address)
        from local import gateway

        app = gateway.build()
        server = make_server("127.0.0.1", port, app, threaded=True)
        stop = threading.Event()

        def shutdown(signum, frame):
            stop.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, shutdown)
        signal.signal(signal.SIGINT, shutdown)
        base = f"http://127.0.0.1:{port}"
        print(f"Firestore emulator  http://{firestore_address}", flush=True)
        for pattern, name in gateway.rewrites():
            print(f"  {base}{pattern.pattern.strip('^$').replace(chr(92), '')}  ->  {name}", flush=True)
        print(f"Functions           {base}/<function name>: {', '.join(app.apps)}", flush=True)
        print("Token               make token uid=alice [admin=1]", flush=True)
        print("ready", flush=True)
        server.serve_forever()
    finally:
        if emulator is not None:
            emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="GUILD Coins local stack")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    parser.add_argument("--firestore-port", type=int, default=int(os.environ.get("FIRESTORE_PORT", "8080")))
    parser.add_argument("--firestore", help="use a running emulator at HOST:PORT instead of starting one")
    args = parser.parse_args()
    try:
        serve(args.port, args.firestore, args.firestore_port)
    except EmulatorNotFound as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
