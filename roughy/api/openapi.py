"""The OpenAPI document: what FastAPI derives from the routes, plus what it cannot know.

- operation ids are the route functions' names (`create_render`), so a generated client reads
  `client.create_render(...)`;
- each route declares the error codes it can answer with (`errors(...)`): every status gets the
  envelope with `code` as an enum of exactly those codes, and one example per code;
- every response documents `X-Request-Id`; 429 and 503 (and the idempotency conflict) document
  `Retry-After`;
- the list envelopes get examples made from their item's example.

The error codes, their statuses and their descriptions come from `roughy.core.errors.ErrorCode`;
the same list renders the `/docs/errors` page that each error body's `doc_url` points into.
"""

from __future__ import annotations

import copy
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from roughy.api import schemas
from roughy.api.errors import ERRORS_PAGE
from roughy.api.examples import EXAMPLES
from roughy.core.errors import ErrorCode

TAGS: list[dict[str, str]] = [
    {
        "name": "assets",
        "description": "Source media. Create an asset, PUT each part to its signed upload URL, then complete the "
        "part: the service probes it (and extracts the audio of a video) and charges one credit, once.",
    },
    {
        "name": "cuts",
        "description": "Ordered plans of kept time segments of an asset: explicit segments, or derived by "
        "removing silences. A cut completes once the asset is cuttable.",
    },
    {
        "name": "renders",
        "description": "Asynchronous encodes of an asset (optionally trimmed to a cut) to one file. Idempotent "
        "on their content; a completed render read alone carries a short-lived download URL.",
    },
    {"name": "credits", "description": "The account's credit balance and ledger."},
    {
        "name": "webhooks",
        "description": "Endpoints that receive signed events (Standard Webhooks), their delivery log, and redelivery.",
    },
    {
        "name": "admin",
        "description": "Operator API: accounts, API keys and credit grants. Enabled only when the service has an "
        "admin key (`ROUGHY_ADMIN_KEY`), and authenticated with it.",
    },
    {
        "name": "files",
        "description": "Targets of the signed URLs the service hands out in the embedded runtime (on Kubernetes "
        "they are object storage's presigned URLs instead). Authorised by the URL's signature, not by a key: "
        "use them as given.",
    },
    {"name": "health", "description": "Probes and metrics for the platform that runs the service."},
]

REQUEST_ID_HEADER = {
    "description": "The request's id: the client's own `X-Request-Id` when it sent a plain one (up to 64 of "
    "`A-Za-z0-9._:-`), else a new `req_...`. Every log line of the request carries it.",
    "schema": {"type": "string"},
}
RETRY_AFTER_HEADER = {
    "description": "Seconds to wait before retrying.",
    "schema": {"type": "integer", "minimum": 1},
}
RETRYABLE = {
    ErrorCode.RATE_LIMITED,
    ErrorCode.EXECUTOR_UNAVAILABLE,
    ErrorCode.STORAGE_UNAVAILABLE,
    ErrorCode.IDEMPOTENCY_KEY_IN_USE,
}

#: The errors every route behind an API key can answer with.
AUTHENTICATED = (ErrorCode.UNAUTHORIZED, ErrorCode.RATE_LIMITED, ErrorCode.INTERNAL_ERROR)
#: ... and every route that reads a JSON body.
WITH_BODY = (ErrorCode.BAD_REQUEST, ErrorCode.PAYLOAD_TOO_LARGE, ErrorCode.VALIDATION_ERROR)


def errors(*codes: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """A route's `responses` for the error codes it can answer with, grouped by status."""
    by_status: dict[int, list[ErrorCode]] = {}
    for code in dict.fromkeys(codes):
        by_status.setdefault(code.status, []).append(code)
    return {status: _error_response(status, group) for status, group in sorted(by_status.items())}


def _error_response(status: int, codes: list[ErrorCode]) -> dict[str, Any]:
    body = copy.deepcopy(schemas.ErrorBody.model_json_schema())
    body["properties"]["code"] = {
        "type": "string",
        "enum": [c.value for c in codes],
        "description": "\n".join(f"- `{c.value}`: {c.description}" for c in codes),
    }
    body.pop("$defs", None)
    # Titles name the types a generator makes (`CreateRenderConflictError`): one per status.
    name = HTTPStatus(status).phrase.title().replace(" ", "").replace("-", "").removesuffix("Error") + "Error"
    body["title"] = name + "Body"
    response: dict[str, Any] = {
        "description": HTTPStatus(status).phrase,
        "content": {
            "application/json": {
                "schema": {"type": "object", "title": name, "required": ["error"], "properties": {"error": body}},
                "examples": {c.value: {"summary": c.description, "value": error_example(c)} for c in codes},
            }
        },
    }
    if any(c in RETRYABLE for c in codes):
        response["headers"] = {"Retry-After": RETRY_AFTER_HEADER}
    return response


def error_example(code: ErrorCode) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code.value, "message": _EXAMPLE_MESSAGES.get(code, code.description)}
    if code in (ErrorCode.VALIDATION_ERROR, ErrorCode.NOT_FOUND):
        error["param"] = "output.resolution" if code is ErrorCode.VALIDATION_ERROR else "asset_id"
    error["request_id"] = "req_5f0c9a1e2b7d4c36"
    error["doc_url"] = f"http://127.0.0.1:8000{ERRORS_PAGE}#{code.value}"
    return {"error": error}


_EXAMPLE_MESSAGES = {
    ErrorCode.UNAUTHORIZED: "unknown or revoked API key",
    ErrorCode.NOT_FOUND: "no such asset",
    ErrorCode.VALIDATION_ERROR: "resolution 4k is above the source's 1080p",
    ErrorCode.ASSET_NOT_READY: "the asset is processing: a video render needs it ready",
    ErrorCode.RATE_LIMITED: "too many requests; slow down",
    ErrorCode.INTERNAL_ERROR: "an internal error occurred; quote request id req_5f0c9a1e2b7d4c36",
}


def install(app: FastAPI) -> None:
    """Make `app.openapi()` answer the finished document (built once, then cached)."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                tags=TAGS,
                webhooks=app.webhooks.routes,
            )
            finish(doc)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def operation_id(route: APIRoute) -> str:
    """`generate_unique_id_function`: the route function's name."""
    return route.name


def finish(doc: dict[str, Any]) -> None:
    """What FastAPI cannot derive: response headers, examples."""
    components = doc.setdefault("components", {})
    components.setdefault("headers", {})["X-Request-Id"] = REQUEST_ID_HEADER
    for path in doc.get("paths", {}).values():
        for operation in path.values():
            responses = operation.get("responses", {})
            if "HTTPValidationError" in str(responses.get("422", "")):
                del responses["422"]  # FastAPI's default, for a route that cannot answer 422
            for response in responses.values():
                response.setdefault("headers", {})["X-Request-Id"] = {"$ref": "#/components/headers/X-Request-Id"}
    models = components.get("schemas", {})
    models.pop("HTTPValidationError", None)
    models.pop("ValidationError", None)
    for name, examples in EXAMPLES.items():
        if name in models:
            models[name]["examples"] = examples
    for name, model in models.items():
        items = model.get("properties", {}).get("data", {}).get("items", {}).get("$ref")
        if name.startswith("ListOf") and items and "examples" not in model:
            example = models[items.rsplit("/", 1)[1]].get("examples", [None])[0]
            if example is not None:
                model["examples"] = [{"object": "list", "data": [example], "has_more": False}]
