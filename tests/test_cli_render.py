"""`roughy render FILE`: upload, cut, render and download through the real service, as a user would.

Each run is the real CLI in a subprocess, with its own asset cache (ROUGHY_CACHE_DIR)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from roughy.encoder.probe import probe
from tests.media import make_video


def cli_env(service, cache: Path, **extra: str) -> dict[str, str]:
    return dict(os.environ, ROUGHY_API_URL=service.url, ROUGHY_API_KEY=service.key, ROUGHY_CACHE_DIR=str(cache),
                **extra)  # fmt: skip


def run_cli(service, *args: str, cwd=None, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roughy.cli", "render", *args],
        env=cli_env(service, cache), capture_output=True, text=True, timeout=180, cwd=cwd,
    )  # fmt: skip


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def account(service) -> tuple[list[str], int]:
    """The account's asset ids and credit balance, as the API answers them."""
    with service.client() as api:
        assets = [a["id"] for a in api.get("/v1/assets").json()["data"]]
        return assets, api.get("/v1/credits").json()["balance"]


def test_render_with_a_cut_downloads_the_kept_segments(service, clip, tmp_path, cache):
    out = tmp_path / "cut.mp4"
    done = run_cli(service, str(clip), "--format", "mp4", "--cut", "0.4-1.4,2-2.6", "-o", str(out), cache=cache)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    info = probe(str(out))
    assert info.video is not None and abs(info.duration - 1.6) < 0.1
    for phase in ("checking", "upload", "processing", "cut", "render", "download"):
        assert phase in done.stderr, f"a progress line for {phase}: {done.stderr}"


def test_render_names_the_file_after_the_source_by_default(service, song, tmp_path, cache):
    done = run_cli(service, str(song), "--format", "m4a", cwd=tmp_path, cache=cache)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "song.m4a").is_file()
    assert probe(str(tmp_path / "song.m4a")).audio is not None


def test_a_second_render_of_the_same_file_reuses_its_asset(service, song, tmp_path, cache):
    _, before = account(service)
    first = run_cli(service, str(song), "--format", "m4a", "-o", str(tmp_path / "a.m4a"), cache=cache)
    assert first.returncode == 0, first.stderr
    second = run_cli(service, str(song), "--format", "mp3", "-o", str(tmp_path / "b.mp3"), cache=cache)
    assert second.returncode == 0, second.stderr
    assets, balance = account(service)
    assert len(assets) == 1 and balance == before - 1, "one upload, one charge"
    assert f"reusing asset {assets[0]}" in second.stderr
    assert probe(str(tmp_path / "b.mp3")).audio is not None

    again = run_cli(service, str(song), "--format", "mp3", "--no-reuse", "-o", str(tmp_path / "c.mp3"), cache=cache)
    assert again.returncode == 0, again.stderr
    assets, balance = account(service)
    assert len(assets) == 2 and balance == before - 2, "--no-reuse uploads (and pays) again"

    with service.client() as api:  # a deleted asset is not reused: it is uploaded afresh
        for asset_id in assets:
            assert api.delete(f"/v1/assets/{asset_id}").status_code == 204
    fourth = run_cli(service, str(song), "--format", "mp3", "-o", str(tmp_path / "d.mp3"), cache=cache)
    assert fourth.returncode == 0, fourth.stderr
    assert "reusing" not in fourth.stderr and len(account(service)[0]) == 1


def test_checks_before_upload_name_the_option_and_charge_nothing(service, clip, song, tmp_path, cache):
    _, before = account(service)
    cases = [
        ((str(song), "--format", "mp4"), ["--format mp4", "no video track"]),
        ((str(clip), "--format", "mp3", "--resolution", "720p"), ["--resolution", "--format mp3"]),
        ((str(clip), "--format", "m4a", "--video-bitrate", "5"), ["--video-bitrate", "--format m4a"]),
        ((str(clip), "--format", "mp4", "--resolution", "720p"), ["--resolution 720p", "640x360", "upscale"]),
        ((str(clip), "--format", "mp4", "--video-bitrate", "50"), ["--video-bitrate 50", "source's video bitrate"]),
        ((str(clip), "--format", "mp4", "--cut", "1-2,2.5-9"), ["--cut", "2.5-9", "beyond the source's end"]),
        ((str(clip), "--format", "mp4", "--cut", "2-1"), ["--cut", "end must come after the start"]),
        ((str(clip), "--format", "mp4", "--cut", "abc"), ["--cut", "START-END"]),
        ((str(clip), "--format", "webm"), ["--format", "mp4, mov, m4a, mp3"]),
        ((str(clip), "--format", "mp4", "--audio-bitrate", "100"), ["--audio-bitrate 100"]),
        ((str(tmp_path / "nope.mp4"), "--format", "mp4"), ["no such file"]),
    ]
    for args, fragments in cases:
        done = run_cli(service, *args, cache=cache)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("error: "), (args, done.stderr)
        assert all(f in done.stderr for f in fragments), (args, done.stderr)
        assert "Traceback" not in done.stderr and done.stdout == ""
    assert account(service) == ([], before), "nothing uploaded, nothing charged"


def start_long_render(service, media_dir, tmp_path, cache, **popen) -> tuple[subprocess.Popen[str], dict]:
    """`roughy render` of a 30 s 720p clip (a cut: encoded, not copied), once its render exists."""
    long_clip = make_video(media_dir / "long-720p.mp4", duration=30.0, width=1280, height=720, fps=25)
    proc = subprocess.Popen(
        [sys.executable, "-m", "roughy.cli", "render", str(long_clip), "--format", "mp4", "--cut", "0.5-29.5",
         "-o", str(tmp_path / "out.mp4")],
        env=cli_env(service, cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    with service.client() as api:
        while not (renders := api.get("/v1/renders").json()["data"]):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(proc.communicate())
            time.sleep(0.1)
    time.sleep(0.5)  # the CLI has the render's id once the create answered
    return proc, renders[0]


def test_ctrl_c_during_a_render_names_it_and_how_to_cancel(service, media_dir, tmp_path, cache):
    proc, render = start_long_render(service, media_dir, tmp_path, cache, stdin=subprocess.DEVNULL)
    try:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and stdout == ""
    assert f"render {render['id']} continues on the server" in stderr
    assert f"roughy renders cancel {render['id']}" in stderr, "stdin is not a TTY: no question, the command to run"
    with service.client() as api:
        assert api.get(f"/v1/renders/{render['id']}").status_code == 200, "not cancelled without asking"
        api.delete(f"/v1/renders/{render['id']}")


def test_ctrl_c_on_a_terminal_asks_and_cancels_the_render(service, media_dir, tmp_path, cache):
    controller, terminal = os.openpty()
    proc, render = start_long_render(service, media_dir, tmp_path, cache, stdin=terminal)
    try:
        proc.send_signal(signal.SIGINT)
        time.sleep(1.0)  # it asks on stderr; the answer waits in the terminal's buffer meanwhile
        os.write(controller, b"y\n")
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == 130, stderr
    assert f"cancel render {render['id']}? [y/N]" in stderr and stdout == ""
    assert f"cancelled render {render['id']}" in stderr and "Traceback" not in stderr
    with service.client() as api:
        assert api.get(f"/v1/renders/{render['id']}").status_code == 404, "cancelled: a hard delete"


@pytest.mark.parametrize(
    ("cut", "accepted"),
    [
        ("0-10.02", True),  # within a frame past the end: the service clamps it to the end
        ("1-2,5-6", True),
        ("9.99-10", False),  # starts within half a frame of the end: the service would fail the cut
        ("0-10.1", False),
        ("2-1", False),
        ("0-2,1-3", False),  # overlapping
        (",".join(f"{i}-{i + 0.01}" for i in range(501)), False),  # over the service's 500 segments
    ],
)
def test_the_cut_is_checked_by_the_services_own_rules(cut: str, accepted: bool) -> None:
    from roughy.cli_render import UsageProblem, check_cut

    if accepted:
        assert check_cut(cut, 10.0, 30.0)
    else:
        with pytest.raises(UsageProblem):
            check_cut(cut, 10.0, 30.0)
