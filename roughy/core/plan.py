"""The encode plan: everything the encoder needs to know, and nothing about where files live.

A plan is computed once by `planning.plan_render` from the asset's probe and the output spec,
serialised to JSON for the encoder (a subprocess here, a Kubernetes Job there), and turned into
an ffmpeg argument list by `roughy.encoder.ffmpeg_args`. Sources are given to the encoder
separately, as paths or URLs, because they differ between runtimes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from roughy.core.models import Format, Segment


@dataclass(frozen=True)
class VideoPlan:
    width: int  # output display size: even, never above the source
    height: int
    fps: float  # constant output frame rate: the source's average, at most 60
    bitrate_kbps: int
    hdr: bool = False  # source is PQ/HLG: tone-map to SDR BT.709
    stream_copy: bool = False  # the source's stream already is this output: copy it (`core.passthrough`)
    # A cut of a source that is already this output: the encoder copies its video when every
    # kept segment starts and ends on a keyframe (it checks the file), and encodes it otherwise.
    cut_copy: bool = False


@dataclass(frozen=True)
class AudioPlan:
    bitrate_kbps: int
    channels: int  # 1 stays 1, everything else becomes 2
    sample_rate: int
    stream_copy: bool = False  # the source's stream already is this output: copy it (`core.passthrough`)


@dataclass(frozen=True)
class EncodePlan:
    format: Format
    duration: float  # expected output duration in seconds (progress, time limit)
    video: VideoPlan | None
    audio: AudioPlan | None
    segments: tuple[Segment, ...] | None = None  # None: the whole source
    # True when the video source has no usable audio and audio comes from a separate file
    # (a client audio part): the encoder then opens a second input for the audio.
    separate_audio: bool = False
    # The demuxer probing found for each source (`roughy.encoder.sources`): forced on every open,
    # so the encoder reads the file as what was probed. None: not known (guessed, still fenced).
    video_demuxer: str | None = None
    audio_demuxer: str | None = None  # of the audio source: the separate file, or an audio render's
    # A long whole-source render split on the output frame grid (`roughy.core.chunks`): each
    # chunk's video encoded apart, then joined with the audio encoded once. None: one encode.
    chunks: tuple[Segment, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["format"] = self.format.value
        if self.segments is not None:
            data["segments"] = [[s.start, s.end] for s in self.segments]
        if self.chunks is not None:
            data["chunks"] = [[s.start, s.end] for s in self.chunks]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EncodePlan:
        segments = data.get("segments")
        chunks = data.get("chunks")
        return cls(
            format=Format(data["format"]),
            duration=float(data["duration"]),
            video=VideoPlan(**data["video"]) if data.get("video") else None,
            audio=AudioPlan(**data["audio"]) if data.get("audio") else None,
            segments=tuple(Segment(float(a), float(b)) for a, b in segments) if segments else None,
            separate_audio=bool(data.get("separate_audio", False)),
            video_demuxer=data.get("video_demuxer"),
            audio_demuxer=data.get("audio_demuxer"),
            chunks=tuple(Segment(float(a), float(b)) for a, b in chunks) if chunks else None,
        )

    def time_limit(self, base: float = 120.0, per_second: float = 20.0) -> float:
        """Seconds an encode may take before it is killed: scaled to the output duration."""
        return base + per_second * self.duration


def max_output_bytes(plan: EncodePlan) -> int:
    """An upper bound of an output's size from its plan (what its upload is opened for): the
    bitrates over the duration, twice over (an average bitrate is a target, not a cap: x264's
    rate control allows peaks of 1.5x with a 2x buffer), plus a short output's whole buffer and
    room for the container."""
    kbps = (plan.video.bitrate_kbps if plan.video else 0) + (plan.audio.bitrate_kbps if plan.audio else 0)
    bytes_per_second = kbps * 1000 / 8
    return int(plan.duration * bytes_per_second * 2 + bytes_per_second * 4) + 2**20
