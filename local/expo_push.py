"""A local stand-in for Expo's push service (https://docs.expo.dev/push-notifications/
sending-notifications/), speaking its HTTP API, so that the push path runs for real on
the local stack and in the tests, and records what was sent.

What it does as Expo documents:
- `POST /--/api/v2/push/send` takes one message object or a list of at most 100, and
  answers `{"data": [ticket, ...]}`, one ticket per message (per recipient when `to` is
  a list), in order: `{"status": "ok", "id": ...}` or `{"status": "error", "message",
  "details": {"error": "DeviceNotRegistered" | "MessageTooBig" | ...}}`.
- A request that is wrong as a whole (more than 100 messages, not JSON, no `to`) is a
  4xx with `{"errors": [{"code", "message"}]}`.
- A message whose payload exceeds 4096 bytes gets a MessageTooBig ticket.
What it cannot know, and so decides safely: which tokens are registered. Tokens that
do not look like `ExponentPushToken[...]` and tokens listed in `unregistered` get
DeviceNotRegistered. `fail_next` answers that many requests with a 503 and an `errors`
body, as an outage would. `GET /_sent` (ours, not Expo's) lists what was accepted.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

from werkzeug.wrappers import Request, Response

from local.serving import in_background

SEND_PATH = "/--/api/v2/push/send"
MESSAGES_PER_REQUEST_MAX = 100
PAYLOAD_BYTES_MAX = 4096


class ExpoPushStandIn:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []  # every message accepted, with its ticket id
        self.requests = 0
        self.unregistered: set[str] = set()
        self.fail_next = 0
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._server = None

    def serve(self, port: int = 0) -> "ExpoPushStandIn":
        self._server = in_background(self._app, port, "expo-push")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    def reset(self) -> None:
        with self._lock:
            self.sent.clear()
            self.headers.clear()
            self.unregistered.clear()
            self.requests = 0
            self.fail_next = 0

    def to(self, token: str) -> list[dict[str, Any]]:
        with self._lock:
            return [message for message in self.sent if message["to"] == token]

    def _app(self, environ, start_response):
        request = Request(environ)
        with self._lock:
            self.requests += 1
            self.headers.append(dict(request.headers))
            failing = self.fail_next > 0
            self.fail_next -= 1 if failing else 0
        if request.path == "/_sent" and request.method == "GET":
            with self._lock:
                return Response(json.dumps(self.sent), 200, mimetype="application/json")(environ, start_response)
        if request.path != SEND_PATH or request.method != "POST":
            return _errors(404, "NOT_FOUND", "not found")(environ, start_response)
        if failing:
            return _errors(503, "INTERNAL_SERVER_ERROR", "The service is unavailable")(environ, start_response)
        try:
            body = json.loads(request.get_data())
        except ValueError:
            return _errors(400, "VALIDATION_ERROR", "The request body is not JSON")(environ, start_response)
        messages = body if isinstance(body, list) else [body]
        if len(messages) > MESSAGES_PER_REQUEST_MAX:
            return _errors(
                400, "PUSH_TOO_MANY_NOTIFICATIONS", "You are trying to send more than 100 push notifications in one request"
            )(environ, start_response)
        if not all(isinstance(m, dict) and m.get("to") for m in messages):
            return _errors(400, "VALIDATION_ERROR", '"to" is required')(environ, start_response)
        tickets = []
        for message in messages:
            for token in message["to"] if isinstance(message["to"], list) else [message["to"]]:
                tickets.append(self._ticket({**message, "to": token}))
        return Response(json.dumps({"data": tickets}), 200, mimetype="application/json")(environ, start_response)

    def _ticket(self, message: dict[str, Any]) -> dict[str, Any]:
        token = message["to"]
        if not (isinstance(token, str) and token.startswith("ExponentPushToken[")) or token in self.unregistered:
            return {
                "status": "error",
                "message": f'"{token}" is not a registered push notification recipient',
                "details": {"error": "DeviceNotRegistered", "expoPushToken": token},
            }
        if len(json.dumps(message).encode()) > PAYLOAD_BYTES_MAX:
            return {"status": "error", "message": "Message too big", "details": {"error": "MessageTooBig"}}
        ticket_id = str(uuid.uuid4())
        with self._lock:
            self.sent.append({**message, "ticket_id": ticket_id})
        return {"status": "ok", "id": ticket_id}


def _errors(status: int, code: str, message: str) -> Response:
    return Response(json.dumps({"errors": [{"code": code, "message": message}]}), status, mimetype="application/json")
