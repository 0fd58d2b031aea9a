"""Timers: one interface. Production schedules Cloud Tasks (named after what they are
for, so a duplicate is refused by Cloud Tasks itself); the local stack injects an
in-process queue that speaks the same HTTP to the target (local/tasks.py).

Both treat "already exists" on schedule and "not found" on cancel as success: the
caller only says what should be true.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

# Cloud Tasks refuses a schedule_time more than 30 days ahead.
SCHEDULE_AHEAD_MAX = timedelta(days=30)


class TaskScheduler(Protocol):
    """What sets and stops the escrow timers (CloudTasksScheduler; local.tasks on the stack)."""

    def schedule(self, task_id: str, at: datetime, payload: dict[str, Any]) -> None: ...

    def cancel(self, task_id: str) -> None: ...


def clamp(at: datetime, now: datetime) -> datetime:
    """A schedule time Cloud Tasks accepts; a later timer is the sweeper's."""
    return min(at, now + SCHEDULE_AHEAD_MAX)


class CloudTasksScheduler:
    """Production: HTTP tasks with an OIDC token for the target's service account."""

    def __init__(
        self,
        *,
        project: str,
        location: str,
        queue: str,
        target_url: str,
        service_account_email: str,
        audience: str | None = None,
        client=None,
    ) -> None:
        self.queue_path = f"projects/{project}/locations/{location}/queues/{queue}"
        self.target_url = target_url
        self.service_account_email = service_account_email
        self.audience = audience or target_url
        self._client = client

    @property
    def client(self):
        if self._client is None:
            # About 0.3 s to import: only functions that schedule pay for it.
            from google.cloud import tasks_v2

            self._client = tasks_v2.CloudTasksClient()
        return self._client

    def task_name(self, task_id: str) -> str:
        return f"{self.queue_path}/tasks/{task_id}"

    def create_request(self, task_id: str, at: datetime, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
        from google.protobuf import timestamp_pb2

        schedule_time = timestamp_pb2.Timestamp()
        schedule_time.FromDatetime(clamp(at, now).astimezone(timezone.utc).replace(tzinfo=None))
        return {
            "parent": self.queue_path,
            "task": {
                "name": self.task_name(task_id),
                "schedule_time": schedule_time,
                "http_request": {
                    "http_method": "POST",
                    "url": self.target_url,
                    "headers": {"Content-Type": "application/json"},
                    "body": json.dumps(payload, separators=(",", ":")).encode(),
                    "oidc_token": {"service_account_email": self.service_account_email, "audience": self.audience},
                },
            },
        }

    def schedule(self, task_id: str, at: datetime, payload: dict[str, Any]) -> None:
        from google.api_core import exceptions

        try:
            self.client.create_task(request=self.create_request(task_id, at, payload, datetime.now(timezone.utc)))
        except exceptions.AlreadyExists:
            pass  # scheduled before (a redelivered event)

    def cancel(self, task_id: str) -> None:
        from google.api_core import exceptions

        try:
            self.client.delete_task(name=self.task_name(task_id))
        except exceptions.NotFound:
            pass  # ran, deleted, or never created: the handler is a no-op then anyway
