"""The API's resources as the SDK reads them.

These are the SDK's own models, not the server's (`roughy.api.schemas`): the SDK must not import
the server, and it must keep working against a newer one. So every model allows fields it does
not know (kept on the instance, `model_extra`), and states, codes and formats are plain strings
rather than enums: a state added by a newer server reads as that string instead of failing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

#: States in which `wait` stops.
ASSET_FINAL = frozenset({"ready", "failed", "payment_required"})
CUT_FINAL = frozenset({"completed", "failed"})
RENDER_FINAL = frozenset({"completed", "failed"})


class Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Page(Model, Generic[T]):
    """One page of a list: `data`, newest first, and whether more follow (`starting_after`)."""

    object: str = "list"
    data: list[T]
    has_more: bool = False


class ErrorInfo(Model):
    code: str
    message: str


class UploadTarget(Model):
    url: str
    method: str = "PUT"
    headers: dict[str, str] = Field(default_factory=dict)
    expires_at: datetime | None = None


class Poster(Model):
    url: str  # a signed GET URL: read the asset again for a fresh one
    expires_at: datetime | None = None


class VideoInfo(Model):
    width: int
    height: int
    fps: float | None = None
    codec: str | None = None
    bitrate_kbps: int | None = None
    rotation: int = 0


class AudioInfo(Model):
    codec: str | None = None
    bitrate_kbps: int | None = None
    sample_rate: int | None = None
    channels: int | None = None


class Asset(Model):
    id: str
    object: str = "asset"
    kind: str
    filename: str
    state: str
    cuttable: bool = False
    duration: float | None = None
    video: VideoInfo | None = None
    audio: AudioInfo | None = None
    error: ErrorInfo | None = None
    created_at: datetime
    upload: dict[str, UploadTarget] | None = None
    poster: Poster | None = None  # a video asset's poster frame (JPEG), once processed


class Segment(Model):
    start: float
    end: float


class Cut(Model):
    id: str
    object: str = "cut"
    asset_id: str
    state: str
    method: str | None = None
    segments: list[Segment] = Field(default_factory=list)
    error: ErrorInfo | None = None
    created_at: datetime


class Output(Model):
    format: str
    resolution: str | None = None
    video_bitrate: int | None = None
    audio_bitrate: int | None = None


class RenderResult(Model):
    format: str
    width: int | None = None
    height: int | None = None
    duration: float
    size_bytes: int
    video_bitrate_kbps: int | None = None
    audio_bitrate_kbps: int | None = None
    copied: list[str] = Field(default_factory=list)


class Render(Model):
    id: str
    object: str = "render"
    asset_id: str
    cut_id: str | None = None
    output: Output
    state: str
    progress: float = 0.0
    error: ErrorInfo | None = None
    result: RenderResult | None = None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    download_url: str | None = None
    download_expires_at: datetime | None = None


class LedgerEntry(Model):
    id: str
    type: str
    amount: int
    asset_id: str | None = None
    reason: str = ""
    created_at: datetime


class Credits(Model):
    balance: int
    entries: list[LedgerEntry] = Field(default_factory=list)


class WebhookEndpoint(Model):
    id: str
    object: str = "webhook_endpoint"
    url: str
    events: list[str]
    enabled: bool = True
    disabled_reason: str | None = None
    created_at: datetime
    secret: str | None = None
    previous_secret_expires_at: datetime | None = None


class Attempt(Model):
    attempted_at: datetime
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None


class Delivery(Model):
    id: str
    object: str = "webhook_delivery"
    event_id: str
    event_type: str
    state: str
    attempts: list[Attempt] = Field(default_factory=list)
    next_retry_at: datetime | None = None
    created_at: datetime
    completed_at: datetime | None = None


class Redelivery(Model):
    event_id: str
    deliveries: list[str] = Field(default_factory=list)
