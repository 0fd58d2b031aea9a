"""Structured logs: one JSON object per line on stdout, the format Cloud Logging parses
(`severity`, `message`, and the trace of the request being served)."""

from __future__ import annotations

import contextvars
import json
import sys
from typing import Any

_trace: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace", default=None)

TRACE_FIELD = "logging.googleapis.com/trace"


def bind_trace(header: str | None, project_id: str) -> None:
    """Binds the trace of `X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1` to this request."""
    trace_id = (header or "").split("/", 1)[0].strip()
    _trace.set(f"projects/{project_id}/traces/{trace_id}" if trace_id.isalnum() else None)


def log(severity: str, message: str, **fields: Any) -> None:
    record: dict[str, Any] = {"severity": severity, "message": message, **fields}
    trace = _trace.get()
    if trace:
        record[TRACE_FIELD] = trace
    sys.stdout.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def info(message: str, **fields: Any) -> None:
    log("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    log("WARNING", message, **fields)


def error(message: str, **fields: Any) -> None:
    log("ERROR", message, **fields)
