"""`roughy-encode` as the runtimes run it: a process speaking JSON lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from roughy.core.models import Format
from roughy.core.plan import EncodePlan, VideoPlan
from roughy.encoder.cli import ProgressReporter, main
from tests.encoder.conftest import PlanFor

REPO = Path(__file__).resolve().parents[2]


def encoder(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "roughy.encoder", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # as the embedded runtime starts it
    )


def slow_plan_file(tmp_path: Path, plan: EncodePlan) -> Path:
    """The plan upscaled 4x: an encode of about a second, long enough to report progress."""
    assert plan.video is not None
    video = VideoPlan(width=1280, height=960, fps=plan.video.fps, bitrate_kbps=4000)
    slow = EncodePlan(format=Format.MP4, duration=plan.duration, video=video, audio=plan.audio)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(slow.to_json()))
    return path


def test_render_prints_monotonic_progress_then_the_result(tmp_path: Path, stereo_clip: Path, plan_for: PlanFor) -> None:
    plan = slow_plan_file(tmp_path, plan_for(stereo_clip))
    out = tmp_path / "out.mp4"
    proc = encoder("render", "--plan", str(plan), "--video", str(stereo_clip), "--output", str(out))
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert lines[0] == {"encoder": "libx264"}  # first, before any progress
    progress = [line["progress"] for line in lines[1:-1]]
    assert len(progress) >= 2 and progress[-1] == 1.0
    assert progress == sorted(progress) and len(set(progress)) == len(progress)
    assert all(0 <= p <= 1 for p in progress)
    result = lines[-1]["result"]
    assert result["width"] == 1280 and result["height"] == 960 and result["format"] == "mp4"
    assert result["size_bytes"] == out.stat().st_size
    assert "libx264" in stderr  # the command line is logged


def test_render_of_junk_exits_3_with_a_clear_error(tmp_path: Path, stereo_clip: Path, plan_for: PlanFor) -> None:
    plan = slow_plan_file(tmp_path, plan_for(stereo_clip))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"definitely not a movie" * 50)
    out = tmp_path / "out.mp4"
    proc = encoder("render", "--plan", str(plan), "--video", str(junk), "--output", str(out))
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3
    error = json.loads(stdout.splitlines()[-1])["error"]
    assert error["code"] == "invalid_media"
    assert "Invalid data found" in error["message"] and "Traceback" not in error["message"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.mp4", "plan.json"]


def test_the_outcome_goes_to_the_termination_log_as_one_json_object(
    tmp_path: Path, stereo_clip: Path, plan_for: PlanFor, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What a pod's status carries (state.terminated.message): the operator reads it there."""
    log = tmp_path / "termination-log"
    monkeypatch.setenv("ROUGHY_TERMINATION_LOG", str(log))
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(plan_for(stereo_clip).to_json()))
    out = tmp_path / "out.mp4"
    assert main(["render", "--plan", str(plan), "--video", str(stereo_clip), "--output", str(out)]) == 0
    outcome = json.loads(log.read_text())
    assert outcome["encoder"] == "libx264" and outcome["result"]["size_bytes"] == out.stat().st_size
    assert "error" not in outcome

    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a movie" * 50)
    assert main(["render", "--plan", str(plan), "--video", str(junk), "--output", str(out)]) == 3
    outcome = json.loads(log.read_text())
    assert outcome["error"]["code"] == "invalid_media" and "result" not in outcome


def test_sigterm_kills_ffmpeg_and_removes_the_temp(tmp_path: Path, stereo_clip: Path, plan_for: PlanFor) -> None:
    plan = slow_plan_file(tmp_path, plan_for(stereo_clip))
    outdir = tmp_path / "out"
    outdir.mkdir()
    proc = encoder("render", "--plan", str(plan), "--video", str(stereo_clip), "--output", str(outdir / "o.mp4"))
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline()) == {"encoder": "libx264"}
    first = json.loads(proc.stdout.readline())
    assert "progress" in first, first
    with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
        children = [int(pid) for pid in f.read().split()]
    assert children and any(p.name.endswith(".part.mp4") for p in outdir.iterdir())
    proc.send_signal(signal.SIGTERM)  # only roughy-encode, not its group
    proc.communicate(timeout=10)
    assert proc.returncode == 143
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}")
    assert list(outdir.iterdir()) == []


def test_bad_plan_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text('{"format": "avi"}')
    code = main(["render", "--plan", str(plan), "--video", "x.mp4", "--output", str(tmp_path / "o.mp4")])
    assert code == 2
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "invalid_plan"


def test_probe_extract_and_silence_subcommands(
    tmp_path: Path, stereo_clip: Path, tones_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["probe", str(stereo_clip)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["video"]["width"] == 320 and info["audio"]["channels"] == 2

    assert main(["extract-audio", str(stereo_clip), str(tmp_path / "a.mka")]) == 0
    assert json.loads(capsys.readouterr().out)["codec"] == "aac"

    assert main(["silence", str(tones_clip), "--min-silence", "0.5", "--threshold-db", "-40"]) == 0
    spans = json.loads(capsys.readouterr().out)
    assert len(spans) == 2 and all(len(span) == 2 for span in spans)

    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"junk")
    assert main(["probe", str(junk)]) == 3
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "invalid_media"


def test_progress_reporter_throttles_and_only_moves_forward() -> None:
    now = [0.0]
    sent: list[object] = []
    reporter = ProgressReporter(sent.append, clock=lambda: now[0])
    for t, value in [(0.0, 0.1), (0.1, 0.2), (0.3, 0.3), (0.4, 0.25), (0.6, 0.2), (0.9, 0.5), (1.0, 1.0)]:
        now[0] = t
        reporter(value)
    reporter.finish()
    assert sent == [{"progress": 0.1}, {"progress": 0.3}, {"progress": 0.5}, {"progress": 1.0}]
