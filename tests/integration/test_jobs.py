"""A job payment is bound to the app's job (`jobs/{id}` in `(default)`, as the app writes
it): only its client pays, only its hired freelancer is paid, and a job whose data is
not clean is refused with a clear 4xx, never a crash. A stranger can no longer squat a
job id."""

import pytest

from coins import app, catalog, errors
from tests import factories
from tests.money import fresh_id, snapshot_all

QAR = catalog.DIRHAMS_PER_QAR


def pay(api, client, job_id, freelancer=None, key=None, amount=100 * QAR):
    body = {"job_id": job_id, "amount_dirhams": amount}
    if freelancer is not None:
        body["freelancer_id"] = freelancer
    return api.call("coins_job_payment", "POST", uid=client, key=key or fresh_id("k"), body=body)


def error(response):
    return response.status_code, response.get_json()["error"]["code"]


@pytest.fixture
def client(api):
    return factories.wallet(api, {"GPC": 2})


def test_the_job_s_client_pays_its_hired_freelancer_who_need_not_be_named(api, db, client):
    freelancer = fresh_id("free")
    response = pay(api, client, factories.job(client, freelancer))
    assert response.status_code == 201
    assert (response.get_json()["client_id"], response.get_json()["freelancer_id"]) == (client, freelancer)


def test_the_accepted_offer_names_the_freelancer_when_freelancer_id_is_missing(api, db, client):
    freelancer = fresh_id("free")
    job_id = factories.job(client, freelancer, freelancerId=None)
    assert pay(api, client, job_id).get_json()["freelancer_id"] == freelancer


@pytest.mark.parametrize(
    "case, job_fields, expected",
    [
        ("no job", None, (404, "job_not_found")),
        ("someone else's job", {"clientId": "another-client"}, (403, "forbidden")),
        ("nobody hired", {"freelancerId": None, "acceptedOffer": None, "status": "open"}, (409, "invalid_state")),
        ("client id of the wrong type", {"clientId": 42}, (409, "invalid_state")),
        ("freelancer id of the wrong type", {"freelancerId": {"id": "x"}}, (409, "invalid_state")),
        ("freelancer id Firestore refuses", {"freelancerId": "__fuzz__"}, (409, "invalid_state")),
        ("accepted offer of the wrong type", {"freelancerId": None, "acceptedOffer": "yes"}, (409, "invalid_state")),
    ],
)
def test_a_job_that_cannot_be_paid_is_refused_and_nothing_moves(api, db, client, case, job_fields, expected):
    job_id = fresh_id("job")
    if job_fields is not None:
        factories.job(client, fresh_id("free"), job_id=job_id, **job_fields)
    before = snapshot_all(db)
    response = pay(api, client, job_id)
    assert error(response) == expected, case
    assert {k: v for k, v in snapshot_all(db).items() if not k.startswith("idempotency/")} == {
        k: v for k, v in before.items() if not k.startswith("idempotency/")
    }


def test_naming_another_freelancer_than_the_hired_one_is_422(api, db, client):
    job_id = factories.job(client, fresh_id("free"))
    response = pay(api, client, job_id, freelancer=fresh_id("other"))
    assert error(response) == (422, "validation_failed")
    assert response.get_json()["error"]["details"]["fields"][0]["field"] == "freelancer_id"


def test_a_stranger_cannot_squat_a_job_id_before_its_client_pays(api, db, client):
    job_id = factories.job(client, fresh_id("free"))
    stranger = factories.wallet(api, {"GPC": 1})
    assert error(pay(api, stranger, job_id)) == (403, "forbidden")
    assert pay(api, client, job_id).status_code == 201


def test_a_refusal_for_the_job_is_replayed_under_its_key_even_once_the_job_exists(api, db, client):
    job_id, key = fresh_id("job"), fresh_id("k")
    assert error(pay(api, client, job_id, key=key)) == (404, "job_not_found")
    factories.job(client, fresh_id("free"), job_id=job_id)
    assert error(pay(api, client, job_id, key=key)) == (404, "job_not_found"), "the same key answers the same"
    assert pay(api, client, job_id).status_code == 201, "a new key does the work"


def test_the_adapter_reads_push_tokens_where_the_app_really_writes_them():
    """setDoc(..., {merge: true}) with a dotted key stores a top-level field named
    "notificationTokens.<deviceId>"; a nested map is read as well."""
    user = app.parse_user(
        "u1",
        {
            "notificationTokens.dev-1": {"token": "ExponentPushToken[a]", "isActive": True, "platform": "ios"},
            "notificationTokens.dev-2": {"token": "ExponentPushToken[b]", "isActive": False},
            "notificationTokens": {"dev3": {"token": "ExponentPushToken[c]", "isActive": True}, "dev4": "garbage"},
            "language": "ar-QA",
        },
    )
    assert user.language == "ar"
    assert sorted((t.token, t.field_path) for t in user.push_tokens) == [
        ("ExponentPushToken[a]", "`notificationTokens.dev-1`"),
        ("ExponentPushToken[c]", "notificationTokens.dev3"),
    ]
    assert app.parse_user("u2", None).language is None, "none until the app writes one (coins.language decides)"
    assert app.parse_user("u3", {"language": 7, "notificationTokens": "x"}) == app.AppUser("u3", None, ())


def test_a_job_with_unusable_fields_is_a_409_not_a_crash():
    with pytest.raises(errors.InvalidState):
        app.parse_job("j", {"clientId": ["a"]})
    assert app.parse_job("j", {"clientId": "c", "acceptedOffer": {"freelancerId": "f"}, "title": 5}).freelancer_id == "f"
