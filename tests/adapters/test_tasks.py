"""Escrow timers: the Cloud Tasks adapter on the request it sends (against a stand-in
client that answers as the API does), and the local queue on the HTTP it delivers."""

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from google.api_core import exceptions
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from coins.tasks import SCHEDULE_AHEAD_MAX, CloudTasksScheduler
from local.tasks import LocalTaskQueue

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


class CloudTasksStandIn:
    """Answers create_task and delete_task as Cloud Tasks does for names it has seen."""

    def __init__(self):
        self.created, self.deleted, self.names = [], [], set()

    def create_task(self, request):
        name = request["task"]["name"]
        if name in self.names:
            raise exceptions.AlreadyExists(f"{name} exists")
        self.names.add(name)
        self.created.append(request)

    def delete_task(self, name):
        if name not in self.names:
            raise exceptions.NotFound(name)
        self.names.discard(name)
        self.deleted.append(name)


@pytest.fixture
def cloud():
    stand_in = CloudTasksStandIn()
    scheduler = CloudTasksScheduler(
        project="guild-prod",
        location="me-central1",
        queue="escrow-timers",
        target_url="https://me-central1-guild-prod.cloudfunctions.net/escrow_timer",
        service_account_email="tasks@guild-prod.iam.gserviceaccount.com",
        client=stand_in,
    )
    return scheduler, stand_in


def test_a_task_is_named_after_its_escrow_and_carries_an_oidc_token(cloud):
    scheduler, _ = cloud
    request = scheduler.create_request("esc123", NOW + timedelta(hours=72), {"escrow_id": "esc123"}, NOW)
    assert request["parent"] == "projects/guild-prod/locations/me-central1/queues/escrow-timers"
    task = request["task"]
    assert task["name"] == request["parent"] + "/tasks/esc123"
    assert task["schedule_time"].ToDatetime(tzinfo=timezone.utc) == NOW + timedelta(hours=72)
    http = task["http_request"]
    assert http["http_method"] == "POST"
    assert http["url"] == "https://me-central1-guild-prod.cloudfunctions.net/escrow_timer"
    assert json.loads(http["body"]) == {"escrow_id": "esc123"}
    assert http["headers"] == {"Content-Type": "application/json"}
    assert http["oidc_token"] == {
        "service_account_email": "tasks@guild-prod.iam.gserviceaccount.com",
        "audience": "https://me-central1-guild-prod.cloudfunctions.net/escrow_timer",
    }


def test_the_request_is_one_the_real_client_library_accepts(cloud):
    from google.cloud import tasks_v2

    scheduler, _ = cloud
    request = tasks_v2.CreateTaskRequest(scheduler.create_request("esc1", NOW, {"escrow_id": "esc1"}, NOW))
    assert request.task.http_request.oidc_token.service_account_email.startswith("tasks@")
    assert request.task.http_request.http_method == tasks_v2.HttpMethod.POST


def test_a_schedule_beyond_thirty_days_is_clamped(cloud):
    scheduler, _ = cloud
    request = scheduler.create_request("esc1", NOW + timedelta(days=90), {}, NOW)
    assert request["task"]["schedule_time"].ToDatetime(tzinfo=timezone.utc) == NOW + SCHEDULE_AHEAD_MAX


def test_already_exists_and_not_found_are_success(cloud):
    scheduler, stand_in = cloud
    scheduler.schedule("esc1", NOW, {"escrow_id": "esc1"})
    scheduler.schedule("esc1", NOW, {"escrow_id": "esc1"})
    assert len(stand_in.created) == 1
    scheduler.cancel("esc1")
    scheduler.cancel("esc1")
    scheduler.cancel("never-scheduled")
    assert stand_in.deleted == [scheduler.task_name("esc1")]


class Target:
    """An HTTP target on loopback that fails its first `failures` calls."""

    def __init__(self, failures=0):
        self.calls, self.failures = [], failures
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/escrow_timer"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @Request.application
    def app(self, request):
        self.calls.append((time.monotonic(), dict(request.headers), json.loads(request.get_data())))
        if len(self.calls) <= self.failures:
            return Response("busy", status=503)
        return Response("{}", mimetype="application/json")


def wait_until(condition, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not condition():
        time.sleep(0.02)
    assert condition()


def test_the_local_queue_delivers_when_due_with_cloud_tasks_headers():
    target = Target()
    queue = LocalTaskQueue(target.url, headers={"X-Local-Service-Secret": "s"})
    try:
        started = time.monotonic()
        queue.schedule("esc1", datetime.now(timezone.utc) + timedelta(seconds=0.3), {"escrow_id": "esc1"})
        wait_until(lambda: target.calls)
        at, headers, body = target.calls[0]
        assert at - started >= 0.25
        assert body == {"escrow_id": "esc1"}
        assert headers["X-Cloudtasks-Taskname"] == "esc1"
        assert headers["X-Cloudtasks-Queuename"] == "escrow-timers"
        assert headers["X-Cloudtasks-Taskretrycount"] == "0"
        assert headers["X-Local-Service-Secret"] == "s"
        queue.schedule("esc1", datetime.now(timezone.utc), {"escrow_id": "esc1"})
        time.sleep(0.3)
        assert len(target.calls) == 1, "a name that ran is remembered: AlreadyExists"
    finally:
        queue.stop()


def test_the_local_queue_retries_failures_with_backoff():
    target = Target(failures=2)
    queue = LocalTaskQueue(target.url)
    try:
        queue.schedule("esc2", datetime.now(timezone.utc), {"escrow_id": "esc2"})
        wait_until(lambda: len(queue.deliveries) == 3)
        retries = [headers["X-Cloudtasks-Taskretrycount"] for _, headers, _ in target.calls]
        assert retries == ["0", "1", "2"]
        gaps = [b[0] - a[0] for a, b in zip(target.calls, target.calls[1:])]
        # Retry n waits between half and all of BACKOFF_MIN_SECONDS * 2**n.
        assert gaps[0] >= LocalTaskQueue.BACKOFF_MIN_SECONDS * 2 / 2 * 0.95
        assert gaps[1] >= LocalTaskQueue.BACKOFF_MIN_SECONDS * 4 / 2 * 0.95
        assert [d["status"] for d in queue.deliveries] == [503, 503, 200]
    finally:
        queue.stop()


def test_a_cancelled_task_is_not_delivered_and_cancelling_twice_is_fine():
    target = Target()
    queue = LocalTaskQueue(target.url)
    try:
        queue.schedule("esc3", datetime.now(timezone.utc) + timedelta(seconds=0.3), {"escrow_id": "esc3"})
        assert queue.pending() == ["esc3"]
        queue.cancel("esc3")
        queue.cancel("esc3")
        queue.cancel("never")
        time.sleep(0.5)
        assert target.calls == [] and queue.pending() == []
    finally:
        queue.stop()
