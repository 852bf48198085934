"""What a source may be, and how every open of one is fenced in (probe and encode alike).

A source is one media file in a container this service accepts. ffmpeg and PyAV otherwise
follow whatever the bytes say: an HLS playlist or a DASH manifest names more URLs to open
(`file:///...` on the API's machine, or any http URL from an encoder pod: server-side request
forgery), a concat list names files, an image sequence a pattern. So every open passes

- `format_whitelist`: the demuxers of the media containers below, none of which opens another
  resource (no hls, dash, concat, image2, sdp, rtsp, ...): anything else is `invalid_media`;
- `protocol_whitelist`: only the protocol the service itself gave the source by: `file` for a
  local path, `https,tls,tcp` for a presigned https URL, `http,tcp` only where the object store
  is configured on plain http;
- and, once a source has been probed, `-f <demuxer>`: every later open (render, audio
  extraction, silence detection) uses the demuxer probing found, instead of guessing again.
  Guessing is not stable across builds: the probe runs in PyAV's libavformat, the encode in the
  ffmpeg binary (another build, another version on the encoder image), and a polyglot file can
  be an MP4 to one and an MPEG-TS to the other.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Demuxers of the media containers accepted as sources (ffmpeg's short names).
SOURCE_DEMUXERS: tuple[str, ...] = (
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2",  # ISO media: MP4, MOV, M4A
    "matroska", "webm",
    "avi", "flv", "asf", "mpegts", "mpeg", "mxf", "dv",
    "mp3", "aac", "ac3", "eac3", "flac", "ogg", "wav", "w64", "aiff", "caf", "amr",
)  # fmt: skip
FORMAT_WHITELIST = ",".join(SOURCE_DEMUXERS)


def is_remote(src: str) -> bool:
    """An http(s) URL (read over the network), as opposed to a local path."""
    return src.lower().startswith(("http://", "https://"))


def protocol_whitelist(src: str) -> str:
    """The protocols an open of `src` may use: the one it is given by, and what that one needs."""
    lowered = src.lower()
    if lowered.startswith("https://"):
        return "https,tls,tcp"
    if lowered.startswith("http://"):
        return "http,tcp"
    return "file"


def open_options(src: str) -> dict[str, str]:
    """The fences of an open, as avformat options (PyAV's `container_options`)."""
    return {"format_whitelist": FORMAT_WHITELIST, "protocol_whitelist": protocol_whitelist(src)}


def fence_args(src: str, demuxer: str | None = None) -> list[str]:
    """The same fences as ffmpeg input options (before `-i src`), with the demuxer forced when
    probing has named it. Raises ValueError for a demuxer that is not an accepted one."""
    forced = ["-f", check_demuxer(demuxer)] if demuxer else []
    return [*forced, "-format_whitelist", FORMAT_WHITELIST, "-protocol_whitelist", protocol_whitelist(src)]


def demuxer_of(format_name: str) -> str | None:
    """The demuxer to force for a probed container (PyAV's `format.name`, which lists a
    demuxer's aliases: "mov,mp4,m4a,3gp,3g2,mj2" -> "mov"); None when it is not accepted."""
    return next((name for name in format_name.split(",") if name in SOURCE_DEMUXERS), None)


def check_demuxer(demuxer: str) -> str:
    """`demuxer` when it is one of `SOURCE_DEMUXERS`; ValueError otherwise (a plan or a Render
    resource naming `hls` or `concat` is refused before anything is opened)."""
    if demuxer not in SOURCE_DEMUXERS:
        raise ValueError(f"{demuxer!r} is not an accepted source demuxer")
    return demuxer


@dataclass(frozen=True)
class SourceLimits:
    """What one source may be, checked by the probe before anything costly is decoded: a
    13 KB 8192x8192 file took 7 s and 270 MB to probe. Beyond a limit the part is
    `invalid_media`, and the message names the limit."""

    max_pixels: int = 8192 * 4320  # 8K DCI
    max_seconds: float = 6 * 3600.0
    max_channels: int = 16


def accepted(format_name: str) -> bool:
    """Whether a probed container (PyAV's `format.name`, e.g. "mov,mp4,m4a,3gp,3g2,mj2") is one
    of the accepted demuxers."""
    return demuxer_of(format_name) is not None
