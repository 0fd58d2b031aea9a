"""firestore.rules on the real emulator, called over its REST API as an end user with the
emulator's unsigned ID tokens (no Node needed). In the coins database clients read their
own wallet and ledger entries and nothing else, and no client writes anything; in the
app's `(default)` database our rules grant nothing at all (the app's rules govern it)."""

import json
import re

import pytest
import requests

from local.emulator import PROJECT_ID
from local.tokens import mint

ALICE, BOB = "alice", "bob"
COINS = "guild-coins"


@pytest.fixture(autouse=True)
def seeded(emulator, db):
    emulator.clear()
    for uid in (ALICE, BOB):
        db.collection("wallets").document(uid).set({"user_id": uid, "coins": {}, "balance_dirhams": 0})
    db.collection("ledger").document("entry-alice").set({"id": "entry-alice", "type": "admin_adjust", "user_ids": [ALICE]})
    db.collection("ledger").document("entry-bob").set({"id": "entry-bob", "type": "admin_adjust", "user_ids": [BOB]})
    db.collection("idempotency").document("some-key").set({"scope": ALICE, "state": "done"})
    db.collection("purchases").document("purchase-alice").set({"id": "purchase-alice", "user_id": ALICE, "status": "paid"})
    db.collection("purchases").document("purchase-alice").collection("events").document("e1").set({"outcome": "paid"})
    db.collection("escrows").document("escrow-1").set(
        {"id": "escrow-1", "client_id": ALICE, "freelancer_id": BOB, "status": "funded"}
    )
    db.collection("vault").document("summary").collection("shards").document("0").set({"entries": {}})
    db.collection("withdrawals").document("w1").set({"id": "w1", "user_id": ALICE, "destination_masked": {"iban": "•••• DEFG"}})
    db.collection("withdrawals").document("w1").collection("private").document("destination").set(
        {"iban": "QA58DOHB00001234567890ABCDEFG"}
    )
    db.collection("audit").document("a1").set({"action": "kyc_set"})
    db.collection("outbox").document("o1").set({"kind": "escrow_funded", "facts": {"client_id": ALICE}})
    db.collection("kyc").document(ALICE).set({"user_id": ALICE, "qid_number": "28412345678"})
    db.collection("limits").document(ALICE).set({"purchase": []})
    db.collection("effect_failures").document("e1").set({"entry_id": "e1", "failures": []})
    db.collection("reconciliation").document("2026-11-27").set({"ok": True})


@pytest.fixture
def rest(emulator):
    return rest_on(emulator, COINS)


def rest_on(emulator, database):
    base = f"{emulator.url}/v1/projects/{PROJECT_ID}/databases/{database}/documents"

    def call(method, path, uid=None, admin=False, json=None):
        headers = {"Authorization": f"Bearer {mint(uid, admin=admin)}"} if uid else {}
        return requests.request(method, f"{base}{path}", headers=headers, json=json, timeout=10)

    return call


def test_a_user_reads_their_own_wallet(rest):
    response = rest("GET", "/wallets/alice", uid=ALICE)
    assert response.status_code == 200
    assert response.json()["fields"]["user_id"]["stringValue"] == ALICE


@pytest.mark.parametrize("uid, admin", [(BOB, False), (None, False), (BOB, True)], ids=["other-user", "anonymous", "admin-claim"])
def test_nobody_else_reads_a_wallet(rest, uid, admin):
    response = rest("GET", "/wallets/alice", uid=uid, admin=admin)
    assert response.status_code == 403
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"


def test_a_user_reads_their_own_ledger_entries_and_no_others(rest):
    assert rest("GET", "/ledger/entry-alice", uid=ALICE).status_code == 200
    assert rest("GET", "/ledger/entry-bob", uid=ALICE).status_code == 403
    assert rest("GET", "/ledger/entry-alice").status_code == 403


def test_a_user_lists_their_own_ledger_entries_with_array_contains(rest):
    def query(uid, asked_for):
        body = {
            "structuredQuery": {
                "from": [{"collectionId": "ledger"}],
                "where": {
                    "fieldFilter": {
                        "field": {"fieldPath": "user_ids"},
                        "op": "ARRAY_CONTAINS",
                        "value": {"stringValue": asked_for},
                    }
                },
            }
        }
        return rest("POST", ":runQuery", uid=uid, json=body)

    own = query(ALICE, ALICE)
    assert own.status_code == 200
    assert [r["document"]["name"].rsplit("/", 1)[1] for r in own.json() if "document" in r] == ["entry-alice"]
    assert query(ALICE, BOB).status_code == 403


def test_a_user_cannot_list_all_wallets(rest):
    assert rest("GET", "/wallets", uid=ALICE).status_code == 403


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("PATCH", "/wallets/alice", {"fields": {"balance_dirhams": {"integerValue": "999999"}}}),
        ("PATCH", "/wallets/carol", {"fields": {"user_id": {"stringValue": "carol"}}}),
        ("DELETE", "/wallets/alice", None),
        ("PATCH", "/ledger/forged", {"fields": {"user_ids": {"arrayValue": {"values": [{"stringValue": "alice"}]}}}}),
        ("DELETE", "/ledger/entry-alice", None),
        ("PATCH", "/idempotency/some-key", {"fields": {"state": {"stringValue": "in_progress"}}}),
        ("PATCH", "/purchases/p1", {"fields": {"user_id": {"stringValue": "alice"}}}),
        ("PATCH", "/escrows/e1", {"fields": {"client_id": {"stringValue": "alice"}}}),
        ("PATCH", "/withdrawals/w1", {"fields": {"user_id": {"stringValue": "alice"}}}),
        ("PATCH", "/audit/a1", {"fields": {}}),
        ("PATCH", "/vault/summary/shards/0", {"fields": {}}),
        ("PATCH", "/escrow_milestones/m1", {"fields": {"open_escrow_id": {"stringValue": "x"}}}),
        ("PATCH", "/effect_failures/e1", {"fields": {}}),
        ("PATCH", "/outbox/o1", {"fields": {}}),
    ],
)
@pytest.mark.parametrize("admin", [False, True], ids=["user", "admin-claim"])
def test_no_client_writes_anything(rest, db, method, path, body, admin):
    before = db.document(path.lstrip("/")).get().to_dict()
    response = rest(method, path, uid=ALICE, admin=admin, json=body)
    assert response.status_code == 403
    assert db.document(path.lstrip("/")).get().to_dict() == before


def test_idempotency_records_are_not_readable_by_clients(rest):
    assert rest("GET", "/idempotency/some-key", uid=ALICE).status_code == 403


def test_a_buyer_reads_their_own_purchase_and_nobody_else_does(rest):
    assert rest("GET", "/purchases/purchase-alice", uid=ALICE).status_code == 200
    assert rest("GET", "/purchases/purchase-alice", uid=BOB).status_code == 403
    assert rest("GET", "/purchases/purchase-alice").status_code == 403
    assert rest("GET", "/purchases/purchase-alice/events/e1", uid=ALICE).status_code == 403


def test_the_client_and_the_freelancer_read_their_escrow_and_nobody_else(rest):
    assert rest("GET", "/escrows/escrow-1", uid=ALICE).status_code == 200
    assert rest("GET", "/escrows/escrow-1", uid=BOB).status_code == 200
    assert rest("GET", "/escrows/escrow-1", uid="carol").status_code == 403
    assert (
        rest("PATCH", "/escrows/escrow-1", uid=ALICE, json={"fields": {"status": {"stringValue": "released"}}}).status_code == 403
    )


def test_a_user_never_reads_their_full_qid_nor_their_limits_record(rest):
    assert rest("GET", "/kyc/alice", uid=ALICE).status_code == 403
    assert rest("GET", "/limits/alice", uid=ALICE).status_code == 403


def test_the_vault_and_the_outbox_are_closed_to_clients(rest):
    assert rest("GET", "/vault/summary/shards/0", uid=ALICE, admin=True).status_code == 403
    assert rest("GET", "/outbox/o1", uid=ALICE).status_code == 403


def test_a_user_reads_their_own_withdrawal_but_never_the_full_destination(rest):
    assert rest("GET", "/withdrawals/w1", uid=ALICE).status_code == 200
    assert rest("GET", "/withdrawals/w1", uid=BOB).status_code == 403
    assert rest("GET", "/withdrawals/w1/private/destination", uid=ALICE).status_code == 403


@pytest.mark.parametrize("path", ["/audit/a1", "/reconciliation/2026-11-27", "/effect_failures/e1"])
def test_only_admins_read_audit_and_reconciliation(rest, path):
    assert rest("GET", path, uid="ops", admin=True).status_code == 200
    assert rest("GET", path, uid=ALICE).status_code == 403
    assert rest("GET", path).status_code == 403
    assert rest("PATCH", path, uid="ops", admin=True, json={"fields": {}}).status_code == 403


def test_the_rules_name_the_database_firebase_json_deploys_them_to_and_the_code_uses():
    from coins import config
    from tests.conftest import ROOT

    rules = (ROOT / "firestore.rules").read_text()
    assert re.findall(r"database == '([^']+)'", rules) == [COINS]
    assert json.loads((ROOT / "firebase.json").read_text())["firestore"] == [
        {"database": COINS, "rules": "firestore.rules", "indexes": "firestore.indexes.json"}
    ]
    assert config.COINS_DATABASE_DEFAULT == COINS


@pytest.mark.parametrize(
    "path",
    ["/wallets/alice", "/ledger/entry-alice", "/purchases/purchase-alice", "/escrows/escrow-1", "/withdrawals/w1", "/audit/a1"],
)
def test_our_rules_grant_nothing_in_the_apps_database(emulator, path):
    """The same documents in `(default)`: what the coins database lets their owners and
    admins read, our rules do not let anyone read or write there."""
    from google.cloud import firestore

    app = firestore.Client(project=PROJECT_ID, database="(default)")
    source = rest_on(emulator, COINS)
    document = app.document(path.lstrip("/"))
    document.set({"id": path.rsplit("/", 1)[1], "user_id": ALICE, "client_id": ALICE, "user_ids": [ALICE]})
    default = rest_on(emulator, "(default)")
    for uid, admin in ((ALICE, False), ("ops", True)):
        assert default("GET", path, uid=uid, admin=admin).status_code == 403
        assert default("PATCH", path, uid=uid, admin=admin, json={"fields": {}}).status_code == 403
    assert source("GET", "/wallets/alice", uid=ALICE).status_code == 200, "while the coins database still answers"
