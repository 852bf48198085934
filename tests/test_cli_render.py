"""`roughy render FILE`: upload, cut, render and download through the real service, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys

from roughy.encoder.probe import probe


def run_cli(service, *args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ROUGHY_API_URL=service.url, ROUGHY_API_KEY=service.key)
    return subprocess.run(
        [sys.executable, "-m", "roughy.cli", "render", *args],
        env=env, capture_output=True, text=True, timeout=180, cwd=cwd,
    )


def test_render_with_a_cut_downloads_the_kept_segments(service, clip, tmp_path):
    out = tmp_path / "cut.mp4"
    done = run_cli(service, str(clip), "--format", "mp4", "--cut", "0.4-1.4,2-2.6", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    info = probe(str(out))
    assert info.video is not None and abs(info.duration - 1.6) < 0.1


def test_render_names_the_file_after_the_source_by_default(service, song, tmp_path):
    done = run_cli(service, str(song), "--format", "m4a", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "song.m4a").is_file()
    assert probe(str(tmp_path / "song.m4a")).audio is not None


def test_render_reports_errors_plainly(service, clip, tmp_path):
    done = run_cli(service, str(clip), "--format", "mp4", "--resolution", "4k")
    assert done.returncode == 1
    assert "422 validation_error" in done.stderr and "upscale" in done.stderr
    missing = run_cli(service, str(tmp_path / "nope.mp4"), "--format", "mp4")
    assert missing.returncode == 1 and "no such file" in missing.stderr
