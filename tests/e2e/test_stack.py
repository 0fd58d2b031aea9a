"""The local stack over real HTTP, as a person with curl would use it: start it, mint a
token, adjust a balance as admin, read the wallet and transactions, check a balance."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from local.client import call
from local.emulator import free_port
from local.tokens import mint
from tests.conftest import ROOT
from tests.money import wait_for
from tests.stack import start_stack, stop_stack


@pytest.fixture
def stack(emulator):
    port = free_port()
    process, lines = start_stack("--port", str(port), "--firestore", emulator.address, "--fatora-port", str(free_port()))
    yield f"http://127.0.0.1:{port}", lines
    assert stop_stack(process) == 0


def test_a_person_can_fund_a_wallet_and_read_it_back_over_http(stack):
    base, lines = stack
    assert any("/api/coins/wallet" in line for line in lines), "the URLs are printed"
    catalog = call(base, "GET", "/api/coins/catalog")
    assert catalog.status == 200 and len(catalog.json()["packs"]) == 6

    body = {"user_id": "alice", "coins": {"GRC": 1, "GDC": 3}, "reason": "welcome"}
    adjust = call(base, "POST", "/api/admin/coins/adjust-balance", "ops", body, key="e2e-1", admin=True)
    assert adjust.status == 200, adjust.text

    wallet = call(base, "GET", "/api/coins/wallet", "alice").json()
    assert wallet["coins"] == {"GDC": 3, "GRC": 1}
    assert wallet["balance_dirhams"] == 110_000

    history = call(base, "GET", "/api/coins/transactions", "alice").json()
    assert [(i["type"], i["amount_dirhams"]) for i in history["items"]] == [("admin_adjust", 110_000)]

    check = call(base, "POST", "/api/coins/check-balance", "alice", {"amount_dirhams": 60_000}, key="")
    assert check.json()["pay_with"] == {"GDC": 3}

    # Every function is also served under its own name.
    assert call(base, "GET", "/coins_wallet", "alice").json()["balance_dirhams"] == 110_000
    assert call(base, "GET", "/api/coins/nowhere").status == 404


def test_a_person_can_buy_coins_through_the_sandbox_checkout(stack):
    """The README's sequence: a token, a purchase with curl, the checkout page in a
    browser, the Pay button, and Fatora sends the browser back to our return endpoint,
    which credits the wallet before handing the browser to the app (webhooks off)."""
    base, lines = stack
    sandbox = next(line.split()[2] for line in lines if line.startswith("Fatora sandbox"))
    assert requests.post(f"{sandbox}/_sandbox/faults", json={"webhooks_enabled": False}, timeout=30).status_code == 200
    alice = {"Authorization": f"Bearer {mint('buyer')}"}
    created = requests.post(
        f"{base}/api/coins/purchase",
        json={"pack_id": "elite"},
        headers={**alice, "Idempotency-Key": "e2e-buy-1"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    purchase = created.json()
    page = requests.get(purchase["checkout_url"], timeout=30)
    assert "Pay 550.00 QAR" in page.text
    action = page.text.split('<form method="post" action="')[1].split('"')[0]
    paid = requests.post(purchase["checkout_url"].split("/checkout/")[0] + action, allow_redirects=False, timeout=30)
    assert paid.status_code == 303 and paid.headers["Location"].startswith(f"{base}/api/coins/purchase/return?")
    back = requests.get(paid.headers["Location"], allow_redirects=False, timeout=30)
    assert (back.status_code, back.headers["Location"]) == (303, f"guild://coins/purchase/{purchase['id']}?status=paid")
    wallet = requests.get(f"{base}/api/coins/wallet", headers=alice, timeout=30).json()
    assert wallet["coins"] == {"GRC": 1}, "credited by the return alone"
    status = requests.get(f"{base}/api/coins/purchase/{purchase['id']}", headers=alice, timeout=30).json()["status"]
    assert status == "paid"


def test_a_person_buys_coins_through_the_sadad_sandbox_both_ways_and_is_refunded(stack):
    """As on `make dev`: the signed form posted from a page (the app's WebView) and our
    checkout page (iOS); SADAD's callback settles each once; a payment left In Progress
    is issued once it settles; a refund takes the coins back and waits for the money to
    go back by hand."""
    from local.browser import walk

    base, lines = stack
    sandbox = next(line.split()[2] for line in lines if line.startswith("SADAD sandbox"))
    buyer = {"Authorization": f"Bearer {mint('sadad-buyer')}"}
    body = {"pack_id": "plus", "gateway": "sadad", "email": "b@example.com", "mobile_no": "97450000000"}

    def buy(key):
        created = requests.post(f"{base}/api/coins/purchase", json=body, headers={**buyer, "Idempotency-Key": key}, timeout=30)
        assert created.status_code == 201, created.text
        return created.json()

    def status(purchase):
        return requests.get(f"{base}/api/coins/purchase/{purchase['id']}", headers=buyer, timeout=30).json()["status"]

    webview, safari = buy("e2e-sadad-1"), buy("e2e-sadad-2")
    assert walk(None, form=webview["checkout"]) == f"guild://coins/purchase/{webview['id']}?status=paid"
    assert walk(safari["checkout_url"]) == f"guild://coins/purchase/{safari['id']}?status=paid"
    assert requests.post(f"{sandbox}/_sandbox/faults", json={"in_progress": True}, timeout=30).status_code == 200
    later = buy("e2e-sadad-3")
    assert walk(later["checkout_url"]) == f"guild://coins/purchase/{later['id']}?status=pending"
    assert status(later) == "pending"
    settled = requests.post(f"{sandbox}/_sandbox/orders/{later['id']}/settle", json={"status": 3}, timeout=30)
    assert settled.status_code == 200
    wait_for(lambda: status(later) == "paid")
    wallet = requests.get(f"{base}/api/coins/wallet", headers=buyer, timeout=30).json()
    assert wallet["coins"] == {"GGC": 3}, "each paid purchase issued once"
    admin = {"Authorization": f"Bearer {mint('ops', admin=True)}", "Idempotency-Key": "e2e-sadad-refund"}
    refunded = requests.post(
        f"{base}/api/admin/coins/purchase/{safari['id']}/refund", json={"reason": "twice"}, headers=admin, timeout=30
    )
    assert refunded.status_code == 200 and refunded.json()["refund"]["status"] == "manual", refunded.text
    assert requests.get(f"{base}/api/coins/wallet", headers=buyer, timeout=30).json()["coins"] == {"GGC": 2}


def test_a_submitted_milestone_nobody_acts_on_is_released_when_the_review_window_ends():
    """The wiring: fund, submit, then nobody acts. The emulator delivers the submit's
    outbox event to its trigger, which schedules the review timer on the local queue;
    the queue calls the timer target when the (shortened) window ends; the freelancer is
    paid and told so where the app looks. Nothing moved before the submit."""
    port, firestore_port = free_port(), free_port()
    process, lines = start_stack(
        "--port",
        str(port),
        "--firestore-port",
        str(firestore_port),
        "--fatora-port",
        str(free_port()),
        env={"ESCROW_REVIEW_WINDOW_SECONDS": "2"},
    )
    try:
        # `make job id=job-e2e client=client-e2e freelancer=freelancer-e2e`, as the README does.
        subprocess.run(
            [
                sys.executable,
                "-m",
                "local.jobs",
                "job-e2e",
                "client-e2e",
                "freelancer-e2e",
                "--firestore",
                f"127.0.0.1:{firestore_port}",
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        base = f"http://127.0.0.1:{port}"
        fund = {"user_id": "client-e2e", "coins": {"GPC": 1}, "reason": "e2e"}
        assert call(base, "POST", "/api/admin/coins/adjust-balance", "ops", fund, key="fund", admin=True).status == 200
        pay = {"job_id": "job-e2e", "freelancer_id": "freelancer-e2e", "amount_dirhams": 10_000}
        locked = call(base, "POST", "/api/coins/job-payment", "client-e2e", pay, key="pay")
        assert locked.status == 201, locked.text
        escrow_id = locked.json()["id"]

        def status() -> str:
            return call(base, "GET", f"/api/coins/escrow/{escrow_id}", "client-e2e").json()["status"]

        time.sleep(3)  # longer than the review window: nothing is timed at funding
        assert status() == "funded"
        submitted = call(base, "POST", f"/api/coins/escrow/{escrow_id}/submit", "freelancer-e2e", {"note": "done"}, key="")
        assert submitted.status == 200 and submitted.json()["status"] == "submitted", submitted.text
        wait_for(lambda: status() == "released", timeout_seconds=90)
        wallet = call(base, "GET", "/api/coins/wallet", "freelancer-e2e").json()
        assert wallet["balance_dirhams"] == 9_000

        def notified():
            stats = call(base, "GET", "/api/coins/wallet", "freelancer-e2e").json()["stats"]
            return stats.get("escrow_release") == {"count": 1, "amount_dirhams": 9000}

        wait_for(notified, timeout_seconds=60)

        # The outbox trigger told the freelancer where the app looks, and pushed it.
        from unittest import mock

        from google.cloud import firestore

        with mock.patch.dict(os.environ, {"FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{firestore_port}"}):
            app = firestore.Client(project="demo-guild", database="(default)")  # this stack's emulator

        def released_note():
            notes = app.collection("notifications").where(filter=firestore.FieldFilter("userId", "==", "freelancer-e2e")).stream()
            return [n.to_dict() for n in notes if n.get("title") == "Payment released"]

        [note] = wait_for(released_note, timeout_seconds=60)
        assert note["metadata"]["amount"] == 90
        expo = next(line.split()[3] for line in lines if line.startswith("Expo push stand-in"))
        pushed = wait_for(
            lambda: [
                m
                for m in requests.get(f"{expo}/_sent", timeout=30).json()
                if m["to"] == "ExponentPushToken[local-freelancer-e2e]" and m["title"] == "Payment released"
            ]
        )
        assert pushed[0]["body"] == note["description"]
        job = app.document("jobs/job-e2e").get().to_dict()
        assert job["coinEscrow"] == {"status": "released", "milestone": "1", "amount": 100, "released": 100, "refunded": 0}
        assert job["escrowId"] == escrow_id
    finally:
        assert stop_stack(process) == 0


def test_the_stack_starts_its_own_emulator_and_leaves_nothing_behind(tmp_path):
    port, firestore_port = free_port(), free_port()
    process, lines = start_stack("--port", str(port), "--firestore-port", str(firestore_port), "--fatora-port", str(free_port()))
    assert any(f"127.0.0.1:{firestore_port}" in line for line in lines)
    assert requests.get(f"http://127.0.0.1:{firestore_port}/", timeout=30).text.strip() == "Ok"
    assert requests.get(f"http://127.0.0.1:{port}/api/coins/catalog", timeout=30).status_code == 200
    assert stop_stack(process) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{firestore_port}/", timeout=5)
    orphans = subprocess.run(["pgrep", "-f", f"--port={firestore_port}"], capture_output=True, text=True).stdout
    assert orphans.strip() == "", "no java left running"


def test_a_missing_emulator_is_reported_with_how_to_get_it():
    env = {**os.environ, "PATH": "/nonexistent"}
    result = subprocess.run(
        [sys.executable, "-m", "local.stack", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "java was not found" in result.stderr
    assert "google-cloud-cli-firestore-emulator" in result.stderr


def emulator_is_gone(firestore_port: int) -> bool:
    try:
        requests.get(f"http://127.0.0.1:{firestore_port}/", timeout=1)
        return False
    except requests.ConnectionError:
        pass
    found = subprocess.run(["pgrep", "-f", f"--port={firestore_port}"], capture_output=True, text=True).stdout
    return found.strip() == ""


def start_loaded_stack():
    """A stack with its own emulator, and four threads posting adjustments to it."""
    port, firestore_port = free_port(), free_port()
    process, _ = start_stack("--port", str(port), "--firestore-port", str(firestore_port), "--fatora-port", str(free_port()))
    admin = {"Authorization": f"Bearer {mint('ops', admin=True)}"}
    stop = threading.Event()
    answered = []

    def load(worker):
        n = 0
        while not stop.is_set():
            n += 1
            try:
                answered.append(
                    requests.post(
                        f"http://127.0.0.1:{port}/api/admin/coins/adjust-balance",
                        json={"user_id": f"load{worker}", "coins": {"GBC": 1}, "reason": "load"},
                        headers={**admin, "Idempotency-Key": f"load-{worker}-{n}"},
                        timeout=5,
                    ).status_code
                )
            except requests.RequestException:
                answered.append("gone")

    threads = [threading.Thread(target=load, args=(w,), daemon=True) for w in range(4)]
    for thread in threads:
        thread.start()
    wait_for(lambda: answered.count(200) >= 20, timeout_seconds=90)
    return process, firestore_port, stop


def test_a_stack_stopped_with_sigterm_under_load_leaves_no_emulator():
    process, firestore_port, stop = start_loaded_stack()
    try:
        assert stop_stack(process) == 0
        wait_for(lambda: emulator_is_gone(firestore_port), timeout_seconds=60)
    finally:
        stop.set()


def test_a_stack_killed_with_sigkill_takes_its_emulator_with_it():
    """SIGKILL leaves the stack no chance to stop anything: the emulator's watchdog sees
    its parent die and ends the emulator's process group."""
    process, firestore_port, stop = start_loaded_stack()
    try:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        wait_for(lambda: emulator_is_gone(firestore_port), timeout_seconds=60)
    finally:
        stop.set()
