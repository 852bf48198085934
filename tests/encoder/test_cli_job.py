"""`roughy-encode render` as a Kubernetes Job runs it: plan and URLs from the environment, the
output PUT to a presigned URL, NVENC checked and replaced by libx264 when it does not work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import pytest

from roughy.core.models import Format
from roughy.core.plan import EncodePlan
from roughy.encoder import tools, upload
from roughy.encoder.cli import main
from roughy.encoder.probe import probe
from tests.encoder.conftest import PlanFor
from tests.encoder.http_media import MediaServer

REPO = Path(__file__).resolve().parents[2]
ENV_NAMES = (
    "ROUGHY_PLAN",
    "ROUGHY_VIDEO_URL",
    "ROUGHY_AUDIO_URL",
    "ROUGHY_OUTPUT_URL",
    "ROUGHY_OUTPUT_CONTENT_TYPE",
    "ROUGHY_ENCODER",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(upload, "RETRY_DELAYS", (0.0, 0.0))


@pytest.fixture
def server() -> Iterator[MediaServer]:
    with MediaServer() as media_server:
        yield media_server


def plan_json(plan: EncodePlan) -> str:
    return json.dumps(plan.to_json())


def lines_of(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_plan_and_sources_from_the_environment(
    tmp_path: Path,
    stereo_clip: Path,
    plan_for: PlanFor,
    server: MediaServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ROUGHY_PLAN", plan_json(plan_for(stereo_clip)))
    monkeypatch.setenv("ROUGHY_VIDEO_URL", server.serve("/v.mp4", stereo_clip))
    out = tmp_path / "out.mp4"
    assert main(["render", "--output", str(out)]) == 0
    lines = lines_of(capsys)
    assert lines[0] == {"encoder": "libx264"}
    assert [line["progress"] for line in lines[1:-1]][-1] == 1.0
    assert lines[-1]["result"]["size_bytes"] == out.stat().st_size
    assert server.served("/v.mp4") > 0


def test_flags_win_over_the_environment(
    tmp_path: Path,
    stereo_clip: Path,
    plan_for: PlanFor,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ROUGHY_PLAN", "not even json")
    monkeypatch.setenv("ROUGHY_VIDEO_URL", "http://127.0.0.1:1/never.mp4")
    monkeypatch.setenv("ROUGHY_AUDIO_URL", "http://127.0.0.1:1/never.mka")
    plan = tmp_path / "plan.json"
    plan.write_text(plan_json(plan_for(stereo_clip)))
    out = str(tmp_path / "out.mp4")
    assert main(["render", "--plan", str(plan), "--video", str(stereo_clip), "--output", out]) == 0
    assert lines_of(capsys)[-1]["result"]["format"] == "mp4"

    plan.write_text(plan_json(plan_for(stereo_clip, Format.M4A)))
    out = str(tmp_path / "out.m4a")
    assert main(["render", "--plan", str(plan), "--audio", str(stereo_clip), "--output", out]) == 0
    lines = lines_of(capsys)
    assert lines[0] == {"encoder": None}  # an audio format encodes no video
    assert lines[-1]["result"]["format"] == "m4a"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (None, "ROUGHY_PLAN"),
        ("", "ROUGHY_PLAN"),
        ('{"format": "mp4"', "not valid JSON"),
        ('["a list"]', "JSON object"),
        ('{"format": "avi", "duration": 1}', "unusable plan"),
        ('{"format": "mp4"}', "missing"),
    ],
)
def test_an_unusable_plan_in_the_environment_exits_2(
    tmp_path: Path,
    env: str | None,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if env is not None:
        monkeypatch.setenv("ROUGHY_PLAN", env)
    assert main(["render", "--video", "x.mp4", "--output", str(tmp_path / "o.mp4")]) == 2
    (line,) = lines_of(capsys)  # no encoder line: nothing was started
    assert line["error"]["code"] == "invalid_plan" and message in line["error"]["message"]
    assert list(tmp_path.iterdir()) == []


def test_the_output_is_put_to_the_upload_url_then_removed(
    tmp_path: Path,
    stereo_clip: Path,
    plan_for: PlanFor,
    server: MediaServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ROUGHY_PLAN", plan_json(plan_for(stereo_clip)))
    monkeypatch.setenv("ROUGHY_OUTPUT_URL", server.url("/out/r1.mp4?X-Amz-Signature=abc"))
    monkeypatch.setenv("ROUGHY_OUTPUT_CONTENT_TYPE", "video/mp4")
    out = tmp_path / "output.mp4"
    assert main(["render", "--video", str(stereo_clip), "--output", str(out)]) == 0
    assert list(tmp_path.iterdir()) == []  # uploaded, then deleted
    (put,) = server.state.uploads
    assert put.path == "/out/r1.mp4?X-Amz-Signature=abc"
    assert put.headers["content-type"] == "video/mp4"
    assert put.headers["content-length"] == str(len(put.body))
    assert "transfer-encoding" not in put.headers  # object stores refuse chunked presigned PUTs
    lines = lines_of(capsys)
    result = lines[-1]["result"]
    assert result["size_bytes"] == len(put.body)
    assert lines[-2] == {"progress": 1.0}  # said once the output is in its place
    uploaded = tmp_path / "uploaded.mp4"
    uploaded.write_bytes(put.body)
    info = probe(str(uploaded))
    assert info.video is not None and info.video.width == result["width"]


def test_upload_flags_and_the_default_content_type(
    tmp_path: Path, stereo_clip: Path, plan_for: PlanFor, server: MediaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROUGHY_PLAN", plan_json(plan_for(stereo_clip, Format.MP3)))
    monkeypatch.setenv("ROUGHY_OUTPUT_URL", server.url("/from-env"))
    out = str(tmp_path / "o.mp3")
    assert main(["render", "--audio", str(stereo_clip), "--output", out, "--upload-to", server.url("/a")]) == 0
    assert main(["render", "--audio", str(stereo_clip), "--output", out, "--content-type", "x/y"]) == 0
    first, second = server.state.uploads
    assert (first.path, first.headers["content-type"]) == ("/a", "audio/mpeg")  # the format's type
    assert (second.path, second.headers["content-type"]) == ("/from-env", "x/y")


@pytest.mark.parametrize(("status", "attempts"), [(500, 3), (403, 1)])
def test_a_failed_upload_exits_1_and_removes_the_output(
    tmp_path: Path,
    stereo_clip: Path,
    plan_for: PlanFor,
    server: MediaServer,
    status: int,
    attempts: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ROUGHY_PLAN", plan_json(plan_for(stereo_clip)))
    url = server.answer("/out.mp4", status) + "?X-Amz-Signature=topsecret"
    out = tmp_path / "output.mp4"
    assert main(["render", "--video", str(stereo_clip), "--output", str(out), "--upload-to", url]) == 1
    assert list(tmp_path.iterdir()) == []
    assert len(server.state.uploads) == attempts  # 5xx is tried again, 4xx is not
    error = lines_of(capsys)[-1]["error"]
    assert error["code"] == "encode_failed"
    assert f"HTTP {status}" in error["message"] and "uploading the output" in error["message"]
    assert "topsecret" not in error["message"]


def test_an_unreachable_upload_url_exits_1(
    tmp_path: Path, stereo_clip: Path, plan_for: PlanFor, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(plan_json(plan_for(stereo_clip)))
    out = tmp_path / "out" / "o.mp4"
    args = ["render", "--plan", str(plan), "--video", str(stereo_clip), "--output", str(out)]
    assert main([*args, "--upload-to", "http://127.0.0.1:1/o.mp4"]) == 1
    assert "Connection refused" in lines_of(capsys)[-1]["error"]["message"]
    assert list(out.parent.iterdir()) == []


def test_nvenc_falls_back_to_libx264_without_a_gpu(
    tmp_path: Path,
    stereo_clip: Path,
    plan_for: PlanFor,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ok, reason = tools.nvenc_works()
    assert not ok and reason  # no GPU here: ffmpeg says why (no libcuda, no device...)
    monkeypatch.setenv("ROUGHY_PLAN", plan_json(plan_for(stereo_clip)))
    monkeypatch.setenv("ROUGHY_ENCODER", "h264_nvenc")
    out = tmp_path / "o.mp4"
    assert main(["render", "--video", str(stereo_clip), "--output", str(out)]) == 0
    lines = lines_of(capsys)
    assert lines[0] == {"encoder": "libx264"} and "result" in lines[-1]
    assert "h264_nvenc is unavailable" in caplog.text
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.codec.name == "h264"


def test_the_nvenc_check_runs_ffmpeg_with_a_timeout(tmp_path: Path) -> None:
    works = tmp_path / "ffmpeg-ok"
    works.write_text("#!/bin/sh\nexit 0\n")
    hangs = tmp_path / "ffmpeg-hangs"
    hangs.write_text("#!/bin/sh\nexec sleep 10\n")
    for script in (works, hangs):
        script.chmod(0o755)
    assert tools.choose_video_encoder("h264_nvenc", ffmpeg=str(works)) == "h264_nvenc"
    assert tools.nvenc_works(str(hangs), timeout=0.3) == (False, "the NVENC check did not finish within 0.3 s")
    assert tools.choose_video_encoder("libx264", ffmpeg=str(hangs)) == "libx264"  # no check needed
    assert tools.nvenc_works(str(tmp_path / "missing"))[0] is False


def test_a_bad_encoder_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit) as flag:
        main(["render", "--output", "o.mp4", "--encoder", "hevc_nvenc"])
    assert flag.value.code == 2
    monkeypatch.setenv("ROUGHY_ENCODER", "nvenc")
    with pytest.raises(SystemExit) as env:
        main(["render", "--output", "o.mp4"])
    assert env.value.code == 2


class FakeChannel:
    """The API's encoder channel (`/internal/v1/renders/{id}/...`) as `roughy.app.encoding`
    answers it, recording every call with its Authorization header, in order."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str | None, dict[str, Any]]] = []
        channel = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                what = self.path.rsplit("/", 1)[-1]
                channel.calls.append((what, self.headers.get("authorization"), body))
                answer = channel.answers.get(what)
                payload = json.dumps(answer).encode() if answer is not None else b""
                self.send_response(200 if payload else 204)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_job_contract_end_to_end(tmp_path: Path, stereo_clip: Path, plan_for: PlanFor, server: MediaServer) -> None:
    """The container and environment `roughy.kube.jobs` builds, run as a process: no URL in its
    environment; it asks the API for its source at start and for its output's upload once the
    file is encoded, reports progress (the encoder first), all with the token of its file."""
    from roughy.kube.crd import VideoEncoder
    from roughy.kube.jobs import CREDENTIALS_DIR, JobSettings, container

    plan = plan_for(stereo_clip)
    channel = FakeChannel({
        "inputs": {"video": server.serve("/v.mp4", stereo_clip) + "?sig=v", "audio": None},
        "output": {"method": "PUT", "url": server.url("/out?sig=o"), "headers": {}},
    })  # fmt: skip
    try:
        settings = JobSettings(image="roughy-encoder", api_url=channel.url)
        spec = container(plan, VideoEncoder.H264_NVENC, "rnd_contract", settings, 512)
        (tmp_path / "secret").mkdir()
        (tmp_path / "secret" / "token").write_text("tok-123")
        args = list(spec["args"])
        args[args.index("--output") + 1] = str(tmp_path / "output.mp4")  # /tmp/output.mp4 in the pod
        env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
        env.update({item["name"]: item["value"].replace(CREDENTIALS_DIR, str(tmp_path / "secret"))
                    for item in spec["env"] if item["name"] != "HOME"})  # fmt: skip
        assert not any("sig=" in value for value in env.values())
        proc = subprocess.run(
            [sys.executable, "-m", "roughy.encoder", *args], cwd=REPO, env=env, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
    finally:
        channel.close()
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[0] == {"encoder": "libx264"} and "result" in lines[-1]
    assert all("progress" in line for line in lines[1:-1])
    (put,) = server.state.uploads
    assert put.headers["content-type"] == "video/mp4" and len(put.body) == lines[-1]["result"]["size_bytes"]
    assert list(tmp_path.iterdir()) == [tmp_path / "secret"]
    whats = [what for what, _, _ in channel.calls]
    assert whats[0] == "inputs" and whats.count("output") == 1 and whats.index("output") > whats.index("progress")
    assert {auth for _, auth, _ in channel.calls} == {"Bearer tok-123"}
    reports = [body for what, _, body in channel.calls if what == "progress"]
    assert reports and reports[0] == {"progress": 0.0, "encoder": "libx264"}
    assert [r["progress"] for r in reports] == sorted(r["progress"] for r in reports)
