"""A real HTTP webhook receiver on loopback, verifying signatures with the `standardwebhooks` library.

Each request is recorded (headers, body, whether its signature verified, when it arrived); what
the receiver answers is up to the test: a status, a body, a delay (a hang), a redirect, or an
endless body.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival
    verified: dict[str, bool] = field(default_factory=dict)  # secret -> did its signature verify

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (a hang, when longer than the timeout)
    endless: bool = False  # after the headers, send body bytes until the client hangs up
    trickle: str | None = None  # "headers" or "body": send that part one byte every 0.1 s, forever


Behaviour = Callable[[Received, int], Reply]  # (the request, its 0-based index on this path) -> reply


class Receiver:
    """`Receiver(port=0)` listens on 127.0.0.1; `url(path)` is its address for an endpoint."""

    def __init__(self, port: int = 0, behaviour: Behaviour | None = None, secrets: list[str] | None = None):
        self.behaviour: Behaviour = behaviour or (lambda _r, _i: Reply())
        self.secrets: list[str] = list(secrets or [])  # the receiver's copy of the signing secret(s)
        self.requests: list[Received] = []
        self.sent_body_bytes = 0  # body bytes written for `endless` replies before the client hung up
        self._lock = threading.Lock()
        self._closing = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                receiver._handle(self)

            def do_GET(self) -> None:  # noqa: N802
                receiver._handle(self)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def wait(self, count: int, path: str | None = None, timeout: float = 20.0) -> list[Received]:
        """The first `count` requests (to `path`, if given), waiting for them to arrive."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                got = [r for r in self.requests if path is None or r.path == path]
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(got)} of {count} requests arrived in {timeout} s: {got}")
            time.sleep(0.02)

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        body = h.rfile.read(length) if length else b""
        req = Received(h.path, {k.lower(): v for k, v in h.headers.items()}, body, time.monotonic())
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, req.headers)
                req.verified[secret] = True
            except WebhookVerificationError:
                req.verified[secret] = False
        with self._lock:
            index = len([r for r in self.requests if r.path == req.path])
            self.requests.append(req)
        reply = self.behaviour(req, index)
        if self.secrets and not any(req.verified.values()):
            reply = Reply(400, b"bad signature")  # what a real receiver does
        if reply.delay and self._closing.wait(reply.delay):
            return
        try:
            if reply.trickle:
                self._trickle(h, reply)
                return
            h.send_response(reply.status)
            for name, value in reply.headers.items():
                h.send_header(name, value)
            if reply.endless:
                h.send_header("content-type", "application/octet-stream")
                h.send_header("connection", "close")
                h.end_headers()
                chunk = b"x" * 65536
                while not self._closing.is_set():
                    h.wfile.write(chunk)
                    self.sent_body_bytes += len(chunk)
                return
            h.send_header("content-length", str(len(reply.body)))
            h.end_headers()
            h.wfile.write(reply.body)
        except OSError:  # the client hung up (a timeout, or a bounded read that had enough)
            pass

    def _trickle(self, h: BaseHTTPRequestHandler, reply: Reply) -> None:
        w = h.wfile
        if reply.trickle == "headers":
            w.write(f"HTTP/1.1 {reply.status} OK\r\nx-slow: ".encode())
        else:
            w.write(f"HTTP/1.1 {reply.status} OK\r\ncontent-length: 1000000\r\n\r\n".encode())
        w.flush()
        while not self._closing.wait(0.1):
            w.write(b"a")
            w.flush()
