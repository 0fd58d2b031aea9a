"""What people hear, through the outbox trigger: one notification per person in the
app's `notifications` collection (the app's schema, the reader's language), a push to
their Expo tokens (the stand-in speaks Expo's API), the escrow written onto the app's
job, and the admins told what needs an operator. Delivered twice, nothing is written
twice."""

import pytest

from coins import catalog, clients, ledger, notify, reconciliation, store
from tests import factories
from tests.conftest import ADMIN_UIDS
from tests.money import document_event, fresh_id, wait_for

QAR = catalog.DIRHAMS_PER_QAR
TOKEN = "ExponentPushToken[freelancer-phone]"


def app():
    return clients.app_db().client


@pytest.fixture(autouse=True)
def _timers(task_queue):
    """Escrow events start and stop timers: the local queue stands in for Cloud Tasks."""


def deliver_all(db):
    """Every event of the outbox, delivered as the trigger would, in order."""
    delivered = []
    for snapshot in sorted(db.collection("outbox").stream(), key=lambda s: s.get("at")):
        if notify.deliver(db, clients.app_db(), clients.push(), clients.scheduler(), snapshot.id):
            delivered.append(snapshot.to_dict()["kind"])
    return delivered


def notifications_of(uid):
    from google.cloud.firestore import FieldFilter

    return sorted(
        (s.to_dict() for s in app().collection("notifications").where(filter=FieldFilter("userId", "==", uid)).stream()),
        key=lambda n: n["createdAt"],
    )


def seed_user(uid, language=None, **tokens):
    """users/{uid} as the app writes it: setDoc(..., {merge: true}) with dotted keys."""
    data = {"displayName": uid, **({"language": language} if language else {})}
    for device, token in tokens.items():
        data[f"notificationTokens.{device}"] = {"token": token, "platform": "ios", "isActive": True}
    app().collection("users").document(uid).set(data)


def post(api, function, path, uid, body=None, admin=False):
    import json

    from local.tokens import mint

    headers = {"Authorization": f"Bearer {mint(uid, admin=admin)}", "Idempotency-Key": fresh_id("k")}
    return api.client(function).post(path, data=json.dumps(body or {}), headers=headers, content_type="application/json")


@pytest.fixture
def job_paid(api, db):
    client, freelancer = factories.wallet(api, {"GPC": 1}), fresh_id("free")
    seed_user(freelancer, "ar", phone=TOKEN)
    escrow = factories.escrow(api, client, freelancer=freelancer)
    return client, freelancer, escrow


def test_a_job_payment_tells_both_parties_in_their_language_and_pushes_to_the_freelancer(db, expo, job_paid):
    client, freelancer, escrow = job_paid
    assert deliver_all(db) == ["balance_adjusted", "escrow_funded"]
    [funded] = [n for n in notifications_of(freelancer)]
    assert funded["title"] == "تم تمويل الوظيفة" and funded["description"] == "تم حجز 100.00 ر.ق في حساب الضمان مقابل عملك."
    assert {k: funded[k] for k in ("userId", "type", "isRead", "priority", "actionUrl")} == {
        "userId": freelancer,
        "type": "payment",
        "isRead": False,
        "priority": "high",
        "actionUrl": f"guild://coins/escrow/{escrow['id']}",
    }
    assert funded["metadata"] == {
        "kind": "escrow_funded",
        "amount": 100,
        "currency": "QAR",
        "jobId": escrow["job_id"],
        "escrowId": escrow["id"],
    }
    client_notes = notifications_of(client)
    assert [n["title"] for n in client_notes] == ["Balance adjusted", "Payment held in escrow"], "English when unknown"
    [pushed] = expo.to(TOKEN)
    assert (pushed["title"], pushed["body"]) == (funded["title"], funded["description"])
    assert pushed["data"]["url"] == funded["actionUrl"]


def test_notifications_have_deterministic_ids_and_a_redelivered_event_writes_nothing_twice(api, db, expo, job_paid):
    client, freelancer, escrow = job_paid
    event_id = [s.id for s in db.collection("outbox").stream() if s.get("kind") == "escrow_funded"][0]
    entry = db.get(store.entry(event_id))
    assert entry["type"] == "escrow_lock", "a money event is named after its journal entry"
    for _ in range(2):
        headers, body = document_event("outbox", event_id)
        assert api.client("outbox_on_create").post("/", headers=headers, data=body).status_code == 200
    assert app().document(f"notifications/{event_id}_{freelancer}").get().exists
    assert len(notifications_of(freelancer)) == 1 and len(expo.to(TOKEN)) == 1


def test_the_job_shows_the_escrow_and_follows_it_to_its_release(api, db, expo, job_paid):
    client, freelancer, escrow = job_paid
    deliver_all(db)
    job = app().document(f"jobs/{escrow['job_id']}").get().to_dict()
    assert (job["escrowId"], job["coinEscrow"]) == (
        escrow["id"],
        {"status": "funded", "milestone": "1", "amount": 100, "released": 0, "refunded": 0},
    )
    assert post(api, "coins_escrow_release", f"/api/coins/escrow/{escrow['id']}/release", client).status_code == 200
    assert deliver_all(db) == ["escrow_released"]
    job = app().document(f"jobs/{escrow['job_id']}").get().to_dict()
    assert job["coinEscrow"] == {"status": "released", "milestone": "1", "amount": 100, "released": 100, "refunded": 0}
    assert job["coinEscrows"] == {escrow["id"]: {"escrowId": escrow["id"], **job["coinEscrow"]}}
    assert job["clientId"] == client and job["title"] == "Logo design", "the app's fields are untouched"
    released = notifications_of(freelancer)[-1]
    assert released["title"] == "تم صرف الدفعة" and "رسوم المنصة 10" in released["description"]
    assert released["metadata"]["amount"] == 90
    assert released["metadata"]["receiptUrl"] == f"/api/coins/escrow/{escrow['id']}/receipt"
    assert notifications_of(client)[-1]["metadata"]["receiptUrl"] == released["metadata"]["receiptUrl"], "both parties"


def test_a_token_expo_no_longer_knows_is_marked_inactive_where_the_app_keeps_it(db, expo, api):
    client, freelancer = factories.wallet(api, {"GPC": 1}), fresh_id("free")
    gone, kept = "ExponentPushToken[old-phone]", "ExponentPushToken[new-phone]"
    seed_user(freelancer, old=gone, new=kept)
    expo.unregistered.add(gone)
    factories.escrow(api, client, freelancer=freelancer)
    deliver_all(db)
    user = app().document(f"users/{freelancer}").get().to_dict()
    assert user["notificationTokens.old"]["isActive"] is False
    assert user["notificationTokens.new"]["isActive"] is True
    assert len(expo.to(kept)) == 1


def test_a_push_service_outage_never_fails_the_trigger_or_the_notification(db, expo, job_paid, capsys):
    client, freelancer, escrow = job_paid
    expo.fail_next = 10
    assert deliver_all(db) == ["balance_adjusted", "escrow_funded"]
    assert len(notifications_of(freelancer)) == 1 and expo.to(TOKEN) == []
    assert "expo refused the push request" in capsys.readouterr().out


def test_admins_hear_of_withdrawal_requests_large_ones_urgently(api, db, expo, monkeypatch):
    monkeypatch.setenv("WITHDRAWAL_LARGE_DIRHAMS", str(100 * QAR))
    alice = factories.wallet(api, {"GPC": 1}, kyc="verified")
    withdrawal = factories.withdrawal(api, alice)
    deliver_all(db)
    for admin in ADMIN_UIDS:
        [note] = notifications_of(admin)
        assert (note["title"], note["priority"], note["metadata"]["withdrawalId"]) == (
            "Large withdrawal request",
            "urgent",
            withdrawal["id"],
        )
    assert notifications_of(alice)[-1]["title"] != "Large withdrawal request"


def test_the_owner_hears_of_each_step_of_a_withdrawal(api, db, expo):
    alice = factories.wallet(api, {"GPC": 1}, kyc="verified")
    withdrawal = factories.withdrawal(api, alice)
    for action, body in (("approve", {}), ("paid", {"payment_reference": "TRX-9"})):
        response = post(
            api, f"coins_withdrawal_{action}", f"/api/coins/withdrawal/{withdrawal['id']}/{action}", "ops-one", body, admin=True
        )
        assert response.status_code == 200
    deliver_all(db)
    told = notifications_of(alice)
    assert [n["title"] for n in told] == [
        "Identity verified",
        "Balance adjusted",
        "Withdrawal approved",
        "Withdrawal paid",
    ]
    assert told[-1]["metadata"]["receiptUrl"] == f"/api/coins/withdrawal/{withdrawal['id']}/receipt"
    assert [n for n in told if "receiptUrl" in n["metadata"]] == [told[-1]], "only a paid withdrawal has a receipt"


def test_a_dispute_tells_the_other_party_and_the_admins(api, db, expo, job_paid):
    client, freelancer, escrow = job_paid
    response = post(
        api, "coins_escrow_dispute", f"/api/coins/escrow/{escrow['id']}/dispute", client, {"reason": "never delivered"}
    )
    assert response.status_code == 200
    deliver_all(db)
    disputed = notifications_of(freelancer)[-1]
    assert (disputed["type"], disputed["priority"]) == ("dispute", "high")
    assert disputed["description"] == "فُتح نزاع على مبلغ 100.00 ر.ق. السبب: \u2068never delivered\u2069", "in Arabic"
    assert [n["type"] for n in notifications_of(client)] == ["payment", "payment"], "not told of its own dispute"
    for admin in ADMIN_UIDS:
        assert notifications_of(admin)[-1]["title"] == "Dispute opened"


def test_a_purchase_in_review_tells_the_buyer_and_the_admins(api, db, expo, fatora):
    buyer = fresh_id()
    purchase = factories.purchase(api, buyer)
    fatora.faults.verify_amount = "1.00"
    fatora.decide(purchase["id"], pay=True)
    wait_for(lambda: db.get(store.purchase(purchase["id"])).get("needs_review"))
    deliver_all(db)
    assert [n["title"] for n in notifications_of(buyer)] == ["Payment under review"]
    assert notifications_of(ADMIN_UIDS[0])[-1]["title"] == "Purchase needs review"


def test_a_paid_purchase_tells_the_buyer_coins_were_added(api, db, expo, fatora):
    buyer = fresh_id()
    purchase = factories.purchase(api, buyer)
    fatora.decide(purchase["id"], pay=True)
    wait_for(lambda: db.get(store.purchase(purchase["id"]))["status"] == "paid")
    deliver_all(db)
    [added] = notifications_of(buyer)
    assert added["title"] == "Coins added" and added["metadata"]["amount"] == 5
    assert added["metadata"]["receiptUrl"] == f"/api/coins/purchase/{purchase['id']}/receipt"


def test_a_reconciliation_problem_reaches_the_admins_once_a_day(api, db, expo):
    # Paid, says a purchase changed just now, with no issue entry.
    db.collection("purchases").document("p1").set({"id": "p1", "status": "paid", "user_id": "x", "updated_at": ledger.now_utc()})
    reconciliation.run_daily(db, "2026-11-27")
    reconciliation.run_daily(db, "2026-11-27")
    deliver_all(db)
    for admin in ADMIN_UIDS:
        assert [n["priority"] for n in notifications_of(admin)] == ["urgent"]
    db.collection("purchases").document("p1").delete()


def test_each_escrow_transition_tells_the_other_party_and_the_job_follows(api, db, expo, job_paid):
    client, freelancer, escrow = job_paid
    path = f"/api/coins/escrow/{escrow['id']}"
    steps = [
        ("coins_escrow_submit", "/submit", freelancer, {"note": "v1"}, client, "Work submitted"),
        ("coins_escrow_request_changes", "/request-changes", client, {"note": "bigger logo"}, freelancer, "طُلبت تعديلات"),
        ("coins_escrow_request_refund", "/request-refund", client, {"reason": "too slow"}, freelancer, "طُلب استرداد"),
        ("coins_escrow_dispute", "/dispute", freelancer, {"reason": "it was on time"}, client, "Refund request declined"),
    ]
    for function, suffix, actor, body, told, title in steps:
        assert post(api, function, path + suffix, actor, body).status_code == 200, function
        deliver_all(db)
        assert notifications_of(told)[-1]["title"] == title, function
    assert notifications_of(ADMIN_UIDS[0])[-1]["title"] == "Dispute opened"
    resolved = post(
        api,
        "admin_escrow_resolve",
        f"/api/admin/coins/escrow/{escrow['id']}/resolve",
        "ops-one",
        {"freelancer_dirhams": 6000, "note": "half the work"},
        admin=True,
    )
    assert resolved.status_code == 200 and resolved.get_json()["status"] == "split"
    deliver_all(db)
    assert notifications_of(client)[-1]["title"] == "Dispute resolved"
    assert notifications_of(freelancer)[-1]["title"] == "تم حل النزاع"
    job = app().document(f"jobs/{escrow['job_id']}").get().to_dict()
    assert job["coinEscrow"] == {"status": "split", "milestone": "1", "amount": 100, "released": 60, "refunded": 40}


def test_a_job_of_two_milestones_shows_each_of_them(api, db, expo):
    """The README's walk-through: "Design" released while "Build" was split."""
    client, freelancer = factories.wallet(api, {"GPC": 2}), fresh_id("free")
    job_id = factories.job(client, freelancer)
    design = factories.escrow_on(api, client, job_id, milestone="Design")
    build = factories.escrow_on(api, client, job_id, milestone="Build")
    assert post(api, "coins_escrow_release", f"/api/coins/escrow/{design['id']}/release", client).status_code == 200
    assert (
        post(
            api,
            "coins_escrow_dispute",
            f"/api/coins/escrow/{build['id']}/dispute",
            freelancer,
            {"reason": "the client stopped answering"},
        ).status_code
        == 200
    )
    assert (
        post(
            api,
            "admin_escrow_resolve",
            f"/api/admin/coins/escrow/{build['id']}/resolve",
            "ops-one",
            {"freelancer_dirhams": 6000, "note": "60/40"},
            admin=True,
        ).status_code
        == 200
    )
    deliver_all(db)
    job = app().document(f"jobs/{job_id}").get().to_dict()
    assert job["coinEscrows"] == {
        design["id"]: {
            "escrowId": design["id"],
            "status": "released",
            "milestone": "Design",
            "amount": 100,
            "released": 100,
            "refunded": 0,
        },
        build["id"]: {
            "escrowId": build["id"],
            "status": "split",
            "milestone": "Build",
            "amount": 100,
            "released": 60,
            "refunded": 40,
        },
    }
    assert job["escrowId"] == build["id"], "the one that changed last, as the app reads it today"
