"""Errors to HTTP, in one place: every failure leaves as the SPEC's envelope with a request id."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from roughy import logs
from roughy.core.errors import ErrorCode, RoughyError

log = logging.getLogger("roughy.api")

#: Where each error's `doc_url` points: a page the service serves itself (`routes/docs.py`).
ERRORS_PAGE = "/docs/errors"


#: The service's public URL, for `doc_url`; set by the request edge for the whole request.
#: (The request's id is `roughy.logs.REQUEST_ID`, which the log lines read too.)
PUBLIC_URL: ContextVar[str | None] = ContextVar("roughy_public_url", default=None)

BAD_BODY_TYPES = {"json_invalid", "model_attributes_type", "dict_type", "model_type"}


def error_response(
    status: int, code: str, message: str, param: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The SPEC's envelope, plus the request's id and a link to the code's documentation."""
    body: dict[str, Any] = {"code": code, "message": message}
    if param:
        body["param"] = param
    if (request_id := logs.REQUEST_ID.get()) is not None:
        body["request_id"] = request_id
    if (base := PUBLIC_URL.get()) is not None and code in ErrorCode.__members__.values():
        body["doc_url"] = f"{base.rstrip('/')}{ERRORS_PAGE}#{code}"
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def param_from_loc(loc: tuple[Any, ...]) -> str | None:
    """('body', 'segments', 0, 'start') -> 'segments[0].start'; query params keep their name."""
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path") else list(loc)
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not str(part).startswith(("function-", "literal[")):
            text += f".{part}" if text else str(part)
    return text or None


def install(app: FastAPI) -> None:
    @app.exception_handler(RoughyError)
    async def _roughy(request: Request, exc: RoughyError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.param, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
        loc = tuple(first.get("loc", ()))
        if first.get("type") in BAD_BODY_TYPES and len(loc) <= 1 or (loc == ("body",)):
            return error_response(400, ErrorCode.BAD_REQUEST, "the body must be a JSON object")
        if first.get("type") == "json_invalid":
            return error_response(400, ErrorCode.BAD_REQUEST, "the body is not valid JSON")
        message = str(first.get("msg", "invalid value"))
        param = param_from_loc(loc)
        if first.get("type") == "extra_forbidden":
            message = f"unknown field {param!r}"
        return error_response(422, ErrorCode.VALIDATION_ERROR, message, param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED, 413: ErrorCode.PAYLOAD_TOO_LARGE}
        code = codes.get(exc.status_code, ErrorCode.BAD_REQUEST)
        return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", "-")
        log.exception("unhandled error (request %s)", request_id)
        return error_response(
            500, ErrorCode.INTERNAL_ERROR, f"an internal error occurred; quote request id {request_id}"
        )
