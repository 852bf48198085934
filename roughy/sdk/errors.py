"""One exception tree for everything the SDK raises.

`SdkError` is the root. `ApiError` is an answer of the API (it has a status and the body's
`code`), with one subclass per kind a caller handles differently; `ConnectionFailed` is a server
that did not answer at all, after the retries; `WaitTimeout` is a `wait` that gave up.
"""

from __future__ import annotations

from typing import Any

import httpx


class SdkError(Exception):
    """Root of every error the SDK raises."""


class ConnectionFailed(SdkError):
    """The server did not answer (refused, unreachable, timed out), after the retries."""

    def __init__(self, url: str, cause: BaseException | None = None):
        self.url = url
        self.cause = cause
        super().__init__(f"cannot reach roughy at {url}" + (f" ({cause})" if cause else ""))


class WaitTimeout(SdkError):
    """`wait` gave up before the resource reached a final state."""

    def __init__(self, resource_id: str, state: str, timeout: float):
        self.resource_id, self.state, self.timeout = resource_id, state, timeout
        super().__init__(f"{resource_id} is still {state} after {timeout:g} s")


class ApiError(SdkError):
    """An error answer of the API: `{"error": {"code", "message", "param", ...}}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        request_id: str | None = None,
        doc_url: str | None = None,
        retry_after: float | None = None,
    ):
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.request_id = request_id
        self.doc_url = doc_url
        self.retry_after = retry_after
        super().__init__(self.describe())

    def describe(self) -> str:
        """`message (code, param p; request req_...)`: what a person reads."""
        details = self.code + (f", param {self.param}" if self.param else "")
        if self.request_id:
            details += f"; request {self.request_id}"
        return f"{self.message} ({details})"

    def __str__(self) -> str:
        return self.describe()


class BadRequest(ApiError):
    """400: the body is not JSON, or not an object."""


class Unauthorized(ApiError):
    """401: no key, an unknown key or a revoked one."""


class Forbidden(ApiError):
    """403: an expired or altered signed URL."""


class NotFound(ApiError):
    """404: no such resource for this account (another account's reads the same)."""


class Conflict(ApiError):
    """409: the resource is not in a state that allows this yet (asset not ready, cut pending...)."""


class PayloadTooLarge(ApiError):
    """413: a body or an upload over the configured limit."""


class ValidationError(ApiError):
    """422: a well-formed but invalid request; `param` names the field."""


class RateLimited(ApiError):
    """429: over the account's request or concurrency limit; `retry_after` seconds when told."""


class ServerError(ApiError):
    """5xx: the server failed (a bug, or a gateway in front of it)."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationError,
    429: RateLimited,
}


def error_class(status: int) -> type[ApiError]:
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, ApiError)


def from_response(response: httpx.Response, retry_after: float | None = None) -> ApiError:
    """The error an answer >= 400 stands for, whatever its body (JSON envelope, HTML, nothing)."""
    body: dict[str, Any] = {}
    try:
        parsed = response.json()
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            body = parsed["error"]
    except ValueError:
        pass
    status = response.status_code
    message = body.get("message") or response.text.strip()[:200] or response.reason_phrase or f"HTTP {status}"
    return error_class(status)(
        status,
        str(body.get("code") or f"http_{status}"),
        str(message),
        param=body.get("param"),
        request_id=body.get("request_id") or response.headers.get("x-request-id"),
        doc_url=body.get("doc_url"),
        retry_after=retry_after,
    )
