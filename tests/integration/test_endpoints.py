"""The HTTP entry points in-process (functions_framework test clients) against the real
emulator: what API.md promises for catalog, wallet, transactions, check-balance and
adjust-balance, and a 4xx that changes nothing for every kind of bad input."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from local.tokens import mint
from tests.money import fresh_id, snapshot_all

ADMIN = "admin-ops"


def error_code(response):
    return response.get_json()["error"]["code"]


# Catalog and wallet.


def test_the_catalog_is_public(api):
    response = api.call("coins_catalog")
    assert response.status_code == 200
    assert response.content_type == "application/json"
    body = response.get_json()
    assert [c["symbol"] for c in body["coins"]] == ["GBC", "GSC", "GGC", "GPC", "GDC", "GRC"]
    assert body["pricing"] == {
        "markup_bps": 1000,
        "job_fee_bps": 1000,
        "gateway_fee_bps": 250,
        "custom_min_dirhams": 500,
        "custom_max_dirhams": 500000,
    }


def test_a_wallet_is_created_empty_on_first_read(api, db):
    alice = fresh_id()
    response = api.call("coins_wallet", uid=alice)
    assert response.status_code == 200
    body = response.get_json()
    assert body["user_id"] == alice
    assert (body["coins"], body["balance_dirhams"], body["held_dirhams"], body["kyc_status"]) == ({}, 0, 0, "none")
    assert body["updated_at"].endswith("Z")
    assert db.collection("wallets").document(alice).get().exists
    assert api.call("coins_wallet", uid=alice).get_json() == body


def test_an_admin_adjustment_issues_and_retires_coins_through_the_ledger(api, db):
    alice = fresh_id()
    added = api.adjust(ADMIN, alice, {"GRC": 1, "GBC": 2})
    assert added.status_code == 200
    assert added.get_json()["wallet"]["coins"] == {"GBC": 2, "GRC": 1}
    removed = api.adjust(ADMIN, alice, {"GBC": -1}, reason="duplicate bonus")
    body = removed.get_json()
    assert body["amount_dirhams"] == -500
    assert body["wallet"]["balance_dirhams"] == 50_500
    entry = db.collection("ledger").document(body["entry_id"]).get().to_dict()
    assert entry["type"] == "admin_adjust"
    assert entry["memo"] == {"reason": "duplicate bonus"}
    assert entry["actor"] == ADMIN
    assert entry["postings"] == [{"tier": "GBC", "count": 1, "from": f"user:{alice}", "to": "treasury", "change": False}]


def test_an_adjustment_never_drives_a_wallet_below_zero(api, db):
    alice = fresh_id()
    api.adjust(ADMIN, alice, {"GSC": 1})
    before = snapshot_all(db)
    response = api.adjust(ADMIN, alice, {"GSC": -2, "GBC": 1})
    assert response.status_code == 409
    assert error_code(response) == "insufficient_funds"
    after = snapshot_all(db)
    # Only the stored refusal (for replays of its key) was added.
    assert len(after) == len(before) + 1
    assert {k: v for k, v in after.items() if k in before} == before


# Transactions.


def test_transactions_are_newest_first_with_a_cursor_and_a_type_filter(api):
    alice, bob = fresh_id(), fresh_id()
    for count in range(1, 6):
        api.adjust(ADMIN, alice, {"GBC": count})
    api.adjust(ADMIN, bob, {"GPC": 1})
    first = api.call("coins_transactions", uid=alice, query={"limit": 2}).get_json()
    assert [i["coins_delta"] for i in first["items"]] == [{"GBC": 5}, {"GBC": 4}]
    assert [i["balance_after_dirhams"] for i in first["items"]] == [7_500, 5_000]
    assert first["items"][0]["type"] == "admin_adjust"
    second = api.call("coins_transactions", uid=alice, query={"limit": 2, "cursor": first["next_cursor"]}).get_json()
    third = api.call("coins_transactions", uid=alice, query={"limit": 2, "cursor": second["next_cursor"]}).get_json()
    assert [i["amount_dirhams"] for i in second["items"] + third["items"]] == [1_500, 1_000, 500]
    assert third["next_cursor"] is None
    filtered = api.call("coins_transactions", uid=alice, query={"type": "purchase_issue"}).get_json()
    assert filtered == {"items": [], "next_cursor": None}
    assert len(api.call("coins_transactions", uid=alice, query={"type": "admin_adjust"}).get_json()["items"]) == 5


def test_a_cursor_from_another_users_list_is_refused(api):
    alice, bob = fresh_id(), fresh_id()
    api.adjust(ADMIN, bob, {"GBC": 1})
    api.adjust(ADMIN, bob, {"GBC": 1})
    bobs = api.call("coins_transactions", uid=bob, query={"limit": 1}).get_json()
    response = api.call("coins_transactions", uid=alice, query={"cursor": bobs["next_cursor"]})
    assert response.status_code == 422
    assert error_code(response) == "validation_failed"


@pytest.mark.parametrize(
    "query",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"limit": -1},
        {"cursor": "!!"},
        {"cursor": "bm9wZQ"},
        {"type": "gift"},
        {"page": 2},
    ],
)
def test_bad_list_parameters_are_422(api, query):
    response = api.call("coins_transactions", uid=fresh_id(), query=query)
    assert response.status_code == 422
    assert error_code(response) == "validation_failed"


# Check balance.


@pytest.mark.parametrize(
    "coins, amount, expected",
    [
        ({"GRC": 1, "GDC": 3}, 60_000, {"sufficient": True, "pay_with": {"GDC": 3}, "change": {}, "shortfall_dirhams": 0}),
        ({"GRC": 1}, 10_000, {"sufficient": True, "pay_with": {"GRC": 1}, "change": {"GDC": 2}, "shortfall_dirhams": 0}),
        ({"GPC": 1}, 10_500, {"sufficient": False, "pay_with": {}, "change": {}, "shortfall_dirhams": 500}),
    ],
)
def test_check_balance_says_how_an_amount_would_be_paid(api, coins, amount, expected):
    alice = fresh_id()
    api.adjust(ADMIN, alice, coins)
    response = api.call("coins_check_balance", "POST", uid=alice, body={"amount_dirhams": amount})
    assert response.status_code == 200
    body = response.get_json()
    assert {k: body[k] for k in expected} == expected


def test_check_balance_of_a_user_without_a_wallet(api):
    body = api.call("coins_check_balance", "POST", uid=fresh_id(), body={"amount_dirhams": 500}).get_json()
    assert body == {"sufficient": False, "balance_dirhams": 0, "shortfall_dirhams": 500, "pay_with": {}, "change": {}}


# Idempotency through HTTP.


def test_a_replayed_adjustment_returns_the_first_response_and_moves_nothing_more(api, db):
    alice = fresh_id()
    first = api.adjust(ADMIN, alice, {"GGC": 1}, key="fix-1")
    second = api.adjust(ADMIN, alice, {"GGC": 1}, key="fix-1")
    assert (second.status_code, second.get_json()) == (first.status_code, first.get_json())
    assert db.collection("wallets").document(alice).get().get("coins") == {"GGC": 1}


def test_the_same_key_with_another_body_is_refused(api, db):
    alice = fresh_id()
    api.adjust(ADMIN, alice, {"GGC": 1}, key="fix-2")
    before = snapshot_all(db)
    response = api.adjust(ADMIN, alice, {"GGC": 2}, key="fix-2")
    assert response.status_code == 422
    assert error_code(response) == "idempotency_key_reused"
    assert snapshot_all(db) == before


def test_a_replayed_refusal_returns_the_same_4xx(api):
    alice = fresh_id()
    first = api.adjust(ADMIN, alice, {"GBC": -1}, key="neg-1")
    api.adjust(ADMIN, alice, {"GBC": 5})
    second = api.adjust(ADMIN, alice, {"GBC": -1}, key="neg-1")
    assert first.status_code == second.status_code == 409
    assert first.get_json() == second.get_json()


def test_twenty_concurrent_adjustments_with_one_key_do_the_work_once(api, db):
    alice = fresh_id()
    token = mint(ADMIN, admin=True)
    body = json.dumps({"user_id": alice, "coins": {"GPC": 1}, "reason": "bonus"})

    def call(_):
        # One test client per thread: Flask test clients are not shared across threads.
        from functions_framework import create_app

        client = create_app(target="admin_adjust_balance", source=api.source).test_client()
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "burst"}
        response = client.post("/", data=body, headers=headers, content_type="application/json")
        return response.status_code, response.get_json()

    clients_ready = [call(None)]  # the first call, serially, warms imports; its key is the same
    with ThreadPoolExecutor(19) as pool:
        results = clients_ready + list(pool.map(call, range(19)))
    stored = [body for status, body in results if status == 200]
    busy = [body for status, body in results if status == 409]
    assert len(stored) + len(busy) == 20
    assert all(b["error"]["code"] == "request_in_progress" for b in busy)
    assert len({b["entry_id"] for b in stored}) == 1
    assert db.collection("wallets").document(alice).get().get("coins") == {"GPC": 1}
    assert len(list(db.collection("ledger").stream())) == 1


# Bad input: each gets its documented 4xx and changes nothing.


@pytest.fixture
def funded(api):
    alice = fresh_id()
    api.adjust(ADMIN, alice, {"GPC": 1})
    return alice


def assert_refused(db, response, status, code):
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert body["error"]["code"] == code
    assert set(body["error"]) == {"code", "message", "details"}
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "",
        mint("alice", project_id="some-other-project"),
        mint("alice", iss="https://securetoken.google.com/some-other-project"),
        mint("alice", iat=4102444800),
        mint("", admin=True),
    ],
    ids=["garbage", "empty", "wrong-audience", "wrong-issuer", "issued-in-the-future", "no-subject"],
)
def test_an_invalid_token_is_401_and_changes_nothing(api, db, funded, token):
    before = snapshot_all(db)
    response = api.call(
        "admin_adjust_balance",
        "POST",
        headers={"Authorization": f"Bearer {token}"},
        key="k",
        body={"user_id": funded, "coins": {"GPC": 1}, "reason": "x"},
    )
    assert_refused(db, response, 401, "unauthenticated")
    assert snapshot_all(db) == before


def test_a_basic_auth_header_is_401(api, db):
    response = api.call("coins_wallet", headers={"Authorization": "Basic YWxpY2U6cHc="})
    assert_refused(db, response, 401, "unauthenticated")


ADJUST_BAD_BODIES = [
    ({"user_id": "bob", "coins": {"GPC": 1}}, "reason"),
    ({"user_id": "bob", "coins": {"GPC": 1}, "reason": "   "}, "reason"),
    ({"user_id": "bob", "coins": {"GPC": 1}, "reason": "x" * 501}, "reason"),
    ({"user_id": "bob", "coins": {}, "reason": "x"}, "coins"),
    ({"user_id": "bob", "coins": {"GPC": 0}, "reason": "x"}, "coins"),
    ({"user_id": "bob", "coins": {"GXC": 1}, "reason": "x"}, "coins"),
    ({"user_id": "bob", "coins": {"GPC": "1"}, "reason": "x"}, "coins.GPC"),
    ({"user_id": "bob", "coins": {"GPC": 1.0}, "reason": "x"}, "coins.GPC"),
    ({"user_id": "bob", "coins": {"GPC": 10**9}, "reason": "x"}, "coins.GPC"),
    ({"user_id": "bob", "coins": [1], "reason": "x"}, "coins"),
    ({"user_id": "../wallets/x", "coins": {"GPC": 1}, "reason": "x"}, "user_id"),
    ({"user_id": "", "coins": {"GPC": 1}, "reason": "x"}, "user_id"),
    ({"user_id": 7, "coins": {"GPC": 1}, "reason": "x"}, "user_id"),
    ({"user_id": "bob", "coins": {"GPC": 1}, "reason": "x", "note": "extra"}, "note"),
]


@pytest.mark.parametrize("body, field", ADJUST_BAD_BODIES)
def test_bad_adjustments_are_422_with_the_failing_field(api, db, body, field):
    before = snapshot_all(db)
    response = api.call("admin_adjust_balance", "POST", uid=ADMIN, admin=True, key=fresh_id("k"), body=body)
    assert_refused(db, response, 422, "validation_failed")
    assert field in [f["field"] for f in response.get_json()["error"]["details"]["fields"]]
    assert snapshot_all(db) == before


CHECK_BAD_AMOUNTS = [0, -500, 450, 501, "500", 500.0, 5.5, True, None, 10**40 + 1, [500], {"v": 500}]


@pytest.mark.parametrize("amount", CHECK_BAD_AMOUNTS, ids=repr)
def test_bad_amounts_are_422(api, db, funded, amount):
    before = snapshot_all(db)
    response = api.call("coins_check_balance", "POST", uid=funded, body={"amount_dirhams": amount})
    assert_refused(db, response, 422, "validation_failed")
    assert response.get_json()["error"]["details"]["fields"][0]["field"].startswith("amount_dirhams")
    assert snapshot_all(db) == before


def test_an_unknown_field_is_422(api, db, funded):
    response = api.call("coins_check_balance", "POST", uid=funded, body={"amount_dirhams": 500, "currency": "QAR"})
    assert_refused(db, response, 422, "validation_failed")


@pytest.mark.parametrize("function", ["coins_check_balance", "admin_adjust_balance"])
@pytest.mark.parametrize(
    "data, content_type",
    [
        ("{not json", "application/json"),
        ("[1, 2]", "application/json"),
        ('"text"', "application/json"),
        ("", "application/json"),
        ('{"amount_dirhams": NaN}', "application/json"),
        ("amount_dirhams=500", "application/x-www-form-urlencoded"),
        ('{"amount_dirhams": 500}', "text/plain"),
        ("[" * 5000 + "]" * 5000, "application/json"),
    ],
    ids=["malformed", "array", "string", "empty", "nan", "form", "text-plain", "deep-nesting"],
)
def test_a_body_that_is_not_a_json_object_is_400(api, db, funded, function, data, content_type):
    before = snapshot_all(db)
    response = api.call(function, "POST", uid=ADMIN, admin=True, key="k", data=data, content_type=content_type)
    assert_refused(db, response, 400, "invalid_request")
    assert snapshot_all(db) == before


@pytest.mark.parametrize("function", ["coins_check_balance", "admin_adjust_balance"])
def test_a_huge_body_is_413(api, db, funded, function):
    before = snapshot_all(db)
    body = {"user_id": funded, "coins": {"GPC": 1}, "reason": "x" * 100_000}
    response = api.call(function, "POST", uid=ADMIN, admin=True, key="k", body=body)
    assert_refused(db, response, 413, "invalid_request")
    assert snapshot_all(db) == before


@pytest.mark.parametrize(
    "key", [None, "", "k" * 256, "tab\there", "ключ"], ids=["missing", "empty", "too-long", "control", "non-ascii"]
)
def test_money_moves_need_a_valid_idempotency_key(api, db, funded, key):
    before = snapshot_all(db)
    headers = {"Idempotency-Key": key} if key is not None else {}
    if key is not None and not key.isascii():
        headers = {"Idempotency-Key": key.encode().decode("latin-1")}
    response = api.call(
        "admin_adjust_balance",
        "POST",
        uid=ADMIN,
        admin=True,
        headers=headers,
        body={"user_id": funded, "coins": {"GPC": 1}, "reason": "x"},
    )
    assert_refused(db, response, 400, "invalid_request")
    assert snapshot_all(db) == before
