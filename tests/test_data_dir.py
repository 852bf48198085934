"""One owner per data directory, and nobody else reads it (real `roughy` processes)."""

from __future__ import annotations

import stat
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import free_port, upload_part, wait_for
from tests.media import make_video
from tests.test_cli_admin import cli_env, roughy
from tests.test_recovery import Server


def test_a_second_serve_on_the_same_data_directory_exits_at_once_and_harms_nothing(tmp_path: Path) -> None:
    first = Server(tmp_path / "data")
    assert first.key is not None
    try:
        clip = make_video(tmp_path / "long.mp4", duration=20.0, width=640, height=360, fps=25)
        with first.client(first.key) as api:
            asset = api.post("/v1/assets", json={"kind": "video", "filename": "long.mp4"}).json()
            upload_part(api, asset, "video", clip)
            wait_for(lambda: api.get(f"/v1/assets/{asset['id']}").json(), lambda a: a["state"] == "ready")
            render = api.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "mp4"}}).json()
            wait_for(lambda: api.get(f"/v1/renders/{render['id']}").json(), lambda r: r["progress"] > 0)

            started = time.monotonic()
            second = subprocess.run(
                [sys.executable, "-m", "roughy.cli", "serve"],
                env=cli_env(tmp_path / "data", ROUGHY_PORT=str(free_port())),
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert second.returncode != 0
            assert f"pid {first.proc.pid}" in second.stderr, second.stderr
            assert time.monotonic() - started < 15, "it stops before doing anything"

            now = api.get(f"/v1/renders/{render['id']}").json()
            assert now["state"] in ("running", "completed"), "the first one's render was not reset"
            done = wait_for(lambda: api.get(f"/v1/renders/{render['id']}").json(),
                            lambda r: r["state"] in ("completed", "failed"), timeout=180)  # fmt: skip
            assert done["state"] == "completed", done
    finally:
        first.crash()
    # The lock goes with its process, however it ends: the next start takes over.
    again = Server(tmp_path / "data")
    again.crash()


def test_the_data_directory_and_its_secrets_are_private(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    server.crash()
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("roughy.db", "signing.key", "roughy.lock"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name


def test_admin_refuses_a_data_directory_that_holds_no_service(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    proc = roughy(missing, "admin", "create-account", "x")
    assert proc.returncode != 0 and "roughy serve" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not missing.exists(), "no empty data directory is made"



def test_a_partial_upload_left_by_a_crash_is_swept_at_start(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    server.crash()
    leftover = tmp_path / "data" / "media" / "assets" / "ast_x" / ".video.0123abcd.part"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half an upload")
    again = Server(tmp_path / "data")
    again.crash()
    assert not leftover.exists()
