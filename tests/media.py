"""Small test media, generated on demand with ffmpeg's lavfi sources (no committed binaries).

Every helper writes to the given path and returns it as a `Path`. Defaults are tiny (320x240,
2 s) so a whole suite of media tests stays fast on two cores.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from roughy.encoder.tools import ffmpeg_path

AUDIO_RATE = 48000

#: Audio codec by container suffix (ffmpeg's own defaults differ between builds).
_AUDIO_CODECS = {
    ".mp4": ["-c:a", "aac"],
    ".mov": ["-c:a", "aac"],
    ".m4a": ["-c:a", "aac"],
    ".aac": ["-c:a", "aac"],
    ".mkv": ["-c:a", "aac"],
    ".mka": ["-c:a", "aac"],
    ".mp3": ["-c:a", "libmp3lame"],
    ".wav": ["-c:a", "pcm_s16le"],
    ".flac": ["-c:a", "flac"],
    ".ogg": ["-c:a", "libvorbis"],
    ".opus": ["-c:a", "libopus"],
    ".webm": ["-c:a", "libopus"],
}

#: Distinct tones per channel, so a downmix or a channel swap is measurable.
_TONES = (440, 660, 550, 60, 330, 770)
_LAYOUTS = {"mono": 1, "stereo": 2, "5.1": 6}


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly; raise with its stderr when it fails (test setup must not be silent)."""
    argv = [ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr}")


def tone_source(channels: int, duration: float, *, amplitude: float = 0.4) -> str:
    """An lavfi `aevalsrc` with one sine per channel (5.1 gets its standard layout)."""
    layout = {1: "mono", 2: "stereo", 6: "5.1"}.get(channels, f"{channels}c")
    exprs = "|".join(f"{amplitude}*sin({_TONES[i % len(_TONES)]}*2*PI*t)" for i in range(channels))
    return f"aevalsrc={exprs}:c={layout}:s={AUDIO_RATE}:d={duration}"


def make_video(
    path: str | os.PathLike[str],
    *,
    duration: float = 2.0,
    width: int = 320,
    height: int = 240,
    fps: float = 25,
    audio: str | None = "stereo",
    rotation: int = 0,
    sar: str | None = None,
    hdr: bool = False,
    vfr: bool = False,
    codec: str = "libx264",
    crf: int | None = None,
) -> Path:
    """A testsrc2 video (+ tones) in the container named by the suffix.

    rotation: a display-matrix rotation (degrees, counter-clockwise) added by a stream-copy
    remux with `-display_rotation`. sar: e.g. "4:3" for anamorphic pixels. hdr: 10-bit HEVC
    tagged BT.2020/PQ. vfr: frames dropped unevenly and timestamps kept (variable frame rate).
    """
    out = Path(path)
    target = out.with_name(f".unrotated-{out.name}") if rotation else out
    size = f"{width + width % 2}x{height + height % 2}"
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}:duration={duration}"]
    if audio is not None:
        args += ["-f", "lavfi", "-i", tone_source(_LAYOUTS[audio], duration)]
    args += ["-map", "0:v:0"] + (["-map", "1:a:0"] if audio is not None else [])
    args += _video_filter_args(width=width, height=height, sar=sar, hdr=hdr, vfr=vfr)
    args += _video_codec_args(codec, width, height, hdr) + (["-crf", str(crf)] if crf is not None else [])
    if audio is not None:
        args += _AUDIO_CODECS.get(out.suffix.lower(), ["-c:a", "aac"])
    args += [str(target)]
    ffmpeg(*args)
    if rotation:
        ffmpeg("-display_rotation", str(rotation), "-i", str(target), "-c", "copy", str(out))
        target.unlink()
    return out


def _video_filter_args(*, width: int, height: int, sar: str | None, hdr: bool, vfr: bool) -> list[str]:
    filters = []
    if width % 2 or height % 2:
        filters.append(f"scale={width}:{height},setsar=1")  # testsrc2 rounds odd sizes down
    if sar:
        filters.append(f"setsar={sar.replace(':', '/')}")
    if hdr:
        # Tag the frames: the encoder writes what the frames say, not the -color_* options.
        filters.append("setparams=color_primaries=bt2020:color_trc=smpte2084:colorspace=bt2020nc:range=tv")
    if vfr:
        # Keep the first second whole, then drop every third frame: timestamps keep their gaps.
        filters.append("select='lt(t\\,1)+mod(n\\,3)'")
    args = ["-vf", ",".join(filters)] if filters else []
    if vfr:
        args += ["-fps_mode", "vfr"]
    return args


def _video_codec_args(codec: str, width: int, height: int, hdr: bool) -> list[str]:
    if hdr:
        return [
            "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le",
            "-x265-params", "log-level=error",
            "-tag:v", "hvc1",
        ]  # fmt: skip
    args = ["-c:v", codec]
    if codec == "libx264":
        # 4:2:0 needs even sizes; odd test sources use 4:4:4 (still decodable everywhere we test).
        even = width % 2 == 0 and height % 2 == 0
        args += ["-preset", "ultrafast", "-pix_fmt", "yuv420p" if even else "yuv444p"]
    return args


def make_audio(path: str | os.PathLike[str], *, duration: float = 2.0, channels: int = 2) -> Path:
    """Tones, one per channel, in the format named by the suffix (mp3, m4a, wav, ...)."""
    out = Path(path)
    codec = _AUDIO_CODECS.get(out.suffix.lower(), [])
    ffmpeg("-f", "lavfi", "-i", tone_source(channels, duration), *codec, str(out))
    return out


def make_tones_with_silences(
    path: str | os.PathLike[str],
    pattern: list[tuple[str, float]],
    *,
    video: bool = False,
    channels: int = 1,
) -> Path:
    """Audio made of ("tone", seconds) and ("silence", seconds) parts in order, e.g.
    [("tone", 1.0), ("silence", 0.8), ("tone", 1.0)]; `video=True` adds a testsrc2 picture."""
    out = Path(path)
    parts: list[str] = []
    for i, (kind, seconds) in enumerate(pattern):
        if kind == "tone":
            src = f"sine=frequency=440:sample_rate={AUDIO_RATE}:duration={seconds}"
        elif kind == "silence":
            src = f"anullsrc=r={AUDIO_RATE}:cl=mono,atrim=duration={seconds}"
        else:
            raise ValueError(f"unknown part {kind!r}: use 'tone' or 'silence'")
        parts.append(f"{src},aformat=sample_fmts=fltp:channel_layouts=mono[p{i}]")
    joined = "".join(f"[p{i}]" for i in range(len(pattern)))
    layout = "mono" if channels == 1 else "stereo"
    graph = ";".join(parts) + f";{joined}concat=n={len(pattern)}:v=0:a=1,aformat=channel_layouts={layout}[a]"
    total = sum(seconds for _, seconds in pattern)
    args: list[str] = []
    if video:
        args += ["-f", "lavfi", "-i", f"testsrc2=size=160x120:rate=25:duration={total}"]
    args += ["-filter_complex", graph, "-map", "[a]"]
    if video:
        args += ["-map", "0:v:0", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    args += _AUDIO_CODECS.get(out.suffix.lower(), [])
    ffmpeg(*args, str(out))
    return out


def make_sync_markers(
    path: str | os.PathLike[str],
    *,
    duration: float = 6.0,
    markers: list[float] | None = None,
    fps: int = 25,
    size: str = "160x120",
) -> Path:
    """Black video with a one-frame white flash and a one-frame 1 kHz beep at each marker time
    (default: every second at k + 0.4; times are snapped to the frame grid): measures A/V sync
    after cuts."""
    out = Path(path)
    frame = 1.0 / fps
    wanted = markers if markers is not None else [k + 0.4 for k in range(int(duration))]
    times = [round(t / frame) * frame for t in wanted]
    on = "+".join(f"between(t\\,{t:.4f}\\,{t + frame - 1e-4:.4f})" for t in times) or "0"
    video = f"color=c=black:s={size}:r={fps}:d={duration},drawbox=c=white:t=fill:enable='{on}'"
    beep = "+".join(f"between(t,{t:.4f},{t + frame:.4f})" for t in times) or "0"
    audio = f"aevalsrc='0.8*sin(1000*2*PI*t)*({beep})':c=mono:s={AUDIO_RATE}:d={duration}"
    ffmpeg(
        "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio,
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "12",
        *_AUDIO_CODECS.get(out.suffix.lower(), ["-c:a", "aac"]), str(out),
    )  # fmt: skip
    return out


def truncate_file(src: str | os.PathLike[str], dst: str | os.PathLike[str], fraction: float) -> Path:
    """Copy the first `fraction` of `src`'s bytes to `dst` (an upload cut short)."""
    data = Path(src).read_bytes()
    out = Path(dst)
    out.write_bytes(data[: int(len(data) * fraction)])
    return out
