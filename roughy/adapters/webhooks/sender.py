"""One webhook POST: target checks (no SSRF), Standard Webhooks signing, a bounded read.

The target's host is resolved and checked at creation and again at every delivery (DNS can
change), and the request goes to the address that was checked (the connection is pinned to it,
with the original Host header and TLS server name), so a rebinding between check and connect
cannot reach an internal address. Redirects are never followed; at most `max_body` bytes of a
response are read. `timeout` bounds the whole attempt (connect, send, headers, body), not each
read: a receiver trickling a byte at a time cannot hold a sender thread beyond it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpcore
import httpx

from roughy.core.errors import ValidationFailed
from roughy.core.ids import now
from roughy.core.webhooks import Attempt, Event, WebhookEndpoint, forbidden_address, signature_header

Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    """Addresses in getaddrinfo's order (RFC 6724: reachable families first), without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _Deadline(threading.local):
    at: float | None = None  # time.monotonic() by which this thread's attempt must be over


_deadline = _Deadline()


def _left(timeout: float | None) -> float | None:
    if _deadline.at is None:
        return timeout
    left = _deadline.at - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the attempt ran out of time")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """Each socket operation waits at most until the attempt's deadline."""

    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, _left(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.SyncBackend):
    def connect_tcp(self, host: str, port: int, timeout: float | None = None, *args: Any, **kwargs: Any) -> Any:
        return _DeadlineStream(super().connect_tcp(host, port, _left(timeout), *args, **kwargs))


def _client(timeout: float) -> httpx.Client:
    transport = httpx.HTTPTransport()
    pool = transport._pool  # httpx's httpcore.ConnectionPool: give it the deadline-keeping sockets
    assert isinstance(getattr(pool, "_network_backend", None), httpcore.SyncBackend), "httpx internals changed"
    pool._network_backend = _DeadlineBackend()
    return httpx.Client(transport=transport, follow_redirects=False, timeout=timeout, trust_env=False)


class TargetRefused(Exception):
    pass


class WebhookSender:
    def __init__(
        self,
        *,
        allow_private: bool = False,
        timeout: float = 10.0,
        max_body: int = 4096,
        resolver: Resolver = resolve,
    ):
        self.allow_private = allow_private
        self.timeout = timeout
        self.max_body = max_body
        self.resolver = resolver
        self.http = _client(timeout)

    def close(self) -> None:
        self.http.close()

    # -- targets ----------------------------------------------------------------------------

    def check_url(self, url: str) -> None:
        """At creation: refuse what could never be delivered to, as a 422 on `url`."""
        try:
            self.pinned_address(url)
        except TargetRefused as exc:
            raise ValidationFailed(str(exc), param="url") from None

    def pinned_address(self, url: str) -> str:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  (raises ValueError on a bad port)
        except ValueError as exc:
            raise TargetRefused(f"not a valid URL ({exc})") from None
        allowed = ("https", "http") if self.allow_private else ("https",)
        if parts.scheme not in allowed:
            raise TargetRefused(f"the URL must be {' or '.join(allowed)}")
        if not parts.hostname:
            raise TargetRefused("the URL has no host")
        if parts.username or parts.password:
            raise TargetRefused("credentials in the URL are not allowed")
        try:
            addresses = self.resolver(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        except (OSError, UnicodeError) as exc:
            raise TargetRefused(f"the host {parts.hostname!r} does not resolve ({exc})") from None
        if not addresses:
            raise TargetRefused(f"the host {parts.hostname!r} does not resolve")
        if not self.allow_private:
            bad = [a for a in addresses if forbidden_address(a)]
            if bad:
                raise TargetRefused(
                    f"the host resolves to a private, loopback, link-local or reserved address ({bad[0]})"
                )
        return addresses[0]

    # -- delivery ---------------------------------------------------------------------------

    @staticmethod
    def body(event: Event) -> bytes:
        payload = {
            "id": event.id,
            "type": event.type,
            "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
            "data": event.data,
        }
        return json.dumps(payload, separators=(",", ":")).encode()

    def headers(self, endpoint: WebhookEndpoint, event: Event, body: bytes, at: datetime) -> dict[str, str]:
        timestamp = int(at.timestamp())
        return {
            "content-type": "application/json",
            "user-agent": "roughy-webhooks/1",
            "webhook-id": event.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(endpoint.signing_secrets(at), event.id, timestamp, body),
        }

    def send(self, endpoint: WebhookEndpoint, event: Event) -> Attempt:
        at = now()
        started = time.monotonic()
        status, error = None, None
        _deadline.at = started + self.timeout
        try:
            status, error = self._post(endpoint, event, at)
        except TargetRefused as exc:
            error = f"refused: {exc}"
        except httpx.TimeoutException:
            error = f"timed out after {self.timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            _deadline.at = None
        return Attempt(at, status, round((time.monotonic() - started) * 1000, 1), error)

    def _post(self, endpoint: WebhookEndpoint, event: Event, at: datetime) -> tuple[int, str | None]:
        address = self.pinned_address(endpoint.url)
        parts = urlsplit(endpoint.url)
        host = f"[{address}]" if ":" in address else address
        netloc = f"{host}:{parts.port}" if parts.port else host
        pinned = urlunsplit(parts._replace(netloc=netloc))
        body = self.body(event)
        headers = self.headers(endpoint, event, body, at) | {"host": parts.netloc.rsplit("@", 1)[-1]}
        extensions: dict[str, Any] = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
        with self.http.stream("POST", pinned, content=body, headers=headers, extensions=extensions) as resp:
            text = self._read_some(resp)
        if 200 <= resp.status_code < 300:
            return resp.status_code, None
        reason = "redirects are not followed" if 300 <= resp.status_code < 400 else text.strip()[:200]
        return resp.status_code, f"HTTP {resp.status_code}" + (f": {reason}" if reason else "")

    def _read_some(self, resp: httpx.Response) -> str:
        data = b""
        try:
            for chunk in resp.iter_raw():
                data += chunk
                if len(data) >= self.max_body:
                    break
        except httpx.TimeoutException:
            pass  # the status is in; a body still trickling in at the deadline is not waited for
        return data[: self.max_body].decode(errors="replace")
