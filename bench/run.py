"""roughy's benchmark: service overhead, cut cost, cancel latency, idempotency under concurrency.

    python bench/run.py                       # everything, full sizes, 3 runs
    python bench/run.py --quick               # small sizes: checks the harness in a few minutes
    python bench/run.py --only overhead,cut --runs 5 --json bench/out/result.json

What each figure measures, and how, is in bench/README.md. Ratios are measured side by side in
one run, the two sides alternating (A B, B A, ...), and the table quotes the median of the
per-run ratios (the machine has two cores and is noisy).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/run.py` puts bench/ first, not the repo root

import av  # noqa: E402
import httpx  # noqa: E402

from bench.harness import (  # noqa: E402
    BenchError,
    Driver,
    alive,
    bare_argv,
    encoder_pids,
    proc_state,
    run_bare,
    spec_of,
)
from bench.media import SourceSpec, bbb_clip, looped, source, vmaf  # noqa: E402
from roughy.core.chunks import Chunking, chunk_segments  # noqa: E402
from roughy.core.keys import output_key  # noqa: E402
from roughy.encoder.ffmpeg_args import build_chunk_args, build_chunk_join_args, ffconcat_text, plan_chunks  # noqa: E402
from roughy.encoder.tools import ffmpeg_path  # noqa: E402

try:  # the encoder batches long cut lists (one ffmpeg per batch, then a join)
    from roughy.encoder.ffmpeg_args import BATCH_SEGMENTS  # noqa: E402
except ImportError:  # pragma: no cover - an encoder without batching
    BATCH_SEGMENTS = 10**9
from tests.conftest import Service, start_service  # noqa: E402

FIGURES = ("overhead", "cut", "cancel", "idempotency", "passthrough", "ratecontrol", "chunks")
CONCURRENT_POSTS = 32
SETTLE = 1.0  # seconds of quiet between two timed sides (file deletes, scheduler ticks)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- sizes -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    name: str
    overhead: SourceSpec  # rendered whole, vs the same ffmpeg command run bare
    straight: SourceSpec  # the cut's comparison: as long as the cut's output
    long: SourceSpec  # the cut's source; also what the cancels interrupt
    segment: float  # seconds per kept segment
    segments: int = 10
    resolution: str = "720p"  # the output tier of every video render here
    loops: int = 24  # passthrough: the real-footage clip (5.3 s) played this many times

    def __post_init__(self) -> None:
        assert abs(self.straight.duration - self.segment * self.segments) < 1e-6, "cut and straight differ in length"


FULL = Sizes(
    "full",
    overhead=SourceSpec(60, 1920, 1080),
    straight=SourceSpec(30, 1920, 1080),
    long=SourceSpec(600, 1920, 1080),
    segment=3.0,
)
QUICK = Sizes(
    "quick",
    overhead=SourceSpec(10, 1280, 720),
    straight=SourceSpec(10, 1280, 720),
    long=SourceSpec(120, 1280, 720),
    segment=1.0,
    loops=4,
)


def cut_segments(duration: float, count: int, length: float) -> list[tuple[float, float]]:
    """`count` segments of `length` s, one in the middle of each tenth of the source. The start's
    offset from the 2 s keyframe grid varies (0.37 s steps), so input seeking decodes a varying
    run-up before each segment, as with real cut points."""
    span = duration / count
    out = []
    for i in range(count):
        start = round(i * span + span / 2 - length / 2 + (0.37 * i) % 1.0, 3)
        out.append((start, round(start + length, 3)))
    assert out[-1][1] <= duration
    return out


# -- results ---------------------------------------------------------------------------------------


@dataclass
class Figure:
    name: str
    samples: list[float]
    unit: str  # "x" (ratio), "s" or "" (a count)
    target: str = "-"
    passed: bool | None = None  # None: informational, no target
    note: str = ""

    def fmt(self, value: float) -> str:
        if self.unit == "x":
            return f"{value:.3f}"
        if self.unit == "s":
            if value < 0.1:
                return f"{value * 1000:.1f} ms"
            return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"
        return f"{value:g}"

    def row(self) -> list[str]:
        if not self.samples:
            return [self.name, "-", "-", "-", self.target, "NO DATA" if self.passed is not None else "info"]
        s = self.samples
        result = "info" if self.passed is None else ("PASS" if self.passed else "FAIL")
        return [self.name, self.fmt(statistics.median(s)), self.fmt(min(s)), self.fmt(max(s)), self.target, result]


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def table(figures: list[Figure]) -> str:
    header = ["figure", "median", "min", "max", "target", "result"]
    rows = [header] + [f.row() for f in figures]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep] + [line(r) for r in rows[1:]])


# -- the run's context -----------------------------------------------------------------------------


@dataclass
class Context:
    sizes: Sizes
    runs: int
    cancels: int
    service: Service
    driver: Driver
    work: Path  # scratch for bare outputs, on the same filesystem as the service's data
    assets: dict[SourceSpec, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    def asset(self, spec: SourceSpec) -> dict[str, Any]:
        if spec not in self.assets:
            self.assets[spec] = self.driver.ready_asset(source(spec, log=log))
        return self.assets[spec]

    def file_asset(self, path: Path) -> dict[str, Any]:
        key = str(path)
        if key not in self.files:
            self.files[key] = self.driver.ready_asset(path)
        return self.files[key]

    def video_body(self, asset: dict[str, Any], cut: dict[str, Any] | None = None) -> dict[str, Any]:
        output = {"format": "mp4", "resolution": self.sizes.resolution}
        body: dict[str, Any] = {"asset_id": asset["id"], "output": output}
        if cut is not None:
            body["cut_id"] = cut["id"]
        return body


def alternate(i: int, sides: list[Callable[[], None]]) -> None:
    """Run the sides in order on even runs, reversed on odd runs, with a pause between."""
    for n, side in enumerate(sides if i % 2 == 0 else list(reversed(sides))):
        if n:
            time.sleep(SETTLE)
        side()


# -- overhead ----------------------------------------------------------------------------------------


def fig_overhead(ctx: Context) -> list[Figure]:
    spec = ctx.sizes.overhead
    log(f"overhead: {spec.label} -> mp4 {ctx.sizes.resolution}, service (POST -> completed) vs bare ffmpeg")
    asset = ctx.asset(spec)
    body = ctx.video_body(asset)
    plan, video_src, audio_src = ctx.driver.plan_for(asset["id"], spec_of(body))
    out = ctx.work / "bare-overhead.mp4"
    argv = bare_argv(plan, video_src, audio_src, out)
    ctx.raw["overhead_bare_argv"] = argv
    svc: list[float] = []
    bare: list[float] = []
    ratios: list[float] = []
    queued: list[float] = []
    encoding: list[float] = []
    same_plan: list[bool | None] = []

    def service_side() -> None:
        t = ctx.driver.timed_render(body)
        same_plan.append(ctx.driver.same_plan_as_service(t.render["id"], plan))
        ctx.driver.delete_render(t.render["id"])
        svc.append(t.wall)
        if t.queued is not None:
            queued.append(t.queued)
        if t.encoding is not None:
            encoding.append(t.encoding)

    def bare_side() -> None:
        bare.append(run_bare(argv, out))

    for i in range(ctx.runs):
        alternate(i, [service_side, bare_side])
        ratios.append(svc[-1] / bare[-1])
        log(f"  run {i + 1}/{ctx.runs}: service {svc[-1]:.2f} s, bare {bare[-1]:.2f} s, ratio {ratios[-1]:.3f}")
        time.sleep(SETTLE)
    if False in same_plan:
        log("  WARNING: the runtime's own plan differs from the one the bare side ran")
    ctx.raw["overhead"] = {
        "service_s": svc,
        "bare_s": bare,
        "ratio": ratios,
        "server_queued_s": queued,
        "server_encoding_s": encoding,
        "same_plan_as_runtime": same_plan,
    }
    target = 1.10
    return [
        Figure(
            "overhead: service / bare ffmpeg",
            ratios,
            "x",
            f"<= {target:.2f}",
            median(ratios) <= target,
            note=f"{spec.label} -> mp4 {ctx.sizes.resolution}",
        ),
        Figure("  service POST -> completed", svc, "s"),
        Figure("  bare ffmpeg", bare, "s"),
        Figure("  server: created -> started", queued, "s"),
        Figure("  server: started -> completed", encoding, "s"),
    ]


# -- passthrough -------------------------------------------------------------------------------------


def fig_passthrough(ctx: Context) -> list[Figure]:
    """A render whose source video already is the output (real footage, `{"format": "mp4"}`):
    the service copies the stream. Against it, the same render's plan encoded (the stream-copy
    flags off) by bare ffmpeg: a lower bound of what the service took before passthrough."""
    clip = looped(bbb_clip(log=log), ctx.sizes.loops, log=log)
    log(f"passthrough: {clip.name} -> mp4 Auto, service (copy) vs bare ffmpeg encoding the same plan")
    asset = ctx.file_asset(clip)
    body = {"asset_id": asset["id"], "output": {"format": "mp4"}}
    plan, video_src, audio_src = ctx.driver.plan_for(asset["id"], spec_of(body))
    if plan.video is None or not plan.video.stream_copy:
        raise BenchError(f"the service would not copy this source's video: {plan}")
    encoded_plan = replace(
        plan,
        video=replace(plan.video, stream_copy=False),
        audio=replace(plan.audio, stream_copy=False) if plan.audio else None,
    )
    out = ctx.work / "bare-encode.mp4"
    argv = bare_argv(encoded_plan, video_src, audio_src, out)
    ctx.raw["passthrough_bare_argv"] = argv
    svc: list[float] = []
    bare: list[float] = []
    ratios: list[float] = []
    copied: list[list[str]] = []
    scores: dict[str, float] = {}
    identical: list[bool] = []

    def service_side() -> None:
        t = ctx.driver.timed_render(body)
        copied.append(t.render["result"]["copied"])
        if "copy" not in scores:  # the output, frame by frame against the source
            render = ctx.service.embedded.store.get_render(t.render["id"])
            produced = ctx.service.embedded.storage.path(output_key(render))
            scores["copy"] = vmaf(produced, clip)
            identical.append(video_digest(produced) == video_digest(clip))
        ctx.driver.delete_render(t.render["id"])
        svc.append(t.wall)

    def bare_side() -> None:
        bare.append(run_bare(argv, out))

    for i in range(ctx.runs):
        alternate(i, [service_side, bare_side])
        ratios.append(bare[-1] / svc[-1])
        log(f"  run {i + 1}/{ctx.runs}: service (copy) {svc[-1]:.2f} s, bare encode {bare[-1]:.2f} s, "
            f"{ratios[-1]:.1f}x; copied {copied[-1]}")  # fmt: skip
        time.sleep(SETTLE)
    subprocess.run(argv, check=True, capture_output=True)  # once more, kept, for its score
    scores["encode"] = vmaf(out, clip)
    out.unlink(missing_ok=True)
    ctx.raw["passthrough"] = {"service_s": svc, "bare_encode_s": bare, "ratio": ratios, "copied": copied,
                              "vmaf": scores, "identical_video_packets": identical}  # fmt: skip
    speed, quality = 20.0, 99.0
    return [
        Figure(
            "passthrough: bare encode / service copy",
            ratios,
            "x",
            f">= {speed:g}",
            median(ratios) >= speed,
            note=f"{clip.name} ({ctx.sizes.loops} x 5.3 s of 720p Big Buck Bunny) -> mp4 Auto; copied {copied[-1]}",
        ),
        Figure("  service POST -> completed (copy)", svc, "s"),
        Figure("  bare ffmpeg encoding the same plan", bare, "s"),
        Figure("  VMAF of the copy", [scores["copy"]], "", f">= {quality:g}", scores["copy"] >= quality),
        Figure("  VMAF of the encode", [scores["encode"]], ""),
        Figure("  video packets identical to the source's", [float(all(identical))], "", "1", all(identical)),
    ]


# -- rate control ------------------------------------------------------------------------------------


def former_abr(argv: list[str], kbps: int) -> list[str]:
    """`argv` with its capped-CRF rate control swapped for the former rule: average bitrate
    `kbps` under a VBV of 1.5x peak and a 2 s buffer."""
    i = argv.index("-crf")
    assert argv[i + 2] == "-maxrate" and argv[i + 4] == "-bufsize", argv
    abr = ["-b:v", f"{kbps}k", "-maxrate", f"{round(kbps * 1.5)}k", "-bufsize", f"{kbps * 2}k"]
    return argv[:i] + abr + argv[i + 6 :]


def video_digest(path: Path) -> str:
    """SHA-256 over the payloads of the first video stream's packets, in order."""
    digest = hashlib.sha256()
    with av.open(str(path)) as c:
        for packet in c.demux(c.streams.video[0]):
            if packet.size:
                digest.update(bytes(packet))
    return digest.hexdigest()


def stream_kbps(path: Path) -> float:
    """The video stream's average bitrate, from its packets."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        sizes = [p.size for p in c.demux(stream) if p.size]
    return sum(sizes) * 8 / (len(sizes) / float(stream.average_rate)) / 1000


def fig_ratecontrol(ctx: Context) -> list[Figure]:
    """The service's capped CRF against the former ABR at the same output size, on real
    footage (video only, encoded alone, VMAF against the source). The clip's video encoded at
    720p (forced: the service would copy it) under the 5 Mb/s ladder step, which does not bind
    here, so the comparison is of rate control alone (Auto would also cap at the source's rate)."""
    clip = bbb_clip(log=log)
    log(f"ratecontrol: {clip.name}, capped CRF vs the former ABR at the same size (VMAF)")
    asset = ctx.file_asset(clip)
    plan, video_src, _ = ctx.driver.plan_for(asset["id"], spec_of({"output": {"format": "mp4"}}))
    assert plan.video is not None
    plan = replace(plan, video=replace(plan.video, stream_copy=False, bitrate_kbps=5000), audio=None)
    crf_out, abr_out = ctx.work / "crf.mp4", ctx.work / "abr.mp4"
    crf_argv = bare_argv(plan, video_src, None, crf_out)
    subprocess.run(crf_argv, check=True, capture_output=True)
    crf_kbps = stream_kbps(crf_out)
    # x264's ABR lands under its target on short clips: steer the target until the size matches.
    target, abr_kbps, tries = crf_kbps, 0.0, []
    for _ in range(6):
        abr_argv = [*former_abr(crf_argv, round(target))[:-1], str(abr_out)]
        subprocess.run(abr_argv, check=True, capture_output=True)
        abr_kbps = stream_kbps(abr_out)
        tries.append((round(target), round(abr_kbps)))
        if abs(abr_kbps - crf_kbps) <= 0.02 * crf_kbps:
            break
        target *= crf_kbps / abr_kbps
    crf_vmaf, abr_vmaf = vmaf(crf_out, clip), vmaf(abr_out, clip)
    ctx.raw["ratecontrol"] = {"crf_argv": crf_argv, "crf_kbps": crf_kbps, "abr_tries": tries,
                              "abr_kbps": abr_kbps, "vmaf": {"crf": crf_vmaf, "abr": abr_vmaf}}  # fmt: skip
    log(f"  CRF {crf_kbps:.0f} kb/s VMAF {crf_vmaf:.2f}; ABR {abr_kbps:.0f} kb/s VMAF {abr_vmaf:.2f} (tries {tries})")
    return [
        Figure(
            "ratecontrol: VMAF capped CRF - ABR",
            [crf_vmaf - abr_vmaf],
            "",
            "> 0",
            crf_vmaf > abr_vmaf,
            note=f"{clip.name} 720p video alone, both at ~{crf_kbps:.0f} kb/s",
        ),  # fmt: skip
        Figure("  VMAF capped CRF", [crf_vmaf], ""),
        Figure("  VMAF former ABR, same size", [abr_vmaf], ""),
    ]


# -- chunks ------------------------------------------------------------------------------------------

CHUNKS = 8


def timed_cpu(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds user + system) of one ffmpeg run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise BenchError(f"ffmpeg failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def fig_chunks(ctx: Context) -> list[Figure]:
    """The long source rendered to 720p in one process, and split in 8 chunks run one after
    another (as 8 pods would run them side by side) then joined: total CPU, and the critical
    path (the longest chunk plus the join) against the single render divided by 8. Seams:
    VMAF over 2 s around each seam, chunked against single, both against the source."""
    spec = ctx.sizes.long
    log(f"chunks: {spec.label} -> mp4 {ctx.sizes.resolution}, one process vs {CHUNKS} chunks + join")
    clip = source(spec, log=log)
    asset = ctx.asset(spec)
    plan, video_src, audio_src = ctx.driver.plan_for(asset["id"], spec_of(ctx.video_body(asset)))
    assert plan.video is not None and not plan.video.stream_copy
    chunks = chunk_segments(plan.duration, plan.video.fps, Chunking(plan.duration / CHUNKS, 0.0))
    assert chunks is not None and len(chunks) == CHUNKS
    split = replace(plan, chunks=chunks)
    single_out, joined_out = ctx.work / "single.mp4", ctx.work / "joined.mp4"
    ffmpeg = ffmpeg_path()
    single_wall, single_cpu = timed_cpu(bare_argv(plan, video_src, audio_src, single_out))
    log(f"  single: {single_wall:.1f} s wall, {single_cpu:.1f} s CPU")
    walls, cpus, parts = [], [], []
    for i, cut in enumerate(plan_chunks(split) or []):
        part = ctx.work / f"chunk{i}.mov"
        wall, cpu = timed_cpu(build_chunk_args(split, cut, video_src=video_src, output=str(part), ffmpeg=ffmpeg))
        walls.append(wall)
        cpus.append(cpu)
        parts.append((str(part), cut.length))
    listing = ctx.work / "chunks.ffconcat"
    listing.write_text(ffconcat_text(parts))
    join_argv = build_chunk_join_args(split, concat_list=str(listing), video_src=video_src, audio_src=audio_src,
                                      output=str(joined_out), ffmpeg=ffmpeg)  # fmt: skip
    join_wall, join_cpu = timed_cpu(join_argv)
    for path, _ in parts:
        Path(path).unlink(missing_ok=True)
    cpu_ratio = (sum(cpus) + join_cpu) / single_cpu
    critical = max(walls) + join_wall
    path_ratio = critical / (single_wall / CHUNKS)
    log(f"  chunks: {[round(w, 1) for w in walls]} s, join {join_wall:.1f} s; CPU {cpu_ratio:.3f}x, "
        f"critical path {critical:.1f} s = {path_ratio:.3f}x single/{CHUNKS}")  # fmt: skip
    seams = [c.start for c in chunks[1:]]
    gaps = []
    for at in seams:
        window = (max(0.0, at - 1.0), 2.0)
        gaps.append(vmaf(single_out, clip, window=window) - vmaf(joined_out, clip, window=window))
    single_out.unlink(missing_ok=True)
    joined_out.unlink(missing_ok=True)
    ctx.raw["chunks"] = {"single_wall_s": single_wall, "single_cpu_s": single_cpu, "chunk_wall_s": walls,
                         "chunk_cpu_s": cpus, "join_wall_s": join_wall, "join_cpu_s": join_cpu,
                         "seam_vmaf_single_minus_chunked": gaps}  # fmt: skip
    worst = max(gaps, key=abs)
    return [
        Figure("chunks: total CPU / single", [cpu_ratio], "x", "<= 1.10", cpu_ratio <= 1.10,
               note=f"{spec.label} -> mp4 {ctx.sizes.resolution}, {CHUNKS} chunks"),
        Figure(f"chunks: critical path / (single / {CHUNKS})", [path_ratio], "x", "<= 1.25", path_ratio <= 1.25),
        Figure("  single process", [single_wall], "s"),
        Figure("  longest chunk + join", [critical], "s"),
        Figure("  seam VMAF, single - chunked (worst of 7)", [worst], "", "|x| <= 0.5", abs(worst) <= 0.5),
    ]  # fmt: skip


# -- cut ---------------------------------------------------------------------------------------------


def fig_cut(ctx: Context) -> list[Figure]:
    sz = ctx.sizes
    log(
        f"cut: {sz.segments} x {sz.segment:g} s from {sz.long.label} vs {sz.straight.label} straight, "
        f"both mp4 {sz.resolution}"
    )
    long, straight = ctx.asset(sz.long), ctx.asset(sz.straight)
    segments = cut_segments(long["duration"], sz.segments, sz.segment)
    cut = ctx.driver.completed_cut(long["id"], segments)
    body_cut, body_straight = ctx.video_body(long, cut), ctx.video_body(straight)
    cut_plan = ctx.driver.plan_for(long["id"], spec_of(body_cut), cut_id=cut["id"])
    straight_plan = ctx.driver.plan_for(straight["id"], spec_of(body_straight))
    out_cut, out_straight = ctx.work / "bare-cut.mp4", ctx.work / "bare-straight.mp4"
    argv_cut = bare_argv(*cut_plan, out_cut)
    argv_straight = bare_argv(*straight_plan, out_straight)
    if len(segments) > BATCH_SEGMENTS:
        log(f"  WARNING: over {BATCH_SEGMENTS} segments the encoder batches: the bare side (one command) differs")
    ctx.raw["cut_segments"] = segments
    ctx.raw["cut_bare_argv"] = argv_cut
    t_cut: list[float] = []
    t_straight: list[float] = []
    b_cut: list[float] = []
    b_straight: list[float] = []
    durations: dict[str, float] = {}

    same_plan: list[bool | None] = []

    def service(body: dict[str, Any], into: list[float], label: str) -> Callable[[], None]:
        def side() -> None:
            t = ctx.driver.timed_render(body)
            if label == "cut":
                same_plan.append(ctx.driver.same_plan_as_service(t.render["id"], cut_plan[0]))
            ctx.driver.delete_render(t.render["id"])
            into.append(t.wall)
            durations[label] = t.render["result"]["duration"]

        return side

    def bare(argv: list[str], out: Path, into: list[float]) -> Callable[[], None]:
        return lambda: into.append(run_bare(argv, out))

    ratios: list[float] = []
    bare_ratios: list[float] = []
    for i in range(ctx.runs):
        alternate(i, [service(body_cut, t_cut, "cut"), service(body_straight, t_straight, "straight")])
        time.sleep(SETTLE)
        alternate(i + 1, [bare(argv_cut, out_cut, b_cut), bare(argv_straight, out_straight, b_straight)])
        ratios.append(t_cut[-1] / t_straight[-1])
        bare_ratios.append(b_cut[-1] / b_straight[-1])
        log(
            f"  run {i + 1}/{ctx.runs}: service cut {t_cut[-1]:.2f} s / straight {t_straight[-1]:.2f} s = "
            f"{ratios[-1]:.3f}; bare {b_cut[-1]:.2f} / {b_straight[-1]:.2f} = {bare_ratios[-1]:.3f}"
        )
        time.sleep(SETTLE)
    ctx.raw["cut"] = {
        "service_cut_s": t_cut,
        "service_straight_s": t_straight,
        "ratio": ratios,
        "bare_cut_s": b_cut,
        "bare_straight_s": b_straight,
        "bare_ratio": bare_ratios,
        "output_durations_s": durations,
        "same_plan_as_runtime": same_plan,
    }
    if False in same_plan:
        log("  WARNING: the runtime's own plan for the cut differs from the one the bare side ran")
    log(f"  output durations: {durations}")
    target = 1.5
    return [
        Figure("cut: 10 segments / straight (service)", ratios, "x", f"<= {target:.1f}", median(ratios) <= target),
        Figure("  service cut render", t_cut, "s"),
        Figure("  service straight render", t_straight, "s"),
        Figure("  cut / straight (bare ffmpeg)", bare_ratios, "x"),
    ]


# -- cancel ------------------------------------------------------------------------------------------


def fig_cancel(ctx: Context) -> list[Figure]:
    spec = ctx.sizes.long
    log(f"cancel: {ctx.cancels} renders of {spec.label} -> mp4 {ctx.sizes.resolution}, DELETEd mid-encode")
    asset = ctx.asset(spec)
    body = ctx.video_body(asset)
    after_204: list[float] = []
    latency: list[float] = []
    total: list[float] = []
    zombies_at_gone = 0
    zombies_after_2s = 0
    leftovers = 0
    not_404 = 0
    roles: Counter[str] = Counter()
    for i in range(ctx.cancels):
        resp = ctx.driver.client.post("/v1/renders", json=body)
        if resp.status_code != 201:
            raise BenchError(f"cancel run {i + 1}: POST answered {resp.status_code}: {resp.text[:300]}")
        rid = resp.json()["id"]
        ctx.driver._wait(f"/v1/renders/{rid}", lambda r: r["state"] != "pending" and r["progress"] > 0, 300)
        time.sleep(0.3 + 0.4 * (i % 4))  # cancel at varying points of the encode
        pids = encoder_pids(ctx.service, rid)
        roles.update(pids.values())
        if "ffmpeg" not in pids.values():
            log(f"  run {i + 1}: WARNING: no ffmpeg process found for {rid} (pids: {pids})")
        t0 = time.perf_counter()
        resp = ctx.driver.client.delete(f"/v1/renders/{rid}")
        t1 = time.perf_counter()
        if resp.status_code != 204:
            raise BenchError(f"cancel run {i + 1}: DELETE answered {resp.status_code}: {resp.text[:300]}")
        deadline = t1 + 30
        while any(alive(p) for p in pids) and time.perf_counter() < deadline:
            time.sleep(0.001)
        t2 = time.perf_counter()
        zombies_at_gone += sum(proc_state(p) == "Z" for p in pids)
        after_204.append(t2 - t1)
        latency.append(t1 - t0)
        total.append(t2 - t0)
        out_dir = ctx.service.embedded.storage.path(f"renders/{rid}")
        time.sleep(2.0)
        zombies_after_2s += sum(proc_state(p) == "Z" for p in pids)
        leftovers += int(out_dir.exists())
        not_404 += int(ctx.driver.client.get(f"/v1/renders/{rid}").status_code != 404)
        log(
            f"  cancel {i + 1}/{ctx.cancels}: DELETE took {(t1 - t0) * 1000:.1f} ms, "
            f"204 -> processes gone {(t2 - t1) * 1000:.1f} ms "
            f"(pids {sorted(pids)} = {sorted(pids.values())})"
        )
    ctx.raw["cancel"] = {
        "after_204_s": after_204,
        "delete_latency_s": latency,
        "delete_sent_to_gone_s": total,
        "pid_roles": dict(roles),
        "zombies_when_gone": zombies_at_gone,
        "zombies_after_2s": zombies_after_2s,
        "output_dirs_left": leftovers,
        "reads_not_404": not_404,
    }
    if zombies_after_2s:
        log(f"  note: {zombies_after_2s} killed process(es) were still unreaped zombies 2 s later")
    target = 2.0
    ok = bool(after_204) and max(after_204) < target and leftovers == 0 and not_404 == 0
    return [
        Figure(
            "cancel: 204 -> encoder+ffmpeg gone",
            after_204,
            "s",
            f"< {target:g} s (max)",
            ok,
            note=f"{leftovers} output dirs left, {not_404} reads not 404",
        ),
        Figure("  DELETE sent -> 204", latency, "s"),
        Figure("  DELETE sent -> processes gone", total, "s"),
    ]


# -- idempotency -------------------------------------------------------------------------------------


def burst(
    service: Service, body: dict[str, Any], n: int
) -> tuple[list[tuple[int, str | None]], list[tuple[float, float]]]:
    """`n` identical POSTs at once, one thread and one connection each: (status, id) and
    (sent, answered) per request."""
    clients = [service.client() for _ in range(n)]
    for c in clients:
        c.get("/healthz")  # open each connection before the barrier: the POSTs then race for real
    barrier = threading.Barrier(n)
    results: list[tuple[int, str | None]] = [(0, None)] * n
    times: list[tuple[float, float]] = [(0.0, 0.0)] * n

    def post(k: int, client: httpx.Client) -> None:
        barrier.wait()
        t0 = time.perf_counter()
        try:
            r = client.post("/v1/renders", json=body)
            results[k] = (r.status_code, r.json().get("id") if r.status_code in (200, 201) else None)
        except Exception as exc:
            results[k] = (-1, repr(exc))
        times[k] = (t0, time.perf_counter())

    threads = [threading.Thread(target=post, args=(k, c)) for k, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for c in clients:
        c.close()
    return results, times


def fig_idempotency(ctx: Context) -> list[Figure]:
    asset = ctx.asset(ctx.sizes.overhead)
    body = {"asset_id": asset["id"], "output": {"format": "m4a"}}
    log(f"idempotency: {CONCURRENT_POSTS} concurrent identical POSTs (own connection each), {ctx.runs} runs")
    created: list[float] = []
    answered_201: list[float] = []
    distinct: list[float] = []
    slowest: list[float] = []
    others = 0
    runs_raw = []
    for i in range(ctx.runs):
        results, times = burst(ctx.service, body, CONCURRENT_POSTS)
        spread = max(t for t, _ in times) - min(t for t, _ in times)
        slowest.append(max(b - a for a, b in times))
        statuses = Counter(s for s, _ in results)
        ids = {rid for s, rid in results if s in (200, 201) and rid}
        listed = ctx.driver.client.get("/v1/renders", params={"asset_id": asset["id"], "limit": 100}).json()["data"]
        mine = [r for r in listed if r["output"]["format"] == "m4a" and r["cut_id"] is None]
        created.append(len(mine))
        answered_201.append(statuses.get(201, 0))
        distinct.append(len(ids))
        others += sum(n for s, n in statuses.items() if s not in (200, 201))
        runs_raw.append(
            {
                "statuses": dict(statuses),
                "distinct_ids": sorted(ids),
                "listed": [r["id"] for r in mine],
                "send_spread_s": spread,
                "latencies_s": [b - a for a, b in times],
            }
        )
        log(
            f"  run {i + 1}/{ctx.runs}: statuses {dict(statuses)}, distinct ids {len(ids)}, listed {len(mine)}; "
            f"sends within {spread * 1000:.1f} ms, slowest answer {slowest[-1]:.3f} s"
        )
        for rid in ids | {r["id"] for r in mine}:
            ctx.driver.delete_render(rid)
        time.sleep(2.5)  # let the per-key rate bucket (50/s, burst 100) refill before the next burst
    ctx.raw["idempotency"] = runs_raw
    ok = all(x == 1 for x in created + answered_201 + distinct) and others == 0
    return [
        Figure(
            f"idempotency: renders listed after {CONCURRENT_POSTS} POSTs",
            created,
            "",
            "== 1",
            ok,
            note=f"{others} answers other than 200/201",
        ),
        Figure("  201 answers", answered_201, "", "== 1", all(x == 1 for x in answered_201)),
        Figure("  distinct render ids", distinct, "", "== 1", all(x == 1 for x in distinct)),
        Figure("  POST latency (slowest of the burst)", slowest, "s"),
    ]


# -- machine -----------------------------------------------------------------------------------------


def _out(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def busy_processes() -> list[str]:
    """Other pytest / ffmpeg processes: they share the two cores with the benchmark."""
    me = str(os.getpid())
    found = []
    for pattern in ("pytest", "ffmpeg"):
        for line in _out(["pgrep", "-af", pattern]).splitlines():
            pid = line.split(" ", 1)[0]
            if pid != me and "pgrep" not in line:
                found.append(line[:160])
    return found


def machine() -> dict[str, Any]:
    ffmpeg = ffmpeg_path()
    return {
        "nproc": os.cpu_count(),
        "cpu": next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")
            ),
            platform.processor(),
        ),
        "free_h": _out(["free", "-h"]),
        "loadavg": os.getloadavg(),
        "ffmpeg": ffmpeg,
        "ffmpeg_version": _out([ffmpeg, "-hide_banner", "-version"]).splitlines()[0] if ffmpeg else "",
        "python": platform.python_version(),
        "kernel": platform.release(),
        "git": _out(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "git_dirty": bool(_out(["git", "-C", str(ROOT), "status", "--porcelain", "--", "roughy"])),
    }


# -- main ------------------------------------------------------------------------------------------


RUNNERS: dict[str, Callable[[Context], list[Figure]]] = {
    "overhead": fig_overhead,
    "cut": fig_cut,
    "cancel": fig_cancel,
    "idempotency": fig_idempotency,
    "passthrough": fig_passthrough,
    "ratecontrol": fig_ratecontrol,
    "chunks": fig_chunks,
}


def parse_only(values: list[str] | None) -> list[str]:
    if not values:
        return list(FIGURES)
    chosen: list[str] = []
    for value in values:
        for name in value.split(","):
            name = name.strip()
            if name not in FIGURES:
                raise SystemExit(f"--only: unknown figure {name!r} (choose from {', '.join(FIGURES)})")
            if name not in chosen:
                chosen.append(name)
    return [f for f in FIGURES if f in chosen]  # always in the documented order


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--only",
        action="append",
        metavar="FIGURE",
        help=f"run only these figures ({'|'.join(FIGURES)}); repeatable or a comma list",
    )
    p.add_argument("--runs", type=int, default=3, help="runs per figure (default 3); the table quotes medians")
    p.add_argument("--cancels", type=int, help="cancels to time (default: max(5, runs))")
    p.add_argument("--quick", action="store_true", help="small sizes (720p, 10 s / 2 min sources): checks the harness")
    p.add_argument("--json", metavar="OUT", type=Path, help="also write the results (and raw samples) as JSON")
    p.add_argument("--keep", action="store_true", help="keep the service's temp data directory")
    p.add_argument("--generate-only", action="store_true", help="only generate (cache) the sources, then exit")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    only = parse_only(args.only)
    sizes = QUICK if args.quick else FULL
    if args.generate_only:
        for spec in dict.fromkeys((sizes.overhead, sizes.straight, sizes.long)):
            log(f"{spec.label}: {source(spec, log=log)}")
        return 0
    info = machine()
    busy = busy_processes()
    log(
        f"roughy bench ({sizes.name}): {', '.join(only)}; {args.runs} run(s); {info['nproc']} cpus, "
        f"load {info['loadavg'][0]:.2f}; {info['ffmpeg_version']}"
    )
    if info["loadavg"][0] >= 1.0 or busy:
        log(
            f"WARNING: the machine is not quiet (load {info['loadavg'][0]:.2f}; {len(busy)} pytest/ffmpeg "
            "processes): figures will be noisy"
        )
        for line in busy[:10]:
            log(f"    {line}")

    data = Path(tempfile.mkdtemp(prefix="roughy-bench-"))
    started = time.perf_counter()
    service = start_service(data / "data", workers=1, starter_credits=100)
    driver = Driver(service, log=log)
    work = data / "bare"
    work.mkdir()
    ctx = Context(sizes, args.runs, args.cancels or max(5, args.runs), service, driver, work)
    figures: list[Figure] = []
    errors: dict[str, str] = {}
    try:
        for name in only:
            try:
                figures += RUNNERS[name](ctx)
            except BenchError as exc:
                log(f"{name}: ERROR: {exc}")
                errors[name] = str(exc)
                figures.append(Figure(f"{name}: ERROR", [], "", "-", False, note=str(exc)[:200]))
    finally:
        ctx.raw["executor_cancel_marks_left"] = len(getattr(service.embedded.runtime.executor, "_cancelled", ()))
        driver.close()
        service.stop()
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)
        else:
            log(f"kept the data directory: {data}")
    elapsed = time.perf_counter() - started

    print()
    print(
        f"roughy bench, {sizes.name} sizes, {args.runs} run(s), {elapsed / 60:.1f} min, load at start "
        f"{info['loadavg'][0]:.2f}{' (NOT quiet)' if info['loadavg'][0] >= 1.0 or busy else ''}"
    )
    print(table(figures))
    for f in figures:
        if f.note:
            print(f"  {f.name.strip()}: {f.note}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "mode": sizes.name,
            "runs": args.runs,
            "figures_run": only,
            "elapsed_s": round(elapsed, 1),
            "machine": info,
            "busy_at_start": busy,
            "sizes": {k: (asdict(v) if isinstance(v, SourceSpec) else v) for k, v in asdict(sizes).items()},
            "figures": [{**asdict(f), "median": median(f.samples) if f.samples else None} for f in figures],
            "raw": ctx.raw,
            "errors": errors,
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str))
        log(f"wrote {args.json}")
    failed = [f for f in figures if f.passed is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
