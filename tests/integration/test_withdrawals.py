"""Withdrawals, KYC and the admin side against the real emulator: whole flows with their
balances and holds, the KYC gate, one open withdrawal, races, the audit log, and
reconciliation catching what was changed behind the ledger's back."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from coins import catalog, effects, reconciliation
from tests import factories
from tests.money import fresh_id, snapshot_all

QAR = catalog.DIRHAMS_PER_QAR
ADMIN, OTHER_ADMIN = "ops-admin", "second-admin"
IBAN = "QA58DOHB00001234567890ABCDEFG"
BANK = {"method": "bank_transfer", "destination": {"iban": IBAN, "account_name": "Alice A"}}


def kyc(api, uid, status, admin=ADMIN):
    return _post(api, "admin_kyc_set", f"/api/admin/coins/kyc/{uid}", admin, True, {"status": status, "note": "checked"})


def _post(api, function, path, uid, admin, body, key=None):
    import json

    from local.tokens import mint

    headers = {"Authorization": f"Bearer {mint(uid, admin=admin)}", "Idempotency-Key": key or fresh_id("k")}
    return api.client(function).post(path, data=json.dumps(body), headers=headers, content_type="application/json")


def _get(api, function, path, uid, admin=False, query=None):
    from local.tokens import mint

    return api.client(function).get(path, query_string=query, headers={"Authorization": f"Bearer {mint(uid, admin=admin)}"})


def verified_user(api, coins):
    return factories.wallet(api, coins, kyc="verified")


def request(api, uid, body=None, key=None, **overrides):
    return api.call(
        "coins_withdrawal_create",
        "POST",
        uid=uid,
        key=key or fresh_id("k"),
        body={**(body or {"amount_dirhams": 100 * QAR, **BANK}), **overrides},
    )


def act(api, action, withdrawal_id, uid=ADMIN, body=None, key=None):
    function = f"coins_withdrawal_{action}"
    body = (
        body
        if body is not None
        else {"approve": {"notes": "ok"}, "paid": {"payment_reference": "TRX-1"}, "reject": {"reason": "no"}}[action]
    )
    return _post(api, function, f"/api/coins/withdrawal/{withdrawal_id}/{action}", uid, True, body, key)


def wallet(db, uid):
    return db.collection("wallets").document(uid).get().to_dict()


# Flows.


def test_request_approve_paid_retires_the_coins(api, db):
    alice = verified_user(api, {"GRC": 1})
    created = request(api, alice)
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert (body["status"], body["amount_dirhams"], body["coins"], body["large"]) == ("requested", 10_000, {"GPC": 1}, False)
    assert body["destination"] == {"iban": "•••• DEFG", "account_name": "•••• ce A"}
    assert wallet(db, alice)["coins"] == {"GDC": 2}, "change from the treasury"
    assert (wallet(db, alice)["held_dirhams"], wallet(db, alice)["open_withdrawal_id"]) == (10_000, body["id"])

    assert act(api, "approve", body["id"]).get_json()["status"] == "approved"
    paid = act(api, "paid", body["id"])
    assert paid.status_code == 200 and paid.get_json()["status"] == "paid"
    assert paid.get_json()["payment_reference"] == "TRX-1"
    assert (wallet(db, alice)["held_dirhams"], wallet(db, alice)["open_withdrawal_id"]) == (0, None)
    assert db.collection("withdrawals").document(body["id"]).get().get("coins") == {}
    assert wallet(db, alice)["coins"] == {"GDC": 2}


@pytest.mark.parametrize("approve_first", [False, True], ids=["requested", "approved"])
def test_a_rejection_returns_the_coins(api, db, approve_first):
    alice = verified_user(api, {"GPC": 2})
    withdrawal_id = request(api, alice, amount_dirhams=100 * QAR).get_json()["id"]
    if approve_first:
        act(api, "approve", withdrawal_id)
    rejected = act(api, "reject", withdrawal_id, body={"reason": "name does not match"})
    assert rejected.get_json()["status"] == "rejected" and rejected.get_json()["reason"] == "name does not match"
    assert wallet(db, alice)["coins"] == {"GPC": 2}
    assert (wallet(db, alice)["held_dirhams"], wallet(db, alice)["open_withdrawal_id"]) == (0, None)
    assert request(api, alice).status_code == 201, "a new withdrawal once the last one is closed"


def test_illegal_transitions_are_409(api, db):
    alice = verified_user(api, {"GPC": 1})
    withdrawal_id = request(api, alice).get_json()["id"]
    assert act(api, "paid", withdrawal_id).status_code == 409, "pay before approve"
    act(api, "approve", withdrawal_id)
    assert act(api, "approve", withdrawal_id).status_code == 409
    act(api, "paid", withdrawal_id)
    for action in ("approve", "paid", "reject"):
        response = act(api, action, withdrawal_id)
        assert response.status_code == 409 and response.get_json()["error"]["code"] == "invalid_state"


def test_withdrawal_by_explicit_coins_and_the_large_flag(api, db):
    alice = verified_user(api, {"GRC": 20, "GBC": 1})
    body = request(api, alice, body={"coins": {"GRC": 20}, **BANK}).get_json()
    assert (body["amount_dirhams"], body["coins"], body["large"]) == (1_000_000, {"GRC": 20}, True)
    assert wallet(db, alice)["coins"] == {"GBC": 1}


def test_an_admin_cannot_approve_or_pay_their_own_withdrawal(api, db):
    assert kyc(api, ADMIN, "verified", admin=OTHER_ADMIN).status_code == 200
    api.adjust(OTHER_ADMIN, ADMIN, {"GPC": 1})
    withdrawal_id = request(api, ADMIN).get_json()["id"]
    assert act(api, "approve", withdrawal_id, uid=ADMIN).status_code == 403
    assert act(api, "approve", withdrawal_id, uid=OTHER_ADMIN).status_code == 200
    assert act(api, "paid", withdrawal_id, uid=ADMIN).status_code == 403


# The KYC gate and one open withdrawal.


@pytest.mark.parametrize("status", [None, "none", "pending", "rejected"])
def test_without_verified_kyc_a_withdrawal_is_403(api, db, status):
    alice = fresh_id()
    if status:
        kyc(api, alice, status)
    api.adjust(ADMIN, alice, {"GPC": 1})
    before = {k: v for k, v in snapshot_all(db).items() if not k.startswith("idempotency/")}
    response = request(api, alice)
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "kyc_required"
    assert {k: v for k, v in snapshot_all(db).items() if not k.startswith("idempotency/")} == before


def test_kyc_changes_are_kept_with_history_and_audited(api, db):
    alice = fresh_id()
    for status in ("pending", "verified", "rejected"):
        assert kyc(api, alice, status).get_json()["kyc_status"] == status
    history = sorted(
        (s.get("at"), s.get("previous"), s.get("status"))
        for s in db.collection("wallets").document(alice).collection("kyc_history").stream()
    )
    assert [(p, n) for _, p, n in history] == [("none", "pending"), ("pending", "verified"), ("verified", "rejected")]
    audits = [s.to_dict() for s in db.collection("audit").stream() if s.get("action") == "kyc_set"]
    assert len(audits) == 3 and all(a["actor"] == ADMIN and a["target"] == f"user:{alice}" for a in audits)


def test_a_second_open_withdrawal_is_409(api, db):
    alice = verified_user(api, {"GPC": 2})
    first = request(api, alice).get_json()["id"]
    second = request(api, alice)
    assert second.status_code == 409
    assert second.get_json()["error"] == {
        "code": "withdrawal_pending",
        "message": "An open withdrawal already exists.",
        "details": {"withdrawal_id": first},
    }
    assert wallet(db, alice)["coins"] == {"GPC": 1}


# Races.


def test_ten_parallel_requests_from_one_user_make_one_withdrawal(api, db):
    alice = verified_user(api, {"GPC": 10})
    barrier = threading.Barrier(10)

    def run(_):
        import json

        from functions_framework import create_app

        from local.tokens import mint

        client = create_app(target="coins_withdrawal_create", source=api.source).test_client()
        headers = {"Authorization": f"Bearer {mint(alice)}", "Idempotency-Key": fresh_id("k")}
        barrier.wait()
        body = json.dumps({"amount_dirhams": 100 * QAR, **BANK})
        return client.post("/", data=body, headers=headers, content_type="application/json").status_code

    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(run, range(10)))
    assert sorted(statuses) == [201] + [409] * 9
    assert len(list(db.collection("withdrawals").stream())) == 1
    assert wallet(db, alice)["coins"] == {"GPC": 9}


@pytest.mark.parametrize("first, second", [("reject", "paid"), ("paid", "paid")])
def test_racing_admin_actions_have_one_effect(api, db, first, second):
    alice = verified_user(api, {"GPC": 1})
    withdrawal_id = request(api, alice).get_json()["id"]
    act(api, "approve", withdrawal_id)
    barrier = threading.Barrier(2)

    def run(action_admin):
        action, admin = action_admin
        barrier.wait()
        return act(api, action, withdrawal_id, uid=admin).status_code

    with ThreadPoolExecutor(2) as pool:
        statuses = list(pool.map(run, [(first, ADMIN), (second, OTHER_ADMIN)]))
    assert sorted(statuses) == [200, 409]
    entries = [s.get("type") for s in db.collection("ledger").stream() if s.get("refs").get("withdrawal_id") == withdrawal_id]
    assert len(entries) == 2, "the hold and exactly one ending"


def test_approve_racing_reject_has_one_winner(api, db):
    alice = verified_user(api, {"GPC": 1})
    withdrawal_id = request(api, alice).get_json()["id"]
    barrier = threading.Barrier(2)

    def run(action):
        barrier.wait()
        return action, act(api, action, withdrawal_id, uid=ADMIN if action == "approve" else OTHER_ADMIN).status_code

    with ThreadPoolExecutor(2) as pool:
        results = dict(pool.map(run, ["approve", "reject"]))
    status = db.collection("withdrawals").document(withdrawal_id).get().get("status")
    # Approve then reject is a legal sequence; reject then approve is not.
    if status == "rejected" and results["approve"] == 200:
        assert results["reject"] == 200
    else:
        assert sorted(results.values()) == [200, 409]


# Reading.


def test_the_owner_sees_the_destination_masked_and_an_admin_sees_it_whole(api, db):
    alice, bob = verified_user(api, {"GPC": 1}), fresh_id()
    withdrawal_id = request(api, alice).get_json()["id"]
    path = f"/api/coins/withdrawal/{withdrawal_id}"
    assert _get(api, "coins_withdrawal_get", path, alice).get_json()["destination"]["iban"] == "•••• DEFG"
    assert _get(api, "coins_withdrawal_get", path, ADMIN, admin=True).get_json()["destination"] == {
        "iban": IBAN,
        "account_name": "Alice A",
    }
    assert _get(api, "coins_withdrawal_get", path, bob).status_code == 404
    own = _get(api, "coins_withdrawals_list", "/", alice).get_json()
    assert [w["id"] for w in own["items"]] == [withdrawal_id]
    assert _get(api, "coins_withdrawals_list", "/", bob).get_json() == {"items": [], "next_cursor": None}


def test_the_admin_queue_lists_open_withdrawals_oldest_first(api, db):
    ids = []
    for _ in range(3):
        uid = verified_user(api, {"GPC": 1})
        ids.append(request(api, uid).get_json()["id"])
    act(api, "approve", ids[1])
    act(api, "reject", ids[2])
    page = _get(api, "coins_withdrawals_pending", "/", ADMIN, admin=True, query={"limit": 1}).get_json()
    assert [w["id"] for w in page["items"]] == ids[:1]
    rest = _get(api, "coins_withdrawals_pending", "/", ADMIN, admin=True, query={"cursor": page["next_cursor"]}).get_json()
    assert [(w["id"], w["status"]) for w in rest["items"]] == [(ids[1], "approved")]
    assert all("•••• " in w["destination"]["iban"] for w in page["items"] + rest["items"])
    assert _get(api, "coins_withdrawals_pending", "/", "someone").status_code == 403


# Bad input.


@pytest.mark.parametrize(
    "body, field",
    [
        (
            {
                "amount_dirhams": 100 * QAR,
                "method": "bank_transfer",
                "destination": {"iban": "QA58DOHB00001234567890ABCDEFH", "account_name": "A"},
            },
            "destination",
        ),
        (
            {
                "amount_dirhams": 100 * QAR,
                "method": "bank_transfer",
                "destination": {"iban": "GB82WEST12345698765432", "account_name": "A"},
            },
            "destination",
        ),
        ({"amount_dirhams": 100 * QAR, "method": "cash", "destination": {"wallet_id": "abcd"}}, "method"),
        ({"amount_dirhams": 100 * QAR, "method": "wallet", "destination": {"iban": IBAN, "account_name": "A"}}, "body"),
        ({"amount_dirhams": 0, **BANK}, "amount_dirhams"),
        ({"amount_dirhams": -500, **BANK}, "amount_dirhams"),
        ({"amount_dirhams": 250, **BANK}, "amount_dirhams"),
        ({"amount_dirhams": 550, **BANK}, "amount_dirhams"),
        ({"coins": {}, **BANK}, "coins"),
        ({"coins": {"GPC": -1}, **BANK}, "coins.GPC"),
        ({**BANK}, "body"),
        ({"amount_dirhams": 100 * QAR, "coins": {"GPC": 1}, **BANK}, "body"),
        ({"amount_dirhams": 100 * QAR, "speed": "fast", **BANK}, "speed"),
    ],
)
def test_bad_withdrawals_are_422_and_change_nothing(api, db, body, field):
    alice = verified_user(api, {"GPC": 1})
    before = snapshot_all(db)
    response = api.call("coins_withdrawal_create", "POST", uid=alice, key=fresh_id("k"), body=body)
    assert response.status_code == 422, response.get_json()
    assert any(f["field"].startswith(field) for f in response.get_json()["error"]["details"]["fields"])
    assert snapshot_all(db) == before


def test_coins_the_user_lacks_are_409(api, db):
    alice = verified_user(api, {"GPC": 1})
    assert request(api, alice, body={"coins": {"GRC": 1}, **BANK}).status_code == 409
    assert request(api, alice, amount_dirhams=105 * QAR).status_code == 409
    assert wallet(db, alice)["coins"] == {"GPC": 1}


def test_someone_elses_or_an_unknown_withdrawal_id_is_404(api, db):
    alice = verified_user(api, {"GPC": 1})
    withdrawal_id = request(api, alice).get_json()["id"]
    assert _get(api, "coins_withdrawal_get", f"/api/coins/withdrawal/{withdrawal_id}", fresh_id()).status_code == 404
    assert act(api, "approve", "no-such-withdrawal").status_code == 404


@pytest.mark.parametrize(
    "action, body", [("paid", {}), ("paid", {"payment_reference": ""}), ("reject", {}), ("reject", {"reason": " "})]
)
def test_paid_needs_a_reference_and_reject_a_reason(api, db, action, body):
    alice = verified_user(api, {"GPC": 1})
    withdrawal_id = request(api, alice).get_json()["id"]
    act(api, "approve", withdrawal_id)
    assert act(api, action, withdrawal_id, body=body).status_code == 422


# The audit log and reconciliation.


def test_every_admin_action_is_audited_in_its_transaction(api, db):
    alice = verified_user(api, {"GPC": 2})
    withdrawal_id = request(api, alice).get_json()["id"]
    act(api, "approve", withdrawal_id)
    act(api, "paid", withdrawal_id)
    actions = sorted(s.get("action") for s in db.collection("audit").stream())
    assert actions == ["adjust_balance", "kyc_set", "withdrawal_approved", "withdrawal_paid"]
    paid = [s.to_dict() for s in db.collection("audit").stream() if s.get("action") == "withdrawal_paid"][0]
    # The transfer's reference is what the admin recorded, not a reason for the action.
    assert (paid["before"], paid["after"], paid["reason"], paid["actor"]) == (
        {"status": "approved"},
        {"status": "paid", "payment_reference": "TRX-1"},
        None,
        ADMIN,
    )


def apply_all_effects(db, task_queue):
    for snapshot in db.collection("ledger").stream():
        effects.apply(db, snapshot.id)


def test_reconciliation_is_clean_after_real_flows(api, db, task_queue):
    alice = verified_user(api, {"GRC": 1})
    withdrawal_id = request(api, alice).get_json()["id"]
    act(api, "approve", withdrawal_id)
    request(api, verified_user(api, {"GPC": 1}))
    apply_all_effects(db, task_queue)
    report = _get(api, "admin_reconciliation", "/", ADMIN, admin=True).get_json()
    assert report["ok"], report["problems"]
    # Reconcile now is incremental: the four entries are new, and so are the accounts they touched
    # (the treasury, two wallets, two withdrawal holds).
    assert report["checked"]["entries"] == 4 and report["checked"]["accounts"] == 5


def test_reconciliation_catches_a_corrupted_wallet_and_a_missing_hold(api, db, task_queue):
    alice = verified_user(api, {"GPC": 2})
    withdrawal_id = request(api, alice).get_json()["id"]
    apply_all_effects(db, task_queue)
    db.collection("wallets").document(alice).update({"coins": {"GPC": 5}, "balance_dirhams": 50_000})
    db.collection("withdrawals").document(withdrawal_id).update({"amount_dirhams": 20_000})
    report = reconciliation.run_daily(db, "2026-11-27")
    kinds = sorted(p["kind"] for p in report["problems"])
    assert kinds == ["wallet_differs", "withdrawal_hold_wrong"]
    stored = db.collection("reconciliation").document("2026-11-27").get().to_dict()
    assert stored["ok"] is False and len(stored["problems"]) == stored["problem_count"] == 2
    # Put things back for the conservation check that follows every test.
    db.collection("wallets").document(alice).update({"coins": {"GPC": 1}, "balance_dirhams": 10_000})
    db.collection("withdrawals").document(withdrawal_id).update({"amount_dirhams": 10_000})


def test_reconciliation_catches_a_purchase_paid_without_its_issue_entry(api, db, task_queue):
    db.collection("purchases").document("p1").set({"id": "p1", "status": "paid", "user_id": "x"})
    report = reconciliation.run(db)
    assert [p["kind"] for p in report["problems"]] == ["purchase_issues"]
    assert report["problems"][0]["entry_id"] is None, "it names no issue entry"
    db.collection("purchases").document("p1").delete()  # for the check that follows every test


def test_reconciliation_catches_a_withdrawal_without_its_hold(api, db, task_queue):
    alice = verified_user(api, {"GPC": 1})
    apply_all_effects(db, task_queue)
    # A withdrawal written behind the ledger's back: open, but no coins were ever held.
    db.collection("withdrawals").document("forged").set(
        {"id": "forged", "user_id": alice, "status": "requested", "amount_dirhams": 10_000, "coins": {}}
    )
    report = reconciliation.run(db)
    assert report["problems"] == [
        {"kind": "withdrawal_hold_wrong", "id": "forged", "status": "requested", "held_dirhams": 0, "expected_dirhams": 10_000}
    ]
    db.collection("withdrawals").document("forged").delete()
