"""Measures what the Firestore emulator delivers for document triggers on the named coins
database: how many events, which headers, whether (default) leaks in, ms per event.

    .venv/bin/python -m local.measure_trigger
"""
import sys, threading, time
from pathlib import Path; ROOT = Path(__file__).resolve().parent.parent; sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]
from http.server import BaseHTTPRequestHandler, HTTPServer
from local.emulator import FirestoreEmulator, free_port
got=[]
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body=self.rfile.read(int(self.headers.get("Content-Length",0)))
        got.append(({k:v for k,v in self.headers.items() if k.lower().startswith("ce-")}, self.path, len(body), time.monotonic()))
        self.send_response(200); self.end_headers()
    def log_message(self,*a): pass
port=free_port(); srv=HTTPServer(("127.0.0.1",port),H); threading.Thread(target=srv.serve_forever,daemon=True).start()
with FirestoreEmulator(functions_emulator=f"127.0.0.1:{port}") as emu:
    import os; os.environ["FIRESTORE_EMULATOR_HOST"]=emu.address
    emu.register_trigger("ledger_on_create","google.cloud.firestore.document.v1.created","ledger/{entryId}",database="guild-coins")
    from google.cloud import firestore
    coins=firestore.Client(project="demo-guild",database="guild-coins"); app=firestore.Client(project="demo-guild")
    t=time.monotonic()
    for i in range(200): coins.document(f"ledger/e{i}").set({"i":i})
    app.document("ledger/d1").set({"x":1})
    @firestore.transactional
    def tx(t): t.set(coins.document("ledger/tx1"),{"x":1})
    tx(coins.transaction())
    time.sleep(3)
    print("deliveries", len(got), "expected 201 (200 + 1 in a transaction, 0 from (default))")
    print(got[0][0]); print(got[0][1])
    names={h.get("ce-document") or h.get("Ce-Document") for h,_,_,_ in got}
    print("from (default):", any("d1" in (n or "") for n in names), "tx delivered:", any("tx1" in (n or "") for n in names))
    print("ms per event", round((got[-1][3]-t)/len(got)*1000,1))
