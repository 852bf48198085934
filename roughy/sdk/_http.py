"""The SDK's HTTP: one send loop with the retry rules, and the errors it raises.

What is retried, and why it is safe:

- `429` and `503` answer before the server did anything; `429` is retried for every request,
  `503` for requests that are safe to repeat.
- A refused or timed-out connection sent nothing: retried for every request.
- A dropped connection, a read timeout, `502` and `504` may come after the server acted: retried
  only for requests that are safe to repeat. Those are GET, PUT and DELETE; `POST /v1/renders`
  (idempotent on its content, SPEC 5.4); completing an upload part (completing twice is
  harmless); and `POST /v1/assets` and `POST /v1/assets/{id}/cuts`, which carry an
  `Idempotency-Key` generated once per call and sent again on each retry, so that the server
  answers a repeat with the first answer instead of creating a second resource (and a `409
  idempotency_key_in_use` while the first is still being answered, also retried).

The delay before retry n (0-based) is the server's `Retry-After` when it sends one (seconds or an
HTTP date), else `base x 2^n` with jitter (a uniform draw between half and all of it), and never
more than `max_delay`.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from roughy.sdk.errors import ApiError, ConnectionFailed, from_response

RETRY_ALWAYS = frozenset({429})
RETRY_IF_SAFE = frozenset({502, 503, 504})
#: Error codes worth a retry of a request that is safe to repeat, whatever their status: the
#: first request with the same `Idempotency-Key` is still being answered.
RETRY_CODES_IF_SAFE = frozenset({"idempotency_key_in_use"})
SAFE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(0.0, retry_after), self.max_delay)
        backoff = min(self.max_delay, self.base_delay * 2**attempt)
        return random.uniform(backoff / 2, backoff)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After: 3` or `Retry-After: Wed, 21 Oct 2026 07:28:00 GMT` -> seconds from now."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class Sender:
    """Sends requests built afresh for each try (a streamed body must be re-read from its start)."""

    def __init__(
        self,
        http: httpx.Client,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.http = http
        self.policy = policy
        self.sleep = sleep

    def send(self, build: Callable[[], httpx.Request], *, safe: bool, stream: bool = False) -> httpx.Response:
        """The first answer below 400 (streamed if asked: the caller closes it); else the error."""
        attempt = 0
        while True:
            request = build()
            try:
                response = self.http.send(request, stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                self._again_or_raise(attempt, safe=True, cause=exc, url=request.url)
            except httpx.TransportError as exc:
                self._again_or_raise(attempt, safe=safe, cause=exc, url=request.url)
            else:
                if response.status_code < 400:
                    return response
                if attempt > 0 and request.method == "DELETE" and response.status_code == 404:
                    response.close()
                    return response  # an earlier try deleted it; only its answer was lost
                if stream:
                    response.read()
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                error = from_response(response, retry_after)
                response.close()
                retryable = response.status_code in RETRY_ALWAYS or (
                    safe and (response.status_code in RETRY_IF_SAFE or error.code in RETRY_CODES_IF_SAFE)
                )
                if not retryable or attempt >= self.policy.max_retries:
                    raise error
                self.sleep(self.policy.delay(attempt, retry_after))
            attempt += 1

    def _again_or_raise(self, attempt: int, *, safe: bool, cause: httpx.TransportError, url: httpx.URL) -> None:
        if not safe or attempt >= self.policy.max_retries:
            origin = f"{url.scheme}://{url.netloc.decode()}"
            raise ConnectionFailed(origin, cause) from cause
        self.sleep(self.policy.delay(attempt, None))


def json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise ApiError(
            response.status_code, "invalid_response", f"the server answered something that is not JSON: {exc}"
        ) from exc
