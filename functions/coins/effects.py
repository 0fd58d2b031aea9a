"""What may lag behind a ledger entry, applied by the `ledger/{entryId}` created trigger:
notifications, wallet statistics, the vault's aggregates, and the escrow timers.

Events are delivered at least once. The Firestore effects are written in one transaction
together with a marker `ledger_effects/{entryId}`, so a redelivered event changes
nothing. Timers are set before that transaction and are idempotent themselves (a task
named after its escrow). A failing effect raises, so that Eventarc delivers again.

The vault's documents are hot (every entry touches them), so they are sharded: each
entry adds to one of VAULT_SHARDS shard documents, chosen by its id, and readers sum the
shards. Every write here is a blind increment; no shard is read in the transaction,
which goes through the ledger module like every other (it moves no money).
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping

from . import catalog, escrow, ledger, logs

EFFECTS = "ledger_effects"
NOTIFICATIONS = "notifications"
VAULT_SUMMARY = ("vault", "summary")
VAULT_DAILY = "vault_daily"
# Sixteen shards take well over a hundred entries a second at about one write per second
# per document, with room to spare.
VAULT_SHARDS = 16

# Which aggregate an account adds to.
ACCOUNT_CLASSES = {"treasury": "treasury", "platform:fees": "platform_fees"}


def account_class(account: str) -> str:
    if account in ACCOUNT_CLASSES:
        return ACCOUNT_CLASSES[account]
    kind = account.split(":", 1)[0]
    return {"user": "users", "escrow": "escrow", "withdrawal": "withdrawal"}[kind]


def class_balances(balances: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """Account balances (a ledger replay) summed by the classes the vault keeps."""
    classes: dict[str, dict[str, int]] = {}
    for account, tiers in balances.items():
        merged = classes.setdefault(account_class(account), {})
        for tier, count in tiers.items():
            merged[tier] = merged.get(tier, 0) + count
    return {name: catalog.normalize(tiers) for name, tiers in classes.items()}


def entry_id_of(document_name: str) -> str:
    """`projects/P/databases/(default)/documents/ledger/ID` -> `ID`."""
    collection, _, entry_id = document_name.rpartition("/")
    if not collection.endswith("/" + ledger.LEDGER) and collection != ledger.LEDGER:
        raise ValueError(f"not a ledger entry: {document_name}")
    return entry_id


def apply(db, scheduler, entry_id: str) -> bool:
    """Applies the effects of one entry once. Returns False if they were applied before."""
    marker = db.collection(EFFECTS).document(entry_id)
    if marker.get().exists:
        return False
    entry = db.collection(ledger.LEDGER).document(entry_id).get().to_dict()
    if entry is None:
        raise LookupError(f"ledger entry {entry_id} not found")
    _set_timers(db, scheduler, entry)

    def operation(reader: ledger.Reader) -> ledger.Plan:
        # Through the one transaction module: no money moves, but its retry with backoff
        # keeps concurrent deliveries from livelocking on the shared shards.
        if reader.document(marker) is not None:
            return ledger.Plan(entry=None, respond=lambda outcome: ledger.Response(200, {"applied": False}))
        documents = dict(_writes(db, entry))
        documents[marker] = {"entry_id": entry_id, "type": entry["type"], "applied_at": reader.now}
        return ledger.Plan(entry=None, documents=documents, respond=lambda outcome: ledger.Response(200, {"applied": True}))

    applied = ledger.execute(db, operation, actor="ledger-trigger").body["applied"]
    if applied:
        logs.info("ledger effects applied", entry_id=entry_id, entry_type=entry["type"])
    return applied


def _set_timers(db, scheduler, entry: Mapping[str, Any]) -> None:
    escrow_id = entry.get("refs", {}).get("escrow_id")
    if entry["type"] == "escrow_lock":
        held = db.collection(escrow.ESCROWS).document(escrow_id).get()
        scheduler.schedule(escrow_id, held.get("auto_release_at"), {"escrow_id": escrow_id})
    elif entry["type"] in ("escrow_release", "escrow_refund"):
        scheduler.cancel(escrow_id)


def _writes(db, entry: Mapping[str, Any]) -> list[tuple[Any, dict[str, Any]]]:
    """Every Firestore effect of an entry, as blind merges. Pure given the entry."""
    from google.cloud import firestore

    entry_id, entry_type = entry["id"], entry["type"]
    writes: list[tuple[Any, dict[str, Any]]] = []
    for uid in entry.get("parties", entry.get("user_ids", [])):
        mine = entry.get("users", {}).get(uid)
        writes.append(
            (
                db.collection(NOTIFICATIONS).document(uid).collection("items").document(entry_id),
                {
                    "entry_id": entry_id,
                    "type": entry_type,
                    "amount_dirhams": mine["amount_dirhams"] if mine else 0,
                    "refs": entry.get("refs", {}),
                    "read": False,
                    "created_at": entry["created_at"],
                },
            )
        )
    for uid, mine in entry.get("users", {}).items():
        writes.append(
            (
                db.collection(ledger.WALLETS).document(uid),
                {
                    "stats": {
                        entry_type: {
                            "count": firestore.Increment(1),
                            "amount_dirhams": firestore.Increment(mine["amount_dirhams"]),
                        }
                    }
                },
            )
        )
    increments = _vault_increments(entry)
    shard = str(int(hashlib.sha256(entry_id.encode()).hexdigest(), 16) % VAULT_SHARDS)
    day = entry["created_at"].strftime("%Y-%m-%d")
    for parent in (db.collection(VAULT_SUMMARY[0]).document(VAULT_SUMMARY[1]), db.collection(VAULT_DAILY).document(day)):
        writes.append((parent.collection("shards").document(shard), increments))
    return writes


def _vault_increments(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Per tier: every account class's balance change, and the treasury's net outflow by
    entry type (`flows.purchase_issue` is coins issued, `flows.withdrawal_paid` the
    negative of coins withdrawn)."""
    from google.cloud import firestore

    balances = class_balances(ledger.add_postings({}, entry["postings"]))
    outflow = {tier: -count for tier, count in balances.get("treasury", {}).items()}
    return {
        "entries": {entry["type"]: firestore.Increment(1)},
        "balances": {cls: {t: firestore.Increment(c) for t, c in tiers.items() if c} for cls, tiers in balances.items()},
        "flows": {entry["type"]: {t: firestore.Increment(c) for t, c in outflow.items() if c}},
    }


def read_vault(db, day: str | None = None) -> dict[str, Any]:
    """The vault's totals (or one day's), summed over the shards."""
    parent = db.collection(VAULT_DAILY).document(day) if day else db.collection(VAULT_SUMMARY[0]).document(VAULT_SUMMARY[1])
    total: dict[str, Any] = {"entries": {}, "balances": {}, "flows": {}}
    for shard in parent.collection("shards").stream():
        data = shard.to_dict()
        for kind, count in data.get("entries", {}).items():
            total["entries"][kind] = total["entries"].get(kind, 0) + count
        for section in ("balances", "flows"):
            for name, tiers in data.get(section, {}).items():
                merged = total[section].setdefault(name, {})
                for tier, count in tiers.items():
                    merged[tier] = merged.get(tier, 0) + count
    for section in ("balances", "flows"):
        total[section] = {name: catalog.normalize(tiers) for name, tiers in total[section].items()}
    return total


def handle_event(db, scheduler_factory, data: bytes) -> bool:
    """A `google.cloud.firestore.document.v1.created` event for `ledger/{entryId}`: its
    data is a DocumentEventData protobuf."""
    from google.events.cloud.firestore import DocumentEventData

    try:
        name = DocumentEventData.deserialize(data).value.name
        entry_id = entry_id_of(name)
    except Exception as error:  # noqa: BLE001 - a malformed event is dropped, loudly
        logs.error("ledger trigger got an event it cannot read", error=type(error).__name__)
        return False
    return apply(db, scheduler_factory(), entry_id)
