"""Plan -> ffmpeg argument list. Pure: no I/O, no clock, unit-tested on its output.

Choices, and why (the numbers were measured on this class of machine, see DESIGN.md):

- H.264 with libx264 `veryfast`: about half the cost of `medium` for ~2 VMAF points at these
  bitrates. Rate control is average bitrate (`-b:v`) capped by a VBV (`-maxrate` 1.5x,
  `-bufsize` 2x) so the file size is predictable and peaks stay streamable.
- `yuv420p`, square pixels (`setsar=1` after scaling to the exact display size) and even
  dimensions: what plays everywhere. Rotation is applied by ffmpeg's default autorotate before
  our filters, and autorotate drops the display matrix, so the output carries no rotation flag.
- Constant frame rate with the `fps` filter (VFR phone clips): it drops or repeats frames on the
  source's timestamps, so audio stays in sync.
- HDR (PQ/HLG) is tone-mapped to SDR BT.709 with zscale (to linear light, scaled there) ->
  `tonemap=hable` -> zscale back to BT.709, and the output is tagged BT.709.
- Cuts: one `-ss START -t DURATION -i SRC` input per kept segment, joined by one `concat`
  filter, then one fps/scale/format chain and one encode. Input seeking only decodes from the
  keyframe before each segment; `trim` on one input decodes the whole source (~3x slower),
  `select` drifts audio, the concat demuxer picks wrong frames. Because audio and video of a
  segment come from the same input with the same `-ss/-t`, they are cut at the same instants.
  For video outputs the cut points are snapped to the output frame grid (cumulatively, so the
  total stays within half a frame of the plan): every segment is then a whole number of frames
  and its audio exactly as long, so nothing drifts across joins. Each audio segment gets a 5 ms
  fade in and out so the joins do not click.
- Memory: every `-i` keeps a demuxer and decoder open for the whole encode, about 22 MB per
  1080p input (x2 with separate audio). A cut list of N segments costs N inputs; callers with
  very long cut lists should batch (10-20 segments a process) and join the batches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from roughy.core.models import Format, Segment
from roughy.core.plan import AudioPlan, EncodePlan, VideoPlan

X264_PRESET = "veryfast"
MAXRATE_FACTOR = 1.5  # VBV peak over the average bitrate
BUFSIZE_FACTOR = 2.0  # VBV buffer, in seconds of average bitrate
CUT_GUARD = 0.0001  # seconds a cut stops before the next frame boundary
FADE_SECONDS = 0.005  # per-segment audio fade at cut joins: removes the click, inaudible
MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)

#: The muxer for each format: forced with `-f` since the output may be a temp name.
MUXERS: dict[Format, str] = {
    Format.MP4: "mp4",
    Format.MOV: "mov",
    Format.M4A: "ipod",
    Format.MP3: "mp3",
}

#: PQ/HLG BT.2020 -> SDR BT.709. Scaling happens in linear light (more correct, and the float
#: tone-mapping then runs at the output size rather than the source's 4k).
HDR_CHAIN = (
    "zscale=w={w}:h={h}:pin=bt2020:min=bt2020nc:t=linear:npl=100,"
    "format=gbrpf32le,"
    "zscale=p=bt709,"
    "tonemap=tonemap=hable:desat=0,"
    "zscale=t=bt709:m=bt709:r=tv"
)


class PlanError(ValueError):
    """The plan and the given sources do not fit together (a caller bug, not bad media)."""


def build_ffmpeg_args(
    plan: EncodePlan,
    *,
    video_src: str | None,
    audio_src: str | None,
    output: str,
    ffmpeg: str = "ffmpeg",
) -> list[str]:
    """The full ffmpeg argv that renders `plan` to `output`."""
    _check_sources(plan, video_src, audio_src)
    inputs, graph, maps = _inputs_and_graph(plan, video_src, audio_src)
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "warning", "-y"]
    argv += inputs
    if graph:
        argv += ["-filter_complex", ";".join(graph)]
    argv += maps
    if plan.video is not None:
        argv += video_codec_args(plan.video)
    if plan.audio is not None:
        argv += audio_codec_args(plan.format, plan.audio)
    else:
        argv += ["-an"]
    if not plan.format.is_video:
        argv += ["-vn"]
    argv += ["-sn", "-dn"]
    argv += container_args(plan.format)
    argv += ["-progress", "pipe:1", "-stats_period", "0.25", "-nostats", output]
    return argv


def _check_sources(plan: EncodePlan, video_src: str | None, audio_src: str | None) -> None:
    if plan.format.is_video:
        if plan.video is None:
            raise PlanError(f"a {plan.format.value} plan needs a video plan")
        if video_src is None:
            raise PlanError("a video format needs video_src")
        if plan.separate_audio and plan.audio is not None and audio_src is None:
            raise PlanError("separate_audio needs audio_src")
    else:
        if plan.audio is None:
            raise PlanError(f"a {plan.format.value} plan needs an audio plan")
        if audio_src is None:
            raise PlanError("an audio format needs audio_src")


def _inputs_and_graph(
    plan: EncodePlan, video_src: str | None, audio_src: str | None
) -> tuple[list[str], list[str], list[str]]:
    """The `-i` options, the filter graph chains and the `-map` options."""
    want_video = plan.format.is_video
    want_audio = plan.audio is not None
    separate = want_video and plan.separate_audio and want_audio
    video_in = video_src if want_video else None
    audio_in = audio_src if (separate or not want_video) else video_src
    if plan.segments:
        return _cut_graph(plan, video_in, audio_in, separate)
    return _whole_graph(plan, video_in, audio_in, separate)


def _whole_graph(
    plan: EncodePlan, video_in: str | None, audio_in: str | None, separate: bool
) -> tuple[list[str], list[str], list[str]]:
    inputs: list[str] = []
    graph: list[str] = []
    maps: list[str] = []
    if plan.video is not None and video_in is not None:
        inputs += ["-i", video_in]
        graph.append(f"[0:v:0]{video_filters(plan.video)}[vout]")
        maps += ["-map", "[vout]"]
        if plan.audio is not None:
            if separate and audio_in is not None:
                inputs += ["-i", audio_in]
                maps += ["-map", "1:a:0"]
            else:
                maps += ["-map", "0:a:0"]
    elif audio_in is not None:
        inputs += ["-i", audio_in]
        maps += ["-map", "0:a:0"]
    return inputs, graph, maps


def _cut_graph(
    plan: EncodePlan, video_in: str | None, audio_in: str | None, separate: bool
) -> tuple[list[str], list[str], list[str]]:
    """One input per segment (two with separate audio), one concat, one output chain."""
    assert plan.segments is not None
    has_video = plan.video is not None and video_in is not None
    has_audio = plan.audio is not None and audio_in is not None
    cuts = (
        snap_segments(plan.segments, plan.video.fps)
        if plan.video is not None and has_video
        else [(s.start, s.duration) for s in plan.segments]
    )
    inputs: list[str] = []
    graph: list[str] = []
    pads: list[str] = []
    index = 0
    for n, (start, duration) in enumerate(cuts):
        seek = ["-ss", _num(start), "-t", _num(duration)]
        if has_video:
            inputs += [*seek, "-i", str(video_in)]
            pads.append(f"[{index}:v:0]")
            video_index = index
            index += 1
        if has_audio:
            if has_video and not separate:
                audio_index = video_index
            else:
                inputs += [*seek, "-i", str(audio_in)]
                audio_index = index
                index += 1
            graph.append(f"[{audio_index}:a:0]{fade_filters(duration)}[a{n}]")
            pads.append(f"[a{n}]")
    v, a = int(has_video), int(has_audio)
    outs = ("[vcat]" if has_video else "") + ("[aout]" if has_audio else "")
    graph.append(f"{''.join(pads)}concat=n={len(cuts)}:v={v}:a={a}{outs}")
    maps: list[str] = []
    if has_video and plan.video is not None:
        graph.append(f"[vcat]{video_filters(plan.video)}[vout]")
        maps += ["-map", "[vout]"]
    if has_audio:
        maps += ["-map", "[aout]"]
    return inputs, graph, maps


def snap_segments(segments: Sequence[Segment], fps: float) -> list[tuple[float, float]]:
    """(start, duration) per segment on the output frame grid.

    Starts are rounded to the nearest frame; each duration is the difference of the rounded
    cumulative output lengths, so the total is within half a frame of the planned total and
    every segment is a whole number of frames (at least one). The start is floored to the
    microsecond (a frame exactly on it is kept) and the duration stops `CUT_GUARD` short of the
    next frame boundary (that frame is not kept), whatever the source's time base rounding.
    """
    frame = 1 / fps_fraction(fps)
    cuts: list[tuple[float, float]] = []
    planned = Fraction(0)
    emitted = 0
    for seg in segments:
        planned += Fraction(seg.duration)
        frames = max(1, _round_half_up(planned / frame) - emitted)
        emitted += frames
        start = math.floor(float(_round_half_up(Fraction(seg.start) / frame) * frame) * 1e6) / 1e6
        cuts.append((start, float(frames * frame) - CUT_GUARD))
    return cuts


def _round_half_up(value: Fraction) -> int:
    """Nearest integer, halves up: a cut at 2.9 s at 25 fps starts on the 2.92 s frame. The
    epsilon absorbs float noise (2.9 is 2.8999999999999999 in binary)."""
    return math.floor(value + Fraction(1, 2) + Fraction(1, 10**6))


def fade_filters(duration: float) -> str:
    """A 5 ms fade in and out: joins of two waveforms at arbitrary phase click without it."""
    fade = min(FADE_SECONDS, duration / 4)
    out_start = max(0.0, duration - fade)
    return f"afade=t=in:st=0:d={_num(fade)},afade=t=out:st={_num(out_start)}:d={_num(fade)}"


def video_filters(video: VideoPlan) -> str:
    """Constant frame rate, exact display size, square pixels, 8-bit 4:2:0 (tone-mapped if HDR)."""
    chain = [f"fps={fps_expr(video.fps)}"]
    if video.hdr:
        chain.append(HDR_CHAIN.format(w=video.width, h=video.height))
    else:
        chain.append(f"scale={video.width}:{video.height}:flags=bicubic")
    chain += ["setsar=1", "format=yuv420p"]
    return ",".join(chain)


def video_codec_args(video: VideoPlan) -> list[str]:
    rate = video.bitrate_kbps
    args = [
        "-c:v", "libx264",
        "-preset", X264_PRESET,
        "-pix_fmt", "yuv420p",
        "-b:v", f"{rate}k",
        "-maxrate", f"{round(rate * MAXRATE_FACTOR)}k",
        "-bufsize", f"{round(rate * BUFSIZE_FACTOR)}k",
    ]  # fmt: skip
    if video.hdr:
        args += ["-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709"]
        args += ["-color_range", "tv"]
    return args


def audio_codec_args(fmt: Format, audio: AudioPlan) -> list[str]:
    """AAC-LC (MP4/MOV/M4A) or MP3 at the plan's bitrate, channel count and sample rate."""
    rate = audio.sample_rate
    if fmt is Format.MP3:
        codec = ["-c:a", "libmp3lame"]
        rate = mp3_sample_rate(rate)
    else:
        codec = ["-c:a", "aac", "-profile:a", "aac_low"]
    return [*codec, "-b:a", f"{audio.bitrate_kbps}k", "-ac", str(audio.channels), "-ar", str(rate)]


def mp3_sample_rate(rate: int) -> int:
    """The nearest rate MP3 can carry (MPEG-1/2/2.5 rates), preferring the higher on ties."""
    return min(MP3_SAMPLE_RATES, key=lambda r: (abs(r - rate), -r))


def container_args(fmt: Format) -> list[str]:
    args = ["-f", MUXERS[fmt]]
    if fmt is not Format.MP3:
        args += ["-movflags", "+faststart"]  # index first: progressive download
    return args


def fps_fraction(fps: float) -> Fraction:
    """The plan's float rate as an exact rational: 29.97 is 30000/1001, not 2997/100."""
    if fps <= 0:
        raise PlanError(f"invalid frame rate {fps}")
    for base in (24, 30, 48, 60, 120):
        ntsc = Fraction(base * 1000, 1001)
        if abs(fps - float(ntsc)) < 0.005:
            return ntsc
    return Fraction(fps).limit_denominator(1001)


def fps_expr(fps: float) -> str:
    rate = fps_fraction(fps)
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"


def _num(value: float) -> str:
    """Seconds for the command line: microsecond precision, no exponent, no trailing zeros."""
    text = f"{max(0.0, value):.6f}".rstrip("0").rstrip(".")
    return text or "0"
