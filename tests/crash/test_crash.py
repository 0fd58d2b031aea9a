"""The crash tier: the functions process SIGKILLed twice in the middle of a concurrent
mixed workload and restarted on the same port, while its emulator (started here, with
the triggers registered) keeps the data and drops every event sent while nobody listens.
Every request that got no answer is retried with its own key, as the app does; then the
scheduled jobs run as Cloud Scheduler runs them.

Afterwards: value is conserved (computed from what the API says, not from our replay),
every answered keyed request replays identically, nothing answered 500, reconciliation
is ok with nothing pending, every escrow is on its app job as it is now, every escrow
submitted longer ago than its review window is released, and every notification the
outbox asks for was written, once."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
from google.cloud.firestore_v1.base_query import FieldFilter

from coins import catalog
from coins.registry import DOCUMENT_CREATED
from local.client import Answer, call
from local.emulator import PROJECT_ID, FirestoreEmulator, free_port
from local.stack import document_triggers
from tests.conftest import ROOT
from tests.factories import BANK
from tests.stack import start_stack, stop_stack

PAIRS = 8  # clients, each paying one freelancer for four jobs
REQUESTS_PER_PAIR = 20  # what Workload.pair sends
PURCHASES_PER_CLIENT = 2
REVIEW_WINDOW_SECONDS = 20
REPAIR_AFTER_SECONDS = 3
SECRET = "crash-tier-service-secret"
ADMIN = "crash-ops"
SERVICE = {"X-Local-Service-Secret": SECRET}
# A request is retried until it is answered: through both restarts, a key whose owner
# died with the process (free again after QUEUED_CLAIM_LEASE_SECONDS), and the locks of
# a transaction the process died in the middle of, which the emulator keeps until it
# expires that transaction (measured: about 60 s, and requests on those documents wait).
ANSWER_DEADLINE_SECONDS = 180
QAR = catalog.DIRHAMS_PER_QAR


class Stack:
    """The functions process (`local.stack --firestore`) on one port, over an emulator
    that outlives it."""

    def __init__(self, emulator: FirestoreEmulator, port: int) -> None:
        self.emulator, self.port, self.fatora_port = emulator, port, free_port()
        self.env = {
            "ESCROW_REVIEW_WINDOW_SECONDS": str(REVIEW_WINDOW_SECONDS),
            "EFFECTS_REPAIR_AFTER_SECONDS": str(REPAIR_AFTER_SECONDS),
            "OUTBOX_REPAIR_AFTER_SECONDS": str(REPAIR_AFTER_SECONDS),
            "LOCAL_SERVICE_SECRET": SECRET,
            "ADMIN_UIDS": ADMIN,
            # The same SADAD merchant across restarts, as in production.
            "SADAD_MERCHANT_ID": "7000001",
            "SADAD_SECRET_KEY": uuid.uuid4().hex,
        }
        self.process = None
        self.kills = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process, _ = start_stack(
            "--port", str(self.port), "--firestore", self.emulator.address, "--fatora-port", str(self.fatora_port), env=self.env
        )

    def kill_and_restart(self, down_seconds: float) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.kills += 1
        time.sleep(down_seconds)  # events the emulator sends meanwhile are lost
        self.start()


@dataclass
class Sent:
    method: str
    path: str
    uid: str
    admin: bool
    body: dict | None
    key: str
    answer: Answer
    lost: bool  # some attempt got no answer
    seconds: float  # from the first attempt to the answer


class Workload:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.sent: list[Sent] = []
        self._lock = threading.Lock()

    @property
    def answered(self) -> int:
        with self._lock:
            return len(self.sent)

    def send(
        self,
        method: str,
        path: str,
        uid: str,
        body: dict | None = None,
        *,
        admin: bool = False,
        keyed: bool = True,
        expect: int = 200,
    ) -> Answer:
        """Sends until answered, with its own key: a lost answer, a 503 or a key still in
        progress (its owner died with the process) is retried with the same key."""
        key = uuid.uuid4().hex if keyed else ""
        lost = False
        started = time.monotonic()
        deadline = started + ANSWER_DEADLINE_SECONDS
        while True:
            answer = call(self.stack.base, method, path, uid, body, key=key, admin=admin, timeout=30)
            lost |= answer.status in ("no answer", "timeout")
            retry = answer.status in ("no answer", "timeout", 503) or (
                answer.status == 409 and answer.json()["error"]["code"] == "request_in_progress"
            )
            if not retry:
                break
            assert time.monotonic() < deadline, f"{method} {path} never answered"
            time.sleep(random.uniform(0.1, 0.4))
        with self._lock:
            self.sent.append(Sent(method, path, uid, admin, body, key, answer, lost, time.monotonic() - started))
        assert answer.status != 500, answer.text
        if answer.status != expect:
            # A step without a key that was done before its answer was lost finds it done.
            assert not keyed and lost and answer.status == 409, f"{method} {path}: {answer.status} {answer.text}"
        return answer

    def pair(self, number: int, jobs) -> None:
        """One client and freelancer through everything the tier exercises."""
        client, freelancer = f"crash-client-{number}", f"crash-free-{number}"
        send = self.send
        send(
            "POST",
            "/api/admin/coins/adjust-balance",
            ADMIN,
            {"user_id": client, "coins": {"GRC": 1, "GPC": 3}, "reason": "crash tier"},
            admin=True,
        )
        send("POST", f"/api/admin/coins/kyc/{freelancer}", ADMIN, {"status": "verified"}, admin=True, keyed=False)
        for _ in range(PURCHASES_PER_CLIENT):  # SADAD checkouts, retried through the kills
            purchase = {"pack_id": "plus", "gateway": "sadad", "email": "c@example.com", "mobile_no": "97450000000"}
            send("POST", "/api/coins/purchase", client, purchase, expect=201)
        with ThreadPoolExecutor(4) as pool:  # four milestones funded at once
            funded = list(
                pool.map(
                    lambda job_id: send(
                        "POST", "/api/coins/job-payment", client, {"job_id": job_id, "amount_dirhams": 100 * QAR}, expect=201
                    ),
                    jobs,
                )
            )
        e1, e2, e3, e4 = (answer.json()["id"] for answer in funded)
        escrow = "/api/coins/escrow/"
        send("POST", f"{escrow}{e1}/submit", freelancer, {"note": "done"}, keyed=False)
        send("POST", f"{escrow}{e1}/release", client, {})
        send("POST", f"{escrow}{e2}/release", client, {"amount_dirhams": 50 * QAR})
        send("POST", f"{escrow}{e2}/submit", freelancer, {}, keyed=False)  # left to its review window
        send("POST", f"{escrow}{e3}/request-refund", client, {"reason": "not needed"}, keyed=False)
        send("POST", f"{escrow}{e3}/refund", freelancer, {})
        send("POST", f"{escrow}{e4}/request-refund", client, {"reason": "late"}, keyed=False)
        send("POST", f"{escrow}{e4}/dispute", freelancer, {"reason": "it was delivered"}, keyed=False)
        send("POST", f"/api/admin/coins/escrow/{e4}/resolve", ADMIN, {"freelancer_dirhams": 50 * QAR, "note": "half"}, admin=True)
        withdrawal = send("POST", "/api/coins/withdrawal", freelancer, {"amount_dirhams": 50 * QAR, **BANK}, expect=201).json()[
            "id"
        ]
        send("POST", f"/api/coins/withdrawal/{withdrawal}/approve", ADMIN, {}, admin=True)
        if number % 2:
            send("POST", f"/api/coins/withdrawal/{withdrawal}/reject", ADMIN, {"reason": "name mismatch"}, admin=True)
        else:
            send("POST", f"/api/coins/withdrawal/{withdrawal}/paid", ADMIN, {"payment_reference": f"T-{number}"}, admin=True)


def app_client(address: str, database: str):
    """A Firestore client of this tier's emulator (the suite's own may be configured too)."""
    from google.cloud import firestore

    saved = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = address
    try:
        return firestore.Client(project=PROJECT_ID, database=database)
    finally:
        if saved is None:
            del os.environ["FIRESTORE_EMULATOR_HOST"]
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = saved


@pytest.fixture(scope="module")
def crashed():
    """The workload with two kills; what the tier checks afterwards."""
    from local.jobs import job_document

    port = free_port()
    with FirestoreEmulator(rules_path=ROOT / "firestore.rules", functions_emulator=f"127.0.0.1:{port}") as emulator:
        for name, pattern in document_triggers():
            emulator.register_trigger(name, DOCUMENT_CREATED, pattern, database="guild-coins")
        app_db, coins_db = app_client(emulator.address, "(default)"), app_client(emulator.address, "guild-coins")
        now = datetime.now(timezone.utc)
        jobs = {number: [f"crash-job-{number}-{m}" for m in range(4)] for number in range(PAIRS)}
        for number, job_ids in jobs.items():
            for job_id in job_ids:
                app_db.collection("jobs").document(job_id).set(
                    job_document(job_id, f"crash-client-{number}", f"crash-free-{number}", now)
                )
        stack = Stack(emulator, port)
        stack.start()
        workload = Workload(stack)
        requests_total = PAIRS * REQUESTS_PER_PAIR
        finished = threading.Event()

        def killer() -> None:
            for fraction in (0.25, 0.6):
                while workload.answered < fraction * requests_total:
                    if finished.wait(0.02):
                        return
                stack.kill_and_restart(down_seconds=1.0)

        killing = threading.Thread(target=killer)
        started = time.monotonic()
        killing.start()
        try:
            with ThreadPoolExecutor(PAIRS) as pool:
                list(pool.map(lambda number: workload.pair(number, jobs[number]), range(PAIRS)))
        finally:
            finished.set()
            killing.join()

        burst_seconds = time.monotonic() - started
        # What Cloud Scheduler does, after the review windows have passed.
        time.sleep(REVIEW_WINDOW_SECONDS + 1)
        swept = call(stack.base, "POST", "/escrows_sweep", headers=SERVICE, key="")
        assert swept.status == 200, swept.text
        healed = {"effects": 0, "outbox": 0}
        deadline = time.monotonic() + 60
        while True:
            time.sleep(REPAIR_AFTER_SECONDS + 0.5)
            repaired = call(stack.base, "POST", "/coins_repair", headers=SERVICE, key="")
            assert repaired.status == 200, repaired.text
            for kind in healed:
                healed[kind] += repaired.json()[kind]["repaired"]
            report = call(stack.base, "GET", "/api/admin/coins/reconciliation", ADMIN, admin=True).json()
            if report["pending_effects"]["count"] == 0 and report["pending_outbox"]["count"] == 0:
                break
            assert time.monotonic() < deadline, report
        yield {
            "stack": stack,
            "workload": workload,
            "report": report,
            "healed": healed,
            "jobs": jobs,
            "app_db": app_db,
            "coins_db": coins_db,
            "burst_seconds": burst_seconds,
        }
        stop_stack(stack.process)


def test_the_process_was_killed_twice_and_requests_were_lost_and_retried(crashed):
    workload = crashed["workload"]
    assert crashed["stack"].kills == 2
    lost = sum(sent.lost for sent in workload.sent)
    print(
        f"crash tier: {len(workload.sent)} requests in {crashed['burst_seconds']:.1f} s, {lost} lost to the kills and retried; "
        f"healed by the repair: {crashed['healed']['effects']} ledger effects, {crashed['healed']['outbox']} outbox events"
    )
    for sent in sorted(workload.sent, key=lambda sent: -sent.seconds)[:5]:
        print(f"  slowest: {sent.method} {sent.path} {sent.seconds:.1f} s, lost {sent.lost}, {sent.answer.status}")
    assert len(workload.sent) == PAIRS * REQUESTS_PER_PAIR
    assert lost > 0, "the kills landed mid-burst"


def test_nothing_answered_500_and_every_answered_keyed_request_replays_identically(crashed):
    stack, workload = crashed["stack"], crashed["workload"]
    assert all(sent.answer.status != 500 for sent in workload.sent)
    for sent in workload.sent:
        if sent.key:
            again = call(stack.base, sent.method, sent.path, sent.uid, sent.body, key=sent.key, admin=sent.admin)
            assert (again.status, again.text) == (sent.answer.status, sent.answer.text), sent.path


def test_reconciliation_is_ok_with_nothing_pending(crashed):
    report = crashed["report"]
    assert report["ok"], report["problems"]
    assert report["pending_effects"]["count"] == 0 and report["pending_outbox"]["count"] == 0


def test_every_purchase_request_opened_one_purchase_counted_once_whatever_the_kills(crashed):
    """The purchase id is the key's: a retry after a kill finds the purchase its first
    attempt wrote, so no orphan is left counted against the buyer's limits."""
    for number in range(PAIRS):
        client = f"crash-client-{number}"
        sent = [s for s in crashed["workload"].sent if s.path == "/api/coins/purchase" and s.uid == client]
        answered = {s.answer.json()["id"] for s in sent}
        mine = FieldFilter("user_id", "==", client)
        stored = {d.id for d in crashed["coins_db"].collection("purchases").where(filter=mine).stream()}
        counted = [
            c["ref"] for c in (crashed["coins_db"].collection("limits").document(client).get().to_dict() or {})["purchase"]
        ]
        assert len(sent) == len(answered) == PURCHASES_PER_CLIENT and stored == answered
        assert sorted(counted) == sorted(answered), "each counted once"


def test_value_is_conserved_by_what_the_api_says(crashed):
    """Issued by adjustments = in wallets + held by escrows + held by withdrawals + fees
    earned + paid out, every figure read from the API."""
    stack, workload = crashed["stack"], crashed["workload"]
    base = stack.base
    issued = sum(s.answer.json()["amount_dirhams"] for s in workload.sent if s.path.endswith("adjust-balance"))
    users = {s.uid for s in workload.sent if not s.admin} | {f"crash-free-{n}" for n in range(PAIRS)}
    in_wallets = sum(call(base, "GET", "/api/coins/wallet", uid).json()["balance_dirhams"] for uid in users)
    escrow_ids = {s.answer.json()["id"] for s in workload.sent if s.path == "/api/coins/job-payment"}
    escrows = [call(base, "GET", f"/api/coins/escrow/{i}", ADMIN, admin=True).json() for i in escrow_ids]
    withdrawal_ids = {s.answer.json()["id"] for s in workload.sent if s.path == "/api/coins/withdrawal"}
    withdrawals = [call(base, "GET", f"/api/coins/withdrawal/{i}", ADMIN, admin=True).json() for i in withdrawal_ids]
    held_by_escrows = sum(e["held_dirhams"] for e in escrows)
    fees = sum(e["fee_dirhams"] for e in escrows)
    held_for_withdrawals = sum(w["amount_dirhams"] for w in withdrawals if w["status"] in ("requested", "approved"))
    paid_out = sum(w["amount_dirhams"] for w in withdrawals if w["status"] == "paid")
    assert issued == PAIRS * 800 * QAR
    assert issued == in_wallets + held_by_escrows + held_for_withdrawals + fees + paid_out
    assert held_by_escrows == 0 and held_for_withdrawals == 0, "everything reached an end"


def test_every_escrow_is_on_its_app_job_and_every_submitted_one_was_released(crashed):
    stack = crashed["stack"]
    for job_ids in crashed["jobs"].values():
        for job_id in job_ids:
            job = crashed["app_db"].collection("jobs").document(job_id).get().to_dict()
            assert "escrowId" in job, f"the funded escrow of {job_id} is on the job"
            escrow = call(stack.base, "GET", f"/api/coins/escrow/{job['escrowId']}", ADMIN, admin=True).json()
            assert escrow["job_id"] == job_id
            assert job["coinEscrow"]["status"] == escrow["status"], "as it is now"
            assert job["coinEscrows"] == {escrow["id"]: {**job["coinEscrow"], "escrowId": escrow["id"]}}
            assert escrow["status"] in ("released", "refunded", "split")
            if escrow["submitted_at"] and escrow["status"] != "refunded" and not escrow.get("dispute"):
                assert escrow["status"] == "released"


def test_every_notification_the_outbox_asks_for_was_written_once(crashed):
    from coins import notices

    expected = set()
    for snapshot in crashed["coins_db"].collection("outbox").stream():
        event = snapshot.to_dict()
        assert event.get("delivered_at"), f"outbox event {snapshot.id} delivered"
        for notice in notices.for_event(event, admins=(ADMIN,), link_base="guild://"):
            expected.add(f"{snapshot.id}_{notice.user_id}")
    written = [snapshot.id for snapshot in crashed["app_db"].collection("notifications").stream()]
    assert len(written) == len(set(written))
    assert set(written) == expected
