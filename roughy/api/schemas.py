"""Request and response models: one family per resource. These are what /openapi.json shows."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, create_model

from roughy.core.errors import ErrorCode
from roughy.core.events import EventType, Resource
from roughy.core.formats import AUDIO_BITRATES_KBPS, VIDEO_BITRATES_MBPS
from roughy.core.models import AssetKind, AssetState, CutMethod, CutState, Format, RenderState, Resolution

T = TypeVar("T")

if TYPE_CHECKING:
    VideoBitrate = int
    AudioBitrate = int
else:
    # The ladders as Literals (`Literal[(5, 10)]` is `Literal[5, 10]`): an `enum` in /openapi.json
    # and a 422 for any other value, from the one list in core. Type checkers need literal
    # values, hence the plain int for them.
    VideoBitrate = Literal[VIDEO_BITRATES_MBPS]
    AudioBitrate = Literal[AUDIO_BITRATES_KBPS]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests ------------------------------------------------------------------------------------


class AssetCreate(Strict):
    kind: AssetKind
    filename: str = Field(min_length=1, max_length=255)
    client_audio: bool = Field(False, strict=True)


class SegmentIn(Strict):
    start: float = Field(strict=True, allow_inf_nan=True)
    end: float = Field(strict=True, allow_inf_nan=True)


class CutCreate(Strict):
    """Either `segments`, or `method: "silence"` with its parameters."""

    segments: list[SegmentIn] | None = None
    method: Literal["silence"] | None = None
    min_silence: float = Field(0.5, gt=0, le=60, strict=True)
    threshold_db: float = Field(-35.0, ge=-120, lt=0, strict=True)
    padding: float = Field(0.1, ge=0, le=10, strict=True)


class OutputIn(Strict):
    format: Format
    resolution: Resolution | None = None
    video_bitrate: VideoBitrate | None = None
    audio_bitrate: AudioBitrate | None = None


class RenderCreate(Strict):
    asset_id: str = Field(min_length=1, max_length=64)
    cut_id: str | None = Field(None, max_length=64)
    output: OutputIn


class AccountCreate(Strict):
    name: str = Field(min_length=1, max_length=200)


class CreditGrant(Strict):
    amount: int = Field(gt=0, le=1_000_000, strict=True)
    reason: str = Field("", max_length=500)


# -- responses -----------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    code: ErrorCode = Field(description="What went wrong, for programs: one of a fixed list (see `doc_url`).")
    message: str = Field(description="What went wrong, for people.")
    param: str | None = Field(None, description="The field (or header) at fault, when one is.")
    request_id: str = Field(description="This request's id (also the `X-Request-Id` header): quote it in a report.")
    doc_url: str = Field(description="The code's documentation, served by the service (`/docs/errors`).")


class ErrorEnvelope(BaseModel):
    error: ErrorBody


class ListOf(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool


class UploadTarget(BaseModel):
    url: str
    method: Literal["PUT"] = "PUT"
    headers: dict[str, str]
    expires_at: datetime


class VideoOut(BaseModel):
    width: int
    height: int
    fps: float
    codec: str
    bitrate_kbps: int | None
    rotation: int


class AudioOut(BaseModel):
    codec: str
    bitrate_kbps: int | None
    sample_rate: int
    channels: int


class ErrorInfoOut(BaseModel):
    code: str
    message: str


class PosterOut(BaseModel):
    url: str = Field(description="A signed GET URL of the JPEG (fetch the asset again for a fresh one).")
    expires_at: datetime


class AssetOut(BaseModel):
    id: str
    object: Literal["asset"] = "asset"
    kind: AssetKind
    filename: str
    state: AssetState
    cuttable: bool
    duration: float | None
    video: VideoOut | None
    audio: AudioOut | None
    error: ErrorInfoOut | None
    created_at: datetime
    upload: dict[str, UploadTarget] | None = Field(
        description="Upload targets for the parts still awaiting upload (fresh on every read)."
    )
    poster: PosterOut | None = Field(
        None,
        description="A video asset's poster frame (a JPEG, at most 640 px on its longer edge, as displayed "
        "after rotation): null until the video is processed, for audio assets, and when none could be made.",
    )


class SegmentOut(BaseModel):
    start: float
    end: float


class CutOut(BaseModel):
    id: str
    object: Literal["cut"] = "cut"
    asset_id: str
    state: CutState
    method: CutMethod
    segments: list[SegmentOut]
    error: ErrorInfoOut | None
    created_at: datetime


class OutputOut(BaseModel):
    format: Format
    resolution: Resolution | None
    video_bitrate: int | None
    audio_bitrate: int | None


class ResultOut(BaseModel):
    format: Format
    width: int | None
    height: int | None
    duration: float
    size_bytes: int
    video_bitrate_kbps: int | None
    audio_bitrate_kbps: int | None
    copied: list[Literal["video", "audio"]] = Field(
        default_factory=list,
        description="Streams copied from the source instead of encoded (it already was what the output asks for).",
    )
    encoder: str | None = Field(
        None,
        description="What encoded the video: `libx264`, `h264_nvenc`, or `h264_nvenc+cuda` (decoded and scaled on "
        "the GPU too); null when no video was encoded (audio, a copy, a chunked render's join).",
    )


class RenderOut(BaseModel):
    id: str
    object: Literal["render"] = "render"
    asset_id: str
    cut_id: str | None
    output: OutputOut
    state: RenderState
    progress: float
    error: ErrorInfoOut | None
    result: ResultOut | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    download_url: str | None = Field(None, description="Only on GET /v1/renders/{id} of a completed render.")
    download_expires_at: datetime | None = None


class LedgerEntryOut(BaseModel):
    id: str
    type: Literal["grant", "charge"]
    amount: int
    asset_id: str | None
    reason: str
    created_at: datetime


class CreditsOut(BaseModel):
    balance: int
    entries: list[LedgerEntryOut]


class AccountOut(BaseModel):
    id: str
    name: str


class ApiKeyOut(BaseModel):
    id: str
    key: str


# -- webhooks ------------------------------------------------------------------------------------


class AssetEventData(AssetOut):
    """An asset as `GET /v1/assets/{id}` returns it, without upload targets or a poster URL."""

    upload: None = None
    poster: None = None


class RenderEventData(RenderOut):
    """A render as `GET /v1/renders/{id}` returns it, without a download URL (GET it for one)."""

    download_url: None = None
    download_expires_at: None = None


#: The `data` of each kind of event (roughy.core.events.Resource), for the OpenAPI document.
EVENT_DATA: dict[Resource, type[BaseModel]] = {
    Resource.ASSET: AssetEventData,
    Resource.CUT: CutOut,
    Resource.RENDER: RenderEventData,
}


def event_model(event: EventType) -> type[BaseModel]:
    """The body a webhook endpoint receives for `event` (Standard Webhooks headers sign it)."""
    data = EVENT_DATA[event.resource]
    return create_model(
        "Event_" + event.value.replace(".", "_"),
        __doc__=event.description,
        id=(str, Field(description="The event's id (`evt_...`); the same on every redelivery.")),
        type=(Literal[event.value], ...),  # type: ignore[arg-type]
        created_at=(datetime, ...),
        data=(data, ...),
    )


class WebhookEndpointCreate(Strict):
    url: str = Field(min_length=1, max_length=2048)
    events: list[EventType] = Field(min_length=1, description="Event types to receive.")


class WebhookEndpointOut(BaseModel):
    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    secret: str | None = Field(None, description="The signing secret: only in the creation and rotation answers.")
    previous_secret_expires_at: datetime | None = None


class AttemptOut(BaseModel):
    attempted_at: datetime
    status_code: int | None
    latency_ms: float
    error: str | None


class DeliveryOut(BaseModel):
    id: str
    object: Literal["webhook_delivery"] = "webhook_delivery"
    event_id: str
    event_type: str
    state: Literal["pending", "succeeded", "failed"]
    attempts: list[AttemptOut]
    next_retry_at: datetime | None
    created_at: datetime
    completed_at: datetime | None


class RedeliverOut(BaseModel):
    event_id: str
    deliveries: list[str]
