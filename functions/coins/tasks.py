"""Timers: one interface, two implementations. Production schedules Cloud Tasks (named
after what they are for, so a duplicate is refused by Cloud Tasks itself); development
and tests use an in-process queue that speaks the same HTTP to the target.

Both treat "already exists" on schedule and "not found" on cancel as success: the
caller only says what should be true.
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

# Cloud Tasks refuses a schedule_time more than 30 days ahead.
SCHEDULE_AHEAD_MAX = timedelta(days=30)


class TaskScheduler(Protocol):
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


class LocalTaskQueue:
    """Development and tests: a heap of due times and worker threads that POST each task
    to the target with Cloud Tasks' headers, retrying failures with exponential backoff.
    Names are remembered for an hour after a task ran or was deleted, as Cloud Tasks does."""

    NAME_RETENTION_SECONDS = 3600
    ATTEMPTS_MAX = 8
    BACKOFF_MIN_SECONDS = 0.1
    BACKOFF_MAX_SECONDS = 5.0

    def __init__(self, target_url: str, *, queue_name: str = "escrow-auto-release", headers: dict[str, str] | None = None, workers: int = 2) -> None:
        self.target_url = target_url
        self.queue_name = queue_name
        self.headers = dict(headers or {})
        self._heap: list[tuple[float, int, str]] = []
        self._tasks: dict[str, dict[str, Any]] = {}  # pending, by id
        self._names: dict[str, float] = {}  # every id seen, with when it may be reused
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self.deliveries: list[dict[str, Any]] = []  # one per attempt: id, retry count, status
        self._threads = [threading.Thread(target=self._work, daemon=True, name=f"tasks-{i}") for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def schedule(self, task_id: str, at: datetime, payload: dict[str, Any]) -> None:
        with self._wake:
            if self._names.get(task_id, 0) > time.time() or task_id in self._tasks:
                return  # AlreadyExists
            self._names[task_id] = float("inf")
            due = clamp(at, datetime.now(timezone.utc)).timestamp()
            self._tasks[task_id] = {"payload": payload, "retry": 0}
            heapq.heappush(self._heap, (due, next(self._order), task_id))
            self._wake.notify()

    def cancel(self, task_id: str) -> None:
        with self._wake:
            if self._tasks.pop(task_id, None) is not None:
                self._names[task_id] = time.time() + self.NAME_RETENTION_SECONDS

    def pending(self) -> list[str]:
        with self._wake:
            return sorted(self._tasks)

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify_all()

    def _work(self) -> None:
        import requests

        while True:
            with self._wake:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.time()):
                    self._wake.wait(timeout=(self._heap[0][0] - time.time()) if self._heap else None)
                if self._stopped:
                    return
                _, _, task_id = heapq.heappop(self._heap)
                task = self._tasks.get(task_id)
                if task is None:
                    continue  # cancelled
            headers = {
                **self.headers,
                "Content-Type": "application/json",
                "X-CloudTasks-TaskName": task_id,
                "X-CloudTasks-QueueName": self.queue_name,
                "X-CloudTasks-TaskRetryCount": str(task["retry"]),
            }
            try:
                status = requests.post(self.target_url, data=json.dumps(task["payload"]), headers=headers, timeout=30).status_code
            except requests.RequestException as error:
                status = type(error).__name__
            with self._wake:
                self.deliveries.append({"task_id": task_id, "retry": task["retry"], "status": status})
                succeeded = isinstance(status, int) and 200 <= status < 300
                if succeeded or task["retry"] + 1 >= self.ATTEMPTS_MAX or task_id not in self._tasks:
                    self._tasks.pop(task_id, None)
                    self._names[task_id] = time.time() + self.NAME_RETENTION_SECONDS
                    continue
                task["retry"] += 1
                backoff = min(self.BACKOFF_MAX_SECONDS, self.BACKOFF_MIN_SECONDS * 2 ** task["retry"])
                heapq.heappush(self._heap, (time.time() + random.uniform(backoff / 2, backoff), next(self._order), task_id))
                self._wake.notify()
