"""What the console needs to work through its queues: how many wait in each, a queue read
on past an item an admin acted on meanwhile, the users (recent, or by the beginning of a
uid), and answers about people that no browser or proxy keeps."""

from coins import catalog
from tests import factories
from tests.money import fresh_id

QAR = catalog.DIRHAMS_PER_QAR
ADMIN = "queues-admin"


def admin_get(api, function, query=None):
    response = api.call(function, uid=ADMIN, admin=True, query=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def withdrawal_of_a_new_user(api):
    return factories.withdrawal(api, factories.wallet(api, {"GPC": 1}, kyc="verified"))


def submit_kyc(api, uid):
    body = {"full_name": "K Example", "qid_number": "28412345678", "document_urls": ["https://u.example/id.jpg"]}
    assert api.call("coins_kyc_submit", "POST", uid=uid, body=body).status_code == 200


def test_the_queues_count_what_waits_in_each(api):
    assert admin_get(api, "admin_queues") == {"withdrawals": 0, "kyc": 0, "disputes": 0, "purchases": 0}
    withdrawal_of_a_new_user(api)
    second = withdrawal_of_a_new_user(api)
    rejected = factories._at(
        api, "coins_withdrawal_reject", "POST", f"/api/coins/withdrawal/{second['id']}/reject", ADMIN, {"reason": "r"}, admin=True
    )
    assert rejected.status_code == 200
    submit_kyc(api, fresh_id("k"))
    client = factories.wallet(api, {"GPC": 1})
    escrow = factories.escrow(api, client)
    disputed = factories._at(
        api, "coins_escrow_dispute", "POST", f"/api/coins/escrow/{escrow['id']}/dispute", client, {"reason": "late"}
    )
    assert disputed.status_code == 200
    assert admin_get(api, "admin_queues") == {"withdrawals": 1, "kyc": 1, "disputes": 1, "purchases": 0}


def test_a_queue_reads_on_past_the_item_an_admin_acted_on_since_the_page_was_read(api):
    ids = [withdrawal_of_a_new_user(api)["id"] for _ in range(3)]
    page = admin_get(api, "coins_withdrawals_pending", {"limit": 2})
    assert [w["id"] for w in page["items"]] == ids[:2]
    acted_on = factories._at(
        api, "coins_withdrawal_reject", "POST", f"/api/coins/withdrawal/{ids[1]}/reject", ADMIN, {"reason": "r"}, admin=True
    )
    assert acted_on.status_code == 200
    rest = admin_get(api, "coins_withdrawals_pending", {"limit": 2, "cursor": page["next_cursor"]})
    assert [w["id"] for w in rest["items"]] == ids[2:] and rest["next_cursor"] is None


def test_the_kyc_queue_reads_on_past_a_submission_decided_since(api):
    uids = [f"kq{n}{fresh_id()}" for n in range(3)]
    for uid in uids:
        submit_kyc(api, uid)
    page = admin_get(api, "admin_kyc_pending", {"limit": 2})
    assert [s["user_id"] for s in page["items"]] == uids[:2]
    decided = factories._at(
        api, "admin_kyc_set", "POST", f"/api/admin/coins/kyc/{uids[1]}", ADMIN, {"status": "verified"}, admin=True
    )
    assert decided.status_code == 200
    rest = admin_get(api, "admin_kyc_pending", {"limit": 2, "cursor": page["next_cursor"]})
    assert [s["user_id"] for s in rest["items"]] == uids[2:]


def test_the_users_are_listed_most_recently_changed_first_and_found_by_the_beginning_of_their_uid(api):
    tag = fresh_id("p")
    older, newer, other = factories.wallet(api, {"GBC": 1}, uid=f"{tag}-a"), f"{tag}-b", fresh_id("o")
    factories.wallet(api, {"GBC": 2}, uid=newer)
    factories.wallet(api, {"GBC": 1}, uid=other)
    recent = admin_get(api, "admin_users_list", {"limit": 2})
    assert [w["user_id"] for w in recent["items"]] == [other, newer] and recent["next_cursor"]
    rest = admin_get(api, "admin_users_list", {"cursor": recent["next_cursor"]})
    assert [w["user_id"] for w in rest["items"]] == [older] and rest["next_cursor"] is None
    found = admin_get(api, "admin_users_list", {"prefix": tag, "limit": 1})
    assert [w["user_id"] for w in found["items"]] == [older]
    found_on = admin_get(api, "admin_users_list", {"prefix": tag, "cursor": found["next_cursor"]})
    assert [(w["user_id"], w["balance_dirhams"]) for w in found_on["items"]] == [(newer, catalog.value_dirhams({"GBC": 2}))]
    assert admin_get(api, "admin_users_list", {"prefix": f"{tag}-c"}) == {"items": [], "next_cursor": None}


def test_a_prefix_that_no_uid_can_begin_with_is_refused_with_its_field(api):
    response = api.call("admin_users_list", uid=ADMIN, admin=True, query={"prefix": "a/b"})
    assert response.status_code == 422
    assert [f["field"] for f in response.get_json()["error"]["details"]["fields"]] == ["prefix"]


def test_answers_about_people_are_not_stored_by_browsers_or_proxies(api):
    assert api.call("coins_wallet", uid=fresh_id()).headers["Cache-Control"] == "no-store"
    assert api.call("admin_queues", uid=ADMIN, admin=True).headers["Cache-Control"] == "no-store"
    assert api.call("admin_queues", uid=fresh_id()).headers["Cache-Control"] == "no-store", "a refusal too"
    assert "no-store" not in api.call("coins_catalog").headers.get("Cache-Control", "")
