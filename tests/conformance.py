"""The conformance tier: every response the integration and e2e tests receive is checked
against the OpenAPI document (coins.openapi, as served): its status must be declared for
the operation and its body must match the schema declared for that status. A problem
fails the test that received the response (the autouse fixtures of those tiers).

In-process calls (functions_framework test clients) are checked as the app answers them,
through an `after_request` hook on every app `create_app` makes; calls to the local stack
over HTTP (e2e) through a hook on `requests`, by matching the path to an operation.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import jsonschema_rs


class Conformance:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.operations: dict[str, dict[str, Any]] = {}
        self.routes: list[tuple[str, re.Pattern, str]] = []  # (method, path pattern, operationId)
        for path, methods in document["paths"].items():
            pattern = re.compile(r"\A" + re.sub(r"\\\{\w+\\\}", r"[^/]+", re.escape(path)) + r"/?\Z")
            for method, operation in methods.items():
                self.operations[operation["operationId"]] = operation
                self.routes.append((method.upper(), pattern, operation["operationId"]))
        self._validators: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self.problems: list[str] = []
        self.checked = 0

    def operation_for(self, method: str, path: str, function: str | None = None) -> str | None:
        """The operationId answering `method path` (or, under a function's own name, that
        function's operation for `method`)."""
        for route_method, pattern, operation_id in self.routes:
            if route_method == method and pattern.match(path):
                return operation_id
        if function is not None:
            for candidate in (function, f"{function}_{method.lower()}"):
                if candidate in self.operations:
                    return candidate
        return None

    def check(self, operation_id: str, status: int, content_type: str, body: bytes) -> None:
        operation = self.operations[operation_id]
        declared = operation["responses"].get(str(status))
        problem = None
        if declared is None:
            problem = f"{operation_id}: status {status} is not declared ({body[:200]!r})"
        else:
            content = declared.get("content")
            if content is None:
                problem = None if not body.strip() or status == 303 else f"{operation_id} {status}: a body where none is declared"
            elif "application/json" in content:
                if not content_type.startswith("application/json"):
                    problem = f"{operation_id} {status}: content type {content_type!r}, not JSON"
                else:
                    errors = list(
                        self._validator(operation_id, status, content["application/json"]["schema"]).iter_errors(json.loads(body))
                    )
                    if errors:
                        problem = f"{operation_id} {status}: " + "; ".join(
                            f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in errors[:3]
                        )
            elif "text/html" in content and not content_type.startswith("text/html"):
                problem = f"{operation_id} {status}: content type {content_type!r}, not an HTML page"
        with self._lock:
            self.checked += 1
            if problem:
                self.problems.append(problem)

    def _validator(self, operation_id: str, status: int, schema: dict[str, Any]):
        key = (operation_id, str(status))
        if key not in self._validators:
            self._validators[key] = jsonschema_rs.Draft202012Validator({**schema, "components": self.document["components"]})
        return self._validators[key]

    def take(self) -> list[str]:
        with self._lock:
            taken, self.problems = self.problems, []
        return taken


def install(conformance: Conformance) -> None:
    """Checks every response of the apps functions_framework creates from now on, and
    every response `requests` gets from a path the document names."""
    from urllib.parse import urlsplit

    import functions_framework
    import requests

    create_app = functions_framework.create_app

    def checked_app(target=None, source=None, *args, **kwargs):
        app = create_app(target, source, *args, **kwargs)

        @app.after_request
        def conform(response):
            import flask

            operation_id = conformance.operation_for(flask.request.method, flask.request.path, target)
            if operation_id is not None:
                conformance.check(operation_id, response.status_code, response.content_type or "", response.get_data())
            return response

        return app

    functions_framework.create_app = checked_app

    send = requests.Session.send

    def checked_send(session, request, **kwargs):
        response = send(session, request, **kwargs)
        parts = urlsplit(request.url)
        if parts.hostname == "127.0.0.1":
            operation_id = conformance.operation_for(request.method, parts.path)
            if operation_id is not None and not response.is_redirect:
                conformance.check(operation_id, response.status_code, response.headers.get("Content-Type", ""), response.content)
            elif operation_id is not None:
                conformance.check(operation_id, response.status_code, "", b"")
        return response

    requests.Session.send = checked_send
