"""The OpenAPI 3.1 document of the public API, built from the entry points' declarations
(coins.api.Spec: method, path, access, request and query models, response model, the
domain errors they raise) and nothing else. The request models are the ones that
validate; the success bodies are built by hand-written renderers, so what keeps the
response models honest is the check of every response the integration, e2e and fuzz
tiers receive against this document (tests/conformance.py), which fails the test.

Served at GET /api/coins/openapi.json; a committed copy lives in docs/openapi.json:

    .venv/bin/python -m coins.openapi > docs/openapi.json      (or: make openapi)

Errors: every operation lists, per status, the codes it can answer with: those that
follow from its declaration (401 without a token, 403, 400 and 413 for a body, 422 for
invalid fields, 404 for a path the route does not match, the Idempotency-Key's
400/409/422, 405, 500, 503) and the domain errors it declares in `raises`.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections import defaultdict
from typing import Any, Iterable, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from . import config, errors, registry, responses
from .api import Access, Spec, request_model
from .models import ID_PATTERN

VERSION = "1.0.0"
REF = "#/components/schemas/{model}"


def specs() -> list[Spec]:
    """The public entry points (coins.registry), by path; those only Cloud Tasks and
    Scheduler call (Access.SERVICE) are not part of the API."""
    found = [spec for spec in registry.http_specs() if spec.access is not Access.SERVICE and spec.path]
    return sorted(found, key=lambda spec: spec.path or "")


def error_codes(spec: Spec) -> dict[int, set[str]]:
    """Status -> the error codes an operation can answer with."""
    codes: dict[int, set[str]] = defaultdict(set)

    def add(*kinds: type[errors.CoinsError]) -> None:
        for kind in kinds:
            codes[kind.status].add(kind.code)

    # Any path the route does not match (an id that cannot be one, a segment too many) is 404.
    add(errors.MethodNotAllowed, errors.NotFound, errors.CoinsError, errors.Unavailable)
    if spec.access in (Access.USER, Access.ADMIN):
        # 403: not an admin, someone else's resource, or a uid that cannot hold coins.
        add(errors.Unauthenticated, errors.Forbidden)
    if spec.body is not None:
        add(errors.InvalidRequest, errors.BodyTooLarge, errors.ValidationFailed)
    if spec.raw_body:  # the bytes as sent, up to the same limit
        add(errors.BodyTooLarge)
    if spec.query is not None:
        add(errors.ValidationFailed)
    if spec.idempotent:
        add(errors.InvalidRequest, errors.RequestInProgress, errors.IdempotencyKeyReused)
    add(*spec.raises)
    return codes


def response_model(name: str) -> type[BaseModel]:
    """The model of coins.responses an endpoint names ("Purchase", "Page[Withdrawal]")."""
    if name.startswith("Page[") and name.endswith("]"):
        model: Any = responses.Page.__class_getitem__(getattr(responses, name[5:-1]))  # pydantic's generic model
    else:
        model = getattr(responses, name)
    assert isinstance(model, type) and issubclass(model, BaseModel), name
    return model


def build() -> dict[str, Any]:
    """The document of every public entry point."""
    declared = specs()
    models: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [(responses.Error, "serialization")]
    for spec in declared:
        models += [(request_model(name), "validation") for name in (spec.body, spec.query) if name is not None]
        models += [(response_model(spec.response), "serialization")] if spec.response is not None else []
    refs, top = models_json_schema(models, ref_template=REF)
    schemas = top.get("$defs", {})

    def ref(model: type[BaseModel], mode: Literal["validation", "serialization"]) -> dict[str, Any]:
        return refs[(model, mode)]

    paths: dict[str, dict[str, Any]] = defaultdict(dict)
    for spec in declared:
        assert spec.path is not None, "specs() keeps the endpoints with a public path"
        for method in spec.methods:
            paths[spec.path][method.lower()] = _operation(spec, method, ref, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "GUILD Coins",
            "version": VERSION,
            "description": (
                "The coin economy of GUILD. Money is integer dirhams (1 QAR = 100 dirhams); coins are "
                '{tier: count}. Errors carry {"error": {"code", "message", "details"}}. Requests that move '
                "money need an Idempotency-Key: one per logical operation, reused on its retries."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": dict(paths),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "firebase": {"type": "http", "scheme": "bearer", "bearerFormat": "Firebase ID token (JWT)"},
            },
        },
    }


def _operation(spec: Spec, method: str, ref, schemas: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": spec.name if len(spec.methods) == 1 else f"{spec.name}_{method.lower()}"}
    operation["security"] = [{"firebase": []}] if spec.access in (Access.USER, Access.ADMIN) else []
    if spec.access is Access.ADMIN:
        operation["x-admin"] = True
        operation["description"] = "Admin only: the Firebase ID token must carry the custom claim admin: true."
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": ID_PATTERN}}
        for name in re.findall(r"\{(\w+)\}", spec.path or "")
    ]
    if spec.idempotent:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": True,
                "description": "One per logical operation, reused on each retry of it; a repeat returns the stored answer.",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": config.IDEMPOTENCY_KEY_LENGTH_MAX,
                    "pattern": "^[ -~]+$",
                },
            }
        )
    if spec.query is not None:
        query = schemas[ref(request_model(spec.query), "validation")["$ref"].rsplit("/", 1)[1]]
        for name, schema in query["properties"].items():
            parameters.append({"name": name, "in": "query", "required": name in query.get("required", ()), "schema": schema})
    if spec.raw_body:
        operation["x-raw-query"] = "The query string and the body are read as sent (the gateway's parameters)."
    if parameters:
        operation["parameters"] = parameters
    if spec.body is not None:
        body = request_model(spec.body)
        operation["requestBody"] = {
            "required": any(field.is_required() for field in body.model_fields.values()),
            "content": {"application/json": {"schema": ref(body, "validation")}},
        }
    operation["responses"] = _responses(spec, ref)
    return operation


def _responses(spec: Spec, ref) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    if spec.pages:  # a browser: a 303 to the app (or a page of ours), or a small page saying what went wrong
        if spec.html:
            answers["200"] = {"description": "The page.", "content": {"text/html": {"schema": {"type": "string"}}}}
        else:
            answers["303"] = {
                "description": "On to the app's deep link.",
                "headers": {"Location": {"schema": {"type": "string"}}},
            }
        for status in sorted(error_codes(spec)):
            answers[str(status)] = {"description": "An error page.", "content": {"text/html": {"schema": {"type": "string"}}}}
        return answers
    if spec.produces != ("application/json",):
        # A file: text (CSV), or bytes (a PDF).
        files = {
            kind: {"schema": {"type": "string", **({} if kind.startswith("text/") else {"format": "binary"})}}
            for kind in spec.produces
        }
        answers[str(spec.status)] = {"description": "Done.", "content": files}
    else:
        success = ref(response_model(spec.response), "serialization") if spec.response is not None else {"type": "object"}
        answers[str(spec.status)] = {"description": "Done.", "content": {"application/json": {"schema": success}}}
    for status, codes in sorted(error_codes(spec).items()):
        schema = {
            "allOf": [ref(responses.Error, "serialization")],
            "properties": {"error": {"properties": {"code": {"enum": sorted(codes)}}}},
        }
        headers = {"Retry-After": {"schema": {"type": "string"}}} if status in (429, 503) else {}
        answers[str(status)] = {
            "description": ", ".join(sorted(codes)),
            "content": {"application/json": {"schema": schema}},
            **({"headers": headers} if headers else {}),
        }
    return answers


@functools.cache
def served() -> dict[str, Any]:
    """The document GET /api/coins/openapi.json sends, built once per instance."""
    return build()


def render(document: dict[str, Any]) -> str:
    """The committed form: sorted keys, two-space indent, a final newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _main(argv: Iterable[str]) -> None:
    sys.stdout.write(render(build()))


if __name__ == "__main__":
    _main(sys.argv[1:])
