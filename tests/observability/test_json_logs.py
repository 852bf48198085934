"""One JSON object per log line (ROUGHY_LOG_FORMAT=json), uvicorn's and kopf's lines included:
a log pipeline parses every line of stderr. stdout carries only the first-start banner, for the
person who ran `roughy serve` (it holds the new API key: not a log line)."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import httpx
import kopf

from roughy.logs import JsonFormatter
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def collect(stream: IO[str], into: list[str]) -> threading.Thread:
    thread = threading.Thread(target=lambda: into.extend(stream), daemon=True)
    thread.start()
    return thread


def test_serve_writes_only_json_lines_to_stderr_uvicorns_included(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUGHY_")}
    env |= {"ROUGHY_DATA_DIR": str(tmp_path / "data"), "ROUGHY_PORT": str(port), "ROUGHY_LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "roughy.cli", "serve"], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out: list[str] = []
    err: list[str] = []
    readers = [collect(proc.stdout, out), collect(proc.stderr, err)]  # type: ignore[arg-type]
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _answers(url):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(out + err)
            time.sleep(0.05)
        key = next(line for line in out if "API key" in line).rsplit(" ", 1)[-1].strip()
        resp = httpx.get(url + "/v1/credits", headers={"Authorization": f"Bearer {key}", "X-Request-Id": "req-42"})
        assert resp.status_code == 200
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:  # uvicorn's own warning
            raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            raw.recv(1024)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        for reader in readers:
            reader.join(timeout=5)

    entries = []
    for line in err:
        entry = json.loads(line)  # every line: one JSON object
        assert {"time", "level", "logger", "message"} <= set(entry), entry
        entries.append(entry)
    messages = [(e["logger"], e["message"]) for e in entries]
    assert ("uvicorn.error", f"Uvicorn running on {url} (Press CTRL+C to quit)") in messages, messages
    assert any(lg == "uvicorn.error" and "Invalid HTTP request" in m for lg, m in messages), messages
    assert any(lg == "uvicorn.error" and m.startswith("Finished server process") for lg, m in messages), messages
    assert any("serving on" in m for _, m in messages), "the serve line is a log line in json mode"
    request = next(e for e in entries if e.get("request_id") == "req-42")
    assert (request["method"], request["path"], request["status"]) == ("GET", "/v1/credits", 200)
    assert not any("color_message" in e for e in entries), "uvicorn's ANSI copy of its message is dropped"
    banner = [line for line in out if line.strip()]
    assert banner and all(line.startswith(("roughy: first start", "  ")) for line in banner), banner


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def record(**extra: Any) -> logging.LogRecord:
    return logging.getLogger("roughy.test").makeRecord(
        "roughy.test", logging.INFO, __file__, 1, "render %s", ("r",), None, extra=extra
    )


def test_every_extra_field_is_a_json_field_and_the_base_fields_win() -> None:
    entry = json.loads(JsonFormatter().format(record(render_id="rnd_1", state="completed", encode_seconds=1.5,
                                                     when=Path("/x"), level="not-this")))  # fmt: skip
    assert entry["message"] == "render r" and entry["level"] == "info" and entry["logger"] == "roughy.test"
    assert (entry["render_id"], entry["state"], entry["encode_seconds"]) == ("rnd_1", "completed", 1.5)
    assert entry["when"] == "/x", "a value JSON has no type for is written as its str"
    assert entry["time"].endswith("+00:00") and "." in entry["time"], "UTC, to the millisecond"


def test_an_exception_is_one_field_of_the_same_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        made = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(made)
    assert "\n" not in line and "RuntimeError: boom" in json.loads(line)["exception"]


def test_kopfs_object_lines_carry_the_object_they_are_about(caplog: Any) -> None:
    """kopf's per-object logger (every handler's outcome) goes through the root handler: in json
    mode a line names the Render it is about as `object`, without kopf's internals."""
    body = {"apiVersion": "roughy.dev/v1", "kind": "Render", "metadata": {"name": "r-1", "namespace": "ns", "uid": "u"}}
    logger = kopf.ObjectLogger(body=kopf.Body(body), settings=kopf.OperatorSettings())
    with caplog.at_level(logging.INFO, logger="kopf.objects"):
        logger.info("Handler 'render_seen' succeeded.")
    entry = json.loads(JsonFormatter().format(caplog.records[-1]))
    assert entry["object"]["name"] == "r-1" and entry["object"]["kind"] == "Render"
    assert "settings" not in entry and "k8s_skip" not in entry


def test_every_line_logged_while_a_request_is_answered_carries_its_id() -> None:
    """Not only the request's own line: a render's "created" line, logged by the application
    while it answers POST /v1/renders, carries the request id too (the edge sets it)."""
    import io
    import logging.config

    from roughy import logs

    stream = io.StringIO()
    config = logs.config("json")
    config["handlers"]["stderr"]["stream"] = stream
    root = logging.getLogger()
    before = (root.handlers[:], root.level)
    logging.config.dictConfig(config)
    try:
        log = logging.getLogger("roughy.app.renders")
        token = logs.REQUEST_ID.set("req_abc")
        log.info("render rnd_1 created", extra={"render_id": "rnd_1"})
        logs.REQUEST_ID.reset(token)
        log.info("render rnd_1 started")  # a worker thread's line: no request
    finally:
        root.handlers[:] = before[0]
        root.setLevel(before[1])
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["request_id"] == "req_abc" and first["render_id"] == "rnd_1"
    assert "request_id" not in second
