"""One error tree. Each error carries its SPEC code and HTTP status; the API maps it in one place.

Adapters translate vendor errors (SQLAlchemy, ffmpeg, botocore) into these at their edge.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Every `error.code` the API answers with, its HTTP status and what a client should do.
    The OpenAPI document's enums and the `/docs/errors` page (each error's `doc_url`) are made
    from this one list."""

    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    ASSET_NOT_READY = "asset_not_ready"
    ASSET_PROCESSING = "asset_processing"
    ASSET_PAYMENT_REQUIRED = "asset_payment_required"
    ASSET_FAILED = "asset_failed"
    MODIFIER_NOT_READY = "modifier_not_ready"
    INVALID_STATE = "invalid_state"
    IDEMPOTENCY_KEY_IN_USE = "idempotency_key_in_use"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    VALIDATION_ERROR = "validation_error"
    RATE_LIMITED = "rate_limited"
    INTERNAL_ERROR = "internal_error"
    EXECUTOR_UNAVAILABLE = "executor_unavailable"
    STORAGE_UNAVAILABLE = "storage_unavailable"

    @property
    def status(self) -> int:
        return _CODES[self][0]

    @property
    def description(self) -> str:
        return _CODES[self][1]


_CODES: dict[ErrorCode, tuple[int, str]] = {
    ErrorCode.BAD_REQUEST: (400, "The body is not JSON, or not a JSON object. Fix the request; do not retry it as is."),
    ErrorCode.UNAUTHORIZED: (
        401,
        "No API key, an unknown one, or a revoked one (`Authorization: Bearer <key>`). For the admin API: not "
        "the admin key.",
    ),
    ErrorCode.FORBIDDEN: (
        403,
        "A signed URL that expired or was altered. Read the resource again for a fresh URL.",
    ),
    ErrorCode.NOT_FOUND: (
        404,
        "No such resource for this account (another account's resources answer the same). `param` names the "
        "field when the id came in the body.",
    ),
    ErrorCode.METHOD_NOT_ALLOWED: (405, "The path exists, but not with this HTTP method."),
    ErrorCode.ASSET_NOT_READY: (
        409,
        "A video render needs the asset `ready`. Retry once it is (wait for `asset.ready`).",
    ),
    ErrorCode.ASSET_PROCESSING: (
        409,
        "An audio render or a cut needs the asset's audio processed: it is still uploading or processing. Retry "
        "once the asset is `cuttable`.",
    ),
    ErrorCode.ASSET_PAYMENT_REQUIRED: (
        409,
        "The asset waits for credit to be processed. It resumes by itself once credit is granted.",
    ),
    ErrorCode.ASSET_FAILED: (
        409,
        "The asset's processing failed (see the asset's `error`): nothing can be made from it. Upload it again.",
    ),
    ErrorCode.MODIFIER_NOT_READY: (
        409,
        "`cut_id` names a cut of this asset that is not `completed` yet. Retry once it completes.",
    ),
    ErrorCode.INVALID_STATE: (
        409,
        "The resource's state does not allow this action now (completing a part nothing was uploaded to, "
        "an upload to a part that is not awaiting one).",
    ),
    ErrorCode.IDEMPOTENCY_KEY_IN_USE: (
        409,
        "A request with the same `Idempotency-Key` is still being answered. Retry after a moment: it then "
        "answers what the first one did.",
    ),
    ErrorCode.PAYLOAD_TOO_LARGE: (413, "The request body or the upload is over the service's configured limit."),
    ErrorCode.VALIDATION_ERROR: (
        422,
        "A well-formed request with an invalid value; `param` names the field (or header). Fix it; a retry "
        "as is fails again.",
    ),
    ErrorCode.RATE_LIMITED: (
        429,
        "Over the account's request rate (or, for the admin API, too many failed keys). Retry after "
        "`Retry-After` seconds.",
    ),
    ErrorCode.INTERNAL_ERROR: (
        500,
        "A bug or an unexpected failure. The message carries the request id: quote it in a report.",
    ),
    ErrorCode.EXECUTOR_UNAVAILABLE: (
        503,
        "The cluster that runs encodes cannot be reached right now. Retry after `Retry-After` seconds; nothing "
        "was lost.",
    ),
    ErrorCode.STORAGE_UNAVAILABLE: (
        503,
        "Object storage cannot be reached right now. Retry after `Retry-After` seconds; nothing was lost.",
    ),
}


class RoughyError(Exception):
    code: str = ErrorCode.INTERNAL_ERROR
    status = 500

    def __init__(self, message: str, *, param: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}


class Unauthorized(RoughyError):
    code, status = ErrorCode.UNAUTHORIZED, 401


class Forbidden(RoughyError):
    code, status = ErrorCode.FORBIDDEN, 403


class NotFound(RoughyError):
    code, status = ErrorCode.NOT_FOUND, 404


class Conflict(RoughyError):
    status = 409


class AssetNotReady(Conflict):
    code = ErrorCode.ASSET_NOT_READY


class AssetProcessing(Conflict):
    code = ErrorCode.ASSET_PROCESSING


class AssetPaymentRequired(Conflict):
    code = ErrorCode.ASSET_PAYMENT_REQUIRED


class AssetFailed(Conflict):
    code = ErrorCode.ASSET_FAILED


class ModifierNotReady(Conflict):
    code = ErrorCode.MODIFIER_NOT_READY


class InvalidState(Conflict):
    """An action that the resource's state does not allow (e.g. uploading to a part already uploaded)."""

    code = ErrorCode.INVALID_STATE


class PayloadTooLarge(RoughyError):
    code, status = ErrorCode.PAYLOAD_TOO_LARGE, 413


class ValidationFailed(RoughyError):
    code, status = ErrorCode.VALIDATION_ERROR, 422


class RateLimited(RoughyError):
    code, status = ErrorCode.RATE_LIMITED, 429

    def __init__(self, message: str, *, retry_after: int = 1):
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class ExecutorUnavailable(RoughyError):
    """The executor cannot take or stop work right now (the cluster is unreachable or
    overloaded): retry later. The render stays queued."""

    code, status = ErrorCode.EXECUTOR_UNAVAILABLE, 503

    def __init__(self, message: str, *, retry_after: int = 1):
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class ExecutorFailed(RoughyError):
    """The executor refused the work for good (RBAC, a missing CRD, a rejected object)."""

    code, status = ErrorCode.INTERNAL_ERROR, 500


class IdempotencyKeyInUse(Conflict):
    code = ErrorCode.IDEMPOTENCY_KEY_IN_USE

    def __init__(self, message: str, *, retry_after: int = 1):
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class InsufficientCredit(Exception):
    """Raised by the store when a charge cannot be paid; the asset waits in payment_required."""
