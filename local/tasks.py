"""The local stand-in for Cloud Tasks (which has no usable emulator): an in-process
queue that the local stack and the tests install in place of coins.tasks'
CloudTasksScheduler (`coins.clients.install_scheduler`). It speaks what Cloud Tasks
does: an HTTP POST of the payload to the target with the X-CloudTasks-* headers,
retries with exponential backoff, "already exists" for a name still remembered, and
"not found" on cancel as success.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import time
from datetime import datetime, timezone
from typing import Any

from coins import backoff
from coins.tasks import clamp


class LocalTaskQueue:
    """Development and tests: a heap of due times and worker threads that POST each task
    to the target with Cloud Tasks' headers, retrying failures with exponential backoff.
    Names are remembered for an hour after a task ran or was deleted, as Cloud Tasks does."""

    NAME_RETENTION_SECONDS = 3600
    ATTEMPTS_MAX = 8
    BACKOFF_MIN_SECONDS = 0.1
    BACKOFF_MAX_SECONDS = 5.0

    def __init__(
        self, target_url: str, *, queue_name: str = "escrow-timers", headers: dict[str, str] | None = None, workers: int = 2
    ) -> None:
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
                delay = backoff.delay_seconds(
                    task["retry"] + 1, base_seconds=self.BACKOFF_MIN_SECONDS, cap_seconds=self.BACKOFF_MAX_SECONDS, floor=0.5
                )
                heapq.heappush(self._heap, (time.time() + delay, next(self._order), task_id))
                self._wake.notify()
