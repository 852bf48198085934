"""The operator CLI as real subprocesses: `roughy admin ...` and `roughy serve` (SPEC 7)."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Service, free_port, start_service

ROOT = Path(__file__).resolve().parents[1]


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUGHY_")}
    env.update({"ROUGHY_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", **extra})
    return env


def roughy(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roughy.cli", *args],
        cwd=ROOT,
        env=cli_env(data_dir),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout.strip().split("\t")


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Service]:
    svc = start_service(tmp_path / "data")
    yield svc
    svc.stop()


# -- roughy admin ----------------------------------------------------------------------------------


def test_admin_cli_account_key_grant_and_revoke_work_against_the_service(running):
    data_dir = Path(running.embedded.settings.data_dir)

    account_id, name = ok(roughy(data_dir, "admin", "create-account", "Acme Films"))
    assert account_id.startswith("acct_") and name == "Acme Films"

    key_id, key = ok(roughy(data_dir, "admin", "create-key", account_id))
    assert key_id and key and key != key_id
    with running.client(key) as c:
        credits = c.get("/v1/credits")
        assert credits.status_code == 200, "a key made by the CLI authenticates against the service"
        assert credits.json() == {"balance": 0, "entries": []}, "a new account starts with no credit"
        asset = c.post("/v1/assets", json={"kind": "audio", "filename": "a.mp3"})
        assert asset.status_code == 201

    entry_id, amount, balance = ok(roughy(data_dir, "admin", "grant", account_id, "5", "--reason", "pilot"))
    assert amount == "+5" and balance == "balance 5"
    with running.client(key) as c:
        body = c.get("/v1/credits").json()
        assert body["balance"] == 5
        assert [(e["id"], e["type"], e["amount"], e["reason"]) for e in body["entries"]] == [
            (entry_id, "grant", 5, "pilot")
        ]
    # the first account is untouched
    with running.client() as first:
        assert first.get("/v1/credits").json()["balance"] == 10
        assert first.get(f"/v1/assets/{asset.json()['id']}").status_code == 404

    out = roughy(data_dir, "admin", "revoke-key", key_id)
    assert out.returncode == 0 and key_id in out.stdout
    resp = httpx.get(running.url + "/v1/credits", headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 401, "a key revoked by the CLI is refused at once"
    assert resp.json()["error"]["code"] == "unauthorized"


def test_admin_cli_refuses_unknown_ids_with_a_message(running):
    data_dir = Path(running.embedded.settings.data_dir)
    for args in (
        ("create-key", "acct_missing"),
        ("grant", "acct_missing", "3"),
        ("revoke-key", "key_missing"),
    ):
        proc = roughy(data_dir, "admin", *args)
        assert proc.returncode != 0, args
        assert "missing" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stdout == ""
    with running.client() as c:
        assert c.get("/v1/credits").json()["balance"] == 10


# -- roughy serve ----------------------------------------------------------------------------------


class Served:
    """`roughy serve` as a subprocess; its output collected line by line on a thread."""

    def __init__(self, data_dir: Path, port: int, **env: str):
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "roughy.cli", "serve", "--port", str(port), "--host", "127.0.0.1"],
            cwd=ROOT,
            env=cli_env(data_dir, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_until_up(self, timeout: float = 30) -> str:
        """All output up to and including the 'serving on' line, then /healthz answers."""
        deadline = time.monotonic() + timeout
        while not any("serving on" in line for line in self.output):
            assert self.proc.poll() is None, "".join(self.output)
            try:
                self.output.append(self.lines.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"no 'serving on' line: {''.join(self.output)}") from None
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return "".join(self.output)
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and self.proc.poll() is None, "".join(self.output)
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _key_from(output: str) -> str:
    lines = [line for line in output.splitlines() if "API key" in line]
    assert len(lines) == 1, output
    return lines[0].rsplit(" ", 1)[-1].strip()


def test_serve_first_start_prints_a_working_key_once(tmp_path):
    data_dir = tmp_path / "fresh" / "roughy-data"  # does not exist yet: serve creates it
    port = free_port()
    first = Served(data_dir, port, ROUGHY_STARTER_CREDITS="7", ROUGHY_ADMIN_KEY="op-secret")
    try:
        output = first.wait_until_up()
        key = _key_from(output)
        assert output.count(key) >= 1
        assert data_dir.is_dir()
        with httpx.Client(base_url=first.url, headers={"Authorization": f"Bearer {key}"}) as c:
            credits = c.get("/v1/credits")
            assert credits.status_code == 200, credits.text
            body = credits.json()
            assert body["balance"] == 7, "ROUGHY_STARTER_CREDITS is the first account's grant"
            assert [(e["type"], e["amount"]) for e in body["entries"]] == [("grant", 7)]
            assert c.post("/v1/assets", json={"kind": "audio", "filename": "a.mp3"}).status_code == 201
        admin = httpx.post(
            first.url + "/v1/admin/accounts", json={"name": "ops"}, headers={"Authorization": "Bearer op-secret"}
        )
        assert admin.status_code == 201, "ROUGHY_ADMIN_KEY enables the admin API"
    finally:
        first.stop()
    assert first.proc.returncode is not None

    port = free_port()
    second = Served(data_dir, port)
    try:
        output = second.wait_until_up()
        assert "API key" not in output, output
        assert key not in output
        with httpx.Client(base_url=second.url, headers={"Authorization": f"Bearer {key}"}) as c:
            body = c.get("/v1/credits").json()
            assert body["balance"] == 7, "same account, same ledger, no second starter grant"
            assert len(c.get("/v1/assets").json()["data"]) == 1, "the data survived the restart"
        resp = httpx.post(
            second.url + "/v1/admin/accounts", json={"name": "x"}, headers={"Authorization": "Bearer op-secret"}
        )
        assert resp.status_code == 404, "without ROUGHY_ADMIN_KEY the admin API is off"
    finally:
        second.stop()
