"""One WSGI app serving every function of functions/main.py, each under its own name
(`/coins_wallet`) and under the paths firebase.json's hosting rewrites give it, and, as
Firebase Hosting does, the static files of public/ (the operators' console at /admin/).
The rewrites and the response headers are read from firebase.json: it is the single
source of routing truth, and the console runs here under the policy it has in production.

Local only: `POST /_local/token {"uid", "admin"}` mints an unsigned local ID token, for
the console's local sign-in (production has Firebase Auth and /__/firebase/init.json)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "functions" / "main.py"
FIREBASE_JSON = ROOT / "firebase.json"
PUBLIC = ROOT / "public"


def function_names() -> list[str]:
    """Every function main.py declares (coins.registry)."""
    from coins import registry

    return [function.name for function in registry.functions()]


def glob_to_regex(glob: str) -> re.Pattern:
    """Firebase Hosting globs: `**` spans segments, `*` stays within one."""
    pattern = re.escape(glob).replace(r"\*\*", "\0").replace(r"\*", "[^/]*").replace("\0", ".*")
    return re.compile(f"^{pattern}$")


def rewrites(firebase_json: Path = FIREBASE_JSON) -> list[tuple[re.Pattern, str]]:
    config = json.loads(firebase_json.read_text())
    routes = []
    for rule in config.get("hosting", {}).get("rewrites", []):
        function = rule.get("function")
        name = function.get("functionId") if isinstance(function, dict) else function
        if name:
            routes.append((glob_to_regex(rule["source"]), name))
    return routes


def headers(firebase_json: Path = FIREBASE_JSON) -> list[tuple[re.Pattern, dict[str, str]]]:
    """Hosting's `headers` rules: a glob and the headers a response to a path it matches gets."""
    config = json.loads(firebase_json.read_text())
    return [
        (glob_to_regex(rule["source"]), {header["key"]: header["value"] for header in rule["headers"]})
        for rule in config.get("hosting", {}).get("headers", [])
    ]


class Gateway:
    """Dispatches by path: a hosting rewrite first, then `/{function name}[/...]`. Every
    answer gets the headers of the rules its path matches (a later rule's value for the
    same header wins, as on Hosting); a header the answer sets itself is kept (the SADAD
    checkout page's own Content-Security-Policy)."""

    def __init__(
        self, apps: dict, routes: list[tuple[re.Pattern, str]], added: Sequence[tuple[re.Pattern, dict[str, str]]] = ()
    ) -> None:
        from werkzeug.middleware.shared_data import SharedDataMiddleware

        self.apps = apps
        self.routes = routes
        self.added = list(added)
        self._static = SharedDataMiddleware(_not_found, {"/admin": str(PUBLIC / "admin")}, cache=False)
        missing = sorted({name for _, name in routes} - set(apps))
        if missing:
            raise ValueError(f"firebase.json rewrites to functions main.py does not define: {missing}")

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        added: dict[str, str] = {}
        for pattern, values in self.added:
            if pattern.match(path):
                added.update(values)

        def respond(status, response_headers, exc_info=None):
            own = {name.lower() for name, _ in response_headers}
            extra = [(name, value) for name, value in added.items() if name.lower() not in own]
            return start_response(status, [*response_headers, *extra], exc_info)

        return self.dispatch(path, environ, respond)

    def dispatch(self, path, environ, start_response):
        if path == "/_local/token":
            return local_token(environ, start_response)
        if path == "/admin":
            start_response("301 Moved Permanently", [("Location", "/admin/")])
            return [b""]
        if path.startswith("/admin/"):
            return self.static(environ, start_response)
        trigger = EMULATOR_TRIGGER.match(path)
        if trigger and trigger.group(1) in self.apps:
            return self.apps[trigger.group(1)](emulator_event(environ), start_response)
        for pattern, name in self.routes:
            if pattern.match(path):
                return self.apps[name](environ, start_response)
        name, _, rest = path.lstrip("/").partition("/")
        if name in self.apps:
            # Served under its own name, as Cloud Functions does: the function sees the rest.
            environ = {**environ, "SCRIPT_NAME": environ.get("SCRIPT_NAME", "") + "/" + name, "PATH_INFO": "/" + rest}
            return self.apps[name](environ, start_response)
        body = json.dumps({"error": {"code": "not_found", "message": "No function serves this path.", "details": {}}})
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [body.encode()]

    def static(self, environ, start_response):
        """public/ as Hosting serves it: a directory's index.html."""
        if environ["PATH_INFO"].endswith("/"):
            environ = {**environ, "PATH_INFO": environ["PATH_INFO"] + "index.html"}
        return self._static(environ, start_response)


def _not_found(environ, start_response):
    start_response("404 Not Found", [("Content-Type", "application/json")])
    return [json.dumps({"error": {"code": "not_found", "message": "No such file.", "details": {}}}).encode()]


def local_token(environ, start_response):
    """The console's local sign-in: a local ID token for a uid, admin or not."""
    from coins.domain import is_valid_id
    from local.tokens import mint

    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(min(length, 4096)) or b"{}")
        uid, admin = body.get("uid"), body.get("admin") is True
    except (ValueError, AttributeError):
        uid, admin = None, False
    if environ.get("REQUEST_METHOD") != "POST" or not is_valid_id(uid):
        start_response("400 Bad Request", [("Content-Type", "application/json")])
        return [json.dumps({"error": {"code": "invalid_request", "message": 'POST {"uid", "admin"}', "details": {}}}).encode()]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"token": mint(uid, admin=admin)}).encode()]


# Where the Firestore emulator delivers document events (`--functions_emulator`).
EMULATOR_TRIGGER = re.compile(r"^/functions/projects/[^/]+/triggers/([A-Za-z0-9_]+)$")


def emulator_event(environ):
    """Dev-only adapter: the emulator sends the DocumentEventData protobuf as base64 text
    where Eventarc sends raw bytes. Decoded here, the production handler runs unchanged."""
    import base64
    import io

    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = base64.b64decode(environ["wsgi.input"].read(length))
    return {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)), "PATH_INFO": "/", "SCRIPT_NAME": ""}


def build() -> Gateway:
    from functions_framework import create_app

    apps = {name: create_app(target=name, source=str(SOURCE)) for name in function_names()}
    return Gateway(apps, rewrites(), headers())
