"""PUT a finished output to a (presigned) URL: how a Kubernetes Job hands its render back.

Standard library only (`urllib`): the body is streamed from the file with an explicit
`Content-Length` (object stores refuse chunked uploads to presigned URLs), and the given
`Content-Type` (a presigned PUT may sign it). A connection failure or a 5xx answer is tried
again a couple of times, since the alternative is encoding the whole render again; a 4xx (an
expired or wrong signature) is not. Messages never show the URL's query string (the signature).
"""

from __future__ import annotations

import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

from roughy.encoder.errors import EncodeFailed, clean_line

log = logging.getLogger(__name__)

#: Seconds to wait before each retry of a failed upload (so 1 + len attempts in all).
RETRY_DELAYS: Sequence[float] = (1.0, 4.0)
#: Socket timeout: seconds without progress (connecting, sending a block, awaiting the answer).
TIMEOUT = 60.0


def upload(path: str, url: str, content_type: str, *, timeout: float = TIMEOUT) -> None:
    """PUT the file at `path` to `url`; raise EncodeFailed when it cannot be stored."""
    if not url.lower().startswith(("http://", "https://")):
        raise EncodeFailed(f"cannot upload to {_safe(url)}: not an http(s) URL")
    delays = list(RETRY_DELAYS)
    while True:
        try:
            _put(path, url, content_type, timeout)
            return
        except _Retryable as exc:
            if not delays:
                raise EncodeFailed(f"uploading the output to {_safe(url)} failed: {exc}") from None
            delay = delays.pop(0)
            log.warning("uploading the output failed (%s); trying again in %g s", exc, delay)
            time.sleep(delay)


class _Retryable(Exception):
    """A failure another attempt may get past."""


def _put(path: str, url: str, content_type: str, timeout: float) -> None:
    with open(path, "rb") as body:
        size = os.fstat(body.fileno()).st_size
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            url,
            data=body,
            method="PUT",
            headers={"Content-Type": content_type, "Content-Length": str(size)},
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code} {exc.reason}"
            if exc.code >= 500 or exc.code in (408, 429):
                raise _Retryable(reason) from None
            raise EncodeFailed(f"uploading the output to {_safe(url)} failed: {reason}") from None
        except OSError as exc:  # URLError included: refused, reset, timed out, DNS
            raise _Retryable(_os_reason(exc)) from None
    if not 200 <= status < 300:
        raise EncodeFailed(f"uploading the output to {_safe(url)} failed: HTTP {status}")
    log.info("uploaded %d bytes to %s in %.1f s", size, _safe(url), time.monotonic() - started)


def _os_reason(exc: OSError) -> str:
    """ "Connection refused" rather than "<urlopen error [Errno 111] Connection refused>"."""
    cause: object = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(cause) or type(cause).__name__


def _safe(url: str) -> str:
    """The URL as a person may see it: no query string (a presigned URL's signature)."""
    return clean_line(url)
