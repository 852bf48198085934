"""Output-spec rules (SPEC 5.1, 5.3): validation against the asset, tiers, ladders, Auto.

Every function here is pure: an asset's probe and a requested spec in, a decision out. The
format facts they apply (Auto table, ladders, sample rates) are in `roughy.core.formats`.

Auto is never above the source's bitrate (when known): it then takes the source's bitrate. An
explicit audio bitrate above the source's is lowered to it; an explicit video bitrate above the
source's is a 422 (SPEC 5.3).
"""

from __future__ import annotations

from dataclasses import replace

from roughy.core.chunks import Chunking, chunk_segments
from roughy.core.errors import ValidationFailed
from roughy.core.formats import auto_audio_kbps, auto_video_mbps, output_sample_rate
from roughy.core.models import (
    AssetKind,
    AudioInfo,
    OutputSpec,
    Resolution,
    Segment,
    VideoInfo,
)
from roughy.core.passthrough import audio_copy_refusals, video_copy_refusals
from roughy.core.plan import AudioPlan, EncodePlan, VideoPlan

MAX_FPS = 60.0


def even(value: float) -> int:
    """Round to the nearest even integer, at least 2."""
    return max(2, int(round(value / 2.0)) * 2)


def output_size(video: VideoInfo, resolution: Resolution | None) -> tuple[int, int]:
    """Display size of the output: the tier sets the shorter edge, the other follows in proportion.

    Never upscales: a tier above the source is refused earlier by `validate_output`; when the
    source's shorter edge is already at or below the tier it is kept (made even).
    """
    w, h = video.width, video.height
    short = min(w, h)
    if resolution is None or resolution.short_edge >= short:
        return max(2, w - w % 2), max(2, h - h % 2)  # made even by dropping a pixel: never upscales
    scale = resolution.short_edge / short
    if w <= h:
        return resolution.short_edge, even(h * scale)
    return even(w * scale), resolution.short_edge


def validate_output(
    spec: OutputSpec, kind: AssetKind, video: VideoInfo | None, audio: AudioInfo | None, *, probed: bool
) -> None:
    """The SPEC 5.3 checks that need the asset. `probed` says whether its values are known."""
    if spec.format.is_video:
        if kind is AssetKind.AUDIO:
            raise ValidationFailed("a video format needs a video asset", param="output.format")
    else:
        if spec.resolution is not None:
            raise ValidationFailed("resolution applies to video formats only", param="output.resolution")
        if spec.video_bitrate is not None:
            raise ValidationFailed("video_bitrate applies to video formats only", param="output.video_bitrate")
        if probed and audio is None:
            raise ValidationFailed("the source has no audio track", param="output.format")
    if not (probed and video and spec.format.is_video):
        return
    if spec.resolution is not None and spec.resolution.short_edge > min(video.width, video.height):
        raise ValidationFailed(
            f"{spec.resolution.value} is above the source's {min(video.width, video.height)}p; renders never upscale",
            param="output.resolution",
        )
    if (
        spec.video_bitrate is not None
        and video.bitrate_kbps is not None
        and spec.video_bitrate * 1000 > video.bitrate_kbps
    ):
        raise ValidationFailed(
            f"video_bitrate {spec.video_bitrate} Mbps is above the source's {video.bitrate_kbps} kbps",
            param="output.video_bitrate",
        )


def asked_video_kbps(spec: OutputSpec, short_edge: int) -> int:
    """The explicit video bitrate, else Auto for the output's size: before the source's rule."""
    return (spec.video_bitrate or auto_video_mbps(short_edge)) * 1000


def asked_audio_kbps(spec: OutputSpec, channels: int) -> int:
    """The explicit audio bitrate, else Auto for the output's channels."""
    return spec.audio_bitrate or auto_audio_kbps(channels)


def video_bitrate_kbps(spec: OutputSpec, video: VideoInfo, short_edge: int) -> int:
    asked = asked_video_kbps(spec, short_edge)
    if spec.video_bitrate is not None or not video.bitrate_kbps:
        return asked
    return min(asked, video.bitrate_kbps)


def audio_bitrate_kbps(spec: OutputSpec, audio: AudioInfo) -> int:
    wanted = asked_audio_kbps(spec, output_channels(audio.channels))
    if audio.bitrate_kbps:
        wanted = min(wanted, audio.bitrate_kbps)
    return max(8, wanted)  # 8 kbps: the floor below which the encoders refuse


def output_channels(channels: int) -> int:
    return 1 if channels == 1 else 2


def plan_render(
    spec: OutputSpec,
    *,
    duration: float,
    video: VideoInfo | None,
    audio: AudioInfo | None,
    segments: list[Segment] | None,
    separate_audio: bool = False,
    chunking: Chunking | None = None,
) -> EncodePlan:
    """The encode plan for a validated spec; `chunking`: when to split a long render."""
    out_duration = sum(s.duration for s in segments) if segments else duration
    video_plan = None
    if spec.format.is_video:
        if video is None:
            raise ValidationFailed("the asset has no video stream", param="output.format")
        width, height = output_size(video, spec.resolution)
        video_plan = VideoPlan(
            width=width,
            height=height,
            fps=round(min(video.fps or 30.0, MAX_FPS), 3),
            bitrate_kbps=video_bitrate_kbps(spec, video, min(width, height)),
            hdr=video.hdr,
        )
        cap = asked_video_kbps(spec, min(width, height))
        if not video_copy_refusals(video, video_plan, cap):  # a cut: copied where its keyframes allow
            video_plan = replace(video_plan, cut_copy=True) if segments else replace(video_plan, stream_copy=True)
    audio_plan = None
    if audio is not None:
        audio_plan = AudioPlan(
            bitrate_kbps=audio_bitrate_kbps(spec, audio),
            channels=output_channels(audio.channels),
            sample_rate=output_sample_rate(spec.format, audio.sample_rate),
        )
        cap = asked_audio_kbps(spec, audio_plan.channels)
        if not segments and not audio_copy_refusals(spec.format, audio, audio_plan, cap):
            audio_plan = replace(audio_plan, stream_copy=True)
    separate = separate_audio and video_plan is not None and audio_plan is not None
    audio_file = audio_plan is not None and (separate or video_plan is None)  # not read from the video's file
    return EncodePlan(
        format=spec.format,
        duration=round(out_duration, 6),
        video=video_plan,
        audio=audio_plan,
        segments=tuple(segments) if segments else None,
        separate_audio=separate,
        video_demuxer=video.demuxer if video_plan is not None and video is not None else None,
        audio_demuxer=audio.demuxer if audio_file and audio is not None else None,
        chunks=_chunks(video_plan, segments, out_duration, chunking),
    )


def _chunks(
    video: VideoPlan | None, segments: list[Segment] | None, duration: float, chunking: Chunking | None
) -> tuple[Segment, ...] | None:
    """Chunks for an encoded whole-source video (`roughy.core.chunks`); None otherwise."""
    if video is None or video.stream_copy or segments:
        return None
    return chunk_segments(duration, video.fps, chunking)
