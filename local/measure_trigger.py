"""Measures what the Firestore emulator delivers for document triggers on the named coins
database: how many events, which headers, whether (default) leaks in, ms per event.

    .venv/bin/python -m local.measure_trigger
"""

import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

from coins.registry import DOCUMENT_CREATED  # noqa: E402 - after the path is set
from local.emulator import PROJECT_ID, FirestoreEmulator, free_port  # noqa: E402

EVENTS = 200
received: list[tuple[dict[str, str], str, int, float]] = []


class Receiver(BaseHTTPRequestHandler):
    """Where the emulator delivers: records each event's CloudEvent headers, path, size, time."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = {k: v for k, v in self.headers.items() if k.lower().startswith("ce-")}
        received.append((headers, self.path, len(body), time.monotonic()))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def main() -> None:
    from google.cloud import firestore

    port = free_port()
    server = HTTPServer(("127.0.0.1", port), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with FirestoreEmulator(functions_emulator=f"127.0.0.1:{port}") as emulator:
        os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.address
        emulator.register_trigger("ledger_on_create", DOCUMENT_CREATED, "ledger/{entryId}", database="guild-coins")
        coins = firestore.Client(project=PROJECT_ID, database="guild-coins")
        app = firestore.Client(project=PROJECT_ID)
        started = time.monotonic()
        for i in range(EVENTS):
            coins.document(f"ledger/e{i}").set({"i": i})
        app.document("ledger/d1").set({"x": 1})

        @firestore.transactional
        def in_a_transaction(transaction):
            transaction.set(coins.document("ledger/tx1"), {"x": 1})

        in_a_transaction(coins.transaction())
        time.sleep(3)
    print("deliveries", len(received), f"expected {EVENTS + 1} ({EVENTS} + 1 in a transaction, 0 from (default))")
    print(received[0][0])
    print(received[0][1])
    names = {headers.get("ce-document") or headers.get("Ce-Document") or "" for headers, _, _, _ in received}
    print("from (default):", any("d1" in name for name in names), "tx delivered:", any("tx1" in name for name in names))
    print("ms per event", round((received[-1][3] - started) / len(received) * 1000, 1))


if __name__ == "__main__":
    main()
