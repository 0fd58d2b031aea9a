"""How lists and times are shown: newest-first pages with opaque cursors, RFC 3339 UTC."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from . import errors


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def moment(document: Mapping[str, Any], name: str) -> str | None:
    """A document's timestamp field as RFC 3339, or None where it is not set."""
    value = document.get(name)
    return rfc3339(value) if value else None


def page_of(
    collection,
    query,
    *,
    limit: int,
    cursor: str | None,
    owns: Callable[[Any], bool],
    render: Callable[[dict[str, Any]], dict[str, Any]],
    newest_first: bool = True,
) -> dict[str, Any]:
    """One page of `query` ordered by `created_at` (then id). The cursor is the id of the
    last document of the previous page; it must be a document `owns` accepts, so that a
    cursor from someone else's list reveals nothing."""
    direction = "DESCENDING" if newest_first else "ASCENDING"
    query = query.order_by("created_at", direction=direction).order_by("__name__", direction=direction)
    if cursor is not None:
        last = collection.document(_decode(cursor)).get()
        if not last.exists or not owns(last):
            raise _bad_cursor()
        query = query.start_after(last)
    page = list(query.limit(limit + 1).stream())
    items = [render(snapshot.to_dict()) for snapshot in page[:limit]]
    next_cursor = _encode(page[limit - 1].id) if len(page) > limit else None
    return {"items": items, "next_cursor": next_cursor}


def _bad_cursor() -> errors.ValidationFailed:
    return errors.ValidationFailed(fields=[{"field": "cursor", "message": "unknown cursor"}])


def _encode(document_id: str) -> str:
    return base64.urlsafe_b64encode(document_id.encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    try:
        document_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        document_id = ""
    if not document_id.isalnum():
        raise _bad_cursor()
    return document_id


def stream_all(collection, page_size: int = 500):
    """Every document of a collection as dicts, read in pages by id: memory stays flat
    however large the collection grows."""
    query = collection.order_by("__name__").limit(page_size)
    last = None
    while True:
        page = list((query.start_after(last) if last is not None else query).stream())
        for snapshot in page:
            yield snapshot.to_dict()
        if len(page) < page_size:
            return
        last = page[-1]
