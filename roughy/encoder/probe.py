"""Probe a media file with PyAV (the bundled ffmpeg has no ffprobe).

Reports what the rest of the service plans with: the *display* size (after rotation and
non-square pixels), the average frame rate, bitrates and whether the video is HDR. Anything that
cannot be opened or decoded (junk, empty, an MP4 cut before its `moov` atom) is `InvalidMedia`,
a permanent failure the caller should not retry.

Sources may be http(s) URLs (PyAV opens them like ffmpeg does, with range requests and the
same reconnect options as a render's inputs). A network failure there is `EncodeFailed`, worth
a retry, never `InvalidMedia`: a refused or dropped connection, an HTTP error, and also a
remote file that does not decode once, since a connection cut mid-read looks like truncated
data to the demuxer; only a second undecodable read of the URL is the media's fault.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

import av
import av.error
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.stream import Disposition
from av.video.frame import VideoFrame
from av.video.reformatter import ColorTrc
from av.video.stream import VideoStream

from roughy.core.models import AudioInfo, VideoInfo
from roughy.encoder.errors import EncodeFailed, InvalidMedia
from roughy.encoder.ffmpeg_args import RECONNECT_ARGS
from roughy.encoder.sources import SourceLimits, accepted, demuxer_of, open_options

log = logging.getLogger(__name__)

#: Transfer functions that mean HDR: PQ (HDR10, Dolby Vision base layers) and HLG.
HDR_TRANSFERS = frozenset({int(ColorTrc.SMPTE2084), int(ColorTrc.ARIB_STD_B67)})

#: Network reads (presigned URLs) must not hang a worker: seconds to open, then per read.
OPEN_TIMEOUT = 30.0
READ_TIMEOUT = 30.0


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    video: VideoInfo | None
    audio: AudioInfo | None
    format_name: str
    size_bytes: int | None

    @property
    def demuxer(self) -> str | None:
        """The demuxer every later open of this file forces (`sources.demuxer_of`)."""
        return demuxer_of(self.format_name)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


#: The reconnect options of a render's URL inputs, as the protocol options of `av.open`.
URL_OPTIONS = {key.lstrip("-"): value for key, value in zip(RECONNECT_ARGS[::2], RECONNECT_ARGS[1::2], strict=True)}


def probe(path_or_url: str, limits: SourceLimits = SourceLimits()) -> MediaInfo:  # noqa: B008 - frozen
    """Open `path_or_url` and describe its first real video stream and first audio stream;
    a source beyond `limits` is invalid_media (checked before its first frame is decoded)."""
    if _is_local(path_or_url):
        return _probe_once(path_or_url, limits)
    try:
        return _probe_once(path_or_url, limits)
    except OverLimit:
        raise
    except InvalidMedia as exc:
        # Maybe junk, maybe a connection that died mid-read: read it once more to tell.
        log.warning("%s; reading it again to rule out a network failure", exc.message)
        return _probe_once(path_or_url, limits)


class OverLimit(InvalidMedia):
    """Readable media, beyond what the service accepts (no second read can change that)."""


def _probe_once(path_or_url: str, limits: SourceLimits) -> MediaInfo:
    container = _open(path_or_url)
    try:
        return _describe(container, path_or_url, limits)
    except av.error.FFmpegError as exc:
        if _is_network_error(path_or_url, exc):
            raise EncodeFailed(f"cannot read {_name(path_or_url)}: {_reason(exc)}") from None
        raise InvalidMedia(f"cannot decode {_name(path_or_url)}: {_reason(exc)}") from None
    finally:
        container.close()


def _open(path_or_url: str) -> InputContainer:
    """Open for reading, turning PyAV's errors into the encoder's."""
    if _is_local(path_or_url) and not os.path.exists(path_or_url):
        # Not the media's fault: the caller passed a bad path (retrying may help once it exists).
        raise EncodeFailed(f"source not found: {path_or_url}")
    if _is_local(path_or_url) and os.path.getsize(path_or_url) == 0:
        raise InvalidMedia(f"{_name(path_or_url)} is empty")
    options = open_options(path_or_url) | ({} if _is_local(path_or_url) else URL_OPTIONS)
    try:
        container = av.open(path_or_url, mode="r", timeout=(OPEN_TIMEOUT, READ_TIMEOUT), container_options=options)
    except av.error.FFmpegError as exc:
        if _is_network_error(path_or_url, exc):
            raise EncodeFailed(f"cannot read {_name(path_or_url)}: {_reason(exc)}") from None
        raise InvalidMedia(f"{_name(path_or_url)} is not a readable media file: {_reason(exc)}") from None
    except UnicodeDecodeError as exc:
        raise InvalidMedia(f"{_name(path_or_url)} is not a readable media file: {exc.reason}") from None
    if not accepted(container.format.name):  # the whitelist already refuses them: say so plainly
        container.close()
        raise InvalidMedia(f"{_name(path_or_url)} is a {container.format.name} file, not a media container")
    return container


def _describe(container: InputContainer, path_or_url: str, limits: SourceLimits) -> MediaInfo:
    video_stream = _first_video(container)
    audio_stream = container.streams.audio[0] if container.streams.audio else None
    if video_stream is None and audio_stream is None:
        raise InvalidMedia(f"{_name(path_or_url)} has no audio or video stream")
    _check_limits(video_stream, audio_stream, limits)
    duration = _duration(container)
    if duration > limits.max_seconds:
        raise OverLimit(f"the source lasts {duration:.0f} s; at most {limits.max_seconds:g} s are accepted")
    audio = _audio_info(audio_stream, container) if audio_stream is not None else None
    video = None
    if video_stream is not None:
        audio_kbps = audio.bitrate_kbps if audio else None
        video = _video_info(container, video_stream, duration, audio_kbps)
    size = os.path.getsize(path_or_url) if _is_local(path_or_url) else _container_size(container)
    return MediaInfo(
        duration=duration,
        video=video,
        audio=audio,
        format_name=container.format.name,
        size_bytes=size,
    )


def _check_limits(video: VideoStream | None, audio: AudioStream | None, limits: SourceLimits) -> None:
    if video is not None:
        width, height = video.codec_context.width, video.codec_context.height
        if width * height > limits.max_pixels:
            raise OverLimit(
                f"the video is {width}x{height} ({width * height} pixels); "
                f"at most {limits.max_pixels} pixels a frame are accepted"
            )
    if audio is not None and audio.codec_context.channels > limits.max_channels:
        raise OverLimit(
            f"the audio has {audio.codec_context.channels} channels; at most {limits.max_channels} are accepted"
        )


def _first_video(container: InputContainer) -> VideoStream | None:
    """The first video stream that is real video, not cover art (an attached picture)."""
    for stream in container.streams.video:
        if not stream.disposition & Disposition.attached_pic:
            return stream
    return None


def _duration(container: InputContainer) -> float:
    """Container duration, else the longest stream's, else 0 (unknown)."""
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    longest = 0.0
    for stream in container.streams:
        if stream.duration is not None and stream.time_base is not None:
            longest = max(longest, float(stream.duration * stream.time_base))
    return longest


def _video_info(container: InputContainer, stream: VideoStream, duration: float, audio_kbps: int | None) -> VideoInfo:
    stored_w, stored_h = stream.codec_context.width, stream.codec_context.height
    if stored_w <= 0 or stored_h <= 0:
        raise InvalidMedia("the video stream has no frame size (undecodable)")
    frame = _first_frame(container, stream)
    rotation = normalise_rotation(frame.rotation)
    width, height = display_size(stored_w, stored_h, stream.sample_aspect_ratio, rotation)
    # The transfer is usually in the container; some files carry it only in the bitstream.
    transfers = {stream.codec_context.color_trc, frame.color_trc}
    sar = stream.sample_aspect_ratio
    return VideoInfo(
        width=width,
        height=height,
        fps=_fps(stream),
        codec=stream.codec_context.codec.canonical_name,
        bitrate_kbps=_video_kbps(container, stream, duration, audio_kbps),
        rotation=rotation,
        hdr=bool(transfers & HDR_TRANSFERS),
        demuxer=demuxer_of(container.format.name),
        pix_fmt=stream.codec_context.format.name if stream.codec_context.format else None,
        profile=stream.profile or None,
        square_pixels=sar is None or sar == 0 or sar == 1,
        constant_rate=_constant_rate(stream),
        interlaced=bool(frame.interlaced_frame),
    )


def display_size(width: int, height: int, sar: Fraction | None, rotation: int) -> tuple[int, int]:
    """Stored size -> display size: stretch the width by the sample aspect ratio, then rotate.

    A 720x576 stream with SAR 16:15 displays 768x576; a 1920x1080 stream rotated 90 degrees
    displays 1080x1920.
    """
    if sar is not None and sar > 0 and sar != 1:
        width = max(1, round(width * sar))
    if rotation in (90, 270):
        width, height = height, width
    return width, height


def _first_frame(container: InputContainer, stream: VideoStream) -> VideoFrame:
    """The first decoded frame: it carries the rotation (from the display matrix, which PyAV
    does not expose on the stream) and the colour transfer. A stream that yields no frame is
    undecodable."""
    for frame in container.decode(stream):
        return frame
    raise InvalidMedia("the video stream has no decodable frame")


def normalise_rotation(degrees: float) -> int:
    """Any angle -> the nearest of 0, 90, 180, 270, counter-clockwise as ffprobe prints it
    (PyAV reports -90 for 270 and -180 for 180)."""
    return (round(degrees / 90.0) * 90) % 360


def _fps(stream: VideoStream) -> float:
    """The average frame rate (what a VFR phone clip becomes as CFR), else the guessed one."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return round(float(rate), 3)
    return 0.0


def _constant_rate(stream: VideoStream) -> bool:
    """Whether the stream plays at one frame rate: its average rate is its base rate (the
    lowest rate that represents every timestamp exactly). A VFR phone clip's average is below
    its base rate; a CFR file's equals it. The check reads the headers only, no packets."""
    average, base = stream.average_rate, stream.base_rate
    if not average or not base or average <= 0 or base <= 0:
        return False
    return abs(float(average) - float(base)) <= 0.001 * float(base)


def _video_kbps(container: InputContainer, stream: VideoStream, duration: float, audio_kbps: int | None) -> int | None:
    """The stream's bitrate; else the container's overall rate minus the audio's (MKV and
    WebM do not store per-stream rates)."""
    if stream.bit_rate:
        return max(1, round(stream.bit_rate / 1000))
    total = _container_kbps(container, duration)
    if total is None:
        return None
    return max(1, total - (audio_kbps or 0))


def _audio_info(stream: AudioStream, container: InputContainer) -> AudioInfo:
    ctx = stream.codec_context
    kbps: int | None = round(ctx.bit_rate / 1000) if ctx.bit_rate else None
    if kbps is None and len(container.streams) == 1:
        kbps = _container_kbps(container, _duration(container))
    return AudioInfo(
        codec=ctx.codec.canonical_name,
        bitrate_kbps=kbps,
        sample_rate=ctx.sample_rate,
        channels=ctx.channels,
        demuxer=demuxer_of(container.format.name),
        profile=stream.profile or None,
    )


def _container_kbps(container: InputContainer, duration: float) -> int | None:
    if container.bit_rate:
        return max(1, round(container.bit_rate / 1000))
    size = _container_size(container)
    if size and duration > 0:
        return max(1, round(size * 8 / duration / 1000))
    return None


def _container_size(container: InputContainer) -> int | None:
    try:
        size = int(container.size)
    except (AttributeError, av.error.FFmpegError, OSError):
        return None
    return size if size > 0 else None


def _is_network_error(path_or_url: str, exc: av.error.FFmpegError) -> bool:
    """An HTTP error (PyAV's 4xx classes are not `HTTPError`s), or an I/O error (refused, reset,
    timed out...) reading a URL."""
    if isinstance(exc, av.error.HTTPError | av.error.HTTPClientError):
        return True
    return not _is_local(path_or_url) and isinstance(exc, OSError)


def _is_local(path_or_url: str) -> bool:
    return "://" not in path_or_url


def _name(path_or_url: str) -> str:
    """The file name alone: messages must not leak presigned query strings or local layout."""
    base = path_or_url.split("?", 1)[0].rstrip("/")
    return os.path.basename(base) or "the source"


def _reason(exc: av.error.FFmpegError) -> str:
    return str(exc.strerror or exc).strip()
