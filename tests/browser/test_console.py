"""An admin runs the money from the console: withdrawals approved and paid (the full
destination visible only there, a large one asked about first), a KYC rejected, a
dispute split, a queue of more than a page worked through, users listed and found, the
vault and a reconciliation; a non-admin is refused; a double click pays once; a refusal
shows the API's message and the field it names; each action says what it did. Every
result is checked through the API, not the page. The console runs under the
Content-Security-Policy firebase.json gives it (conftest fails a test it refuses anything)."""

import subprocess
import sys
import uuid

import requests
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.conftest import ROOT

IBAN = "QA58DOHB00001234567890ABCDEFG"


def fresh(prefix):
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def key():
    return uuid.uuid4().hex


def verified_user_with_withdrawal(stack, amount=10_000, coins=None):
    uid = fresh("u")
    assert (
        stack.call("POST", f"/api/admin/coins/kyc/{uid}", "seed-admin", admin=True, body={"status": "verified"}).status_code
        == 200
    )
    assert (
        stack.call(
            "POST",
            "/api/admin/coins/adjust-balance",
            "seed-admin",
            admin=True,
            key=key(),
            body={"user_id": uid, "coins": coins or {"GPC": 2}, "reason": "seed"},
        ).status_code
        == 200
    )
    created = stack.call(
        "POST",
        "/api/coins/withdrawal",
        uid,
        key=key(),
        body={"amount_dirhams": amount, "method": "bank_transfer", "destination": {"iban": IBAN, "account_name": "Alice A"}},
    )
    assert created.status_code == 201, created.text
    return uid, created.json()["id"]


def row(page, item_id):
    return page.locator(f"tr[data-id='{item_id}']")


def test_an_admin_approves_and_pays_a_withdrawal_seeing_the_full_destination_only_here(page, stack):
    uid, withdrawal_id = verified_user_with_withdrawal(stack)
    sign_in(page, stack)
    line = row(page, withdrawal_id)
    assert "DEFG" in line.inner_text() and IBAN not in line.inner_text(), "masked in the queue"
    line.get_by_role("button", name="Show destination").click()
    expect(line).to_contain_text(IBAN)
    line.get_by_role("button", name="Approve").click()
    expect(page.locator("#notice")).to_have_text(
        f"Approved {uid}'s withdrawal of 100.00 QAR: make the transfer, then mark it paid."
    )
    line.get_by_label("Transfer reference").fill("QNB-TRX-7781")
    line.get_by_role("button", name="Mark paid").click()
    page.wait_for_selector(f"tr[data-id='{withdrawal_id}']", state="detached")
    expect(page.locator("#notice")).to_have_text(f"Paid {uid} 100.00 QAR, reference QNB-TRX-7781.")
    paid = stack.call("GET", f"/api/coins/withdrawal/{withdrawal_id}", uid).json()
    assert (paid["status"], paid["payment_reference"]) == ("paid", "QNB-TRX-7781")
    assert stack.call("GET", "/api/coins/wallet", uid).json()["held_dirhams"] == 0


def test_a_double_click_on_mark_paid_pays_once(page, stack):
    uid, withdrawal_id = verified_user_with_withdrawal(stack)
    assert (
        stack.call(
            "POST", f"/api/coins/withdrawal/{withdrawal_id}/approve", "seed-admin", admin=True, key=key(), body={}
        ).status_code
        == 200
    )
    sign_in(page, stack)
    row(page, withdrawal_id).get_by_label("Transfer reference").fill("QNB-TRX-1")
    row(page, withdrawal_id).get_by_role("button", name="Mark paid").dblclick()
    page.wait_for_selector(f"tr[data-id='{withdrawal_id}']", state="detached")
    history = stack.call("GET", "/api/coins/transactions", uid).json()["items"]
    assert [h["type"] for h in history].count("withdrawal_paid") == 0, "paid coins leave the user at the hold"
    user = stack.call("GET", f"/api/admin/coins/users/{uid}", "ops", admin=True).json()
    assert [w["status"] for w in user["withdrawals"]] == ["paid"]
    reconciliation = stack.call("GET", "/api/admin/coins/reconciliation", "ops", admin=True).json()
    assert reconciliation["ok"], reconciliation["problems"]


def test_an_admin_rejects_a_kyc_with_a_note(page, stack):
    uid = fresh("k")
    submitted = stack.call(
        "POST",
        "/api/coins/kyc",
        uid,
        body={"full_name": "Khalid Example", "qid_number": "28412345678", "document_urls": ["https://uploads.example/id.jpg"]},
    )
    assert submitted.status_code == 200
    sign_in(page, stack)
    page.click("nav a[href='#kyc']")
    line = row(page, uid)
    assert (
        "28412345678" in line.inner_text()
        and line.get_by_role("link", name="document 1").get_attribute("href") == "https://uploads.example/id.jpg"
    )
    line.get_by_role("button", name="Reject").click()
    assert "Say why" in page.locator("#error").inner_text(), "a refusal is shown, nothing sent"
    line.get_by_label("Note to the user").fill("the photo is blurred")
    line.get_by_role("button", name="Reject").click()
    page.wait_for_selector(f"tr[data-id='{uid}']", state="detached")
    expect(page.locator("#notice")).to_have_text(f"Rejected {uid}'s identity documents; they are told why.")
    wallet = stack.call("GET", "/api/coins/wallet", uid).json()
    assert wallet["kyc_status"] == "rejected"


def test_an_admin_resolves_a_dispute_with_a_split(page, stack):
    client, freelancer, job = fresh("c"), fresh("f"), fresh("job")
    subprocess.run(
        [sys.executable, "-m", "local.jobs", job, client, freelancer, "--firestore", stack.firestore],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    assert (
        stack.call(
            "POST",
            "/api/admin/coins/adjust-balance",
            "seed-admin",
            admin=True,
            key=key(),
            body={"user_id": client, "coins": {"GPC": 1}, "reason": "seed"},
        ).status_code
        == 200
    )
    escrow = stack.call(
        "POST", "/api/coins/job-payment", client, key=key(), body={"job_id": job, "amount_dirhams": 10_000}
    ).json()
    disputed = stack.call(
        "POST",
        f"/api/coins/escrow/{escrow['id']}/dispute",
        client,
        body={"reason": "only half delivered", "evidence_urls": ["https://files.example/chat.png"]},
    )
    assert disputed.status_code == 200
    sign_in(page, stack)
    page.click("nav a[href='#disputes']")
    line = row(page, escrow["id"])
    assert "only half delivered" in line.inner_text()
    line.get_by_label("Freelancer's share (QAR)").fill("60")
    line.get_by_label("Note to both parties").fill("half of the work was delivered")
    line.get_by_role("button", name="Resolve").click()
    page.wait_for_selector(f"tr[data-id='{escrow['id']}']", state="detached")
    expect(page.locator("#notice")).to_have_text(
        f"Resolved the dispute on {job} · 1: 60.00 QAR to {freelancer} (before the fee), 40.00 QAR back to {client}."
    )
    resolved = stack.call("GET", f"/api/coins/escrow/{escrow['id']}", client).json()
    assert (resolved["status"], resolved["released_dirhams"], resolved["refunded_dirhams"]) == ("split", 6_000, 4_000)
    assert stack.call("GET", "/api/coins/wallet", freelancer).json()["balance_dirhams"] == 5_500
    assert stack.call("GET", "/api/coins/wallet", client).json()["balance_dirhams"] == 4_000


def test_a_sadad_refund_made_by_hand_shows_its_gateway_and_reference_and_is_recorded_in_one_click(page, stack):
    from local.browser import walk

    buyer = fresh("u")
    body = {"pack_id": "plus", "gateway": "sadad", "email": "b@example.com", "mobile_no": "97450000000"}
    purchase = stack.call("POST", "/api/coins/purchase", buyer, key=key(), body=body).json()
    assert walk(purchase["checkout_url"]).endswith("status=paid")
    refunded = stack.call(
        "POST",
        f"/api/admin/coins/purchase/{purchase['id']}/refund",
        "seed-admin",
        admin=True,
        key=key(),
        body={"reason": "twice"},
    ).json()
    reference = refunded["gateway_reference"]
    assert reference.startswith("SD") and refunded["refund"]["status"] == "manual"
    sign_in(page, stack)
    page.click("nav a[href='#purchases']")
    line = row(page, purchase["id"])
    assert "SADAD" in line.inner_text() and reference in line.inner_text()
    assert line.get_by_role("button", name="Issue").count() == 0, "nothing to issue: only the refund to record"
    line.get_by_label("Note for the record").fill("refunded in SADAD's panel")
    line.get_by_role("button", name="Refunded in SADAD").click()
    page.wait_for_selector(f"tr[data-id='{purchase['id']}']", state="detached")
    after = stack.call("GET", f"/api/coins/purchase/{purchase['id']}", buyer).json()
    assert (after["status"], after["needs_review"]) == ("refunded", False)


def test_a_non_admin_sees_the_refusal(page, stack):
    sign_in(page, stack, uid="bob", admin=False)
    page.wait_for_selector("#not-admin")
    assert "no admin claim" in page.locator("#page").inner_text()
    assert page.locator("nav").is_hidden()


def test_a_refusal_shows_the_api_s_message(page, stack):
    owner, withdrawal_id = verified_user_with_withdrawal(stack)
    sign_in(page, stack, uid=owner)  # an admin who owns the withdrawal
    row(page, withdrawal_id).get_by_role("button", name="Approve").click()
    page.wait_for_selector("#error:not([hidden])")
    assert "An admin cannot act on their own withdrawal" in page.locator("#error").inner_text()


def test_the_vault_and_a_reconciliation(page, stack):
    sign_in(page, stack)
    page.click("nav a[href='#vault']")
    page.wait_for_selector("canvas#daily")
    assert "Coins outstanding" in page.locator("#page").inner_text()
    page.get_by_role("button", name="Reconcile now").click()
    page.wait_for_selector("p.ok, p.bad")
    assert page.locator("p.ok").first.inner_text().startswith("OK")
    text = page.locator("#page").inner_text()
    assert "on a checkpoint of" in text and "events not yet delivered to the app" in text
    assert "null" not in text and "undefined" not in text
    # The full replay runs in chunks in the background; its progress shows until it is done.
    page.get_by_role("button", name="Full replay").click()
    done = page.locator("#full-replay p.ok")
    done.wait_for(timeout=60_000)
    assert " done: " in done.inner_text() and "0 problem(s)" in done.inner_text()


def test_the_accountant_downloads_a_period_of_the_ledger_as_csv(page, stack):
    import csv
    import datetime
    import io

    uid = fresh("x")
    body = {"user_id": uid, "coins": {"GBC": 2}, "reason": "seed"}
    assert (
        stack.call("POST", "/api/admin/coins/adjust-balance", "seed-admin", admin=True, key=key(), body=body).status_code == 200
    )
    sign_in(page, stack)
    page.click("nav a[href='#vault']")
    today = datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=3))).date()
    page.get_by_label("From (Asia/Qatar, included)").fill(today.isoformat())
    page.get_by_label("To (excluded)").fill((today + datetime.timedelta(days=1)).isoformat())
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    mine = [row for row in rows if row["to_account"] == f"user:{uid}"]
    assert [(row["tier"], row["count"], row["value_qar"]) for row in mine] == [("GBC", "2", "10.00")]


def test_the_user_s_page_gives_the_month_s_statement_as_csv_and_as_an_arabic_pdf(page, stack):
    import csv
    import io

    uid = fresh("s")
    body = {"user_id": uid, "coins": {"GSC": 3}, "reason": "seed"}
    assert (
        stack.call("POST", "/api/admin/coins/adjust-balance", "seed-admin", admin=True, key=key(), body=body).status_code == 200
    )
    sign_in(page, stack)
    page.goto(f"{stack.base}/admin/#users/{uid}")
    page.get_by_label("Month (Qatar time)").wait_for()
    with page.expect_download() as download:
        page.get_by_role("button", name="CSV").click()
    rows = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert [(r["type"], r["in_qar"], r["balance_qar"]) for r in rows[1:-1]] == [("admin_adjust", "30.00", "30.00")]
    assert rows[-1]["type"] == "closing_balance" and rows[-1]["balance_qar"] == "30.00"
    expect(page.locator("#notice")).to_contain_text(f"Downloaded {uid}'s statement")
    with page.expect_download() as download:
        page.get_by_role("button", name="PDF, Arabic").click()
    pdf = open(download.value.path(), "rb").read()
    assert pdf.startswith(b"%PDF-")
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    assert "30.00" in text and uid in text


def test_unusual_activity_shows_on_the_user_s_page_with_why_and_since_when(page, stack):
    uid = fresh("f")
    for _ in range(51):
        body = {"user_id": uid, "coins": {"GBC": 1}, "reason": "many"}
        assert (
            stack.call("POST", "/api/admin/coins/adjust-balance", "seed-admin", admin=True, key=key(), body=body).status_code
            == 200
        )
    sign_in(page, stack)
    page.goto(f"{stack.base}/admin/#users/{uid}")
    flag = page.locator(".signals p")
    flag.wait_for()
    assert (
        "medium" in flag.inner_text()
        and "51 ledger entries in 24 hours" in flag.inner_text()
        and "Asia/Qatar" in flag.inner_text()
    )


def test_a_user_found_by_the_beginning_of_their_uid(page, stack):
    uid, withdrawal_id = verified_user_with_withdrawal(stack)
    sign_in(page, stack)
    page.click("nav a[href='#users']")
    page.wait_for_selector("text=Recently active")
    assert page.locator(f"tr[data-id='{uid}']").count() == 1, "the newest wallets are listed"
    page.get_by_label("uid, or how it begins").fill(uid[:8])
    page.get_by_role("button", name="Search").click()
    page.wait_for_selector(f"text=Users whose uid begins with {uid[:8]}")
    row(page, uid).get_by_role("link", name=uid).click()
    page.wait_for_selector("text=Open holds")
    text = page.locator("#page").inner_text()
    assert withdrawal_id in text and "verified" in text and "100.00 QAR" in text


def test_user_ids_in_a_queue_link_to_the_user_s_page(page, stack):
    uid, withdrawal_id = verified_user_with_withdrawal(stack)
    sign_in(page, stack)
    row(page, withdrawal_id).get_by_role("link", name=uid).click()
    page.wait_for_selector("text=Open holds")
    assert page.url.endswith(f"#users/{uid}") and withdrawal_id in page.locator("#page").inner_text()


def test_a_slow_page_does_not_replace_the_one_navigated_to_since(page, stack):
    """An admin clicks on before the first page has loaded: when the withdrawals queue
    answers late, the user lookup they moved to stays."""
    held = []
    page.route("**/api/coins/withdrawals/pending*", lambda route: held.append(route))
    sign_in(page, stack)
    page.wait_for_selector("nav:not([hidden])")
    page.click("nav a[href='#users']")
    page.wait_for_selector("text=Recently active")
    assert held, "the withdrawals queue was asked for first"
    for route in held:
        route.continue_()
    page.wait_for_load_state("networkidle")
    assert page.get_by_label("uid, or how it begins").count() == 1
    assert page.locator("nav a.active").get_attribute("href") == "#users"


def test_a_queue_longer_than_a_page_is_worked_through_to_its_101st(page, stack):
    before = stack.call("GET", "/api/admin/coins/queues", "ops", admin=True).json()["kyc"]
    seeded = [f"q{n:03d}{uuid.uuid4().hex[:8]}" for n in range(101)]
    body = {"full_name": "Queue Example", "qid_number": "28412345678", "document_urls": ["https://uploads.example/id.jpg"]}
    for uid in seeded:
        assert stack.call("POST", "/api/coins/kyc", uid, body=body).status_code == 200
    waiting = before + 101
    sign_in(page, stack)
    page.click("nav a[href='#kyc']")
    page.wait_for_selector(f"text={waiting} waiting")
    assert page.locator("nav a[href='#kyc'] .count").inner_text() == str(waiting)
    assert page.locator("tbody tr").count() == 100 and row(page, seeded[-1]).count() == 0, "oldest first, a page of 100"
    page.get_by_role("button", name="More").click()
    row(page, seeded[-1]).wait_for()
    assert page.locator("tbody tr").count() == waiting and page.get_by_role("button", name="More").is_hidden()
    row(page, seeded[-1]).get_by_role("button", name="Verify").click()
    page.wait_for_selector(f"tr[data-id='{seeded[-1]}']", state="detached")
    expect(page.locator("#notice")).to_have_text(f"Verified {seeded[-1]}'s identity.")
    page.wait_for_selector(f"text={waiting - 1} waiting")
    assert stack.call("GET", "/api/coins/wallet", seeded[-1]).json()["kyc_status"] == "verified"


def test_a_large_withdrawal_is_approved_only_once_the_admin_says_yes(page, stack):
    uid, withdrawal_id = verified_user_with_withdrawal(stack, amount=1_000_000, coins={"GRC": 20})
    sign_in(page, stack)
    line = row(page, withdrawal_id)
    assert "10,000.00 QAR" in line.inner_text() and "large" in line.inner_text()
    line.get_by_role("button", name="Approve").click()
    assert "10,000.00 QAR is at or above the large mark" in line.get_by_role("group").inner_text()
    line.get_by_role("button", name="Cancel").click()
    assert stack.call("GET", f"/api/coins/withdrawal/{withdrawal_id}", uid).json()["status"] == "requested", "nothing sent"
    line.get_by_role("button", name="Approve").click()
    line.get_by_role("button", name="Yes, approve").click()
    page.wait_for_selector(f"tr[data-id='{withdrawal_id}'] input[name=reference]")
    assert stack.call("GET", f"/api/coins/withdrawal/{withdrawal_id}", uid).json()["status"] == "approved"
    expect(page.locator("#notice")).to_contain_text(f"Approved {uid}'s withdrawal of 10,000.00 QAR")


def test_a_refused_action_shows_the_field_and_why(page, stack):
    uid = fresh("u")
    sign_in(page, stack)
    page.goto(f"{stack.base}/admin/#users/{uid}")
    page.get_by_label("Lift for (hours, 1 to 720)").fill("1000")
    page.get_by_label("Reason, for the audit").fill("support ticket 12")
    page.get_by_role("button", name="Lift limits").click()
    page.wait_for_selector("#error:not([hidden])")
    error = page.locator("#error")
    assert "Some fields are invalid" in error.inner_text()
    assert error.locator("li").inner_text() == "lift_hours: Input should be less than or equal to 720"


def test_the_console_runs_under_firebase_json_s_policy(page, stack, refused):
    response = requests.get(stack.base + "/admin/", timeout=30)
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self' https://apis.google.com;" in policy and "frame-ancestors 'none'" in policy
    assert (response.headers["X-Content-Type-Options"], response.headers["Referrer-Policy"]) == ("nosniff", "no-referrer")
    assert stack.call("GET", "/api/admin/coins/queues", "ops", admin=True).headers["Cache-Control"] == "no-store"
    sign_in(page, stack)
    for name in ("withdrawals", "kyc", "disputes", "purchases", "users", "vault"):
        page.click(f"nav a[href='#{name}']")
        page.wait_for_selector(f"nav a.active[href='#{name}']")
        page.wait_for_load_state("networkidle")
    page.wait_for_selector("canvas#daily")
    assert "adjusted by admins" in page.evaluate("Chart.getChart('daily').data.datasets.map((d) => d.label).join()")
    assert refused == [], "nothing the console does is refused by its own policy"
