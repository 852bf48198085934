"""The ffmpeg runner: time limit, failures, process group, and the temp-file promise."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from roughy.core.models import Format
from roughy.core.plan import EncodePlan, VideoPlan
from roughy.encoder import runner
from roughy.encoder.errors import EncodeFailed, EncodeTimeout, InvalidMedia
from roughy.encoder.tasks import render
from roughy.encoder.tools import ffmpeg_path
from tests.encoder.conftest import PlanFor


def slow_plan(plan: EncodePlan) -> EncodePlan:
    """The same render upscaled 4x: slow enough (about a second) to interrupt."""
    assert plan.video is not None
    video = VideoPlan(width=1280, height=960, fps=plan.video.fps, bitrate_kbps=4000)
    return EncodePlan(format=Format.MP4, duration=plan.duration, video=video, audio=plan.audio)


def test_time_limit_kills_the_encode_and_leaves_no_temp(tmp_path: Path, stereo_clip: Path, plan_for: PlanFor) -> None:
    out = tmp_path / "out" / "late.mp4"
    started = time.monotonic()
    with pytest.raises(EncodeTimeout, match="time limit of 0.2 s") as info:
        render(
            slow_plan(plan_for(stereo_clip)),
            video_src=str(stereo_clip),
            audio_src=str(stereo_clip),
            output=str(out),
            time_limit=0.2,
        )
    assert time.monotonic() - started < 3
    assert info.value.exit_code == 4 and info.value.code == "encode_timeout"
    assert list(out.parent.iterdir()) == []  # neither the output nor a temp


def test_failure_removes_the_temp_and_keeps_an_existing_output(tmp_path: Path, plan_for: PlanFor) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 4096)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous render")
    plan = EncodePlan(format=Format.MP4, duration=1.0, video=VideoPlan(160, 120, 25.0, 500), audio=None)
    with pytest.raises(InvalidMedia) as info:
        render(plan, video_src=str(junk), audio_src=None, output=str(out))
    assert info.value.exit_code == 3
    assert "Traceback" not in info.value.message and "0x" not in info.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.mp4", "out.mp4"]
    assert out.read_bytes() == b"previous render"


def test_missing_input_is_a_plain_failure(tmp_path: Path) -> None:
    argv = [ffmpeg_path(), "-nostdin", "-i", str(tmp_path / "missing.mp4"), "-f", "null", "-"]
    with pytest.raises(EncodeFailed, match="No such file"):
        runner.run(argv, duration=1.0, time_limit=30)


def test_ffmpeg_stays_in_our_process_group(stereo_clip: Path) -> None:
    """The embedded runtime kills roughy-encode's whole group on cancel: ffmpeg must be in it."""
    groups: list[int] = []

    def look(_: float) -> None:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as f:
                groups.extend(os.getpgid(int(pid)) for pid in f.read().split())

    argv = [
        ffmpeg_path(), "-nostdin", "-i", str(stereo_clip), "-f", "null",
        "-progress", "pipe:1", "-nostats", "-",
    ]  # fmt: skip
    runner.run(argv, duration=2.0, time_limit=30, on_progress=look)
    assert groups and set(groups) == {os.getpgid(0)}


def test_a_raising_callback_kills_ffmpeg(stereo_clip: Path) -> None:
    children: list[int] = []

    def boom(_: float) -> None:
        with open(f"/proc/self/task/{os.getpid()}/children") as f:
            children.extend(int(pid) for pid in f.read().split())
        raise RuntimeError("stop")

    argv = [
        ffmpeg_path(), "-nostdin", "-re", "-i", str(stereo_clip), "-f", "null",
        "-progress", "pipe:1", "-stats_period", "0.1", "-nostats", "-",
    ]  # fmt: skip
    with pytest.raises(RuntimeError, match="stop"):
        runner.run(argv, duration=2.0, time_limit=30, on_progress=boom)
    assert children
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}") or _is_zombie_free(pid)


def _is_zombie_free(pid: int) -> bool:
    """True when /proc/pid belongs to some other, live process (pid reuse), not our zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return True


def test_a_stopped_scope_kills_its_running_ffmpeg_and_refuses_the_next(stereo_clip: Path) -> None:
    """The chunks of one render share a Scope: once it is stopped (a chunk failed), an ffmpeg
    that starts afterwards, from a thread that was between its start and its ffmpeg's, is killed
    at once instead of running its chunk out."""
    argv = [ffmpeg_path(), "-nostdin", "-re", "-i", str(stereo_clip), "-f", "null", "-progress", "pipe:1",
            "-nostats", "-"]  # fmt: skip
    scope = runner.Scope()
    failures: list[BaseException] = []

    def running() -> None:
        try:
            runner.run(argv, duration=2.0, time_limit=30, scope=scope)
        except EncodeFailed as exc:
            failures.append(exc)

    thread = threading.Thread(target=running)
    thread.start()
    time.sleep(0.5)  # its ffmpeg runs in real time: 2 s
    begun = time.monotonic()
    scope.stop()
    thread.join(timeout=10)
    assert failures and time.monotonic() - begun < 1.0  # killed, not waited for
    begun = time.monotonic()
    with pytest.raises(EncodeFailed, match="stopped"):
        runner.run(argv, duration=2.0, time_limit=30, scope=scope)  # refused: it would run 2 s
    assert time.monotonic() - begun < 1.0
