"""`roughy.sdk.Client`: the typed client of the roughy API."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from roughy.sdk._http import SAFE_METHODS, RetryPolicy, Sender, json_of
from roughy.sdk.resources import (
    Assets,
    CreditsResource,
    Cuts,
    Events,
    Renders,
    WebhookEndpoints,
    new_idempotency_key,
)

USER_AGENT = "roughy-python-sdk/0.1"


class Client:
    """A synchronous client (httpx). Use it as a context manager, or `close()` it.

    `timeout` is seconds per request (connect, each read; uploads and downloads wait as long as
    bytes keep moving, each read within it). `max_retries` is how many times a retryable failure is
    tried again (see `roughy.sdk._http` for which are), `max_retry_delay` the longest wait
    between two tries, `Retry-After` included. `transport` replaces the network (httpx's
    `MockTransport` in tests).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        max_retry_delay: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = base_url.rstrip("/")
        headers = {"User-Agent": USER_AGENT}
        self.api = httpx.Client(
            base_url=self.base_url,
            headers={**headers, "Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )
        # Signed upload and download URLs carry their own authorisation (an S3 presigned URL
        # refuses a request with a second one): no API key there.
        self.files = httpx.Client(headers=headers, timeout=timeout, transport=transport, follow_redirects=True)
        policy = RetryPolicy(max_retries=max_retries, max_delay=max_retry_delay)
        self._api_sender = Sender(self.api, policy, sleep=sleep)
        self._file_sender = Sender(self.files, policy, sleep=sleep)
        self.assets = Assets(self)
        self.cuts = Cuts(self)
        self.renders = Renders(self)
        self.webhook_endpoints = WebhookEndpoints(self)
        self.events = Events(self)
        self.credits = CreditsResource(self)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        safe: bool | None = None,
        idempotency: bool = False,
    ) -> Any:
        """One API call with the retry rules; its JSON body (None for an empty one).

        `safe` says the call may be repeated (default: by method). `idempotency` sends an
        `Idempotency-Key`, the same on every try of this call, which makes a POST safe.
        """
        headers: dict[str, str] = {}
        if idempotency:
            headers["Idempotency-Key"] = new_idempotency_key()
        repeatable = idempotency or (safe if safe is not None else method.upper() in SAFE_METHODS)
        response = self._api_sender.send(
            lambda: self.api.build_request(method, path, json=json, params=params, headers=headers),
            safe=repeatable,
        )
        return json_of(response) if response.content else None

    def send_file_request(self, build: Callable[[], httpx.Request], *, stream: bool = False) -> httpx.Response:
        """A request to a signed URL (PUT or GET: safe to repeat)."""
        return self._file_sender.send(build, safe=True, stream=stream)

    def close(self) -> None:
        self.api.close()
        self.files.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
