"""What may lag behind a ledger entry, applied by the `ledger/{entryId}` created trigger:
wallet statistics and the vault's aggregates. (What people hear about an entry, and the
escrow timers, are the outbox's: coins.notify.)

Events are delivered at least once, and some never are (a trigger whose retries ran out,
or that was down): the entry's marker `ledger_effects/{entryId}` is written pending in
the entry's own commit, and the scheduled repair (coins.repair) applies what is still
pending after a while, through `apply` too. The effects are written in one transaction
together with the applied marker, so a redelivered event or a repair after the trigger
changes nothing. A transient failure raises, so that Eventarc delivers again.

An effect that can never be applied (an entry with malformed data, or naming an id
Firestore refuses) must not fail the event forever, nor be lost: the others are
applied, the marker is written, and the failure is kept on `effect_failures/{entryId}`
with its reason, logged as an ERROR and named by reconciliation.

The vault's documents are hot (every entry touches them), so they are sharded: each
entry adds to one of VAULT_SHARDS shard documents, chosen by its id, and readers sum the
shards. Every write here is a blind increment; no shard is read in the transaction,
which goes through the ledger module like every other (it moves no money).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from . import catalog, errors, ledger, logs, postings, store
from .domain import TREASURY, firestore_accepts_id
from .store import Doc, Increment, Store

# Sixteen shards take well over a hundred entries a second at about one write per second
# per document, with room to spare.
VAULT_SHARDS = 16
# The vault is what reconciliation compares; it is applied even when other effects fail.
VAULT = "vault"


@dataclass(frozen=True)
class Effect:
    """One group of writes that stands or falls together."""

    name: str
    writes: Mapping[Doc, Mapping[str, Any]]


def class_balances(balances: postings.Balances) -> dict[str, dict[str, int]]:
    """Account balances (a ledger replay) summed by the classes the vault keeps."""
    classes: dict[str, dict[str, int]] = {}
    for account, tiers in balances.items():
        merged = classes.setdefault(account.vault_class, {})
        for tier, count in tiers.items():
            merged[tier] = merged.get(tier, 0) + count
    return {name: catalog.normalize(tiers) for name, tiers in classes.items()}


def apply(db: Store, entry_id: str) -> bool:
    """Applies the effects of one entry once. Returns False if they were applied before."""
    marker = store.effects_marker(entry_id)
    if is_applied(db.get(marker)):
        return False
    entry = db.get(store.entry(entry_id))
    if entry is None:
        raise LookupError(f"ledger entry {entry_id} not found")
    effects, failures = _effects(entry)
    try:
        applied = _commit(db, entry, effects, failures)
    except errors.Unstorable as refused:
        # A write Firestore refuses, which no check above foresaw: keep the vault (what
        # reconciliation compares) and record everything else as failed.
        failures += [
            {"effect": effect.name, "reason": f"refused by Firestore: {refused.__cause__ or refused}"}
            for effect in effects
            if effect.name != VAULT
        ]
        applied = _commit(db, entry, [effect for effect in effects if effect.name == VAULT], failures)
    if applied:
        logs.info("ledger effects applied", entry_id=entry_id, entry_type=entry.get("type"))
    if applied and failures:
        logs.error("ledger effects failed", entry_id=entry_id, entry_type=entry.get("type"), failures=failures)
    return applied


def is_applied(marker: Mapping[str, Any] | None) -> bool:
    """Whether an effects marker says the effects were applied (not merely pending)."""
    return marker is not None and "applied_at" in marker


def _commit(db: Store, entry: Mapping[str, Any], effects: list[Effect], failures: list[dict[str, str]]) -> bool:
    entry_id = entry["id"]
    marker = store.effects_marker(entry_id)

    def operation(reader: ledger.Reader) -> ledger.Plan:
        # Through the one transaction module: no money moves, but its queueing on
        # contention keeps concurrent deliveries from livelocking on the shared shards.
        if is_applied(reader.get(marker)):
            return ledger.Plan(entry=None, respond=lambda outcome: ledger.Response(200, {"applied": False}))
        documents: dict[Doc, Mapping[str, Any]] = {}
        for effect in effects:
            documents.update(effect.writes)
        documents[marker] = {
            "entry_id": entry_id,
            "type": entry.get("type"),
            "applied_at": reader.now,
            "failed": [failure["effect"] for failure in failures],
            "pending_since": None,
        }
        if failures:
            documents[store.effect_failure(entry_id)] = {
                "source": "ledger",
                "id": entry_id,
                "type": entry.get("type"),
                "failures": failures,
                "at": reader.now,
            }
        return ledger.Plan(entry=None, documents=documents, respond=lambda outcome: ledger.Response(200, {"applied": True}))

    return ledger.execute(db, operation, actor="ledger-trigger").body["applied"]


def _effects(entry: Mapping[str, Any]) -> tuple[list[Effect], list[dict[str, str]]]:
    """Every Firestore effect of an entry, as blind merges, and the effects that cannot
    be applied, with why. Pure given the entry."""
    builders: list[tuple[str, Callable[[], Mapping[Doc, Mapping[str, Any]]]]] = [(VAULT, lambda: _vault_writes(entry))]
    for uid in entry.get("users", {}):
        builders.append((f"stats:{uid}", functools.partial(_stats, entry, uid)))
    effects, failures = [], []
    for name, build in builders:
        try:
            writes = build()
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            failures.append({"effect": name, "reason": f"malformed entry: {type(error).__name__}: {error}"})
            continue
        refused = sorted(str(doc) for doc in writes if not all(firestore_accepts_id(part) for part in doc.path))
        if refused:
            failures.append({"effect": name, "reason": f"not a valid document path: {refused[0]}"})
        else:
            effects.append(Effect(name, writes))
    return effects, failures


def _stats(entry: Mapping[str, Any], uid: str) -> dict[Doc, dict[str, Any]]:
    mine = entry["users"][uid]
    return {
        store.wallet(uid): {
            "stats": {entry["type"]: {"count": Increment(1), "amount_dirhams": Increment(mine["amount_dirhams"])}}
        }
    }


def _vault_writes(entry: Mapping[str, Any]) -> dict[Doc, dict[str, Any]]:
    """Per tier: every account class's balance change, and the treasury's net outflow by
    entry type (`flows.purchase_issue` is coins issued, `flows.withdrawal_paid` the
    negative of coins withdrawn), added to one shard of the totals and of the day's."""
    balances = class_balances(postings.add_postings({}, entry["postings"]))
    outflow = {tier: -count for tier, count in balances.get(TREASURY.vault_class, {}).items()}
    increments = {
        "entries": {entry["type"]: Increment(1)},
        "balances": {cls: {t: Increment(c) for t, c in tiers.items() if c} for cls, tiers in balances.items()},
        "flows": {entry["type"]: {t: Increment(c) for t, c in outflow.items() if c}},
    }
    shard = int(hashlib.sha256(entry["id"].encode()).hexdigest(), 16) % VAULT_SHARDS
    day = entry["created_at"].strftime("%Y-%m-%d")
    return {store.vault_shard(shard): increments, store.vault_shard(shard, day): increments}


def read_vault(db: Store, day: str | None = None) -> dict[str, Any]:
    """The vault's totals (or one day's), summed over the shards."""
    total: dict[str, Any] = {"entries": {}, "balances": {}, "flows": {}}
    for data in db.vault_shards(day):
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


def handle_event(db: Store, data: bytes) -> bool:
    """A `google.cloud.firestore.document.v1.created` event for `ledger/{entryId}`: its
    data is a DocumentEventData protobuf."""
    from google.events.cloud.firestore import DocumentEventData

    try:
        entry_id = store.id_in(DocumentEventData.deserialize(data).value.name, store.LEDGER)
    except Exception as error:  # noqa: BLE001 - a malformed event is dropped, loudly
        logs.error("ledger trigger got an event it cannot read", error=type(error).__name__)
        return False
    return apply(db, entry_id)
