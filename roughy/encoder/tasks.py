"""The encoder's jobs: render a plan, extract an asset's audio, find its silences.

Outputs are written to a temp file beside the final path and moved into place with
`os.replace` only once ffmpeg succeeded and the result probes: a reader never sees a partial
file, and any failure (or a SIGTERM unwinding through here) removes the temp.

An NVENC encode asked to decode and scale on the GPU (`hwaccel="cuda"`, after the CLI's check)
does so where the plan allows it (`ffmpeg_args.gpu_hwaccel`); when ffmpeg fails on that path it
is run again with CPU decoding, so a source the GPU path cannot take costs a failed start, not
the render. `result.encoder` says what ran in the end.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from roughy.core.models import AudioInfo, RenderResult
from roughy.core.passthrough import copied_streams
from roughy.core.plan import EncodePlan
from roughy.encoder import runner
from roughy.encoder.cutcopy import NotAligned, copy_cut_video
from roughy.encoder.errors import EncodeFailed, EncodeTimeout, InvalidMedia
from roughy.encoder.ffmpeg_args import (
    BATCH_SEGMENTS,
    LIBX264,
    Cut,
    PlanError,
    batches,
    build_batch_args,
    build_chunk_args,
    build_chunk_join_args,
    build_cut_mux_args,
    build_ffmpeg_args,
    build_join_args,
    cut_audio_plan,
    encoder_label,
    ffconcat_text,
    gpu_hwaccel,
    input_args,
    plan_chunks,
    plan_cuts,
)
from roughy.encoder.probe import MediaInfo, probe
from roughy.encoder.tools import ffmpeg_path

ProgressCallback = Callable[[float], None]
log = logging.getLogger(__name__)


def render(
    plan: EncodePlan,
    *,
    video_src: str | None,
    audio_src: str | None,
    output: str,
    on_progress: ProgressCallback | None = None,
    time_limit: float | None = None,
    encoder: str = LIBX264,
    parallel: int = 1,
    hwaccel: str | None = None,
) -> RenderResult:
    """Encode `plan` to `output`; return what was produced (SPEC 5.6 `result`).

    `time_limit` (seconds, for the whole render) defaults to the plan's own, scaled to its
    duration. Cut lists longer than `BATCH_SEGMENTS` are encoded in batches and joined; a
    chunked plan's chunks are encoded `parallel` at a time, then joined.
    `encoder`: the video encoder (`ffmpeg_args.ENCODERS`), used as given (the CLI checks NVENC);
    `hwaccel`: `cuda` to decode and scale on the GPU where the plan allows (the CLI checks it).
    """
    video = _Video(encoder, hwaccel)
    with _time_limited(plan, time_limit, "the render") as deadline:
        produced, copied, ran = _render_to(plan, video_src, audio_src, output, on_progress, deadline, video, parallel)
    result = replace(_result(plan, produced, output), encoder=ran)
    return replace(result, copied=copied) if copied is not None else result


class _Video(NamedTuple):
    """The video encoder asked for, and the hwaccel to try with it."""

    encoder: str = LIBX264
    hwaccel: str | None = None


class Chunk(NamedTuple):
    """One encoded chunk: its size, and what encoded it (`encoder_label`)."""

    size_bytes: int
    encoder: str


def render_chunk(
    plan: EncodePlan,
    index: int,
    *,
    video_src: str | None,
    output: str,
    on_progress: ProgressCallback | None = None,
    time_limit: float | None = None,
    encoder: str = LIBX264,
    hwaccel: str | None = None,
) -> Chunk:
    """Chunk `index` of a chunked plan: its video alone into `output` (a MOV, moved into place
    once whole), for `join_chunks` to copy. One pod of a Kubernetes render's Indexed Job runs
    this. Returns the chunk's size in bytes and what encoded it."""
    chunks = _chunks_of(plan)
    if not 0 <= index < len(chunks):
        raise PlanError(f"chunk {index} does not exist: the plan has {len(chunks)} chunks (0 to {len(chunks) - 1})")
    video = _Video(encoder, hwaccel)
    with _time_limited(plan, time_limit, f"chunk {index}") as deadline, _temp_beside(output) as temp:
        ran = _encode_chunk(plan, chunks[index], video_src, temp, on_progress, deadline, video)
        os.replace(temp, output)
    return Chunk(os.path.getsize(output), ran)


def join_chunks(
    plan: EncodePlan,
    parts: Sequence[str],
    *,
    video_src: str | None,
    audio_src: str | None,
    output: str,
    on_progress: ProgressCallback | None = None,
    time_limit: float | None = None,
) -> RenderResult:
    """The render of a chunked plan from its chunks' files (`render_chunk`, in chunk order):
    their video copied end to end, the audio encoded once over the whole timeline."""
    chunks = _chunks_of(plan)
    if len(parts) != len(chunks):
        raise PlanError(f"the plan has {len(chunks)} chunks, {len(parts)} were given to join")
    with _time_limited(plan, time_limit, "the join") as deadline, _temp_beside(output) as temp:
        _join_chunks(plan, chunks, [str(p) for p in parts], video_src, audio_src, temp, on_progress, deadline)
        produced = _probe_output(temp)
        os.replace(temp, output)
    return _result(plan, produced, output)


@contextlib.contextmanager
def _time_limited(plan: EncodePlan, time_limit: float | None, what: str) -> Iterator[float]:
    """The deadline of one task (`time_limit` seconds, else the plan's own); a timeout inside
    is reported as the whole task's."""
    limit = plan.time_limit() if time_limit is None else time_limit
    try:
        yield time.monotonic() + limit
    except EncodeTimeout:
        raise EncodeTimeout(f"{what} did not finish within its time limit of {limit:g} s") from None


def _chunks_of(plan: EncodePlan) -> list[Cut]:
    chunks = plan_chunks(plan)
    if chunks is None:
        raise PlanError("the plan is not chunked")
    return chunks


def _result(plan: EncodePlan, produced: MediaInfo, output: str) -> RenderResult:
    return RenderResult(
        format=plan.format,
        width=produced.video.width if produced.video else None,
        height=produced.video.height if produced.video else None,
        duration=round(produced.duration, 3),
        size_bytes=os.path.getsize(output),
        video_bitrate_kbps=plan.video.bitrate_kbps if plan.video else None,
        audio_bitrate_kbps=plan.audio.bitrate_kbps if plan.audio else None,
        copied=copied_streams(plan.format, plan.video, plan.audio),
    )


def _render_to(
    plan: EncodePlan,
    video_src: str | None,
    audio_src: str | None,
    output: str,
    on_progress: ProgressCallback | None,
    deadline: float,
    video: _Video,
    parallel: int = 1,
) -> tuple[MediaInfo, list[str] | None, str | None]:
    """Encode into a temp file beside `output`, probe it, move it into place. The streams
    copied, when that differs from the plan's (a cut whose video could be copied), and what
    encoded the video (None: no video was encoded)."""
    cuts = plan_cuts(plan)
    chunks = plan_chunks(plan)
    copied: list[str] | None = None
    encoded = plan.video is not None and not plan.video.stream_copy
    ran: str | None = video.encoder
    with _temp_beside(output) as temp:
        if (
            cuts is not None and plan.video is not None and plan.video.cut_copy and video_src is not None
            and _render_cut_copy(plan, cuts, video_src, audio_src, temp, on_progress, deadline)
        ):  # fmt: skip
            copied, encoded = ["video"], False
        elif chunks is not None:
            ran = _render_chunked(plan, chunks, video_src, audio_src, temp, on_progress, deadline, video, parallel)
        elif cuts is not None and len(cuts) > BATCH_SEGMENTS:
            groups = batches(cuts, BATCH_SEGMENTS)
            _render_batched(plan, groups, video_src, audio_src, temp, on_progress, deadline, video.encoder)
        else:
            build = functools.partial(build_ffmpeg_args, plan, video_src=video_src, audio_src=audio_src,
                                      output=str(temp), ffmpeg=ffmpeg_path(), encoder=video.encoder)  # fmt: skip
            ran = _gpu_or_cpu(plan, video, build, lambda argv: _run(argv, plan.duration, deadline, on_progress))
        produced = _probe_output(temp)
        os.replace(temp, output)
    return produced, copied, ran if encoded else None


def _gpu_or_cpu(
    plan: EncodePlan, video: _Video, build: Callable[..., list[str]], run: Callable[[list[str]], None]
) -> str:
    """Run one encode (`build(hwaccel=...)` its argv, `run` it) on the GPU path where the plan
    and `video` allow it, and again with CPU decoding if ffmpeg fails there (a hardware decode
    error reads like invalid data, so that too: the CPU run says whether the source really is
    broken). What ran (`encoder_label`)."""
    hwaccel = gpu_hwaccel(plan, video.encoder, video.hwaccel)
    if hwaccel is not None:
        try:
            run(build(hwaccel=hwaccel))
            return encoder_label(video.encoder, hwaccel)
        except (EncodeFailed, InvalidMedia) as exc:
            log.warning("decoding and scaling on the GPU failed (%s); encoding again, decoding on the CPU", exc.message)
    run(build(hwaccel=None))
    return video.encoder


#: Share of a copied cut's progress that encoding its audio takes; the final mux has the rest.
CUT_AUDIO_SHARE = 0.9


def _render_cut_copy(
    plan: EncodePlan,
    cuts: list[Cut],
    video_src: str,
    audio_src: str | None,
    temp: Path,
    on_progress: ProgressCallback | None,
    deadline: float,
) -> bool:
    """A cut whose every segment starts and ends on a keyframe: its video packets copied
    (`cutcopy`), its audio encoded on the same cuts as an encode would (faded edges), both
    muxed into `temp`. False, having written nothing, when the cut points are not keyframes."""
    assert plan.video is not None
    with contextlib.ExitStack() as stack:
        video = stack.enter_context(_temp_beside(str(temp.with_suffix(".mov")), tag="video"))
        try:
            copy_cut_video(video_src, plan.video_demuxer, cuts, plan.video.fps, str(video))
        except NotAligned as exc:
            log.info("the cut's video is encoded: %s", exc)
            return False
        audio: Path | None = None
        if plan.audio is not None:
            audio = stack.enter_context(_temp_beside(str(temp.with_suffix(".m4a")), tag="audio"))
            source = audio_src if plan.separate_audio and audio_src is not None else video_src
            argv = build_ffmpeg_args(cut_audio_plan(plan, cuts), video_src=None, audio_src=source, output=str(audio),
                                     ffmpeg=ffmpeg_path())  # fmt: skip
            _run(argv, plan.duration, deadline, _share(on_progress, 0.0, CUT_AUDIO_SHARE))
        argv = build_cut_mux_args(plan, video=str(video), audio=str(audio) if audio else None, output=str(temp),
                                  ffmpeg=ffmpeg_path())  # fmt: skip
        _run(argv, plan.duration, deadline, _share(on_progress, CUT_AUDIO_SHARE, 1 - CUT_AUDIO_SHARE))
    return True


def _share(on_progress: ProgressCallback | None, offset: float, share: float) -> ProgressCallback | None:
    if on_progress is None:
        return None
    callback: ProgressCallback = on_progress
    return lambda fraction: callback(min(offset + share * fraction, 0.999))


#: Share of the progress bar the batches take; the join (a copy and an audio encode) the rest.
BATCH_PROGRESS_SHARE = 0.95


def _render_batched(
    plan: EncodePlan,
    groups: list[list[Cut]],
    video_src: str | None,
    audio_src: str | None,
    temp: Path,
    on_progress: ProgressCallback | None,
    deadline: float,
    encoder: str = LIBX264,
) -> None:
    """Batches of at most BATCH_SEGMENTS inputs each into intermediate MOVs beside the output,
    then one join. Intermediates are removed whatever happens."""
    total = sum(cut.length for group in groups for cut in group) or 1.0
    done = 0.0
    parts: list[tuple[str, float]] = []
    with contextlib.ExitStack() as stack:
        for group in groups:
            part = stack.enter_context(_temp_beside(str(temp.with_suffix(".mov")), tag="batch"))
            length = sum(cut.length for cut in group)
            argv = build_batch_args(
                plan,
                group,
                video_src=video_src,
                audio_src=audio_src,
                output=str(part),
                ffmpeg=ffmpeg_path(),
                encoder=encoder,
            )
            _run(argv, length, deadline, _scaled(on_progress, done / total, length / total))
            done += length
            parts.append((str(part), length))
        concat_list = stack.enter_context(_temp_beside(str(temp.with_suffix(".ffconcat")), tag="list"))
        concat_list.write_text(ffconcat_text(parts), encoding="utf-8")
        argv = build_join_args(plan, concat_list=str(concat_list), output=str(temp), ffmpeg=ffmpeg_path())
        _run(argv, total, deadline, _scaled(on_progress, 1.0, 0.0, join=True))


def _render_chunked(
    plan: EncodePlan,
    chunks: list[Cut],
    video_src: str | None,
    audio_src: str | None,
    temp: Path,
    on_progress: ProgressCallback | None,
    deadline: float,
    video: _Video,
    parallel: int,
) -> str:
    """Each chunk's video into an intermediate MOV beside the output, `parallel` at a time,
    then one join with the audio encoded once. A failed chunk (or SIGTERM) kills the others;
    intermediates are removed whatever happens. What encoded the chunks: the GPU path only if
    it encoded every one of them."""
    total = sum(chunk.length for chunk in chunks) or 1.0
    done = [0.0] * len(chunks)
    lock = threading.Lock()

    def chunk_progress(index: int) -> ProgressCallback | None:
        if on_progress is None:
            return None
        callback: ProgressCallback = on_progress

        def report(fraction: float) -> None:
            with lock:
                done[index] = fraction * chunks[index].length
                overall = BATCH_PROGRESS_SHARE * sum(done) / total
            callback(min(overall, 0.999))

        return report

    with contextlib.ExitStack() as stack:
        parts = [
            stack.enter_context(_temp_beside(str(temp.with_suffix(".mov")), tag=f"chunk{i}"))
            for i in range(len(chunks))
        ]

        scope = runner.Scope()

        def encode(index: int) -> str:
            return _encode_chunk(plan, chunks[index], video_src, parts[index], chunk_progress(index), deadline, video,
                                 scope)  # fmt: skip

        with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="chunk") as pool:
            futures = [pool.submit(encode, i) for i in range(len(chunks))]
            try:
                ran = {future.result() for future in as_completed(futures)}
            except BaseException:  # a failed chunk, or SIGTERM raised in this thread: stop the rest
                scope.stop()
                for future in futures:
                    future.cancel()
                raise
        joined = _scaled(on_progress, 1.0, 0.0, join=True)
        _join_chunks(plan, chunks, [str(p) for p in parts], video_src, audio_src, temp, joined, deadline)
    return ran.pop() if len(ran) == 1 else video.encoder


def _encode_chunk(
    plan: EncodePlan,
    chunk: Cut,
    video_src: str | None,
    output: Path,
    on_progress: ProgressCallback | None,
    deadline: float,
    video: _Video,
    scope: runner.Scope | None = None,
) -> str:
    build = functools.partial(build_chunk_args, plan, chunk, video_src=video_src, output=str(output),
                              ffmpeg=ffmpeg_path(), encoder=video.encoder)  # fmt: skip
    return _gpu_or_cpu(plan, video, build, lambda argv: _run(argv, chunk.length, deadline, on_progress, scope))


def _join_chunks(
    plan: EncodePlan,
    chunks: list[Cut],
    parts: list[str],
    video_src: str | None,
    audio_src: str | None,
    output: Path,
    on_progress: ProgressCallback | None,
    deadline: float,
) -> None:
    """One ffmpeg: the chunks' video copied end to end (an ffconcat list with each chunk's exact
    length), the audio from its source."""
    with _temp_beside(str(output.with_suffix(".ffconcat")), tag="list") as concat_list:
        concat_list.write_text(ffconcat_text([(p, c.length) for p, c in zip(parts, chunks, strict=True)]),
                               encoding="utf-8")  # fmt: skip
        argv = build_chunk_join_args(plan, concat_list=str(concat_list), video_src=video_src, audio_src=audio_src,
                                     output=str(output), ffmpeg=ffmpeg_path())  # fmt: skip
        _run(argv, sum(c.length for c in chunks), deadline, on_progress)


def _scaled(
    on_progress: ProgressCallback | None, offset: float, share: float, *, join: bool = False
) -> ProgressCallback | None:
    """Map one process's 0..1 onto its slice of the whole render's progress."""
    if on_progress is None:
        return None
    callback: ProgressCallback = on_progress

    def report(fraction: float) -> None:
        if join:
            overall = BATCH_PROGRESS_SHARE + (1 - BATCH_PROGRESS_SHARE) * fraction
        else:
            overall = BATCH_PROGRESS_SHARE * min(1.0, offset + share * fraction)
        callback(1.0 if join and fraction >= 1.0 else min(overall, 0.999))

    return report


def _run(
    argv: list[str],
    duration: float,
    deadline: float,
    on_progress: ProgressCallback | None,
    scope: runner.Scope | None = None,
) -> None:
    """One ffmpeg process with what is left of the render's time limit."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise EncodeTimeout("the render ran out of time before its last step")
    runner.run(argv, duration=duration, time_limit=remaining, on_progress=on_progress, scope=scope)


def extract_audio(
    src: str, output: str, *, time_limit: float | None = None, on_progress: ProgressCallback | None = None
) -> AudioInfo:
    """Copy `src`'s first audio track, untouched, into Matroska audio (`.mka`).

    A stream copy is fast and lossless, and Matroska carries any codec, so cuts and audio
    renders can read a small file instead of the whole video. Raises InvalidMedia when `src`
    has no audio.
    """
    info = probe(src)
    if info.audio is None:
        raise InvalidMedia("the source has no audio track")
    limit = time_limit if time_limit is not None else 60.0 + info.duration
    with _temp_beside(output) as temp:
        argv = [
            ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "warning", "-y",
            *input_args(src, info.demuxer), "-map", "0:a:0", "-vn", "-sn", "-dn", "-c:a", "copy",
            "-f", "matroska", "-progress", "pipe:1", "-nostats", str(temp),
        ]  # fmt: skip
        runner.run(argv, duration=info.duration, time_limit=limit, on_progress=on_progress)
        produced = _probe_output(temp)
        os.replace(temp, output)
    if produced.audio is None:  # pragma: no cover - ffmpeg succeeded but wrote no audio
        raise EncodeFailed("the extracted file has no audio track")
    # Matroska stores no per-stream bitrate: the source's own figure is the exact one.
    bitrate = info.audio.bitrate_kbps or produced.audio.bitrate_kbps
    return AudioInfo(
        codec=produced.audio.codec,
        bitrate_kbps=bitrate,
        sample_rate=produced.audio.sample_rate,
        channels=produced.audio.channels,
        demuxer=produced.demuxer,
        profile=info.audio.profile,
    )


def detect_silence(
    src: str,
    *,
    min_silence: float,
    threshold_db: float,
    time_limit: float | None = None,
    on_progress: ProgressCallback | None = None,
) -> list[tuple[float, float]]:
    """Silent stretches of at least `min_silence` seconds below `threshold_db` (dBFS), in order."""
    info = probe(src)
    if info.audio is None:
        raise InvalidMedia("the source has no audio track")
    limit = time_limit if time_limit is not None else 60.0 + 2.0 * info.duration
    lines: list[str] = []
    argv = [
        ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "info", *input_args(src, info.demuxer),
        "-map", "0:a:0", "-vn", "-sn", "-dn",
        "-af", f"silencedetect=noise={threshold_db:g}dB:d={min_silence:g}",
        "-f", "null", "-progress", "pipe:1", "-nostats", "-",
    ]  # fmt: skip
    runner.run(
        argv,
        duration=info.duration,
        time_limit=limit,
        on_progress=on_progress,
        on_stderr=lambda line: lines.append(line) if "silence_" in line else None,
    )
    return parse_silencedetect(lines, info.duration)


_SILENCE_START = re.compile(r"silence_start:\s*(-?[0-9.]+(?:e-?\d+)?)")
_SILENCE_END = re.compile(r"silence_end:\s*(-?[0-9.]+(?:e-?\d+)?)")


def parse_silencedetect(lines: Iterable[str], duration: float) -> list[tuple[float, float]]:
    """Pair silencedetect's `silence_start` / `silence_end` lines into (start, end) spans.

    A silence still open at the end of the file has no `silence_end`: it is closed at
    `duration`. Starts slightly below zero (the filter's look-back) are clamped to 0.
    """
    spans: list[tuple[float, float]] = []
    start: float | None = None
    for line in lines:
        if (m := _SILENCE_START.search(line)) is not None:
            start = max(0.0, float(m.group(1)))
        elif (m := _SILENCE_END.search(line)) is not None and start is not None:
            end = min(float(m.group(1)), duration) if duration > 0 else float(m.group(1))
            if end > start:
                spans.append((start, end))
            start = None
    if start is not None and duration > start:
        spans.append((start, duration))
    return spans


@contextlib.contextmanager
def _temp_beside(output: str, *, tag: str = "part") -> Iterator[Path]:
    """A temp path in the output's directory (same filesystem: `os.replace` is atomic),
    with the same suffix; removed on any exit unless it was moved into place."""
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=f".{tag}{out.suffix}", dir=out.parent)
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
    finally:
        temp.unlink(missing_ok=True)


def _probe_output(path: Path) -> MediaInfo:
    """Probe what ffmpeg wrote: a file that does not probe is a failed encode, not bad input."""
    try:
        return probe(str(path))
    except InvalidMedia as exc:
        raise EncodeFailed(f"ffmpeg produced an unreadable file: {exc.message}") from None
