"""PUT a finished output to a (presigned) URL: how a Kubernetes Job hands its render back; and
GET an intermediate (a chunk of a chunked render) back for the join (`download`).

`upload_to_target` also takes a presigned multipart upload (outputs over S3's 5 GiB single-PUT
limit, or over the storage's multipart threshold): the parts are PUT in turn, then completed.

Standard library only (`urllib`): the body is streamed from the file with an explicit
`Content-Length` (object stores refuse chunked uploads to presigned URLs), and the given
`Content-Type` (a presigned PUT may sign it). A connection failure or a 5xx answer is tried
again a couple of times, since the alternative is encoding the whole render again; a 4xx (an
expired or wrong signature) is not. Messages never show the URL's query string (the signature).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO, TypeVar

from roughy.encoder.errors import EncodeFailed, clean_line

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Seconds to wait before each retry of a failed upload (so 1 + len attempts in all).
RETRY_DELAYS: Sequence[float] = (1.0, 4.0)
#: Socket timeout: seconds without progress (connecting, sending a block, awaiting the answer).
TIMEOUT = 60.0


def upload(path: str, url: str, content_type: str, *, timeout: float = TIMEOUT) -> None:
    """PUT the file at `path` to `url`; raise EncodeFailed when it cannot be stored."""
    if not url.lower().startswith(("http://", "https://")):
        raise EncodeFailed(f"cannot upload to {_safe(url)}: not an http(s) URL")
    with_retries(functools.partial(_put, path, url, content_type, timeout), f"uploading the output to {_safe(url)}")


def download(url: str, path: str, *, timeout: float = TIMEOUT) -> int:
    """GET `url` into the file at `path` (replaced whole, never left half-written); the size.
    Retried like an upload; EncodeFailed when it cannot be read."""
    if not url.lower().startswith(("http://", "https://")):
        raise EncodeFailed(f"cannot download {_safe(url)}: not an http(s) URL")
    return with_retries(functools.partial(_get, url, path, timeout), f"downloading {_safe(url)}")


def _get(url: str, path: str, timeout: float) -> int:
    request = urllib.request.Request(url, method="GET")  # noqa: S310 - the scheme is checked above
    temp = f"{path}.download"
    size = 0
    try:
        with _answer(request, url, timeout, "downloading") as response, open(temp, "wb") as out:
            while block := response.read(1 << 20):
                out.write(block)
                size += len(block)
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    return size


class Retryable(Exception):
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
                raise Retryable(reason) from None
            raise EncodeFailed(f"uploading the output to {_safe(url)} failed: {reason}") from None
        except OSError as exc:  # URLError included: refused, reset, timed out, DNS
            raise Retryable(_os_reason(exc)) from None
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


def upload_to_target(
    path: str, target: dict[str, Any], content_type: str, *, timeout: float = TIMEOUT, abort_on_failure: bool = False
) -> None:
    """Store the file at `path` as `target` says: `{"method": "PUT", "url"}` (one PUT), or a
    presigned multipart upload `{"method": "multipart", "part_size", "parts": [{"part_number",
    "url", "offset"}], "complete": {"url"}, "abort": {"url"}}` (roughy.adapters.storage.s3's
    `output_upload`): each part is PUT in turn (and retried on its own), then the ETags are
    POSTed to the completion URL. EncodeFailed when the file cannot be stored.

    Only a file larger than the parts handed out aborts the upload (no retry can fit it). Any
    other failure leaves it open: the Job's next pod (a retry, or a replacement for an evicted
    one) has the same URLs and PUTs the parts again, and the operator aborts what is left open
    when the render fails or is cancelled (`delete_prefix`). `abort_on_failure`: the upload
    was opened for this attempt alone (the API's channel opens one per ask): abort it on any
    failure, since a retry asks for a new one."""
    method = str(target.get("method", "")).upper()
    if method == "PUT":
        upload(path, str(target["url"]), content_type, timeout=timeout)
        return
    if method != "MULTIPART":
        raise EncodeFailed(f"unknown upload method {target.get('method')!r}")
    try:
        etags = _put_parts(path, target, timeout)
    except _TooLarge as exc:
        _abort(str(target["abort"]["url"]), timeout)
        raise EncodeFailed(str(exc)) from None
    except BaseException:  # a failure, or SIGTERM (the encoder's Terminated) while uploading
        if abort_on_failure:
            _abort_quietly(str(target["abort"]["url"]), timeout)
        raise
    try:
        _complete(str(target["complete"]["url"]), etags, timeout)
    except BaseException:
        if abort_on_failure:
            _abort_quietly(str(target["abort"]["url"]), timeout)
        raise


class _TooLarge(Exception):
    """The output does not fit the upload planned for it."""


def _put_parts(path: str, target: dict[str, Any], timeout: float) -> list[tuple[int, str]]:
    size = os.path.getsize(path)
    part_size = int(target["part_size"])
    parts = sorted(target["parts"], key=lambda p: int(p["part_number"]))
    if size > part_size * len(parts):
        raise _TooLarge(
            f"the output ({size} bytes) is larger than the upload planned for it ({part_size * len(parts)} bytes)"
        )
    etags: list[tuple[int, str]] = []
    started = time.monotonic()
    for part in parts:
        offset = int(part["offset"])
        if offset >= size and etags:
            break
        length = min(part_size, size - offset)
        etag = with_retries(functools.partial(_put_range, path, str(part["url"]), offset, length, timeout))
        etags.append((int(part["part_number"]), etag))
    log.info("uploaded %d bytes in %d parts in %.1f s", size, len(etags), time.monotonic() - started)
    return etags


def _put_range(path: str, url: str, offset: int, length: int, timeout: float) -> str:
    with open(path, "rb") as file:
        file.seek(offset)
        body = _Window(file, length)
        request = urllib.request.Request(  # noqa: S310 - presigned http(s) URLs from the operator
            url,
            data=body,
            method="PUT",
            # without a Content-Type urllib sends a form's, which servers may try to parse
            headers={"Content-Length": str(length), "Content-Type": "application/octet-stream"},
        )
        with _answer(request, url, timeout) as response:
            etag = response.headers.get("ETag")
    if not etag:
        raise EncodeFailed(f"the part upload to {_safe(url)} returned no ETag")
    return str(etag)


def _complete(url: str, etags: list[tuple[int, str]], timeout: float) -> None:
    parts = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in etags)
    body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()

    def post() -> str:
        request = urllib.request.Request(  # noqa: S310 - a presigned http(s) URL
            url, data=body, method="POST", headers={"Content-Type": "application/xml"}
        )
        with _answer(request, url, timeout) as response:
            text = bytes(response.read(64 * 1024)).decode("utf-8", "replace")
        if "<Error>" in text:  # S3 may answer 200 and report the failure in the body
            raise Retryable(clean_line(text)[:200])
        return text

    with_retries(post)


def _abort_quietly(url: str, timeout: float) -> None:
    """Abort an upload on the way out of a failure: whatever happens, the failure is what counts."""
    try:
        _abort(url, min(timeout, 10.0))
    except Exception as exc:  # noqa: BLE001 - best effort
        log.warning("could not abort the multipart upload: %s", exc)


def _abort(url: str, timeout: float) -> None:
    request = urllib.request.Request(url, method="DELETE")  # noqa: S310 - a presigned http(s) URL
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read()
    except OSError as exc:
        log.warning("could not abort the multipart upload at %s: %s", _safe(url), _os_reason(exc))


class _Window(io.RawIOBase):
    """At most `length` bytes of `file` from where it stands: one part's body, streamed."""

    def __init__(self, file: BinaryIO, length: int):
        self._file, self._left = file, length

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if size is None or size < 0 else min(size, self._left)
        data = self._file.read(min(want, 1024 * 1024))
        self._left -= len(data)
        return data


@contextlib.contextmanager
def _answer(
    request: urllib.request.Request, url: str, timeout: float, what: str = "uploading the output to"
) -> Iterator[Any]:
    """The response of `request`; 5xx, 408, 429 and network errors are retryable."""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            yield response
    except urllib.error.HTTPError as exc:
        reason = f"HTTP {exc.code} {exc.reason}"
        if exc.code >= 500 or exc.code in (408, 429):
            raise Retryable(reason) from None
        raise EncodeFailed(f"{what} {_safe(url)} failed: {reason}") from None
    except OSError as exc:
        raise Retryable(_os_reason(exc)) from None


def with_retries(
    action: Callable[[], T], what: str = "uploading the output", delays: Sequence[float] | None = None
) -> T:
    """`action()`, tried again after each of `delays` (default RETRY_DELAYS) when it raises
    Retryable; EncodeFailed once they are spent. Also the encoder's calls to the API (channel)."""
    delays = list(RETRY_DELAYS if delays is None else delays)
    while True:
        try:
            return action()
        except Retryable as exc:
            if not delays:
                raise EncodeFailed(f"{what} failed: {exc}") from None
            delay = delays.pop(0)
            log.warning("%s failed (%s); trying again in %g s", what, exc, delay)
            time.sleep(delay)
