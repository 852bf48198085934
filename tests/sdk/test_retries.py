"""The SDK's retry rules: which failures are tried again, how long it waits, and that a POST is
only repeated when repeating it cannot make a second resource."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from roughy.sdk import Client, ConnectionFailed, NotFound, RateLimited, ServerError
from roughy.sdk._http import RetryPolicy, parse_retry_after

NOW = "2026-12-03T19:00:00Z"
ASSET = {"id": "ast_1", "object": "asset", "kind": "video", "filename": "a.mp4", "state": "uploading",
         "cuttable": False, "duration": None, "video": None, "audio": None, "error": None, "created_at": NOW,
         "upload": None}  # fmt: skip
RENDER = {"id": "rnd_1", "object": "render", "asset_id": "ast_1", "cut_id": None, "output": {"format": "mp4"},
          "state": "pending", "progress": 0.0, "error": None, "result": None, "created_at": NOW}  # fmt: skip


class Scripted(BaseHTTPRequestHandler):
    """Answers each request with the next scripted (status, headers, body) and records it."""

    script: list[tuple[int, dict[str, str], dict[str, Any]]] = []
    seen: list[tuple[float, str, str, dict[str, str], bytes]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        type(self).seen.append((time.monotonic(), self.command, self.path, dict(self.headers), body))
        status, headers, payload = type(self).script.pop(0)
        data = json.dumps(payload).encode()
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[tuple[str, type[Scripted]]]:
    handler = type("Handler", (Scripted,), {"script": [], "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def rate_limited(retry_after: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    body = {"error": {"code": "rate_limited", "message": "slow down", "request_id": "req_429"}}
    return 429, {"Retry-After": retry_after}, body


def test_a_429_is_retried_after_retry_after_with_the_same_idempotency_key(scripted):
    url, handler = scripted
    handler.script = [rate_limited("1"), (201, {}, ASSET)]
    with Client(url, "rk_test") as client:
        asset = client.assets.create("video", "a.mp4")
    assert asset.id == "ast_1"
    (t1, _, path1, headers1, body1), (t2, _, path2, headers2, body2) = handler.seen
    assert path1 == path2 == "/v1/assets" and body1 == body2
    assert 1.0 <= t2 - t1 < 2.0, "waited what Retry-After said, not more"
    key = headers1.get("Idempotency-Key")
    assert key and headers2.get("Idempotency-Key") == key, "one key per logical call, the same on its retry"


def test_each_logical_call_gets_its_own_idempotency_key(scripted):
    url, handler = scripted
    cut = {"id": "cut_1", "object": "cut", "asset_id": "ast_1", "state": "pending", "method": "explicit",
           "segments": [], "error": None, "created_at": NOW}  # fmt: skip
    handler.script = [(201, {}, cut), (201, {}, cut)]
    with Client(url, "rk_test") as client:
        client.cuts.create("ast_1", segments=[(0, 1)])
        client.cuts.create("ast_1", segments=[(0, 1)])
    keys = [headers.get("Idempotency-Key") for _, _, _, headers, _ in handler.seen]
    assert all(keys) and keys[0] != keys[1]


def test_retry_after_as_an_http_date_is_honoured(scripted):
    url, handler = scripted
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    handler.script = [rate_limited(when), (200, {}, {"balance": 3, "entries": []})]
    with Client(url, "rk_test") as client:
        assert client.credits.get().balance == 3
    (t1, *_), (t2, *_) = handler.seen
    assert 0.9 <= t2 - t1 < 2.5  # the date has one-second resolution


def test_retry_after_is_capped_and_retries_run_out(scripted):
    url, handler = scripted
    handler.script = [rate_limited("3600")] * 3
    started = time.monotonic()
    with Client(url, "rk_test", max_retries=2, max_retry_delay=0.2) as client, pytest.raises(RateLimited) as exc:
        client.credits.get()
    assert time.monotonic() - started < 2, "an hour's Retry-After is capped at max_retry_delay"
    assert len(handler.seen) == 3 and exc.value.retry_after == 3600 and exc.value.request_id == "req_429"


# -- the same rules with httpx's MockTransport (pure logic: no sockets, no sleeping) --------------


def mocked(answers: list[Any]) -> tuple[Client, list[httpx.Request], list[float]]:
    """A client whose network answers `answers` in turn (an exception is raised instead)."""
    requests: list[httpx.Request] = []
    delays: list[float] = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        return httpx.Response(status, json=body)

    client = Client("http://roughy.test", "rk", transport=httpx.MockTransport(handle), sleep=delays.append)
    return client, requests, delays


def test_gateway_errors_are_retried_for_a_render_create_which_is_idempotent_on_content():
    client, requests, delays = mocked([(502, {}), (504, {}), (201, RENDER)])
    assert client.renders.create("ast_1", "mp4").id == "rnd_1"
    assert len(requests) == 3 and len(delays) == 2
    assert delays[1] > 0 and all(d <= 30 for d in delays)


def test_a_post_that_is_not_safe_to_repeat_is_not_retried_after_a_502_or_a_dropped_connection():
    client, requests, _ = mocked([(502, {"error": {"code": "bad_gateway", "message": "upstream"}})])
    with pytest.raises(ServerError) as exc:
        client.events.redeliver("evt_1")
    assert len(requests) == 1 and exc.value.status == 502 and exc.value.code == "bad_gateway"

    client, requests, _ = mocked([httpx.ReadError("reset")])
    with pytest.raises(ConnectionFailed):
        client.webhook_endpoints.create("https://example.com/hook", ["render.completed"])
    assert len(requests) == 1


def test_a_refused_connection_is_retried_even_for_an_unsafe_post_then_fails_plainly():
    client, requests, delays = mocked([httpx.ConnectError("refused")] * 4)
    with pytest.raises(ConnectionFailed) as exc:
        client.events.redeliver("evt_1")
    assert len(requests) == 4 and len(delays) == 3, "nothing was sent, so trying again is safe"
    assert exc.value.url == "http://roughy.test"


def test_a_dropped_connection_on_a_get_is_retried():
    client, requests, _ = mocked([httpx.RemoteProtocolError("dropped"), (200, {"balance": 1, "entries": []})])
    assert client.credits.get().balance == 1 and len(requests) == 2


def test_a_client_error_is_not_retried():
    client, requests, _ = mocked([(404, {"error": {"code": "not_found", "message": "no such render"}})])
    with pytest.raises(Exception, match="no such render"):
        client.renders.get("rnd_x")
    assert len(requests) == 1


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    for attempt, ceiling in enumerate([0.5, 1.0, 2.0, 4.0, 4.0]):
        draws = [policy.delay(attempt, None) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in draws)
        assert len(set(draws)) > 1, "jittered"
    assert policy.delay(0, 2.5) == 2.5 and policy.delay(0, 100) == 4.0


def test_retry_after_parsing():
    now = datetime(2026, 12, 3, 19, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7
    assert parse_retry_after("Thu, 03 Dec 2026 19:00:05 GMT", now) == 5
    assert parse_retry_after("Thu, 03 Dec 2026 18:00:00 GMT", now) == 0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None


def test_unknown_fields_and_states_from_a_newer_server_are_kept_not_refused():
    newer = {**RENDER, "state": "queued_on_gpu", "priority": 5, "output": {"format": "webm", "crf": 30}}
    client, _, _ = mocked([(200, newer)])
    render = client.renders.get("rnd_1")
    assert render.state == "queued_on_gpu" and render.model_extra == {"priority": 5}
    assert render.output.format == "webm"


def test_a_delete_whose_answer_was_lost_is_done_not_not_found():
    lost = httpx.RemoteProtocolError("the connection dropped after the server acted")
    client, requests, _ = mocked([lost, (404, {"error": {"code": "not_found", "message": "no such render"}})])
    client.renders.cancel("rnd_1")  # no NotFound: the first try deleted it
    assert [r.method for r in requests] == ["DELETE", "DELETE"]
    first_try, _, _ = mocked([(404, {"error": {"code": "not_found", "message": "no such render"}})])
    with pytest.raises(NotFound):
        first_try.renders.cancel("rnd_1")  # a first answer of 404 is the truth


def test_a_download_cut_short_is_connection_failed_and_leaves_no_file(tmp_path):
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/v1/renders/"):
            return httpx.Response(200, json=RENDER | {"state": "completed", "download_url": "http://files.test/r.mp4"})

        def body() -> Iterator[bytes]:
            yield b"\0" * 1024
            raise httpx.ReadError("connection reset")

        return httpx.Response(200, headers={"Content-Length": "4096"}, content=body())

    client = Client("http://roughy.test", "rk", transport=httpx.MockTransport(handle), sleep=lambda _: None)
    with pytest.raises(ConnectionFailed):
        client.renders.download("rnd_1", tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == [], "no partial file left behind"
