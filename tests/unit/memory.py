"""A small dict-backed stand-in for `coins.store.Store`, for the fast tier: `attempt`
runs one unit of work and applies its writes (replaced, or merged into maps as Firestore
merges, increments added), as Cosmic Python's fake unit of work does. It is not a
database: no queries, no concurrency. What only Firestore can tell (locks, contention,
what it refuses) is the integration tier's."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any, Callable, Mapping

from coins import store
from coins.store import Doc, Increment, Reader, Write


class MemoryReader(Reader):
    def __init__(self, memory: "MemoryStore", now: datetime, entry_id: str) -> None:
        super().__init__(memory, None, now, entry_id)
        self._memory = memory

    def get(self, doc: Doc) -> dict[str, Any] | None:
        if doc not in self._read:
            self.touched.append(doc)
            self._read[doc] = self._memory.get(doc)
        return self._read[doc]


class MemoryStore(store.Store):
    def __init__(self) -> None:
        super().__init__(client=None)
        self.documents: dict[tuple[str, ...], dict[str, Any]] = {}
        self.commits = 0

    def get(self, doc: Doc) -> dict[str, Any] | None:
        found = self.documents.get(doc.path)
        return copy.deepcopy(found) if found is not None else None

    def get_versioned(self, doc: Doc) -> tuple[dict[str, Any] | None, Any]:
        found = self.get(doc)
        return found, (repr(found) if found is not None else None)

    def create(self, doc: Doc, data: Mapping[str, Any]) -> bool:
        if doc.path in self.documents:
            return False
        self.documents[doc.path] = _applied({}, data)
        return True

    def set(self, doc: Doc, data: Mapping[str, Any], *, merge: bool = False) -> None:
        self.documents[doc.path] = _applied(self.documents.get(doc.path, {}) if merge else {}, data)

    def delete_if_unchanged(self, doc: Doc, version) -> bool:
        if self.get_versioned(doc)[1] != version:
            return False
        self.documents.pop(doc.path, None)
        return True

    def attempt(self, work: Callable[[Reader], tuple[Mapping[Doc, Write], Any]], *, now: datetime, entry_id: str) -> Any:
        writes, result = work(MemoryReader(self, now, entry_id))
        for doc, write in writes.items():
            self.set(doc, write.data, merge=write.merge)
        self.commits += 1
        return result

    def collection(self, name: str) -> dict[str, dict[str, Any]]:
        """The documents of a top-level collection, by id."""
        return {path[1]: data for path, data in self.documents.items() if len(path) == 2 and path[0] == name}


def _applied(before: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` merged into `before` as Firestore merges: maps field by field, increments
    added, everything else replaced."""
    result = copy.deepcopy(dict(before))
    for key, value in data.items():
        if isinstance(value, Increment):
            result[key] = result.get(key, 0) + value.amount
        elif isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = _applied(result[key], value)
        elif isinstance(value, Mapping):
            result[key] = _applied({}, value)
        else:
            result[key] = copy.deepcopy(value)
    return result
