"""HTTP glue shared by every entry point: method, auth, body, validation, idempotency
key, logging, and the mapping of errors to responses. Entry points stay one call long."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import time
import traceback
import typing
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Iterator, Mapping

import flask
import pydantic

from . import clients, config, errors, language, logs, registry
from .auth import Caller, authenticate, authenticate_service
from .domain import ID_LENGTH_MAX, is_valid_id
from .idempotency import Idempotency, Response


class Access(Enum):
    PUBLIC = "public"  # anyone; the handler may check more (the webhook URL's token)
    USER = "user"  # a Firebase ID token
    ADMIN = "admin"  # a Firebase ID token with the custom claim admin: true
    SERVICE = "service"  # Cloud Scheduler or Cloud Tasks (OIDC), or the local stack


@dataclass(frozen=True)
class Call:
    """What a handler gets: the authenticated caller and the validated input."""

    # None for a public endpoint; `caller` is for those that authenticate.
    authenticated: Caller | None
    body: Any
    query: Any
    # None unless the endpoint is `idempotent`; `idempotency` is for those that are.
    key: Idempotency | None
    params: dict[str, str]
    headers: Any
    # The body's bytes and the query string as sent (`raw_body=True`: the gateways'
    # returns and webhooks, whose shape we do not define); empty otherwise.
    raw_body: bytes = b""
    args: Mapping[str, str] = field(default_factory=dict)

    @property
    def db(self):
        """The coins database, behind the one door (coins.store)."""
        return clients.store()

    @property
    def app_db(self):
        """The GUILD app's database, behind its adapter (coins.app)."""
        return clients.app_db()

    @property
    def caller(self) -> Caller:
        """Who called: the door authenticated them (every access but PUBLIC)."""
        assert self.authenticated is not None, "a public endpoint has no caller"
        return self.authenticated

    @property
    def uid(self) -> str:
        return self.caller.uid

    @property
    def language(self) -> str | None:
        """The one of our languages the request's Accept-Language prefers, if any."""
        return language.from_header(self.headers.get("Accept-Language"))

    @property
    def idempotency(self) -> Idempotency:
        """The request's key: the door required one (`idempotent=True`)."""
        assert self.key is not None, "only an idempotent endpoint has a key"
        return self.key


@dataclass(frozen=True)
class Redirect:
    """A 303 to `location` (the payer's browser, sent on to the app)."""

    location: str


@dataclass(frozen=True)
class Html:
    """A page for the payer's browser (200, text/html), with its own headers."""

    text: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Stream:
    """A file for the caller, with its type and name: written as it is made (a CSV
    export) or made whole first (a PDF, one chunk of bytes)."""

    content_type: str
    chunks: Iterator[str] | Iterator[bytes]
    filename: str


Handler = Callable[[Call], "dict[str, Any] | Response | Redirect | Html | Stream"]


@dataclass(frozen=True)
class Spec:
    """What an entry point declares (kept in coins.registry): the deploy reads who may
    invoke it, the OpenAPI document (coins.openapi) all of it."""

    name: str
    methods: tuple[str, ...]
    access: Access
    path: str | None
    # Models of coins.models, by name ("PurchaseCreate"), imported when a request first
    # needs one (request_model): a function without a body does not load them at all.
    body: str | None
    query: str | None
    # A model of coins.responses, by name ("Purchase", "Page[Withdrawal]"): imported only
    # for the OpenAPI document (coins.openapi.response_model).
    response: str | None
    status: int
    idempotent: bool
    raw_body: bool
    pages: bool
    html: bool
    produces: tuple[str, ...]
    raises: tuple[type[errors.CoinsError], ...]


def endpoint(
    method: str | tuple[str, ...],
    *,
    access: Access,
    body: str | None = None,
    query: str | None = None,
    idempotent: bool = False,
    path: str | None = None,
    response: str | None = None,
    status: int = 200,
    raises: tuple[type[errors.CoinsError], ...] = (),
    raw_body: bool = False,
    pages: bool = False,
    html: bool = False,
    produces: str | tuple[str, ...] = "application/json",
    schedule: registry.Schedule | None = None,
    resources: registry.Resources = registry.Resources(),
) -> Callable[[Handler], Callable[[flask.Request], flask.Response]]:
    """Wraps a handler into an HTTP function. `body` and `query` name their models in
    coins.models ("PurchaseCreate"). `idempotent` means the request moves money
    and needs an Idempotency-Key. `path` is the public path (firebase.json's rewrite to
    the function) with its ids named as API.md writes them (`/api/coins/purchase/{id}`);
    under the function's own name the ids follow it (`/coins_purchase_get/{id}`).
    `response` models the success body, sent with `status`; `raises` are the domain
    errors the handler may answer with (those of the door, auth, body, ids and key,
    follow from the rest). `raw_body` hands the handler the bytes, unparsed, and the query
    string as sent. `pages`: the caller is a browser, so errors are small HTML pages
    rather than the JSON envelope; `html`: its answer is a page of ours (coins.api.Html),
    not a 303. `produces`: the success answer's types where it is not JSON (a Stream).
    `schedule`: Cloud Scheduler calls it (a private function); `resources`:
    what an instance gets. Recorded in coins.registry."""
    assert schedule is None or access is Access.SERVICE, "Cloud Scheduler calls private functions only"
    assert pages or not html, "a page of ours is for a browser"
    methods = (method,) if isinstance(method, str) else method

    def decorate(handler: Handler) -> Callable[[flask.Request], flask.Response]:
        name = handler.__name__
        route = _Route(path) if path else None

        @functools.wraps(handler)
        def entry(request: flask.Request) -> flask.Response:
            started = time.perf_counter()
            logs.bind_trace(request.headers.get("X-Cloud-Trace-Context"), config.settings().project_id)
            caller: Caller | None = None
            try:
                if request.method not in methods:
                    raise errors.MethodNotAllowed(allowed=list(methods))
                params = route.match(request.path) if route else {}
                if access is Access.SERVICE:
                    caller = _authenticate_service(request)
                elif access is not Access.PUBLIC:
                    settings = config.settings()
                    caller = authenticate(
                        request.headers.get("Authorization"),
                        clients.firebase_app(),
                        auth_emulator=settings.auth_emulator_host is not None,
                        emulated=settings.emulated,
                    )
                    if access is Access.ADMIN and not caller.admin:
                        raise errors.Forbidden("This needs an admin.")
                    if access is Access.USER:
                        # What the user reads, remembered on their wallet by the operations that write it (coins.ledger).
                        asked = language.from_header(request.headers.get("Accept-Language"))
                        caller = dataclasses.replace(caller, language=asked)
                raw = _json_body(request, may_be_empty=_all_optional(request_model(body))) if body is not None else None
                call = Call(
                    authenticated=caller,
                    body=_validate(request_model(body), raw) if body is not None and raw is not None else None,
                    query=_validate(request_model(query), _query_args(request)) if query is not None else None,
                    key=_idempotency(request, caller, name, {"params": params, "body": raw}) if idempotent else None,
                    params=params,
                    headers=request.headers,
                    raw_body=_read_body(request) if raw_body else b"",
                    args=_query_args(request) if raw_body else {},
                )
                result = handler(call)
                if isinstance(result, Stream):
                    logs.info(f"{request.method} {name} 200", function=name, status=200, uid=caller.uid if caller else None)
                    streamed = flask.Response(flask.stream_with_context(result.chunks), 200, mimetype=result.content_type)
                    streamed.headers["Content-Disposition"] = f'attachment; filename="{result.filename}"'
                    streamed.headers["Cache-Control"] = "no-store"
                    return streamed
                if isinstance(result, Redirect | Html):
                    status = 303 if isinstance(result, Redirect) else 200
                    logs.info(
                        f"{request.method} {name} {status}",
                        function=name,
                        status=status,
                        latency_ms=round((time.perf_counter() - started) * 1000, 1),
                    )
                    if isinstance(result, Html):
                        return flask.Response(result.text, 200, mimetype="text/html", headers=dict(result.headers))
                    return typing.cast(flask.Response, flask.redirect(result.location, code=303))
                response = result if isinstance(result, Response) else Response(200, result)
            except errors.CoinsError as error:
                response = Response(error.status, error.to_body())
            except Exception:  # noqa: BLE001 - the last line of defence: log, never leak
                logs.error("unhandled error", function=name, traceback=traceback.format_exc())
                response = Response(500, errors.CoinsError().to_body())
            latency_ms = round((time.perf_counter() - started) * 1000, 1)
            logs.log(
                "ERROR" if response.status >= 500 else "WARNING" if response.status >= 400 else "INFO",
                f"{request.method} {name} {response.status}",
                function=name,
                method=request.method,
                status=response.status,
                latency_ms=latency_ms,
                uid=caller.uid if caller else None,
                error_code=response.body.get("error", {}).get("code") if response.status >= 400 else None,
            )
            answer = (
                _page(response, ", ".join(methods))
                if pages and response.status >= 400
                else to_flask(response, ", ".join(methods))
            )
            if access in (Access.USER, Access.ADMIN):
                # A person's wallet, withdrawals, identity: no browser or proxy keeps a copy.
                answer.headers["Cache-Control"] = "no-store"
            return answer

        spec = Spec(
            name,
            methods,
            access,
            path,
            body,
            query,
            response,
            status,
            idempotent,
            raw_body,
            pages,
            html,
            (produces,) if isinstance(produces, str) else produces,
            raises,
        )
        kind = registry.Kind.PRIVATE if access is Access.SERVICE else registry.Kind.PUBLIC
        registry.record(registry.Function(name, kind, spec=spec, schedule=schedule, resources=resources))
        return entry

    return decorate


def on_document_created(pattern: str, *, resources: registry.Resources = registry.Resources()) -> Callable[[Callable], Callable]:
    """Records a CloudEvent function as the trigger of documents created at `pattern` in
    the coins database (`ledger/{entryId}`), in coins.registry."""

    def mark(function: Callable) -> Callable:
        registry.record(
            registry.Function(function.__name__, registry.Kind.TRIGGER, document_pattern=pattern, resources=resources)
        )
        return function

    return mark


def to_flask(response: Response, method: str | None = None) -> flask.Response:
    result = flask.Response(json.dumps(response.body, separators=(",", ":")), response.status, mimetype="application/json")
    if response.status == 405 and method:
        result.headers["Allow"] = method
    if response.status in (429, 503):
        details = response.body.get("error", {}).get("details", {})
        result.headers["Retry-After"] = str(details.get("retry_after_seconds") or 1)
    return result


class _Route:
    """Pulls the ids out of a path written like `/api/coins/escrow/{id}/release`. An id
    that cannot be a document id (coins.domain.is_valid_id) names nothing: 404."""

    def __init__(self, pattern: str) -> None:
        self.names = re.findall(r"\{(\w+)\}", pattern)
        segment = r"([^/]{1,%d})" % ID_LENGTH_MAX
        self.full = re.compile(r"\A" + re.sub(r"\\\{\w+\\\}", segment, re.escape(pattern)) + r"/?\Z")
        self.own_name = re.compile(r"\A" + "".join("/" + segment for _ in self.names) + r"/?\Z")

    def match(self, path: str) -> dict[str, str]:
        found = self.full.match(path) or self.own_name.match(path)
        if found is None or not all(is_valid_id(value) for value in found.groups()):
            raise errors.NotFound("No such resource.")
        return dict(zip(self.names, found.groups()))


def _authenticate_service(request: flask.Request) -> Caller:
    settings = config.settings()
    account = authenticate_service(
        request.headers,
        audiences=settings.service_audiences,
        accounts=settings.service_accounts,
        # The local stack's secret means something only where Firestore is the emulator.
        local_secret=settings.local_service_secret if settings.emulated else None,
    )
    return Caller(uid=account)


def _read_body(request: flask.Request) -> bytes:
    if request.content_length is not None and request.content_length > config.BODY_BYTES_MAX:
        raise errors.BodyTooLarge(limit_bytes=config.BODY_BYTES_MAX)
    data = request.stream.read(config.BODY_BYTES_MAX + 1)
    if len(data) > config.BODY_BYTES_MAX:
        raise errors.BodyTooLarge(limit_bytes=config.BODY_BYTES_MAX)
    return data


def request_model(name: str) -> type[pydantic.BaseModel]:
    """The model of coins.models an endpoint names for its body or query."""
    from . import models  # on first use: see Spec.body

    model = getattr(models, name)
    assert isinstance(model, type) and issubclass(model, pydantic.BaseModel), name
    return model


def _all_optional(model: type[pydantic.BaseModel]) -> bool:
    return not any(field.is_required() for field in model.model_fields.values())


def _json_body(request: flask.Request, *, may_be_empty: bool = False) -> dict[str, Any]:
    data = _read_body(request)
    if may_be_empty and not data.strip():
        return {}  # a body of optional fields only may be left out (a whole release, a submit without a note)
    if request.mimetype != "application/json":
        raise errors.InvalidRequest("Send JSON with Content-Type: application/json.")
    try:
        parsed = json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise errors.InvalidRequest("The body is not valid JSON.") from None
    if not isinstance(parsed, dict):
        raise errors.InvalidRequest("The body must be a JSON object.")
    return parsed


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _query_args(request: flask.Request) -> dict[str, str]:
    repeated = sorted(key for key, values in request.args.lists() if len(values) > 1)
    if repeated:
        raise errors.ValidationFailed(fields=[{"field": key, "message": "given more than once"} for key in repeated])
    return request.args.to_dict()


def _validate(model: type[pydantic.BaseModel], data: dict[str, Any]) -> pydantic.BaseModel:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as error:
        # Field paths and messages only: never the input, which may be huge or sensitive.
        fields = [
            {"field": ".".join(str(part) for part in item["loc"]) or "body", "message": item["msg"]}
            for item in error.errors(include_url=False, include_input=False, include_context=False)
        ]
        raise errors.ValidationFailed(fields=fields) from None


def _idempotency(request: flask.Request, caller: Caller | None, name: str, raw: dict[str, Any] | None) -> Idempotency:
    key = request.headers.get("Idempotency-Key", "")
    if not 1 <= len(key) <= config.IDEMPOTENCY_KEY_LENGTH_MAX or not all(" " <= c <= "~" for c in key):
        raise errors.InvalidRequest(
            f"An Idempotency-Key header of 1 to {config.IDEMPOTENCY_KEY_LENGTH_MAX} printable characters is required."
        )
    assert caller is not None, "money moves only for authenticated callers"
    return Idempotency.of(scope=caller.uid, key=key, operation=name, body=raw or {})


def _page(response: Response, methods: str) -> flask.Response:
    """An error for a browser: a small page saying what went wrong, in both languages."""
    import html

    message = html.escape(response.body.get("error", {}).get("message", "Something went wrong."))
    text = (
        f"<!doctype html><meta charset='utf-8'><title>GUILD Coins</title><p>{message}</p>"
        "<p dir='rtl' lang='ar'>تعذّر إكمال الطلب. عُد إلى تطبيق GUILD.</p>"
    )
    page = flask.Response(text, response.status, mimetype="text/html")
    if response.status == 405:
        page.headers["Allow"] = methods
    return page


def answer_framework_errors_in_json() -> None:
    """Registers `framework_error` on the app the functions framework is building (it
    executes main.py inside that app's context); outside one, there is nothing to do."""
    if flask.has_app_context():
        from werkzeug.exceptions import HTTPException

        flask.current_app.register_error_handler(HTTPException, framework_error)


def framework_error(error) -> flask.Response:
    """What the functions framework answers itself (a path its router cannot match, such
    as one with an encoded newline), as the same JSON envelope as everything else."""
    status = getattr(error, "code", None) or 500
    known = {400: errors.InvalidRequest, 404: errors.NotFound, 405: errors.MethodNotAllowed, 413: errors.BodyTooLarge}
    if status in known:
        answer = known[status]()
    else:
        if status >= 500:
            logs.error("framework error", status=status, error=type(error).__name__)
        answer = errors.CoinsError() if status >= 500 else errors.InvalidRequest()
    return to_flask(Response(answer.status, answer.to_body()))
