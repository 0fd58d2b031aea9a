"""KYC submitted by users: pending, in the admins' queue with the documents and the full
QID, decided by an admin, told to the user. The QID is masked everywhere but there."""

import json

import pytest

from coins import clients, notify, store
from local.tokens import mint
from tests.money import fresh_id, snapshot_all

SUBMISSION = {
    "full_name": "Alice Example",
    "qid_number": "28412345678",
    "document_urls": ["https://uploads.example/id-front.jpg", "https://uploads.example/id-back.jpg"],
}


def submit(api, uid, body=None):
    return api.call("coins_kyc_submit", "POST", uid=uid, body=body or SUBMISSION)


def decide(api, uid, status, note="checked"):
    return api.client("admin_kyc_set").post(
        f"/api/admin/coins/kyc/{uid}",
        data=json.dumps({"status": status, "note": note}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {mint('kyc-admin', admin=True)}"},
    )


def pending(api):
    return api.call("admin_kyc_pending", uid="kyc-admin", admin=True).get_json()["items"]


def test_a_submission_is_pending_and_the_qid_is_masked_for_the_user(api, db):
    alice = fresh_id()
    answer = submit(api, alice)
    assert answer.status_code == 200
    assert (answer.get_json()["kyc_status"], answer.get_json()["kyc_qid_masked"]) == ("pending", "•••••••5678")
    wallet = api.call("coins_wallet", uid=alice).get_json()
    assert "28412345678" not in json.dumps(wallet)
    history = [s.to_dict() for s in db.collection("wallets").document(alice).collection("kyc_history").stream()]
    assert "28412345678" not in json.dumps(history, default=str)
    assert db.get(store.kyc(alice))["qid_number"] == "28412345678", "kept whole for admins only"


def test_admins_see_submissions_oldest_first_with_documents_and_the_full_qid(api, db):
    first, second = fresh_id(), fresh_id()
    submit(api, first)
    submit(api, second, {**SUBMISSION, "qid_number": "29912345678"})
    items = pending(api)
    assert [i["user_id"] for i in items] == [first, second]
    assert items[0]["qid_number"] == "28412345678" and items[0]["document_urls"] == SUBMISSION["document_urls"]
    assert api.call("admin_kyc_pending", uid=first).status_code == 403


def test_a_rejected_user_can_resubmit_a_verified_one_cannot_and_both_are_told(api, db, task_queue):
    alice = fresh_id()
    submit(api, alice)
    assert decide(api, alice, "rejected", "the photo is blurred").status_code == 200
    assert pending(api) == []
    assert submit(api, alice).status_code == 200, "rejected: may submit again"
    assert decide(api, alice, "verified").status_code == 200
    again = submit(api, alice)
    assert (again.status_code, again.get_json()["error"]["code"]) == (409, "invalid_state")
    for snapshot in sorted(db.collection("outbox").stream(), key=lambda s: s.get("at")):
        notify.deliver(db, clients.app_db(), None, task_queue, snapshot.id)
    from google.cloud.firestore import FieldFilter

    notes = [
        n.to_dict()
        for n in clients.app_db().client.collection("notifications").where(filter=FieldFilter("userId", "==", alice)).stream()
    ]
    titles = sorted(n["title"] for n in notes)
    assert titles == ["Identity not verified", "Identity verified"]
    assert any("blurred" in n["description"] for n in notes)


@pytest.mark.parametrize(
    "body",
    [
        {**SUBMISSION, "qid_number": "2841234567"},
        {**SUBMISSION, "qid_number": "2841234567a"},
        {**SUBMISSION, "qid_number": 28412345678},
        {**SUBMISSION, "document_urls": []},
        {**SUBMISSION, "document_urls": ["https://u.example/x"] * 6},
        {**SUBMISSION, "document_urls": ["http://u.example/x"]},
        {**SUBMISSION, "full_name": " "},
        {**SUBMISSION, "extra": 1},
        {"full_name": "A B", "qid_number": "28412345678"},
    ],
)
def test_a_bad_submission_is_422_and_changes_nothing(api, db, body):
    answer = submit(api, fresh_id(), body)
    assert answer.status_code == 422
    assert snapshot_all(db) == {}
