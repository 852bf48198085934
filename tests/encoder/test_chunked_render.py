"""Chunk-parallel renders (issue 9): the same frames, timestamps and sync as one process.

Real ffmpeg on real files. Chunks here are a few seconds (the planner's policy is a setting);
the seams are what is tested, not the length."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import pytest

from roughy.core.chunks import Chunking, chunk_segments
from roughy.core.models import Format, Resolution
from roughy.core.plan import EncodePlan
from roughy.encoder import tasks
from roughy.encoder.errors import EncoderError
from roughy.encoder.tasks import render
from roughy.encoder.tools import ffmpeg_path
from tests.encoder.conftest import PlanFor
from tests.encoder.measure import beep_onsets, flash_times
from tests.media import make_video

FRAME = 1 / 25


def chunked(plan: EncodePlan, seconds: float) -> EncodePlan:
    assert plan.video is not None
    chunks = chunk_segments(plan.duration, plan.video.fps, Chunking(seconds, 0.0))
    assert chunks is not None and len(chunks) >= 3
    return replace(plan, video=replace(plan.video, stream_copy=False), chunks=chunks)  # an encode, whatever the source


def packet_times(path: Path, kind: str) -> list[float]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0] if kind == "video" else c.streams.audio[0]
        return sorted(round(float(p.pts * stream.time_base), 6) for p in c.demux(stream) if p.size)


def min_psnr(a: Path, b: Path) -> float:
    """The lowest per-frame PSNR (Y) of `a` against `b`, frame for frame."""
    argv = [ffmpeg_path(), "-hide_banner", "-nostdin", "-i", str(a), "-i", str(b), "-lavfi",
            "[0:v][1:v]psnr=stats_file=-", "-f", "null", "-"]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    values = [float(v) for v in re.findall(r"psnr_y:([0-9.]+|inf)", out)]
    return min(values)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 s of 1280x720 testsrc2 (moves every frame: a slipped frame shows) with tones."""
    return make_video(tmp_path_factory.mktemp("chunks") / "src.mp4", duration=12.0, width=1280, height=720)


def test_a_chunked_render_is_the_single_render_frame_for_frame(tmp_path: Path, source: Path, plan_for: PlanFor) -> None:
    plan = plan_for(source, resolution=Resolution.P720, audio_bitrate=128)  # 128 < the tones' rate: an encode
    assert plan.video is not None and not plan.video.stream_copy
    plan = replace(plan, video=replace(plan.video, bitrate_kbps=1500))
    single, split = tmp_path / "single.mp4", tmp_path / "chunked.mp4"
    progress: list[float] = []
    render(plan, video_src=str(source), audio_src=None, output=str(single))
    result = render(chunked(plan, 3.0), video_src=str(source), audio_src=None, output=str(split), parallel=2,
                    on_progress=progress.append)  # fmt: skip
    assert packet_times(split, "video") == packet_times(single, "video")  # 300 frames, same timestamps
    assert packet_times(split, "audio") == packet_times(single, "audio")  # audio encoded once, whole
    # Both are encodes of the same source frames: ~44 dB apart; a one-frame slip measures ~23 dB.
    assert min_psnr(split, single) > 35
    assert progress == sorted(progress) and progress[-1] == 1.0 and any(0 < p < 0.95 for p in progress)
    assert (result.width, result.height, result.copied) == (1280, 720, [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunked.mp4", "single.mp4"]  # no intermediates left


def test_sync_holds_across_every_seam(tmp_path: Path, sync_clip: Path, plan_for: PlanFor) -> None:
    """A flash and a beep every second, chunks of 1.2 s: every marker near or after a seam."""
    plan = chunked(plan_for(sync_clip, Format.MOV, audio_bitrate=128), 1.2)
    out = tmp_path / "synced.mov"
    render(plan, video_src=str(sync_clip), audio_src=str(sync_clip), output=str(out), parallel=2)
    flashes, beeps = flash_times(out), beep_onsets(out)
    assert len(flashes) == len(beeps) == 6
    for k, (flash, beep) in enumerate(zip(flashes, beeps, strict=True)):
        assert flash == pytest.approx(k + 0.4, abs=FRAME)
        assert beep == pytest.approx(flash, abs=FRAME)


def test_a_failed_chunk_fails_the_render_and_leaves_nothing(tmp_path: Path, source: Path, plan_for: PlanFor) -> None:
    plan = chunked(plan_for(source, resolution=Resolution.P720, audio_bitrate=128), 3.0)
    work = tmp_path / "work"
    work.mkdir()
    gone = tmp_path / "gone.mp4"  # the source went away: every chunk fails, the first one fails the render
    with pytest.raises(EncoderError):
        render(plan, video_src=str(gone), audio_src=None, output=str(work / "out.mp4"), parallel=2)
    assert list(work.iterdir()) == []  # no output, no chunk, no list


def encode_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "roughy.encoder", *args]
    return subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120)


def test_chunks_encoded_by_separate_processes_join_into_the_single_render(
    tmp_path: Path, source: Path, plan_for: PlanFor
) -> None:
    """What the pods of a Kubernetes render do: `chunk --index I` per process (the index from
    $JOB_COMPLETION_INDEX, as an Indexed Job sets it), then one `join`."""
    plan = plan_for(source, resolution=Resolution.P720, audio_bitrate=128)
    assert plan.video is not None
    plan = replace(plan, video=replace(plan.video, bitrate_kbps=1500))
    single = tmp_path / "single.mp4"
    render(plan, video_src=str(source), audio_src=None, output=str(single))
    split = chunked(plan, 4.0)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(split.to_json()))
    assert split.chunks is not None
    parts = []
    for index in range(len(split.chunks)):
        part = tmp_path / f"chunk{index}.mov"
        done = encode_cli("chunk", "--plan", str(plan_file), "--video", str(source), "--output", str(part),
                          env={"JOB_COMPLETION_INDEX": str(index)})  # fmt: skip
        assert done.returncode == 0, done.stderr
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        assert lines[-1] == {"result": {"chunk": index, "size_bytes": part.stat().st_size, "encoder": "libx264"}}
        parts.append(part)
    out = tmp_path / "joined.mp4"
    chunk_args = [arg for part in parts for arg in ("--chunk", str(part))]
    done = encode_cli("join", "--plan", str(plan_file), "--video", str(source), *chunk_args, "--output", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])["result"]
    assert result["size_bytes"] == out.stat().st_size and result["width"] == 1280
    assert packet_times(out, "video") == packet_times(single, "video")
    assert packet_times(out, "audio") == packet_times(single, "audio")
    assert min_psnr(out, single) > 35

    missing = encode_cli("chunk", "--plan", str(plan_file), "--video", str(source), "--index", "9",
                         "--output", str(tmp_path / "x.mov"))  # fmt: skip
    assert missing.returncode == 2 and "chunk 9 does not exist" in missing.stdout
    short = encode_cli("join", "--plan", str(plan_file), "--video", str(source), "--chunk", str(parts[0]),
                       "--output", str(tmp_path / "y.mp4"))  # fmt: skip
    assert short.returncode == 2 and "were given to join" in short.stdout
    assert not (tmp_path / "x.mov").exists() and not (tmp_path / "y.mp4").exists()


def test_a_failed_chunk_kills_the_chunks_still_running(
    tmp_path: Path, source: Path, plan_for: PlanFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunk 0 fails at once while chunk 1 reads its source at half speed (6 s for its 3 s):
    the render fails well before chunk 1 could have finished, and no chunk is left encoding."""
    plan = chunked(plan_for(source, resolution=Resolution.P720, audio_bitrate=128), 3.0)
    real = tasks.build_chunk_args
    started: list[float] = []

    def rigged(plan: EncodePlan, chunk: Any, **kwargs: Any) -> list[str]:
        started.append(chunk.start)
        if chunk.start == 0:
            return real(plan, chunk, **{**kwargs, "video_src": str(tmp_path / "missing.mp4")})
        argv = real(plan, chunk, **kwargs)
        at = argv.index("-i")
        return [*argv[:at], "-readrate", "0.5", *argv[at:]]

    monkeypatch.setattr(tasks, "build_chunk_args", rigged)
    work = tmp_path / "work"
    work.mkdir()
    begun = time.monotonic()
    with pytest.raises(EncoderError):
        tasks.render(plan, video_src=str(source), audio_src=None, output=str(work / "out.mp4"), parallel=2)
    assert time.monotonic() - begun < 4.5  # chunk 1 was killed, not waited for
    assert 3.0 in started  # chunk 1 was running (a queued chunk is refused or never taken)
    assert list(work.iterdir()) == []
    assert not [p for p in Path("/proc").glob("[0-9]*/cmdline") if str(work).encode() in _read(p)]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
