"""An admin runs the money from the console: withdrawals approved and paid (the full
destination visible only there), a KYC rejected, a dispute split, the vault and a
reconciliation; a non-admin is refused; a double click pays once; a refusal shows the
API's message. Every result is checked through the API, not the page."""

import subprocess
import sys
import uuid

from tests.browser.conftest import sign_in
from tests.conftest import ROOT

IBAN = "QA58DOHB00001234567890ABCDEFG"


def fresh(prefix):
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def key():
    return uuid.uuid4().hex


def verified_user_with_withdrawal(stack, amount=10_000):
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
            body={"user_id": uid, "coins": {"GPC": 2}, "reason": "seed"},
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
    page.wait_for_function(f"document.querySelector(\"tr[data-id='{withdrawal_id}']\").innerText.includes('{IBAN}')")
    line.get_by_role("button", name="Approve").click()
    page.wait_for_selector(f"tr[data-id='{withdrawal_id}'] input[aria-label='transfer reference']")
    row(page, withdrawal_id).locator("input[aria-label='transfer reference']").fill("QNB-TRX-7781")
    row(page, withdrawal_id).get_by_role("button", name="Mark paid").click()
    page.wait_for_selector(f"tr[data-id='{withdrawal_id}']", state="detached")
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
    row(page, withdrawal_id).locator("input[aria-label='transfer reference']").fill("QNB-TRX-1")
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
    line.locator("input[aria-label='note']").fill("the photo is blurred")
    line.get_by_role("button", name="Reject").click()
    page.wait_for_selector(f"tr[data-id='{uid}']", state="detached")
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
    line.locator('input[aria-label="freelancer\'s share in QAR"]').fill("60")
    line.locator("input[aria-label='note']").fill("half of the work was delivered")
    line.get_by_role("button", name="Resolve").click()
    page.wait_for_selector(f"tr[data-id='{escrow['id']}']", state="detached")
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
    line.locator("input[aria-label='note']").fill("refunded in SADAD's panel")
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
    page.get_by_role("button", name="Run reconciliation").click()
    page.wait_for_selector("p.ok, p.bad")
    assert page.locator("p.ok").inner_text().startswith("OK")
    text = page.locator("#page").inner_text()
    assert "with effects still on their way" in text and "events not yet delivered to the app" in text
    assert "null" not in text and "undefined" not in text


def test_a_user_lookup(page, stack):
    uid, withdrawal_id = verified_user_with_withdrawal(stack)
    sign_in(page, stack)
    page.click("nav a[href='#users']")
    page.fill("input[aria-label='uid']", uid)
    page.get_by_role("button", name="Look up").click()
    page.wait_for_selector("text=Open holds")
    text = page.locator("#page").inner_text()
    assert withdrawal_id in text and "verified" in text and "200 QAR" in text


def test_a_slow_page_does_not_replace_the_one_navigated_to_since(page, stack):
    """An admin clicks on before the first page has loaded: when the withdrawals queue
    answers late, the user lookup they moved to stays."""
    held = []
    page.route("**/api/coins/withdrawals/pending*", lambda route: held.append(route))
    sign_in(page, stack)
    page.wait_for_function("() => document.querySelector('nav:not([hidden])')")
    page.click("nav a[href='#users']")
    page.wait_for_selector("input[aria-label='uid']")
    assert held, "the withdrawals queue was asked for first"
    for route in held:
        route.continue_()
    page.wait_for_load_state("networkidle")
    assert page.locator("input[aria-label='uid']").count() == 1
    assert page.locator("nav a.active").get_attribute("href") == "#users"
