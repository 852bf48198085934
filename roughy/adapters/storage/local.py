"""Media on local disk, with HMAC-signed URLs that the API itself serves (embedded runtime).

A signed URL is `<public_url>/v1/uploads/<key>` (PUT) or `<public_url>/v1/files/<key>` (GET)
with `?expires=<unix>[&filename=...]&sig=<hex>`, where the signature is an HMAC-SHA256 over the
method, the storage key, the expiry and the filename. The routes verify it against the key they
parsed from their own parameters, the one they then read or write, never against the request's
URL (which a Host header or an encoded `#` can make differ from what the router matched).
Anything altered or expired is refused (403), and so is a key that is not plain
`segment/segment/...` of safe characters.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlencode

from roughy.core.errors import Forbidden, PayloadTooLarge

UPLOAD_ROUTE = "/v1/uploads/"
DOWNLOAD_ROUTE = "/v1/files/"
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def _check_key(key: str) -> None:
    """Keys are what the service makes (`assets/<id>/video`, `renders/<id>/output.mp4`): plain
    segments, none empty, none `.` or `..`, nothing a path or URL could read differently."""
    if not all(_SEGMENT.fullmatch(part) and part not in (".", "..") for part in key.split("/")):
        raise Forbidden("bad storage key")


class LocalStorage:
    def __init__(self, root: Path, *, signing_key: bytes, public_url: str):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._key = signing_key
        self.public_url = public_url.rstrip("/")

    # -- objects ----------------------------------------------------------------------------

    def path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if self.root.resolve() not in p.parents:
            raise Forbidden("bad storage key")
        return p

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    async def stage(self, key: str, chunks: AsyncIterator[bytes], *, limit: int) -> tuple[Path, int]:
        """Write a stream beside `key` under a temporary name: (that file, its size). Over
        `limit` bytes: 413, nothing kept. `promote` puts it in place, `discard` drops it."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        written = 0
        try:
            with open(tmp, "wb") as fh:
                async for chunk in chunks:
                    written += len(chunk)
                    if written > limit:
                        raise PayloadTooLarge(f"upload is over the limit of {limit} bytes")
                    fh.write(chunk)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, written

    def promote(self, staged: Path, key: str) -> None:
        """The staged file becomes `key`, atomically (a reader sees the old bytes or the new)."""
        os.replace(staged, self.path(key))

    def discard(self, staged: Path) -> None:
        staged.unlink(missing_ok=True)

    def move(self, source: str, target: str) -> None:
        os.replace(self.path(source), self.path(target))

    def sweep_partial(self) -> list[Path]:
        """Remove the temporary files of uploads a crash cut short (`.<name>.<hex>.part`).
        Only at start-up, under the data directory's lock: no upload is running then."""
        swept = [p for p in self.root.rglob(".*.part") if p.is_file()]
        for path in swept:
            path.unlink(missing_ok=True)
        return swept

    def delete_prefix(self, prefix: str) -> None:
        p = self.path(prefix.rstrip("/"))
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)

    def source_url(self, key: str) -> str:
        return str(self.path(key))

    def output_target(self, key: str) -> str:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        return str(p)

    # -- signed URLs ------------------------------------------------------------------------

    def _sig(self, method: str, key: str, expires: int, filename: str) -> str:
        msg = f"{method}\n{key}\n{expires}\n{filename}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def signed_url(self, method: str, key: str, ttl: int, filename: str = "") -> tuple[str, datetime]:
        """A URL of the API's own upload (PUT) or download (GET) route for `key`."""
        _check_key(key)
        expires = int(time.time()) + ttl
        params: dict[str, str | int] = {"expires": expires}
        if filename:
            params["filename"] = filename
        params["sig"] = self._sig(method, key, expires, filename)
        route = UPLOAD_ROUTE if method == "PUT" else DOWNLOAD_ROUTE
        return f"{self.public_url}{route}{quote(key)}?{urlencode(params)}", datetime.fromtimestamp(expires, UTC)

    def verify(self, method: str, key: str, expires: str | None, sig: str | None, filename: str = "") -> None:
        """Refuse (403) unless `sig` signs exactly this method, key, expiry and filename."""
        if not expires or not sig or not expires.isdigit():
            raise Forbidden("missing or malformed signature")
        if int(expires) < time.time():
            raise Forbidden("this link has expired; fetch a fresh one")
        _check_key(key)
        if not hmac.compare_digest(self._sig(method, key, int(expires), filename), sig):
            raise Forbidden("invalid signature")

    def upload_target(self, key: str, ttl: int) -> dict[str, object]:
        url, expires_at = self.signed_url("PUT", key, ttl)
        return {"url": url, "method": "PUT", "headers": {}, "expires_at": expires_at}

    def download_url(self, key: str, filename: str, ttl: int) -> tuple[str, datetime]:
        return self.signed_url("GET", key, ttl, filename)
