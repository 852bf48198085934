"""The encoder's channel to the API on Kubernetes: presigned URLs when needed, progress as it goes.

A Job's pod is given `ROUGHY_API_URL` (the API as pods reach it), `ROUGHY_RENDER_ID` and
`ROUGHY_TOKEN_FILE`, a file of the render's Secret (roughy.core.tokens): no URL and no secret
in its environment. It asks (`roughy.app.encoding` answers):

- `inputs()` at start: fresh GETs of its sources (and of a chunked render's chunks);
- `output(chunk)` once the file is encoded: where to store it, signed then;
- `progress(value, encoder)`: sent by a background thread (`ProgressSender`), only after
  REPORT_STEP more progress and at most every REPORT_INTERVAL seconds (the first reports come
  sooner, FIRST_INTERVAL apart and growing, so that a short encode shows progress at all), so
  that a stalled API never slows the encode and a long render makes about a hundred calls.

Standard library only, like the uploads. Network errors, 5xx, 408 and 429 are tried again
(the same delays as an upload); another 4xx means the render is not this token's, or no longer
running (cancelled, finished): the encode has nobody to deliver to, and fails.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import urllib.error
import urllib.request
from typing import Any

from roughy.encoder.errors import EncodeFailed
from roughy.encoder.upload import Retryable, with_retries

log = logging.getLogger(__name__)

ENV_API_URL = "ROUGHY_API_URL"
ENV_RENDER_ID = "ROUGHY_RENDER_ID"
ENV_TOKEN_FILE = "ROUGHY_TOKEN_FILE"
TIMEOUT = 30.0
#: Progress reports: at most one per REPORT_INTERVAL seconds, and only once it moved REPORT_STEP.
REPORT_INTERVAL = 2.0
FIRST_INTERVAL = 0.25  # the n-th report waits n times this, up to REPORT_INTERVAL
REPORT_STEP = 0.01


class ChannelError(EncodeFailed):
    """The API refused or could not be reached (after retries)."""


class Channel:
    def __init__(self, api_url: str, render_id: str, token: str, *, timeout: float = TIMEOUT):
        if not api_url.lower().startswith(("http://", "https://")):
            raise EncodeFailed(f"{ENV_API_URL} is not an http(s) URL")
        self.base = f"{api_url.rstrip('/')}/internal/v1/renders/{render_id}"
        self.render_id = render_id
        self._token = token
        self.timeout = timeout

    @classmethod
    def from_environment(cls) -> Channel | None:
        """The channel the Job's environment describes; None outside a Job (no ROUGHY_API_URL)."""
        api_url = os.environ.get(ENV_API_URL)
        if not api_url:
            return None
        render_id, token_file = os.environ.get(ENV_RENDER_ID), os.environ.get(ENV_TOKEN_FILE)
        if not render_id or not token_file:
            raise EncodeFailed(f"{ENV_API_URL} needs {ENV_RENDER_ID} and {ENV_TOKEN_FILE}")
        try:
            token = open(token_file, encoding="utf-8").read().strip()  # noqa: SIM115 - read at once
        except OSError as exc:
            raise EncodeFailed(f"cannot read the render's token ({ENV_TOKEN_FILE}): {exc.strerror}") from None
        if not token:
            raise EncodeFailed(f"the render's token file ({ENV_TOKEN_FILE}) is empty")
        return cls(api_url, render_id, token)

    def inputs(self) -> dict[str, Any]:
        """{"video": url | None, "audio": url | None, "chunks": [url, ...] (a chunked render)}."""
        return self._call("inputs", {}) or {}

    def output(self, chunk: int | None = None) -> dict[str, Any]:
        """Where to store the output (a PUT or a multipart upload), or the given chunk (a PUT)."""
        answer = self._call("output", {"chunk": chunk})
        if not isinstance(answer, dict) or "method" not in answer:
            raise ChannelError("the API gave no upload target")
        return answer

    def progress(self, value: float, encoder: str | None = None) -> None:
        body: dict[str, Any] = {"progress": round(min(max(value, 0.0), 1.0), 4)}
        if encoder:
            body["encoder"] = encoder
        self._call("progress", body, retries=False)

    def _call(self, what: str, body: dict[str, Any], *, retries: bool = True) -> Any:
        return with_retries(
            functools.partial(self._post, what, body), f"asking the API for {what}", None if retries else ()
        )

    def _post(self, what: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            f"{self.base}/{what}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                text = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code >= 500 or exc.code in (408, 429):
                raise Retryable(f"HTTP {exc.code}") from None
            raise ChannelError(f"the API refused {what} for render {self.render_id}: {_message(exc)}") from None
        except OSError as exc:
            raise Retryable(str(getattr(exc, "reason", exc))) from None
        return json.loads(text) if text else None


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        error = json.loads(exc.read() or b"{}").get("error") or {}
        return f"HTTP {exc.code} {error.get('code', '')}: {error.get('message', '')}"
    except (ValueError, AttributeError, OSError):
        return f"HTTP {exc.code}"


class ProgressSender:
    """Reports progress through `channel` from a background thread: the latest value, at most
    every `interval` seconds, once it moved `step` (and the encoder, with the first report).
    A failed report is logged and forgotten: progress is for show, the outcome is not."""

    def __init__(
        self,
        channel: Channel,
        encoder: str | None = None,
        *,
        scale: tuple[float, float] = (0.0, 1.0),
        interval: float = REPORT_INTERVAL,
        step: float = REPORT_STEP,
    ):
        self.channel = channel
        self.interval, self.step = interval, step
        self._offset, self._span = scale  # what the API is told: offset + span * progress
        self._latest = 0.0
        self._sent: float | None = None
        self._encoder = encoder
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="progress-sender", daemon=True)
        self._thread.start()

    def update(self, progress: float) -> None:
        self._latest = max(self._latest, min(progress, 1.0))

    def close(self) -> None:
        self._stopped = True
        self._wake.set()
        self._thread.join(self.channel.timeout + 1)

    def _run(self) -> None:
        reports = 0
        while True:
            if self._send():
                reports += 1
            if self._wake.wait(min(self.interval, FIRST_INTERVAL * max(1, reports))) or self._stopped:
                self._send()  # the last value (the output stored: 1.0), unless it is no step further
                return

    def _send(self) -> bool:
        value = self._offset + self._span * self._latest
        if self._sent is not None and value - self._sent < self.step:
            return False
        try:
            self.channel.progress(value, self._encoder if self._sent is None else None)
            self._sent = value
        except EncodeFailed as exc:
            log.info("progress not reported: %s", exc.message)
        return True
