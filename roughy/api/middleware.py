"""The request edge, as one pure ASGI middleware: request id, auth, rate limit, body size, logs.

Authentication happens here, before FastAPI reads the body, so that the SPEC's order holds:
401 before 400 before 422. The authenticated account is left in `scope["state"]`.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import anyio
from prometheus_client import Histogram
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from roughy import logs
from roughy.api.errors import PUBLIC_URL, error_response
from roughy.core.errors import PayloadTooLarge, RateLimited, RoughyError, Unauthorized
from roughy.core.models import Account
from roughy.settings import Settings

log = logging.getLogger("roughy.api")

PUBLIC = ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc", "/console")
PROBES = ("/healthz", "/readyz", "/metrics")
SIGNED = ("/v1/uploads/", "/v1/files/")
#: A client's own X-Request-Id is kept when it is short and plain; anything else is replaced
#: (it is echoed in a header and written to every log line).
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
#: Failed admin authentications per client address and second, bursts of twice that: guessing
#: the admin key is slow, a typo is not punished. Behind a proxy, give uvicorn the proxy's
#: address (forwarded-allow-ips) so that the client's own address is the one counted.
AUTH_FAILURES_PER_SECOND = 1.0
#: Past this many remembered keys, the ones whose bucket has refilled are forgotten.
MAX_BUCKETS = 10_000

#: Every request, by route template (`/v1/renders/{render_id}`, never the raw path: the label
#: set stays bounded), method and status. Uploads and downloads take minutes: long buckets.
REQUEST_SECONDS = Histogram(
    "roughy_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by route template",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
#: The `route` of a request no route matches (a 404 for a path the API does not have).
UNMATCHED = "<unmatched>"
#: Methods counted as themselves; any other token a client sends is `OTHER`.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class TokenBucket:
    """Per-key request limit: `rate` per second, bursts up to twice that."""

    def __init__(self, rate: float):
        self.rate = rate
        self.capacity = max(1.0, rate * 2)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 if allowed, else seconds until a token is free."""
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > MAX_BUCKETS:
                self._forget_full(now)
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate

    def wait(self, key: str) -> float:
        """Seconds until `key` has a token again (0: it has one), taking none."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """Drop the keys whose bucket has refilled: they are as if never seen (bounded memory)."""
        refill = self.capacity / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < refill}


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, *, authenticate: Callable[[str], Account | None], settings: Settings):
        self.app = app
        self.authenticate = authenticate
        self.settings = settings
        self.bucket = TokenBucket(settings.rate_limit_per_second)
        self.failures = TokenBucket(AUTH_FAILURES_PER_SECOND)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id") or ""
        if not REQUEST_ID.fullmatch(request_id):
            request_id = f"req_{uuid.uuid4().hex[:16]}"
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        logs.REQUEST_ID.set(request_id)  # every log line and error body of this request carries it
        PUBLIC_URL.set(self.settings.resolved_public_url())  # errors' doc_url
        started = time.monotonic()
        status_holder = {"status": 500, "started": False, "routed": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self._check(scope, state)
            if _is_json_api(scope["path"]):
                receive = await self._buffered_body(scope, receive)
            status_holder["routed"] = True
            await self.app(scope, receive, send_with_id)
        except RoughyError as exc:
            await error_response(exc.status, exc.code, exc.message, exc.param, exc.headers)(
                scope, receive, send_with_id
            )
        except Exception:
            log.exception("unhandled error (request %s)", request_id)
            if not status_holder["started"]:
                await error_response(
                    500, "internal_error", f"an internal error occurred; quote request id {request_id}"
                )(scope, receive, send_with_id)
        finally:
            elapsed = time.monotonic() - started
            duration_ms = round(elapsed * 1000, 1)
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            route = route_template(scope, routed=bool(status_holder["routed"]))
            REQUEST_SECONDS.labels(method, route, str(status_holder["status"])).observe(elapsed)
            # Probes and scrapes come every few seconds from the platform: DEBUG, unless they fail.
            quiet = scope["path"] in PROBES and status_holder["status"] < 400
            log.log(
                logging.DEBUG if quiet else logging.INFO,
                "%s %s -> %s (%.1f ms) request_id=%s",
                scope["method"],
                scope["path"],
                status_holder["status"],
                duration_ms,
                request_id,
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status_holder["status"],
                    "duration_ms": duration_ms,
                },
            )

    async def _buffered_body(self, scope: Scope, receive: Receive) -> Receive:
        """Read the (small, JSON) body here, after auth (SPEC order: 401 before the body): a
        chunked body without Content-Length must hold to `max_body_bytes` too. The app then
        reads the buffered copy."""
        limit = self.settings.max_body_bytes
        length = _header(scope, b"content-length")
        if length and length.isdigit() and int(length) > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away: let the app see the disconnect
            body += message.get("body", b"")
            if len(body) > limit:
                raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        return replay

    async def _check(self, scope: Scope, state: dict[str, Any]) -> None:
        path: str = scope["path"]
        if path.startswith(PUBLIC) or path.startswith(SIGNED) or not path.startswith("/v1/"):
            return
        key = _bearer(scope)
        if path.startswith("/v1/admin/"):
            admin_key = self.settings.admin_key
            if not admin_key:
                from roughy.core.errors import NotFound

                raise NotFound("the admin API is not enabled (set ROUGHY_ADMIN_KEY)")
            # The admin key is chosen by a person: guessing it is slowed per client address, and
            # while an address is slowed down it is refused before its key is even compared.
            address = f"admin:{(scope.get('client') or ('unknown', 0))[0]}"
            if (wait := self.failures.wait(address)) > 0:
                raise RateLimited("too many failed admin authentications; slow down", retry_after=_seconds(wait))
            if key is None or not hmac.compare_digest(key.encode(), admin_key.encode()):
                self.failures.take(address)
                raise Unauthorized("a valid admin key is required")
            return
        if key is None:
            raise Unauthorized("missing API key: send Authorization: Bearer <key>")
        account = await anyio.to_thread.run_sync(self.authenticate, key)
        if account is None:  # API keys are 32 random bytes: there is nothing to guess
            raise Unauthorized("unknown or revoked API key")
        wait = self.bucket.take(account.id)
        if wait > 0:
            raise RateLimited("too many requests; slow down", retry_after=_seconds(wait))
        state["account"] = account


def route_template(scope: Scope, *, routed: bool) -> str:
    """The path template of the route that served (or would have served) this request.

    Routing leaves the route it chose in `scope["route"]` (for a method the route does not
    take, a 405, too); when the app routed the request and left none, no route has its path:
    `UNMATCHED`. A request refused here before routing (401, 413, 429) has none either, so the
    app's routes are matched against its path: a refusal counts under the route it was meant
    for (0.05-0.2 ms, paid by refusals only)."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    if routed:
        return UNMATCHED
    app = scope.get("app")
    partial = None
    for route in _routes(getattr(app, "routes", ())):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(route.path)
        if match is Match.PARTIAL and partial is None:
            partial = str(route.path)
    return partial or UNMATCHED


def _routes(routes: Any) -> Any:
    """Every route with its full path: FastAPI >= 0.15x nests included routers
    (`iter_route_contexts` walks them); before, `app.routes` was already flat."""
    try:
        from fastapi.routing import iter_route_contexts  # type: ignore[attr-defined,unused-ignore]
    except ImportError:  # pragma: no cover - older FastAPI: flat routes
        return routes
    return iter_route_contexts(routes)


def _seconds(wait: float) -> int:
    return max(1, int(wait + 0.999))


def _is_json_api(path: str) -> bool:
    """JSON bodies, limited in size before anything reads them: the public API, and the encoder
    pods' channel (`/internal/`, reachable wherever the API is: its body is read before its
    token is checked)."""
    return (path.startswith("/v1/") and not path.startswith(SIGNED)) or path.startswith("/internal/")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _bearer(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
