"""Plan -> ffmpeg argument list. Pure: no I/O, no clock, unit-tested on its output.

Choices, and why (the numbers were measured on this class of machine, see DESIGN.md):

- H.264 with libx264 `veryfast`: about half the cost of `medium` for ~2 VMAF points at these
  bitrates. Rate control is capped CRF: `-crf 20` under a VBV whose `-maxrate` is the plan's
  bitrate (the ladder step, Auto, or the source's when lower) and whose `-bufsize` is two
  seconds of it. Easy content takes the bytes it needs and no more; hard content never goes
  past the step. The cap has a floor, `max(100, 250 x output megapixels)` kb/s: a near-static
  source's own rate (10-20 kb/s) gave a VBV too small for one I-frame, x264 sat at QP 51 and
  the picture came out grey. Measured on Big Buck Bunny 720p (VMAF against the source): CRF
  20 scores 93.7 at 1.8 Mb/s where the former ABR at the source's 1.2 Mb/s scored 87.1; at
  equal size CRF beats ABR by 0.3-1.1 on the mean and 5-10 on the worst frame. CRF 18 costs
  33% more bytes for 1.7 points, CRF 23 drops to 90.3. The README has the table.
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
- Sources may be http(s) URLs (presigned object-store GETs): ffmpeg reads them with range
  requests, so a cut seeks instead of downloading the whole file, and each URL input gets
  `-reconnect 1 -reconnect_on_network_error 1 -reconnect_delay_max 10` (a dropped connection
  resumes at the same offset; local paths get no options).
- Encoders: libx264 (above) or NVENC (`h264_nvenc`, `-preset p4 -tune hq -rc vbr -cq 23
  -b:v 0` under the same VBV, with the same colour tags, High profile): the CLI probes NVENC and
  falls back to libx264. NVENC's constant-quality scale is not x264's; CQ 23 is the usual
  equivalent of CRF 20 and is not measured here (no GPU on these machines).
- GPU decoding and scaling (`hwaccel="cuda"`, with NVENC only): the video input is decoded by
  NVDEC into GPU memory (`-hwaccel cuda -hwaccel_output_format cuda`) and resized there
  (`scale_cuda`), so 4k frames never cross to the CPU and back. One named CUDA device serves the
  decoder and the filters. The chain starts with `hwupload`, which passes GPU frames through and
  uploads CPU ones: a source whose decoder offers NVDEC no format for (another codec, 4:2:2,
  10-bit H.264) is decoded on the CPU by ffmpeg itself and still scaled and encoded on the GPU.
  Only where the graph allows it: a whole-source encode or a chunk (one input, no cut list: the
  cut graph's `concat` and audio fades want CPU frames) of SDR video (HDR tone mapping is
  zscale, CPU only). The CLI checks the whole chain before using it
  (`tools.choose_video_pipeline`), and `tasks` encodes again with CPU decoding when it fails on
  a source anyway (a profile NVDEC refuses at initialisation; a rotated phone clip, whose
  autorotate transpose is a CPU filter).
- Memory: every `-i` keeps a demuxer and decoder open for the whole encode, about 22 MB per
  1080p input, so a cut list of N segments in one process costs N inputs (a 500-segment cut
  would need ~11 GB). Cut lists longer than `BATCH_SEGMENTS` (16) are rendered in batches by
  `tasks.render`: each batch is one process of at most 16 segments that encodes the video with
  the final settings into an intermediate MOV (audio kept as PCM), and one last process joins
  the batches with the concat demuxer, copying the video and encoding the audio once (AAC
  per batch would add priming delay at every batch join).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

from roughy.core.formats import AAC, H264, MP3, AudioCodec, Format, output_sample_rate
from roughy.core.models import Segment
from roughy.core.plan import AudioPlan, EncodePlan, VideoPlan
from roughy.encoder.sources import fence_args, is_remote

X264_PRESET = "veryfast"
NVENC_PRESET = "p4"  # NVENC's middle preset: the speed/quality balance of x264's veryfast
LIBX264 = "libx264"
H264_NVENC = "h264_nvenc"
ENCODERS = (LIBX264, H264_NVENC)
CUDA = "cuda"  # the one hwaccel: NVDEC decoding and CUDA scaling, for NVENC encodes
HWACCELS = (CUDA,)
#: One CUDA device, named, for the decoder and the filters (frames stay in its memory).
CUDA_DEVICE_ARGS = ("-init_hw_device", "cuda=gpu", "-filter_hw_device", "gpu")
#: Before the video input: decode on NVDEC into GPU memory.
CUDA_DECODE_ARGS = ("-hwaccel", "cuda", "-hwaccel_device", "gpu", "-hwaccel_output_format", "cuda")
#: Before each http(s) input: resume a dropped connection at its offset, also on TCP/TLS errors
#: while connecting, backing off at most 10 s between attempts.
RECONNECT_ARGS = ("-reconnect", "1", "-reconnect_on_network_error", "1", "-reconnect_delay_max", "10")
#: A stream that already is the output's (`roughy.core.passthrough`) is copied, bit for bit.
COPY_VIDEO = ("-c:v", "copy")
COPY_AUDIO = ("-c:a", "copy")
X264_CRF = 20  # the constant-quality target under the cap (see the module docstring)
NVENC_CQ = 23
BUFSIZE_SECONDS = 2.0  # VBV buffer, in seconds of the cap
FLOOR_KBPS = 100  # the cap's floor: room for an I-frame, whatever the source's own rate
FLOOR_KBPS_PER_MEGAPIXEL = 250
BATCH_SEGMENTS = 16  # segments (open inputs) per ffmpeg process for long cut lists
CUT_GUARD = 0.0001  # seconds a cut stops before the next frame boundary
FADE_SECONDS = 0.005  # per-segment audio fade at cut joins: removes the click, inaudible

#: How each audio codec of `roughy.core.formats` is encoded (its bitrate, channels and rate are
#: added per plan).
AUDIO_ENCODER_ARGS: dict[AudioCodec, tuple[str, ...]] = {
    AAC: ("-c:a", "aac", "-profile:a", "aac_low"),
    MP3: ("-c:a", "libmp3lame"),
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


class Cut(NamedTuple):
    """One kept segment as ffmpeg reads it: `-ss start -t duration`; `length` is what it adds
    to the output (whole frames for video; `duration` plus the guard)."""

    start: float
    duration: float
    length: float


def build_ffmpeg_args(
    plan: EncodePlan,
    *,
    video_src: str | None,
    audio_src: str | None,
    output: str,
    ffmpeg: str = "ffmpeg",
    encoder: str = LIBX264,
    hwaccel: str | None = None,
) -> list[str]:
    """The full ffmpeg argv that renders `plan` to `output` in one process.

    For a cut list longer than `BATCH_SEGMENTS` prefer `build_batch_args` + `build_join_args`
    (what `tasks.render` does): this function still works, with one open input per segment.
    `encoder`: one of `ENCODERS`, for the video stream. `hwaccel` (`CUDA`): decode and scale on
    the GPU where `gpu_hwaccel` allows it, else it is ignored.
    """
    _check_encoder(encoder)
    _check_sources(plan, video_src, audio_src)
    gpu = gpu_hwaccel(plan, encoder, hwaccel)
    video_in, audio_in, separate = _sources(plan, video_src, audio_src)
    cuts = plan_cuts(plan)
    if cuts is None:
        inputs, graph, maps = _whole_graph(plan, video_in, audio_in, separate, gpu)
    else:
        inputs, graph, maps = _cut_graph(plan, cuts, video_in, audio_in, separate)
    argv = [*_head(ffmpeg), *_device_args(gpu), *inputs, *_graph_args(graph), *maps]
    if plan.video is not None:
        argv += COPY_VIDEO if plan.video.stream_copy else video_codec_args(plan.video, encoder, gpu)
    if plan.audio is not None:
        argv += COPY_AUDIO if plan.audio.stream_copy else audio_codec_args(plan.format, plan.audio)
    else:
        argv += ["-an"]
    return argv + _tail(plan.format, container_args(plan.format), output)


def build_batch_args(
    plan: EncodePlan,
    cuts: Sequence[Cut],
    *,
    video_src: str | None,
    audio_src: str | None,
    output: str,
    ffmpeg: str = "ffmpeg",
    encoder: str = LIBX264,
) -> list[str]:
    """One batch of a long cut list -> an intermediate MOV for `build_join_args`.

    Video is encoded once, here, with the final settings (the join only copies it); audio is
    kept as PCM so that it is encoded once over the whole output at the join (per-batch AAC
    would add priming delay at every batch boundary). The batch's audio is padded/trimmed to
    exactly the batch's video length, so batches line up end to end.
    """
    _check_encoder(encoder)
    _check_sources(plan, video_src, audio_src)
    video_in, audio_in, separate = _sources(plan, video_src, audio_src)
    length = sum(cut.length for cut in cuts)
    inputs, graph, maps = _cut_graph(plan, cuts, video_in, audio_in, separate, audio_length=length)
    argv = [*_head(ffmpeg), *inputs, *_graph_args(graph), *maps]
    if plan.video is not None:
        argv += video_codec_args(plan.video, encoder)
    if plan.audio is not None:
        rate = output_sample_rate(plan.format, plan.audio.sample_rate)
        argv += ["-c:a", "pcm_s24le", "-ac", str(plan.audio.channels), "-ar", str(rate)]
    else:
        argv += ["-an"]
    return argv + _tail(plan.format, ["-f", "mov"], output)


def build_join_args(plan: EncodePlan, *, concat_list: str, output: str, ffmpeg: str = "ffmpeg") -> list[str]:
    """Join batch files (an ffconcat list, see `ffconcat_text`): copy the video, encode the
    audio once, write the final container."""
    argv = [*_head(ffmpeg), "-f", "concat", "-safe", "0", "-i", concat_list]
    if plan.format.is_video:
        argv += ["-map", "0:v:0", "-c:v", "copy"]
    if plan.audio is not None:
        argv += ["-map", "0:a:0", *audio_codec_args(plan.format, plan.audio)]
    else:
        argv += ["-an"]
    return argv + _tail(plan.format, container_args(plan.format), output)


def build_chunk_args(
    plan: EncodePlan,
    chunk: Cut,
    *,
    video_src: str | None,
    output: str,
    ffmpeg: str = "ffmpeg",
    encoder: str = LIBX264,
    hwaccel: str | None = None,
) -> list[str]:
    """One chunk of a chunked render (`roughy.core.chunks`) -> an intermediate MOV: the video
    alone, read with input seeking and encoded with the final settings (the join copies it).
    `hwaccel` as for `build_ffmpeg_args`: a chunk is one input, so on the GPU it needs no concat."""
    _check_encoder(encoder)
    if plan.video is None or plan.video.stream_copy or not plan.format.is_video:
        raise PlanError("only an encoded video is chunked")
    if video_src is None:
        raise PlanError("a video format needs video_src")
    gpu = gpu_hwaccel(plan, encoder, hwaccel)
    video_only = EncodePlan(plan.format, chunk.length, plan.video, None, video_demuxer=plan.video_demuxer)
    video_in, _, _ = _sources(video_only, video_src, None)
    if gpu is not None and video_in is not None:
        inputs = [*_seek_args(chunk), *_decode_args(gpu), *input_args(*video_in)]
        graph, maps = [f"[0:v:0]{video_filters(plan.video, gpu)}[vout]"], ["-map", "[vout]"]
    else:
        inputs, graph, maps = _cut_graph(video_only, [chunk], video_in, None, False)
    codec = video_codec_args(plan.video, encoder, gpu)
    argv = [*_head(ffmpeg), *_device_args(gpu), *inputs, *_graph_args(graph), *maps, *codec, "-an"]
    return argv + _tail(plan.format, ["-f", "mov"], output)


def build_chunk_join_args(
    plan: EncodePlan,
    *,
    concat_list: str,
    video_src: str | None,
    audio_src: str | None,
    output: str,
    ffmpeg: str = "ffmpeg",
) -> list[str]:
    """Join a chunked render: the chunks' video copied end to end (an ffconcat list, see
    `ffconcat_text`), the audio read from its source over the whole timeline and encoded once
    (or copied), into the final container."""
    argv = [*_head(ffmpeg), "-f", "concat", "-safe", "0", "-i", concat_list]
    maps = ["-map", "0:v:0", "-c:v", "copy"]
    if plan.audio is not None:
        _, audio_in, _ = _sources(plan, video_src, audio_src)
        if audio_in is None:
            raise PlanError("the plan has audio but no audio source")
        argv += input_args(*audio_in)
        codec = COPY_AUDIO if plan.audio.stream_copy else audio_codec_args(plan.format, plan.audio)
        maps += ["-map", "1:a:0", *codec]
    else:
        maps += ["-an"]
    return [*argv, *maps, *_tail(plan.format, container_args(plan.format), output)]


def cut_audio_plan(plan: EncodePlan, cuts: Sequence[Cut]) -> EncodePlan:
    """The audio of a cut whose video is copied (`roughy.encoder.cutcopy`), as an M4A: the same
    cuts as the video's (on its frame grid, so the two stay in sync), the same audio settings
    and edge fades as an encode of the whole cut."""
    if plan.audio is None:
        raise PlanError("the plan has no audio")
    segments = tuple(Segment(c.start, round(c.start + c.length, 6)) for c in cuts)
    demuxer = plan.audio_demuxer if plan.separate_audio else plan.video_demuxer
    return EncodePlan(Format.M4A, plan.duration, None, plan.audio, segments, audio_demuxer=demuxer)


def build_cut_mux_args(
    plan: EncodePlan, *, video: str, audio: str | None, output: str, ffmpeg: str = "ffmpeg"
) -> list[str]:
    """A copied cut into the plan's container: its video (a MOV of the kept packets) and its
    audio (the M4A of `cut_audio_plan`), both copied."""
    argv = [*_head(ffmpeg), *input_args(video, "mov")]
    maps = ["-map", "0:v:0"]
    if audio is not None:
        argv += input_args(audio, "mov")
        maps += ["-map", "1:a:0"]
    return [*argv, *maps, "-c", "copy", *_tail(plan.format, container_args(plan.format), output)]


def plan_chunks(plan: EncodePlan) -> list[Cut] | None:
    """The plan's chunks on the output frame grid (whole frames each, none lost or repeated)."""
    if not plan.chunks or plan.video is None:
        return None
    return snap_segments(plan.chunks, plan.video.fps)


def ffconcat_text(parts: Sequence[tuple[str, float]]) -> str:
    """An ffconcat list of (path, exact length) pairs. The `duration` lines make the demuxer
    place each file exactly where the previous one ends, whatever the files' own rounding."""
    lines = ["ffconcat version 1.0"]
    for path, length in parts:
        quoted = path.replace("'", "'\\''")
        lines += [f"file '{quoted}'", f"duration {_num(length)}"]
    return "\n".join(lines) + "\n"


def plan_cuts(plan: EncodePlan) -> list[Cut] | None:
    """The plan's segments as cuts: on the output frame grid for video, exact for audio."""
    if not plan.segments:
        return None
    if plan.format.is_video and plan.video is not None:
        return snap_segments(plan.segments, plan.video.fps)
    return [Cut(s.start, s.duration, s.duration) for s in plan.segments]


def batches(cuts: Sequence[Cut], size: int | None = None) -> list[list[Cut]]:
    """Split a cut list into batches of at most `size` (default `BATCH_SEGMENTS`) segments,
    evened out (21 segments by 16 make 11 + 10, not 16 + 5)."""
    limit = size or BATCH_SEGMENTS
    count = max(1, math.ceil(len(cuts) / limit))
    per, extra = divmod(len(cuts), count)
    out: list[list[Cut]] = []
    start = 0
    for i in range(count):
        end = start + per + (1 if i < extra else 0)
        out.append(list(cuts[start:end]))
        start = end
    return out


def _head(ffmpeg: str) -> list[str]:
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "warning", "-y"]


def input_args(src: str, demuxer: str | None = None) -> list[str]:
    """`-i src`, fenced in (`roughy.encoder.sources`: only media containers, only the source's
    own protocol, the probed demuxer when known) and preceded by the reconnect options when
    `src` is an http(s) URL. PlanError for a demuxer that is not an accepted one."""
    try:
        fences = fence_args(src, demuxer)
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    return [*fences, *(RECONNECT_ARGS if is_remote(src) else ()), "-i", src]


def _check_encoder(encoder: str) -> None:
    if encoder not in ENCODERS:
        raise PlanError(f"unknown video encoder {encoder!r} (expected one of {', '.join(ENCODERS)})")


def gpu_decodable(plan: EncodePlan) -> bool:
    """Whether `plan`'s video can be decoded and scaled on the GPU: an encode (not a copy) of
    SDR video with no cut list. A chunk of a chunked plan qualifies: it is one seek into the
    whole source."""
    video = plan.video
    return (
        plan.format.is_video and video is not None and not video.stream_copy and not video.hdr
        and plan.segments is None
    )  # fmt: skip


def gpu_hwaccel(plan: EncodePlan, encoder: str, hwaccel: str | None) -> str | None:
    """The hwaccel an encode of `plan` with `encoder` runs with: `hwaccel` for NVENC where
    `gpu_decodable(plan)`, else None (CPU decoding, the CPU filters). Pure: the CLI decides
    whether the machine can (`tools.choose_video_pipeline`)."""
    if hwaccel is None:
        return None
    if hwaccel not in HWACCELS:
        raise PlanError(f"unknown hwaccel {hwaccel!r} (expected one of {', '.join(HWACCELS)})")
    return hwaccel if encoder == H264_NVENC and gpu_decodable(plan) else None


def encoder_label(encoder: str, hwaccel: str | None) -> str:
    """What ran, as `result.encoder` says it: the encoder, `+cuda` when the GPU also decoded
    and scaled (`h264_nvenc+cuda`)."""
    return f"{encoder}+{hwaccel}" if hwaccel else encoder


def _device_args(hwaccel: str | None) -> list[str]:
    return list(CUDA_DEVICE_ARGS) if hwaccel == CUDA else []


def _decode_args(hwaccel: str | None) -> list[str]:
    return list(CUDA_DECODE_ARGS) if hwaccel == CUDA else []


def _seek_args(cut: Cut) -> list[str]:
    return ["-ss", _num(cut.start), "-t", _num(cut.duration)]


def _graph_args(graph: list[str]) -> list[str]:
    return ["-filter_complex", ";".join(graph)] if graph else []


def _tail(fmt: Format, container: list[str], output: str) -> list[str]:
    args = [] if fmt.is_video else ["-vn"]
    return [*args, "-sn", "-dn", *container, "-progress", "pipe:1", "-stats_period", "0.25", "-nostats", output]


def _check_sources(plan: EncodePlan, video_src: str | None, audio_src: str | None) -> None:
    copied = (plan.video is not None and plan.video.stream_copy) or (plan.audio is not None and plan.audio.stream_copy)
    if copied and plan.segments:
        raise PlanError("a cut is encoded: a stream copy applies to a whole source")
    if plan.format.facts.video_codec not in (None, H264):  # `ENCODERS` are H.264 encoders only
        raise PlanError(f"no video encoder for {plan.format.facts.video_codec} ({plan.format.value})")
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


class Source(NamedTuple):
    """One file a stream is read from, and the demuxer it is read with (None: guessed)."""

    src: str
    demuxer: str | None = None


def _sources(
    plan: EncodePlan, video_src: str | None, audio_src: str | None
) -> tuple[Source | None, Source | None, bool]:
    """Which file each stream is read from: (video input, audio input, audio is separate)."""
    want_video = plan.format.is_video
    separate = want_video and plan.separate_audio and plan.audio is not None
    video_in = Source(video_src, plan.video_demuxer) if want_video and video_src is not None else None
    if separate or not want_video:
        audio_in = Source(audio_src, plan.audio_demuxer) if audio_src is not None else None
    else:
        audio_in = video_in
    return video_in, audio_in, separate


def _whole_graph(
    plan: EncodePlan, video_in: Source | None, audio_in: Source | None, separate: bool, hwaccel: str | None = None
) -> tuple[list[str], list[str], list[str]]:
    inputs: list[str] = []
    graph: list[str] = []
    maps: list[str] = []
    if plan.video is not None and video_in is not None:
        inputs += [*_decode_args(hwaccel), *input_args(*video_in)]
        if plan.video.stream_copy:
            maps += ["-map", "0:v:0"]
        else:
            graph.append(f"[0:v:0]{video_filters(plan.video, hwaccel)}[vout]")
            maps += ["-map", "[vout]"]
        if plan.audio is not None:
            if separate and audio_in is not None:
                inputs += input_args(*audio_in)
                maps += ["-map", "1:a:0"]
            else:
                maps += ["-map", "0:a:0"]
    elif audio_in is not None:
        inputs += input_args(*audio_in)
        maps += ["-map", "0:a:0"]
    return inputs, graph, maps


def _cut_graph(
    plan: EncodePlan,
    cuts: Sequence[Cut],
    video_in: Source | None,
    audio_in: Source | None,
    separate: bool,
    *,
    audio_length: float | None = None,
) -> tuple[list[str], list[str], list[str]]:
    """One input per segment (two with separate audio), one concat, one output chain.

    `audio_length`: pad/trim the joined audio to exactly this many seconds (batches).
    """
    video_from = video_in if plan.format.is_video and plan.video is not None else None
    audio_from = audio_in if plan.audio is not None else None
    has_video, has_audio = video_from is not None, audio_from is not None
    inputs: list[str] = []
    graph: list[str] = []
    pads: list[str] = []
    index = 0
    for n, cut in enumerate(cuts):
        seek = _seek_args(cut)
        video_index = index
        if video_from is not None:
            inputs += [*seek, *input_args(*video_from)]
            pads.append(f"[{index}:v:0]")
            index += 1
        if audio_from is not None:
            audio_index = video_index
            if not has_video or separate:
                inputs += [*seek, *input_args(*audio_from)]
                audio_index = index
                index += 1
            graph.append(f"[{audio_index}:a:0]{fade_filters(cut.duration)}[a{n}]")
            pads.append(f"[a{n}]")
    v, a = int(has_video), int(has_audio)
    audio_label = "[acat]" if audio_length is not None else "[aout]"
    outs = ("[vcat]" if has_video else "") + (audio_label if has_audio else "")
    graph.append(f"{''.join(pads)}concat=n={len(cuts)}:v={v}:a={a}{outs}")
    maps: list[str] = []
    if has_video and plan.video is not None:
        graph.append(f"[vcat]{video_filters(plan.video)}[vout]")
        maps += ["-map", "[vout]"]
    if has_audio:
        if audio_length is not None:
            length = _num(audio_length)
            graph.append(f"[acat]apad=whole_dur={length},atrim=duration={length}[aout]")
        maps += ["-map", "[aout]"]
    return inputs, graph, maps


def snap_segments(segments: Sequence[Segment], fps: float) -> list[Cut]:
    """Cuts on the output frame grid.

    Starts are rounded to the nearest frame; each length is the difference of the rounded
    cumulative output lengths, so the total is within half a frame of the planned total and
    every segment is a whole number of frames (at least one). The start is floored to the
    microsecond (a frame exactly on it is kept) and the `-t` duration stops `CUT_GUARD` short of
    the next frame boundary (that frame is not kept), whatever the source's time base rounding.
    """
    frame = 1 / fps_fraction(fps)
    cuts: list[Cut] = []
    planned = Fraction(0)
    emitted = 0
    for seg in segments:
        planned += Fraction(seg.duration)
        frames = max(1, _round_half_up(planned / frame) - emitted)
        emitted += frames
        start = math.floor(float(_round_half_up(Fraction(seg.start) / frame) * frame) * 1e6) / 1e6
        length = float(frames * frame)
        cuts.append(Cut(start, length - CUT_GUARD, length))
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


def video_filters(video: VideoPlan, hwaccel: str | None = None) -> str:
    """Constant frame rate, exact display size, square pixels, 8-bit 4:2:0 (tone-mapped if HDR).
    With `CUDA` the same on the GPU: frames uploaded if they were decoded on the CPU (`hwupload`
    passes GPU frames through), resized and converted to 4:2:0 by `scale_cuda`."""
    if hwaccel == CUDA:
        if video.hdr:
            raise PlanError("HDR tone mapping runs on the CPU: no GPU filters for it")
        size = f"w={video.width}:h={video.height}:interp_algo=bicubic:format=yuv420p"
        return f"hwupload,fps={fps_expr(video.fps)},scale_cuda={size},setsar=1"
    chain = [f"fps={fps_expr(video.fps)}"]
    if video.hdr:
        chain.append(HDR_CHAIN.format(w=video.width, h=video.height))
    else:
        chain.append(f"scale={video.width}:{video.height}:flags=bicubic")
    chain += ["setsar=1", "format=yuv420p"]
    return ",".join(chain)


def video_codec_args(video: VideoPlan, encoder: str = LIBX264, hwaccel: str | None = None) -> list[str]:
    """H.264 at constant quality under the plan's bitrate as a cap, 8-bit 4:2:0; tagged BT.709
    when the source was HDR (tone-mapped by the filters). With `hwaccel` the frames reach NVENC
    in GPU memory, already 4:2:0 (`scale_cuda`): a `-pix_fmt` would ask for a CPU conversion."""
    _check_encoder(encoder)
    cap = max_rate_kbps(video)
    vbv = ["-maxrate", f"{cap}k", "-bufsize", f"{round(cap * BUFSIZE_SECONDS)}k"]
    if encoder == H264_NVENC:
        pix_fmt = [] if hwaccel else ["-pix_fmt", "yuv420p"]
        args = [
            "-c:v", H264_NVENC, "-preset", NVENC_PRESET, "-tune", "hq", "-rc", "vbr",
            "-cq", str(NVENC_CQ), "-b:v", "0", *vbv,
            "-profile:v", "high", *pix_fmt,
        ]  # fmt: skip
    else:
        args = ["-c:v", LIBX264, "-preset", X264_PRESET, "-pix_fmt", "yuv420p", "-crf", str(X264_CRF), *vbv]
    if video.hdr:
        args += ["-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709"]
        args += ["-color_range", "tv"]
    return args


def max_rate_kbps(video: VideoPlan) -> int:
    """The VBV cap: the plan's bitrate, raised to the floor for the output's size (a cap below
    it starves the first I-frame and the picture comes out grey)."""
    megapixels = video.width * video.height / 1e6
    return max(video.bitrate_kbps, FLOOR_KBPS, round(FLOOR_KBPS_PER_MEGAPIXEL * megapixels))


def audio_codec_args(fmt: Format, audio: AudioPlan) -> list[str]:
    """The format's audio codec at the plan's bitrate, channel count and sample rate.

    The rate goes through the planner's rule again (a no-op on a planned rate): a plan written
    by hand with a rate the codec cannot carry still encodes instead of failing in ffmpeg.
    """
    codec = AUDIO_ENCODER_ARGS[fmt.facts.audio_codec]
    rate = output_sample_rate(fmt, audio.sample_rate)
    return [*codec, "-b:a", f"{audio.bitrate_kbps}k", "-ac", str(audio.channels), "-ar", str(rate)]


def container_args(fmt: Format) -> list[str]:
    """The muxer, forced with `-f` since the output may be a temp name."""
    args = ["-f", fmt.facts.muxer]
    if fmt.facts.index_first:
        args += ["-movflags", "+faststart"]  # progressive download
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
