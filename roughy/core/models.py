"""The domain's nouns: states as enums, resources as plain dataclasses.

Nothing here knows about HTTP, SQL or ffmpeg. The store maps these to rows, the API maps them
to JSON, the runtime moves them between states with the rules in `states.py`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from roughy.core.formats import Format as Format  # re-exported: the domain's nouns are read from here


class AssetKind(enum.StrEnum):
    VIDEO = "video"
    AUDIO = "audio"


class AssetState(enum.StrEnum):
    UPLOADING = "uploading"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"
    PAYMENT_REQUIRED = "payment_required"


class PartState(enum.StrEnum):
    """One uploaded part (the video file, or the audio file) of an asset."""

    AWAITING_UPLOAD = "awaiting_upload"
    UPLOADED = "uploaded"  # the client called .../complete; processing has not finished
    PROCESSED = "processed"
    FAILED = "failed"


class PartName(enum.StrEnum):
    VIDEO = "video"
    AUDIO = "audio"


class CutState(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class CutMethod(enum.StrEnum):
    SEGMENTS = "segments"
    SILENCE = "silence"


class RenderState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class Resolution(enum.StrEnum):
    P720 = "720p"
    P1080 = "1080p"
    UHD4K = "4k"

    @property
    def short_edge(self) -> int:
        return {Resolution.P720: 720, Resolution.P1080: 1080, Resolution.UHD4K: 2160}[self]


class LedgerType(enum.StrEnum):
    GRANT = "grant"
    CHARGE = "charge"


@dataclass(frozen=True)
class VideoInfo:
    """What probing found of a video stream. `width`/`height` are the display size.

    The fields after `hdr` were added later: an asset probed before has None there, which reads
    as "not known" (such a source is never stream-copied, and its opens are not forced).
    """

    width: int
    height: int
    fps: float
    codec: str
    bitrate_kbps: int | None
    rotation: int = 0
    hdr: bool = False  # PQ or HLG transfer: tone-map to SDR BT.709
    demuxer: str | None = None  # the container's demuxer (ffmpeg's short name), forced on every open
    pix_fmt: str | None = None  # e.g. yuv420p
    profile: str | None = None  # the codec's profile, e.g. High
    square_pixels: bool | None = None  # sample aspect ratio 1:1 (or unset)
    constant_rate: bool | None = None  # the average frame rate is the stream's base rate
    interlaced: bool | None = None  # the first frame is interlaced
    #: A poster frame (a JPEG at `keys.poster_key`) was stored when the video was processed.
    #: Not a probe fact: recorded here (the asset's `video` JSON) so that no migration is needed.
    poster: bool = False


@dataclass(frozen=True)
class AudioInfo:
    codec: str
    bitrate_kbps: int | None
    sample_rate: int
    channels: int
    demuxer: str | None = None  # of the file this audio is read from (see VideoInfo)
    profile: str | None = None  # e.g. LC for AAC


@dataclass(frozen=True)
class Segment:
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class ErrorInfo:
    code: str
    message: str


@dataclass
class Account:
    id: str
    name: str
    created_at: datetime


@dataclass
class Asset:
    id: str
    account_id: str
    kind: AssetKind
    filename: str
    client_audio: bool
    state: AssetState
    video_part: PartState | None
    audio_part: PartState | None
    created_at: datetime
    duration: float | None = None
    video: VideoInfo | None = None
    audio: AudioInfo | None = None
    error: ErrorInfo | None = None
    charged: bool = False

    @property
    def parts(self) -> list[PartName]:
        names = []
        if self.video_part is not None:
            names.append(PartName.VIDEO)
        if self.audio_part is not None:
            names.append(PartName.AUDIO)
        return names

    def part_state(self, part: PartName) -> PartState | None:
        return self.video_part if part is PartName.VIDEO else self.audio_part

    @property
    def cuttable(self) -> bool:
        """The asset's audio is processed and paid for (SPEC 3)."""
        if not self.charged or self.state in (AssetState.FAILED, AssetState.PAYMENT_REQUIRED):
            return False
        if self.kind is AssetKind.AUDIO or self.client_audio:
            return self.audio_part is PartState.PROCESSED
        return self.state is AssetState.READY


@dataclass
class Cut:
    id: str
    account_id: str
    asset_id: str
    state: CutState
    method: CutMethod
    created_at: datetime
    segments: list[Segment] = field(default_factory=list)
    silence: dict[str, float] | None = None  # min_silence, threshold_db, padding
    error: ErrorInfo | None = None


@dataclass(frozen=True)
class OutputSpec:
    """A normalised output request: None means Auto (or the source's size)."""

    format: Format
    resolution: Resolution | None = None
    video_bitrate: int | None = None  # Mbps, one of formats.VIDEO_BITRATES_MBPS
    audio_bitrate: int | None = None  # kbps, one of formats.AUDIO_BITRATES_KBPS

    def as_dict(self) -> dict[str, str | int | None]:
        return {
            "format": self.format.value,
            "resolution": self.resolution.value if self.resolution else None,
            "video_bitrate": self.video_bitrate,
            "audio_bitrate": self.audio_bitrate,
        }


@dataclass(frozen=True)
class RenderResult:
    """What a render produced (SPEC 5.6 `result`; width/height None for audio).

    `to_json` is the one wire shape: what the encoder emits, the store keeps, the API shows
    and the Render resource carries (camelCased there), so every reader goes through
    `from_json` and a new field is added here once.
    """

    format: Format
    width: int | None
    height: int | None
    duration: float
    size_bytes: int
    video_bitrate_kbps: int | None
    audio_bitrate_kbps: int | None
    copied: list[str] = field(default_factory=list)  # streams copied from the source: "video", "audio"
    # The video encode that ran: "libx264", "h264_nvenc", or "h264_nvenc+cuda" (decoded and
    # scaled on the GPU too). None when no video was encoded here: an audio render, a copied
    # video, a chunked render joined on Kubernetes (its chunks ran in other pods).
    encoder: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["format"] = self.format.value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RenderResult:
        """Raises KeyError, TypeError or ValueError on a malformed result."""
        return cls(
            format=Format(data["format"]),
            width=_optional_int(data.get("width")),
            height=_optional_int(data.get("height")),
            duration=float(data["duration"]),
            size_bytes=int(data["size_bytes"]),
            video_bitrate_kbps=_optional_int(data.get("video_bitrate_kbps")),
            audio_bitrate_kbps=_optional_int(data.get("audio_bitrate_kbps")),
            copied=[str(stream) for stream in data.get("copied") or ()],
            encoder=str(data["encoder"]) if data.get("encoder") else None,
        )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass
class Render:
    id: str
    account_id: str
    asset_id: str
    cut_id: str | None
    output: OutputSpec
    signature: str
    state: RenderState
    created_at: datetime
    progress: float = 0.0
    error: ErrorInfo | None = None
    result: RenderResult | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    attempts: int = 0


@dataclass(frozen=True)
class LedgerEntry:
    id: str
    account_id: str
    type: LedgerType
    amount: int
    asset_id: str | None
    reason: str
    created_at: datetime
