"""A video asset's poster frame: one JPEG, as the asset looks when played.

One ffmpeg run seeks into the source (input seeking: a range read of a presigned URL, not the
whole file), decodes one frame and writes it as a JPEG. ffmpeg applies the stream's rotation
itself (autorotate), and the scale sets the probed display size, so a phone clip stored 1920x1080
with a 90-degree rotation gives a portrait poster and anamorphic pixels come out square; an HDR
source is tone-mapped as a render would be. The time and the size are pure functions of what the
probe found (`poster_time`, `poster_size`), tested without ffmpeg.

The JPEG is written beside the target under a temporary name and moved into place once whole;
a target that is an http(s) URL (a presigned PUT: the Kubernetes runtime) is uploaded from a
scratch file. The caller decides what a failure means: for an asset it means no poster, never a
failed asset.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from roughy.core.models import VideoInfo
from roughy.encoder import runner
from roughy.encoder.errors import EncodeFailed, InvalidMedia
from roughy.encoder.ffmpeg_args import HDR_CHAIN, input_args
from roughy.encoder.sources import is_remote
from roughy.encoder.tools import ffmpeg_path
from roughy.encoder.upload import upload

#: The poster's longer edge at most (a list thumbnail, a player's poster; never upscaled).
MAX_EDGE = 640
#: ffmpeg's MJPEG quality scale, 2 (best) to 31: 3 is visually clean at a few tens of kB.
QUALITY = 3
#: Seconds one poster may take: a seek and one decoded frame, with room for a slow network.
TIME_LIMIT = 60.0
CONTENT_TYPE = "image/jpeg"
#: Decoder threads: one frame needs few, and each thread holds frames of its own (memory, in the
#: operator's process on Kubernetes, where the poster is made beside the probe).
DECODE_THREADS = 2


def poster_time(duration: float) -> float:
    """Where the poster is taken: 10 % into the video but not before 1 s (first frames are often
    black, a fade or a slate), and never past half of it (inside even a very short clip)."""
    if duration <= 0:
        return 0.0
    return round(min(max(1.0, 0.1 * duration), 0.5 * duration), 3)


def poster_size(width: int, height: int, max_edge: int = MAX_EDGE) -> tuple[int, int]:
    """The display size scaled so its longer edge is at most `max_edge`, aspect kept, even."""
    scale = min(1.0, max_edge / max(width, height, 1))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def build_poster_args(src: str, output: str, video: VideoInfo, at: float, *, demuxer: str | None = None) -> list[str]:
    """ffmpeg's argv for the frame at `at` seconds of `src` as a JPEG at `output`."""
    width, height = poster_size(video.width, video.height)
    if video.hdr:
        scale = HDR_CHAIN.format(w=width, h=height)
    else:
        scale = f"scale={width}:{height}:flags=bicubic"
    graph = f"{scale},setsar=1,scale=out_range=full,format=yuvj420p"
    return [
        ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-threads", str(DECODE_THREADS), "-ss", f"{at:g}", *input_args(src, demuxer),
        "-map", "0:v:0", "-an", "-sn", "-dn", "-frames:v", "1", "-vf", graph,
        "-c:v", "mjpeg", "-q:v", str(QUALITY), "-f", "image2", "-update", "1", output,
    ]  # fmt: skip


def make_poster(src: str, target: str, video: VideoInfo, duration: float, *, demuxer: str | None = None) -> int:
    """Write the poster of the video at `src` to `target` (a local path or a presigned PUT URL);
    its size in bytes. EncoderError when there is none to write."""
    if not is_remote(src) and not os.path.isfile(src):
        raise InvalidMedia("the source is neither a local file nor an http(s) URL")
    with tempfile.TemporaryDirectory(prefix="roughy-poster-") as scratch:
        local = Path(scratch) / "poster.jpg"
        _extract(src, local, video, duration, demuxer)
        size = local.stat().st_size
        if is_remote(target):
            upload(str(local), target, CONTENT_TYPE)
        else:
            _place(local, Path(target))
    return size


def _extract(src: str, output: Path, video: VideoInfo, duration: float, demuxer: str | None) -> None:
    """The frame at `poster_time`; the first frame when that seek finds none (a duration the
    container overstates)."""
    for at in dict.fromkeys((poster_time(duration), 0.0)):
        runner.run(build_poster_args(src, str(output), video, at, demuxer=demuxer), duration=0.0,
                   time_limit=TIME_LIMIT)  # fmt: skip
        if output.is_file() and output.stat().st_size > 0:
            return
    raise EncodeFailed("ffmpeg decoded no frame for the poster")


def _place(local: Path, target: Path) -> None:
    """Copy into a temp beside `target`, then rename: a reader sees no poster or a whole one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(local.read_bytes())
        os.replace(name, target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
