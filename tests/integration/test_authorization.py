"""Who may call what: one row per endpoint of the project, every kind of caller, the
status API.md documents. A new endpoint adds a row here."""

import json

import pytest

from local.tokens import mint
from tests import factories
from tests.conftest import SERVICE_HEADERS
from tests.money import fresh_id

OWNER, STRANGER, ADMIN, FREELANCER = "owner-user", "stranger-user", "admin-user", "freelancer-user"

# Callers: no credentials; an expired token of the owner; another user; the owner; an admin.
CALLERS = ("anonymous", "expired", "stranger", "owner", "admin")

# What a browser calls: its errors are small pages, not the JSON envelope.
PAGES = {"coins_purchase_return", "coins_sadad_callback", "coins_purchase_checkout"}

# function, method, path (None: the function's root), body, expected status per caller.
MATRIX = [
    ("coins_catalog", "GET", None, None, (200, 200, 200, 200, 200)),
    ("coins_openapi", "GET", None, None, (200, 200, 200, 200, 200)),
    ("coins_wallet", "GET", None, None, (401, 401, 200, 200, 200)),
    ("coins_transactions", "GET", None, None, (401, 401, 200, 200, 200)),
    ("coins_check_balance", "POST", None, {"amount_dirhams": 500}, (401, 401, 200, 200, 200)),
    ("admin_adjust_balance", "POST", None, {"user_id": OWNER, "coins": {"GBC": 1}, "reason": "m"}, (401, 401, 403, 403, 200)),
    ("coins_purchase_create", "POST", None, {"pack_id": "starter"}, (401, 401, 201, 201, 201)),
    ("coins_purchase_get", "GET", "/api/coins/purchase/{purchase}", None, (401, 401, 404, 200, 200)),
    ("coins_purchases_list", "GET", None, None, (401, 401, 200, 200, 200)),
    # Fatora's webhook carries no ID token; where a token is configured for its URL
    # (the tests configure one), a call without it is refused whoever makes it.
    ("coins_fatora_webhook", "GET,POST", None, {"order_id": "{purchase}"}, (401, 401, 401, 401, 401)),
    # The payer's browser back from Fatora: public; this purchase is not paid, so it goes
    # on to the app as pending (a 303), whoever the browser is.
    ("coins_purchase_return", "GET", "/api/coins/purchase/return?order_id={purchase}", None, (303, 303, 303, 303, 303)),
    # SADAD's callback and webhook carry no ID token but a checksum: without it, 401 for all.
    ("coins_sadad_callback", "POST", "/api/coins/purchase/sadad/callback", None, (401, 401, 401, 401, 401)),
    ("coins_sadad_webhook", "POST", None, {"websiteRefNo": "{purchase}"}, (401, 401, 401, 401, 401)),
    # The page that posts a SADAD purchase's form: public, its id the only credential.
    ("coins_purchase_checkout", "GET", "/api/coins/purchase/{sadad_purchase}/checkout", None, (200, 200, 200, 200, 200)),
    # Scheduler targets take only the scheduler (the local stack's secret here).
    ("purchases_reconcile", "POST", None, None, (401, 401, 401, 401, 401)),
    # Only the job's client pays for it (the owner's job; an admin is not its client).
    (
        "coins_job_payment",
        "POST",
        None,
        {"job_id": "{job}", "freelancer_id": FREELANCER, "amount_dirhams": 500},
        (401, 401, 403, 201, 403),
    ),
    ("coins_escrows_list", "GET", None, None, (401, 401, 200, 200, 200)),
    ("coins_escrow_get", "GET", "/api/coins/escrow/{escrow}", None, (401, 401, 404, 200, 200)),
    # The owner is the client of the funded escrow: it may release and ask for a refund;
    # it may not submit (the freelancer's) nor request changes before a submission.
    ("coins_escrow_submit", "POST", "/api/coins/escrow/{escrow}/submit", {}, (401, 401, 404, 403, 403)),
    (
        "coins_escrow_request_changes",
        "POST",
        "/api/coins/escrow/{escrow}/request-changes",
        {"note": "n"},
        (401, 401, 404, 409, 403),
    ),
    (
        "coins_escrow_request_refund",
        "POST",
        "/api/coins/escrow/{escrow}/request-refund",
        {"reason": "r"},
        (401, 401, 404, 200, 403),
    ),
    ("coins_escrow_release", "POST", "/api/coins/escrow/{escrow}/release", None, (401, 401, 404, 200, 200)),
    ("coins_escrow_refund", "POST", "/api/coins/escrow/{escrow}/refund", None, (401, 401, 404, 403, 200)),
    ("coins_escrow_dispute", "POST", "/api/coins/escrow/{escrow}/dispute", {"reason": "late"}, (401, 401, 404, 200, 403)),
    ("admin_disputes_list", "GET", None, None, (401, 401, 403, 403, 200)),
    # An admin resolves disputes only: this escrow is funded.
    (
        "admin_escrow_resolve",
        "POST",
        "/api/admin/coins/escrow/{escrow}/resolve",
        {"freelancer_dirhams": 0, "note": "n"},
        (401, 401, 403, 403, 409),
    ),
    ("escrow_timer", "POST", None, {"escrow_id": "{escrow}", "version": 1}, (401, 401, 401, 401, 401)),
    ("escrows_sweep", "POST", None, None, (401, 401, 401, 401, 401)),
    ("coins_repair", "POST", None, None, (401, 401, 401, 401, 401)),
    ("admin_kyc_set", "POST", "/api/admin/coins/kyc/{owner}", {"status": "verified"}, (401, 401, 403, 403, 200)),
    # The owner is verified already: it cannot resubmit; the others can.
    (
        "coins_kyc_submit",
        "POST",
        None,
        {"full_name": "A B", "qid_number": "28412345678", "document_urls": ["https://u.example/id.jpg"]},
        (401, 401, 200, 409, 200),
    ),
    ("admin_kyc_pending", "GET", None, None, (401, 401, 403, 403, 200)),
    # The stranger and the admin have no verified KYC; the owner already has a withdrawal open.
    (
        "coins_withdrawal_create",
        "POST",
        None,
        {"amount_dirhams": 500, "method": "wallet", "destination": {"wallet_id": "w-1234"}},
        (401, 401, 403, 409, 403),
    ),
    ("coins_withdrawals_list", "GET", None, None, (401, 401, 200, 200, 200)),
    ("coins_withdrawal_get", "GET", "/api/coins/withdrawal/{withdrawal}", None, (401, 401, 404, 200, 200)),
    ("coins_withdrawals_pending", "GET", None, None, (401, 401, 403, 403, 200)),
    ("coins_withdrawal_approve", "POST", "/api/coins/withdrawal/{withdrawal}/approve", {}, (401, 401, 403, 403, 200)),
    # Paid needs an approved withdrawal: for the admin this one is still requested.
    (
        "coins_withdrawal_paid",
        "POST",
        "/api/coins/withdrawal/{withdrawal}/paid",
        {"payment_reference": "r"},
        (401, 401, 403, 403, 409),
    ),
    ("coins_withdrawal_reject", "POST", "/api/coins/withdrawal/{withdrawal}/reject", {"reason": "r"}, (401, 401, 403, 403, 200)),
    ("admin_reconciliation", "GET", None, None, (401, 401, 403, 403, 200)),
    # A full replay: started by an admin (202, its first step a task), read back by id.
    ("admin_reconciliation_full", "POST", None, None, (401, 401, 403, 403, 202)),
    ("admin_reconciliation_run", "GET", "/api/admin/coins/reconciliation/runs/no-such-run", None, (401, 401, 403, 403, 404)),
    # The accountant's export: admins only.
    (
        "admin_ledger_export",
        "GET",
        "/api/admin/coins/ledger/export?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z",
        None,
        (401, 401, 403, 403, 200),
    ),
    ("admin_queues", "GET", None, None, (401, 401, 403, 403, 200)),
    ("admin_users_list", "GET", None, None, (401, 401, 403, 403, 200)),
    ("admin_user_get", "GET", "/api/admin/coins/users/{owner}", None, (401, 401, 403, 403, 200)),
    ("admin_vault", "GET", None, None, (401, 401, 403, 403, 200)),
    ("admin_purchases_review", "GET", None, None, (401, 401, 403, 403, 200)),
    (
        "admin_limits_lift",
        "POST",
        "/api/admin/coins/users/{owner}/limits",
        {"lift_hours": 24, "reason": "r"},
        (401, 401, 403, 403, 200),
    ),
    # The owner's purchase is pending: not refundable, not in review.
    ("admin_purchase_refund", "POST", "/api/admin/coins/purchase/{purchase}/refund", {"reason": "r"}, (401, 401, 403, 403, 409)),
    (
        "admin_purchase_resolve",
        "POST",
        "/api/admin/coins/purchase/{purchase}/resolve",
        {"action": "dismiss", "note": "n"},
        (401, 401, 403, 403, 409),
    ),
    # Receipts: the owner's and admins' only, once there is something paid to show: the
    # owner's purchase is pending, its withdrawal requested, its escrow funded only.
    ("coins_purchase_receipt", "GET", "/api/coins/purchase/{purchase}/receipt", None, (401, 401, 404, 409, 409)),
    ("coins_withdrawal_receipt", "GET", "/api/coins/withdrawal/{withdrawal}/receipt", None, (401, 401, 404, 409, 409)),
    ("coins_escrow_receipt", "GET", "/api/coins/escrow/{escrow}/receipt", None, (401, 401, 404, 409, 409)),
    # The owner's statement, named by user_id: the owner's and admins' to read, not another user's.
    ("coins_statement", "GET", "/api/coins/statements/2026-01?user_id={owner}", None, (401, 401, 403, 200, 200)),
    ("reconcile_daily", "POST", None, None, (401, 401, 401, 401, 401)),
    ("reconcile_monthly", "POST", None, None, (401, 401, 401, 401, 401)),
    ("reconcile_full_step", "POST", None, {"run_id": "r1"}, (401, 401, 401, 401, 401)),
]


@pytest.fixture(autouse=True)
def recorded_steps():
    """The full replay's tasks, recorded, not delivered: this table is about who may call."""

    from coins import clients
    from tests.money import RecordedTasks

    recorder = RecordedTasks()
    saved = clients._installed_schedulers.get("reconcile_full_step")
    clients.install_scheduler(recorder, "reconcile_full_step")
    yield recorder
    if saved is None:
        clients._installed_schedulers.pop("reconcile_full_step", None)
    else:
        clients.install_scheduler(saved, "reconcile_full_step")


@pytest.fixture
def owners_things(api, fatora, sadad):
    """The owner's purchases (through Fatora and SADAD) and an escrow the owner pays to FREELANCER."""
    response = api.call("coins_purchase_create", "POST", uid=OWNER, key=fresh_id("k"), body={"pack_id": "basic"})
    assert response.status_code == 201
    through_sadad = {"pack_id": "basic", "gateway": "sadad", "email": "o@example.com", "mobile_no": "97450000000"}
    sadad_purchase = api.call("coins_purchase_create", "POST", uid=OWNER, key=fresh_id("k"), body=through_sadad)
    assert sadad_purchase.status_code == 201
    api.adjust(ADMIN, OWNER, {"GPC": 1, "GSC": 1})
    locked = api.call(
        "coins_job_payment",
        "POST",
        uid=OWNER,
        key=fresh_id("k"),
        body={"job_id": factories.job(OWNER, FREELANCER), "freelancer_id": FREELANCER, "amount_dirhams": 10_000},
    )
    assert locked.status_code == 201
    kyc = api.client("admin_kyc_set").post(
        f"/api/admin/coins/kyc/{OWNER}",
        data=json.dumps({"status": "verified"}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {mint(ADMIN, admin=True)}"},
    )
    assert kyc.status_code == 200
    withdrawal = api.call(
        "coins_withdrawal_create",
        "POST",
        uid=OWNER,
        key=fresh_id("k"),
        body={"amount_dirhams": 500, "method": "wallet", "destination": {"wallet_id": "w-1234"}},
    )
    assert withdrawal.status_code == 201
    return {
        "purchase": response.get_json()["id"],
        "sadad_purchase": sadad_purchase.get_json()["id"],
        "escrow": locked.get_json()["id"],
        "job": factories.job(OWNER, FREELANCER),
        "withdrawal": withdrawal.get_json()["id"],
        "owner": OWNER,
    }


def token_of(caller):
    return {
        "anonymous": None,
        "expired": mint(OWNER, expires_in=-1),
        "stranger": mint(STRANGER),
        "owner": mint(OWNER),
        "admin": mint(ADMIN, admin=True),
    }[caller]


def fill(text, things):
    for name, value in things.items():
        text = text.replace("{" + name + "}", value)
    return text


def call(api, function, method, path, body, token, things):
    client = api.client(function)
    headers = {"Idempotency-Key": fresh_id("k")}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = fill(json.dumps(body), things) if body is not None else None
    return client.open(fill(path or "/", things), method=method, headers=headers, data=data, content_type="application/json")


@pytest.mark.parametrize("function, method, path, body, expected", MATRIX, ids=[row[0] for row in MATRIX])
@pytest.mark.parametrize("caller", CALLERS)
def test_each_caller_gets_the_documented_status(api, owners_things, function, method, path, body, expected, caller):
    response = call(api, function, method.split(",")[-1], path, body, token_of(caller), owners_things)
    want = expected[CALLERS.index(caller)]
    assert response.status_code == want, response.get_data(as_text=True)[:300]
    if want >= 400 and function not in PAGES:
        codes = {
            401: "unauthenticated",
            403: ("forbidden", "kyc_required"),
            404: "not_found",
            409: ("invalid_state", "insufficient_funds", "withdrawal_pending"),
        }
        assert response.get_json()["error"]["code"] in codes[want]


@pytest.mark.parametrize("function, method, path, body, expected", MATRIX, ids=[row[0] for row in MATRIX])
def test_a_wrong_method_is_405_whoever_calls(api, owners_things, function, method, path, body, expected):
    for wrong in {"GET", "POST", "PUT", "DELETE", "PATCH"} - set(method.split(",")):
        response = call(api, function, wrong, path, body, token_of("admin"), owners_things)
        assert response.status_code == 405
        if function not in PAGES:  # a browser's: its errors are pages
            assert response.get_json()["error"]["code"] == "method_not_allowed"
        assert response.headers["Allow"] == method.replace(",", ", ")


def test_the_scheduler_target_takes_the_local_secret(api, fatora):
    response = api.call("purchases_reconcile", "POST", headers=SERVICE_HEADERS)
    assert response.status_code == 200


def test_every_http_function_of_main_has_its_row():
    """A new endpoint without a row here fails: who may call it must be written down."""
    from coins import registry

    http = {function.name for function in registry.functions() if function.kind is not registry.Kind.TRIGGER}
    assert {row[0] for row in MATRIX} == http
