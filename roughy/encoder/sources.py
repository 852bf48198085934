"""What a source may be, and how every open of one is fenced in (probe and encode alike).

A source is one media file in a container this service accepts. ffmpeg and PyAV otherwise
follow whatever the bytes say: an HLS playlist or a DASH manifest names more URLs to open
(`file:///...` on the API's machine, or any http URL from an encoder pod: server-side request
forgery), a concat list names files, an image sequence a pattern. So every open passes

- `format_whitelist`: the demuxers of the media containers below, none of which opens another
  resource (no hls, dash, concat, image2, sdp, rtsp, ...): anything else is `invalid_media`;
- `protocol_whitelist`: only the protocol the service itself gave the source by: `file` for a
  local path, `https,tls,tcp` for a presigned https URL, `http,tcp` only where the object store
  is configured on plain http.
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


def fence_args(src: str) -> list[str]:
    """The same fences as ffmpeg input options (before `-i src`)."""
    return ["-format_whitelist", FORMAT_WHITELIST, "-protocol_whitelist", protocol_whitelist(src)]


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
    return any(name in SOURCE_DEMUXERS for name in format_name.split(","))
