"""A loopback HTTP server for the encoder's network paths: ranged GETs of media, PUTs of outputs.

`MediaServer` serves registered files with `Range` support (what ffmpeg and PyAV need to seek
in an MP4 over HTTP) and counts the body bytes it actually wrote per path, receives PUTs, and
can misbehave on purpose: cut a body short and drop the connection, or answer a status code.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
CHUNK = 16 * 1024
#: A small send buffer keeps what the kernel buffers (and so counts as "served" although the
#: client never read it) small next to the files.
SEND_BUFFER = 32 * 1024


@dataclass
class Upload:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Behaviour:
    """How the server answers one path."""

    file: Path | None = None
    status: int | None = None  # answer this status (empty body) instead of serving
    cut_after: int | None = None  # drop the connection after this many body bytes...
    cut_times: int = 0  # ... for the first N GETs of the path (then serve normally...
    then_status: int | None = None  # ... or answer this status)
    requests: int = 0


@dataclass
class ServerState:
    routes: dict[str, Behaviour] = field(default_factory=dict)
    served: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    ranges: list[tuple[str, str | None]] = field(default_factory=list)
    uploads: list[Upload] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_PUT(self) -> None:
        state = self.server.state
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        with state.lock:
            state.uploads.append(Upload(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            behaviour = state.routes.get(path)
        status = behaviour.status if behaviour is not None and behaviour.status else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _serve(self, *, body: bool) -> None:
        state = self.server.state
        path = self.path.split("?", 1)[0]
        with state.lock:
            behaviour = state.routes.get(path)
            status: int | None = 404
            if behaviour is not None:
                behaviour.requests += body
                status = behaviour.status
                if behaviour.then_status is not None and behaviour.requests > behaviour.cut_times:
                    status = behaviour.then_status
            state.ranges.append((path, self.headers.get("Range")))
        if behaviour is None or behaviour.file is None or status is not None:
            status = status or 404
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = behaviour.file.read_bytes()
        start, end = 0, len(data) - 1
        ranged = self.headers.get("Range")
        match = _RANGE.match(ranged or "")
        if match and (match.group(1) or match.group(2)):
            if match.group(1):
                start = int(match.group(1))
                if match.group(2):
                    end = min(end, int(match.group(2)))
            else:  # a suffix: the last N bytes
                start = max(0, len(data) - int(match.group(2)))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if not body:
            return
        limit = None
        with state.lock:
            if behaviour.cut_after is not None and behaviour.requests <= behaviour.cut_times:
                limit = behaviour.cut_after
        self._write_body(path, data[start : end + 1], limit)

    def _write_body(self, path: str, payload: bytes, limit: int | None) -> None:
        state = self.server.state
        sent = 0
        try:
            while sent < len(payload):
                if limit is not None and sent >= limit:
                    # A connection dropped mid-body: no FIN courtesy, just a reset.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                chunk = payload[sent : sent + CHUNK]
                self.wfile.write(chunk)
                sent += len(chunk)
                with state.lock:
                    state.served[path] += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ServerState


class MediaServer:
    """`with MediaServer() as server: server.serve("/clip.mp4", path); server.url("/clip.mp4")`."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = ServerState()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def state(self) -> ServerState:
        return self._server.state

    def url(self, path: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def serve(
        self,
        path: str,
        file: Path,
        *,
        cut_after: int | None = None,
        cut_times: int = 0,
        then_status: int | None = None,
    ) -> str:
        """Serve `file` at `path`. With `cut_after`, the first `cut_times` GETs drop the
        connection after that many body bytes (-1: every GET); later GETs are served in full,
        or answered `then_status` when given."""
        times = 1 << 30 if cut_times < 0 else cut_times
        self.state.routes[path] = Behaviour(file=file, cut_after=cut_after, cut_times=times, then_status=then_status)
        return self.url(path)

    def answer(self, path: str, status: int) -> str:
        """Answer every request for `path` with `status` (and an empty body)."""
        self.state.routes[path] = Behaviour(status=status)
        return self.url(path)

    def served(self, path: str) -> int:
        with self.state.lock:
            return self.state.served[path]

    def __enter__(self) -> MediaServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
