"""One error tree. Each error carries its SPEC code and HTTP status; the API maps it in one place.

Adapters translate vendor errors (SQLAlchemy, ffmpeg, botocore) into these at their edge.
"""

from __future__ import annotations


class RoughyError(Exception):
    code = "internal_error"
    status = 500

    def __init__(self, message: str, *, param: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}


class Unauthorized(RoughyError):
    code, status = "unauthorized", 401


class Forbidden(RoughyError):
    code, status = "forbidden", 403


class NotFound(RoughyError):
    code, status = "not_found", 404


class Conflict(RoughyError):
    status = 409


class AssetNotReady(Conflict):
    code = "asset_not_ready"


class AssetProcessing(Conflict):
    code = "asset_processing"


class AssetPaymentRequired(Conflict):
    code = "asset_payment_required"


class AssetFailed(Conflict):
    code = "asset_failed"


class ModifierNotReady(Conflict):
    code = "modifier_not_ready"


class InvalidState(Conflict):
    """An action that the resource's state does not allow (e.g. completing a part twice)."""

    code = "invalid_state"


class PayloadTooLarge(RoughyError):
    code, status = "payload_too_large", 413


class ValidationFailed(RoughyError):
    code, status = "validation_error", 422


class RateLimited(RoughyError):
    code, status = "rate_limited", 429

    def __init__(self, message: str, *, retry_after: int = 1):
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class InsufficientCredit(Exception):
    """Raised by the store when a charge cannot be paid; the asset waits in payment_required."""
