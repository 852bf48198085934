"""The client commands (`roughy renders ...`, `roughy assets ...`) and the CLI's error messages,
run as a user runs them: the real CLI in a subprocess against the real embedded service."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import finished_render, free_port, ready_asset


def roughy(*args: str, url: str, key: str | None = "rk_none", cwd=None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUGHY_")}
    env["ROUGHY_API_URL"] = url
    if key is not None:
        env["ROUGHY_API_KEY"] = key
    return subprocess.run([sys.executable, "-m", "roughy.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=cwd)  # fmt: skip


@pytest.fixture
def rendered(service, song):
    """A ready audio asset and a completed render of it."""
    with service.client() as api:
        asset = ready_asset(api, song, kind="audio")
        render = finished_render(api, {"asset_id": asset["id"], "output": {"format": "mp3"}})
    assert render["state"] == "completed", render
    return asset, render


def test_version():
    done = roughy("--version", url="http://unused")
    assert done.returncode == 0 and done.stdout.strip() == "roughy 0.1.0"


def test_a_server_that_is_not_running_is_one_sentence_not_a_traceback(song):
    url = f"http://127.0.0.1:{free_port()}"
    for args in (("assets", "list"), ("render", str(song), "--format", "mp3")):
        done = roughy(*args, url=url)
        assert done.returncode == 1, done.stderr
        last = done.stderr.strip().splitlines()[-1]  # after the bars of what ran (the local checks)
        assert last.startswith(f"error: cannot reach roughy at {url} (is the server running?"), done.stderr
        assert "Traceback" not in done.stderr


def test_api_errors_read_as_message_code_and_request_id(service):
    done = roughy("renders", "get", "rnd_missing", url=service.url, key=service.key)
    assert done.returncode == 1
    line = done.stderr.strip()
    assert line.startswith("error: ") and "(not_found; request req_" in line, line
    assert "{" not in line and "Traceback" not in done.stderr

    wrong = roughy("assets", "list", url=service.url, key="rk_wrong")
    assert wrong.returncode == 1 and "(unauthorized; request " in wrong.stderr, wrong.stderr

    nokey = roughy("assets", "list", url=service.url, key=None)
    assert nokey.returncode == 2 and "ROUGHY_API_KEY" in nokey.stderr


def test_json_output_is_the_apis_json(service, rendered):
    asset, render = rendered
    with service.client() as api:
        listed = api.get("/v1/renders", params={"asset_id": asset["id"]}).json()
        assets = api.get("/v1/assets").json()
    done = roughy("renders", "list", "--asset", asset["id"], "--json", url=service.url, key=service.key)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == listed
    done = roughy("assets", "list", "--json", url=service.url, key=service.key)
    assert json.loads(done.stdout) == assets
    done = roughy("assets", "get", asset["id"], "--json", url=service.url, key=service.key)
    assert json.loads(done.stdout)["id"] == asset["id"]
    done = roughy("renders", "get", render["id"], "--json", url=service.url, key=service.key)
    got = json.loads(done.stdout)
    assert got["id"] == render["id"] and got["result"] == render["result"] and got["download_url"]
    filtered = roughy("renders", "list", "--state", "failed", "--json", url=service.url, key=service.key)
    assert json.loads(filtered.stdout)["data"] == []


def test_tables_cancel_and_download(service, rendered, tmp_path):
    asset, render = rendered
    table = roughy("renders", "list", url=service.url, key=service.key)
    assert table.returncode == 0 and render["id"] in table.stdout and "completed" in table.stdout
    shown = roughy("assets", "get", asset["id"], url=service.url, key=service.key)
    assert asset["id"] in shown.stdout and "ready" in shown.stdout

    got = roughy("renders", "download", render["id"], "-o", str(tmp_path), url=service.url, key=service.key)
    assert got.returncode == 0, got.stderr
    path = tmp_path / got.stdout.strip().rsplit("/", 1)[-1]
    assert path.suffix == ".mp3" and path.stat().st_size == render["result"]["size_bytes"]

    cancelled = roughy("renders", "cancel", render["id"], url=service.url, key=service.key)
    assert cancelled.returncode == 0 and render["id"] in cancelled.stdout
    with service.client() as api:
        assert api.get(f"/v1/renders/{render['id']}").status_code == 404
    again = roughy("renders", "cancel", render["id"], url=service.url, key=service.key)
    assert again.returncode == 1 and "not_found" in again.stderr


def test_bad_options_are_usage_errors(service):
    done = roughy("renders", "list", "--state", "done", url=service.url, key=service.key)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    done = roughy("renders", "list", "--limit", "500", url=service.url, key=service.key)
    assert done.returncode == 2


def test_names_with_brackets_are_shown_as_they_are(service):
    """A filename is the user's text, not rich markup: `[final]` stays, `[/]` does not crash."""
    with service.client() as api:
        for name in ("clip [final].mp4", "weird[/].mp4 :smile:"):
            assert api.post("/v1/assets", json={"kind": "video", "filename": name}).status_code == 201
    listed = roughy("assets", "list", url=service.url, key=service.key)
    assert listed.returncode == 0, listed.stderr
    assert "clip [final].mp4" in listed.stdout and "weird[/].mp4 :smile:" in listed.stdout
