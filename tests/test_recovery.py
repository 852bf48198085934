"""Restart safety: work left mid-flight by a killed `roughy serve` is picked up on the next start.

These run the real CLI as a subprocess and kill it with SIGKILL: no shutdown hook runs.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import free_port, upload_part, wait_for
from tests.media import make_video


class Server:
    def __init__(self, data_dir: Path, **env_extra: str):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, ROUGHY_DATA_DIR=str(data_dir), ROUGHY_PORT=str(self.port), **env_extra)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "roughy.cli", "serve"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.key: str | None = None
        self.output: list[str] = []
        deadline = time.monotonic() + 30
        for line in self.proc.stdout or []:
            self.output.append(line)
            if m := re.search(r"API key \(shown once, keep it\): (\S+)", line):
                self.key = m.group(1)
            if "serving on" in line:
                break
            assert time.monotonic() < deadline, "".join(self.output)
        # Keep reading its output: a full pipe would block the server's next log line.
        self._drain = threading.Thread(target=lambda: self.output.extend(self.proc.stdout or []), daemon=True)
        self._drain.start()
        wait_for(lambda: {"ok": self._healthy()}, lambda r: r["ok"], timeout=30)

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def crash(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._drain.join(timeout=10)


def test_a_render_running_when_the_process_dies_completes_after_restart(tmp_path, media_dir):
    src = make_video(media_dir / "recover.mp4", duration=20.0, width=1280, height=720, fps=30)
    first = Server(tmp_path / "data")
    assert first.key
    key = first.key
    with first.client(key) as api:
        asset = api.post("/v1/assets", json={"kind": "video", "filename": "r.mp4"}).json()
        upload_part(api, asset, "video", src)
        wait_for(lambda: api.get(f"/v1/assets/{asset['id']}").json(), lambda a: a["state"] == "ready")
        render = api.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "mp4"}}).json()
        before = wait_for(
            lambda: api.get(f"/v1/renders/{render['id']}").json(), lambda r: r["progress"] > 0.02, timeout=60
        )
        encoder_pids = _encoder_pids(str(tmp_path / "data"))
        assert encoder_pids, "an encoder runs for the render"
    first.crash()
    deadline = time.monotonic() + 5  # the orphaned encoder notices its parent died and stops
    while _alive(encoder_pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(encoder_pids), "the encoder outlived the crashed service"

    second = Server(tmp_path / "data")
    try:
        assert second.key is None, "a restart must not make a new first account"
        with second.client(key) as api:
            seen = []

            def fetch() -> dict:
                r = api.get(f"/v1/renders/{render['id']}").json()
                seen.append(r["progress"])
                return r

            done = wait_for(fetch, lambda r: r["state"] in ("completed", "failed"), timeout=180)
            assert done["state"] == "completed", done
            assert seen[0] >= before["progress"] and seen == sorted(seen), "progress went backwards"
            assert abs(done["result"]["duration"] - 20.0) < 0.2
            listed = api.get("/v1/renders").json()["data"]
            assert [r["id"] for r in listed] == [render["id"]]
            assert api.get("/v1/credits").json()["balance"] == 9  # still one charge
    finally:
        second.crash()


def test_an_asset_uploaded_but_not_processed_is_processed_after_restart(tmp_path, media_dir):
    src = make_video(media_dir / "recover-asset.mp4", duration=2.0)
    data = tmp_path / "data"
    first = Server(data)
    key = first.key
    assert key
    with first.client(key) as api:
        asset = api.post("/v1/assets", json={"kind": "video", "filename": "a.mp4"}).json()
        upload_part(api, asset, "video", src, complete=False)
    first.crash()
    # The crash happened between the client's "complete" and processing: write that state (the
    # upload moved to where the part is read from, the row saying "uploaded").
    import sqlite3

    part = data / "media" / "assets" / asset["id"]
    (part / "uploads" / "video").rename(part / "video")
    with sqlite3.connect(data / "roughy.db") as db:
        db.execute("update assets set video_part = 'uploaded', state = 'processing' where id = ?", (asset["id"],))
    second = Server(data)
    try:
        with second.client(key) as api:
            ready = wait_for(lambda: api.get(f"/v1/assets/{asset['id']}").json(), lambda a: a["state"] != "processing")
            assert ready["state"] == "ready" and ready["cuttable"], ready
            assert ready["video"]["width"] == 320
    finally:
        second.crash()


def test_json_logs_carry_the_request_id(tmp_path):
    server = Server(tmp_path / "data", ROUGHY_LOG_FORMAT="json")
    assert server.key
    with server.client(server.key) as api:
        resp = api.get("/v1/credits", headers={"X-Request-Id": "req-from-client-42"})
        assert resp.headers["x-request-id"] == "req-from-client-42"
    server.crash()
    rest = "".join(server.output).splitlines()
    import json

    entries = [json.loads(line) for line in rest if line.startswith("{")]
    mine = [e for e in entries if e.get("request_id") == "req-from-client-42"]
    assert mine and mine[0]["status"] == 200 and mine[0]["path"] == "/v1/credits"


def _encoder_pids(data_dir: str) -> list[int]:
    """Processes whose command line mentions this data directory: the encoder and its ffmpeg."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if data_dir in cmdline and "serve" not in cmdline:
                pids.append(int(entry.name))
    return pids


def _alive(pids: list[int]) -> bool:
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if state != "Z":
            return True
    return False
