"""The language a person reads, on the emulator: the Accept-Language of a user's own coin
requests is remembered on their wallet by the requests that write it anyway, and what
they are told follows it; an admin's language never lands on a user's wallet, a request
that writes nothing writes no language, and the app's own users/{uid}.language wins."""

import pytest

from coins import clients, notify, store, wallets
from tests import factories
from tests.integration.test_notifications import deliver_all, notifications_of, seed_user
from tests.money import fresh_id

QAR = factories.QAR


@pytest.fixture(autouse=True)
def _timers(task_queue):
    """Escrow events start and stop timers: the local queue stands in for Cloud Tasks."""


def arabic(text: str) -> bool:
    return any("\u0600" <= character <= "\u06ff" for character in text)


def pay_job(api, client: str, language: str | None) -> dict:
    """A job payment of 5 QAR by `client`, whose request asks for `language`."""
    body = {"job_id": factories.job(client, fresh_id("free")), "amount_dirhams": 5 * QAR}
    headers = {"Accept-Language": language} if language else {}
    response = api.call("coins_job_payment", "POST", uid=client, key=fresh_id("k"), body=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def api_token(uid: str, *, admin: bool = False) -> str:
    from local.tokens import mint

    return f"Bearer {mint(uid, admin=admin)}"


def remembered(db, uid: str) -> str | None:
    return (db.get(store.wallet(uid)) or {}).get("language")


def wallet_written_at(db, uid: str):
    return db.collection(store.WALLETS).document(uid).get().update_time


def test_a_user_whose_requests_ask_for_arabic_reads_arabic_afterwards(api, db, expo):
    client = factories.wallet(api, {"GBC": 2})
    pay_job(api, client, "ar-QA,ar;q=0.9,en;q=0.8")
    assert remembered(db, client) == "ar"
    deliver_all(db)
    notes = notifications_of(client)
    assert [n["metadata"]["kind"] for n in notes] == ["balance_adjusted", "escrow_funded"]
    assert all(arabic(n["title"]) and arabic(n["description"]) for n in notes), [n["title"] for n in notes]


def test_a_later_request_in_english_that_writes_the_wallet_switches_it(api, db, expo):
    client = factories.wallet(api, {"GBC": 2})
    pay_job(api, client, "ar")
    deliver_all(db)
    pay_job(api, client, "en-US")
    assert remembered(db, client) == "en"
    deliver_all(db)
    latest = notifications_of(client)[-1]
    assert latest["metadata"]["kind"] == "escrow_funded" and not arabic(latest["title"])


def test_a_request_without_a_language_of_ours_leaves_the_remembered_one(api, db):
    client = factories.wallet(api, {"GBC": 3})
    pay_job(api, client, "ar")
    pay_job(api, client, "fr-FR, *;q=0.5")
    pay_job(api, client, None)
    assert remembered(db, client) == "ar"


def test_an_admins_request_never_sets_the_users_language(api, db, expo):
    user = factories.wallet(api, {"GBC": 1})
    pay_job(api, user, "en")
    admin = {"uid": factories.ADMIN, "admin": True, "headers": {"Accept-Language": "ar"}}
    adjusted = api.call(
        "admin_adjust_balance", "POST", key=fresh_id("k"), body={"user_id": user, "coins": {"GBC": 1}, "reason": "t"}, **admin
    )
    assert adjusted.status_code == 200, adjusted.get_json()
    decided = api.client("admin_kyc_set").post(
        f"/api/admin/coins/kyc/{user}",
        json={"status": "verified"},
        headers={"Authorization": api_token(factories.ADMIN, admin=True), "Accept-Language": "ar"},
    )
    assert decided.status_code == 200, decided.get_json()
    assert remembered(db, user) == "en"
    deliver_all(db)
    told = [n for n in notifications_of(user) if n["metadata"]["kind"] == "balance_adjusted"]
    assert len(told) == 2 and not any(arabic(n["title"]) for n in told)


def test_a_request_that_does_not_write_the_wallet_writes_no_language(api, db):
    client = factories.wallet(api, {"GBC": 1})
    escrow = pay_job(api, client, "ar")
    before = wallet_written_at(db, client)
    asking = {"uid": client, "headers": {"Accept-Language": "en"}}
    assert api.call("coins_wallet", **asking).status_code == 200
    assert api.call("coins_check_balance", "POST", body={"amount_dirhams": 5 * QAR}, **asking).status_code == 200
    refund = api.client("coins_escrow_request_refund").post(
        f"/api/coins/escrow/{escrow['id']}/request-refund",
        json={"reason": "not needed"},
        headers={"Authorization": api_token(client), "Accept-Language": "en"},
    )
    assert refund.status_code == 200, refund.get_json()
    assert wallet_written_at(db, client) == before and remembered(db, client) == "ar"


def test_a_withdrawal_and_a_kyc_submission_remember_the_language(api, db):
    user = factories.wallet(api, {"GPC": 1}, kyc="verified")
    body = {"amount_dirhams": 100 * QAR, **factories.BANK}
    response = api.call(
        "coins_withdrawal_create", "POST", uid=user, key=fresh_id("k"), body=body, headers={"Accept-Language": "ar"}
    )
    assert response.status_code == 201, response.get_json()
    assert remembered(db, user) == "ar"
    other = fresh_id()
    kyc = {"full_name": "Alice A", "qid_number": "28763400001", "document_urls": ["https://example.com/qid.png"]}
    submitted = api.call("coins_kyc_submit", "POST", uid=other, body=kyc, headers={"Accept-Language": "ar"})
    assert submitted.status_code == 200, submitted.get_json()
    assert remembered(db, other) == "ar"


def test_the_first_read_of_a_wallet_remembers_the_language_and_a_later_read_writes_nothing(db):
    uid = fresh_id()
    wallets.get_wallet(db, uid, language="ar")
    assert remembered(db, uid) == "ar"
    before = wallet_written_at(db, uid)
    wallets.get_wallet(db, uid, language="en")
    assert wallet_written_at(db, uid) == before and remembered(db, uid) == "ar"


def test_the_apps_own_language_wins_over_the_remembered_one(api, db, expo):
    chose_english, chose_arabic = factories.wallet(api, {"GBC": 1}), factories.wallet(api, {"GBC": 1})
    pay_job(api, chose_english, "ar")
    pay_job(api, chose_arabic, "en")
    seed_user(chose_english, "en")
    seed_user(chose_arabic, "ar-QA")
    deliver_all(db)
    assert not any(arabic(n["title"]) for n in notifications_of(chose_english))
    assert all(arabic(n["title"]) for n in notifications_of(chose_arabic))
    app_db = clients.app_db()
    assert (notify.language_of(db, app_db, chose_english), notify.language_of(db, app_db, chose_arabic)) == ("en", "ar")
    assert notify.language_of(db, app_db, fresh_id()) == "en", "nobody knows: English"


def test_a_purchase_keeps_its_language_for_checkout_and_does_not_write_the_wallet(api, db, fatora):
    buyer = fresh_id()
    response = api.call(
        "coins_purchase_create",
        "POST",
        uid=buyer,
        key=fresh_id("k"),
        body={"pack_id": "starter"},
        headers={"Accept-Language": "ar"},
    )
    assert response.status_code == 201, response.get_json()
    assert db.get(store.purchase(response.get_json()["id"]))["language"] == "ar"
    assert db.get(store.wallet(buyer)) is None
