"""The typed Python SDK of the roughy API (docs/sdk.md).

    from roughy.sdk import Client

    with Client("http://127.0.0.1:8000", "rk_...") as roughy:
        asset = roughy.assets.upload("talk.mp4")
        asset = roughy.assets.wait(asset.id)
        render = roughy.renders.create(asset.id, "mp4", resolution="720p")
        render = roughy.renders.wait(render.id, progress=lambda r: print(r.progress))
        roughy.renders.download(render, "talk-720p.mp4")

It depends on httpx and pydantic only, never on the server's code.
"""

from roughy.sdk.client import Client
from roughy.sdk.errors import (
    ApiError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    SdkError,
    ServerError,
    Unauthorized,
    ValidationError,
    WaitTimeout,
)
from roughy.sdk.models import (
    Asset,
    AudioInfo,
    Credits,
    Cut,
    Delivery,
    ErrorInfo,
    LedgerEntry,
    Output,
    Page,
    Poster,
    Redelivery,
    Render,
    RenderResult,
    Segment,
    UploadTarget,
    VideoInfo,
    WebhookEndpoint,
)
from roughy.sdk.segments import format_segments, parse_cut

__all__ = [
    "ApiError", "Asset", "AudioInfo", "BadRequest", "Client", "Conflict", "ConnectionFailed", "Credits", "Cut",
    "Delivery", "ErrorInfo", "Forbidden", "LedgerEntry", "NotFound", "Output", "Page", "PayloadTooLarge", "Poster",
    "RateLimited", "Redelivery", "Render", "RenderResult", "SdkError", "Segment", "ServerError", "Unauthorized",
    "UploadTarget", "ValidationError", "VideoInfo", "WaitTimeout", "WebhookEndpoint", "format_segments",
    "parse_cut",
]  # fmt: skip
