"""One class per resource of the API, reached as `client.assets`, `client.renders`, ..."""

from __future__ import annotations

import mimetypes
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote

import httpx
from pydantic import BaseModel

from roughy.sdk.errors import ConnectionFailed, Forbidden, WaitTimeout
from roughy.sdk.models import (
    ASSET_FINAL,
    CUT_FINAL,
    RENDER_FINAL,
    Asset,
    Credits,
    Cut,
    Delivery,
    Page,
    Redelivery,
    Render,
    Segment,
    UploadTarget,
    WebhookEndpoint,
)

if TYPE_CHECKING:
    from roughy.sdk.client import Client

M = TypeVar("M", bound=BaseModel)

#: `progress(bytes_done, bytes_total)` of an upload or a download (total None when unknown).
BytesProgress = Callable[[int, int | None], None]

CHUNK_SIZE = 1 << 20


class Resource:
    def __init__(self, client: Client):
        self._client = client

    def _page(self, model: type[M], path: str, params: dict[str, Any]) -> Page[M]:
        body = self._client.request("GET", path, params={k: v for k, v in params.items() if v is not None})
        return Page[model].model_validate(body)  # type: ignore[valid-type]

    def _iter(self, model: type[M], path: str, params: dict[str, Any], page_size: int) -> Iterator[M]:
        """Every item, page after page (`has_more` / `starting_after`), newest first."""
        after: str | None = None
        while True:
            page = self._page(model, path, {**params, "limit": page_size, "starting_after": after})
            yield from page.data
            if not page.has_more or not page.data:
                return
            after = str(getattr(page.data[-1], "id"))  # noqa: B009 - every listed resource has one

    def _wait(
        self,
        fetch: Callable[[], M],
        final: frozenset[str],
        progress: Callable[[M], None] | None,
        poll_interval: float,
        timeout: float | None,
    ) -> M:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            obj = fetch()
            if progress is not None:
                progress(obj)
            state = str(getattr(obj, "state"))  # noqa: B009
            if state in final:
                return obj
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeout(str(getattr(obj, "id")), state, timeout or 0.0)  # noqa: B009
            time.sleep(poll_interval)


class Assets(Resource):
    def create(self, kind: str, filename: str, *, client_audio: bool = False) -> Asset:
        """A new asset in state `uploading`, with one upload target per part (`asset.upload`)."""
        body = {"kind": kind, "filename": filename, "client_audio": client_audio}
        return Asset.model_validate(self._client.request("POST", "/v1/assets", json=body, idempotency=True))

    def get(self, asset_id: str) -> Asset:
        return Asset.model_validate(self._client.request("GET", f"/v1/assets/{asset_id}"))

    def list(self, *, limit: int | None = None, starting_after: str | None = None) -> Page[Asset]:
        return self._page(Asset, "/v1/assets", {"limit": limit, "starting_after": starting_after})

    def iter(self, *, page_size: int = 100) -> Iterator[Asset]:
        return self._iter(Asset, "/v1/assets", {}, page_size)

    def delete(self, asset_id: str) -> None:
        self._client.request("DELETE", f"/v1/assets/{asset_id}")

    def complete(self, asset_id: str, part: str) -> Asset:
        """The part's bytes are uploaded: processing starts (and the asset's one credit is charged)."""
        path = f"/v1/assets/{asset_id}/parts/{part}/complete"
        return Asset.model_validate(self._client.request("POST", path, safe=True))

    def upload(
        self,
        source: str | os.PathLike[str] | IO[bytes],
        *,
        kind: str | None = None,
        filename: str | None = None,
        progress: BytesProgress | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> Asset:
        """Create an asset, stream `source` to its upload URL in chunks, complete the part.

        `source` is a path or a binary file object (read from where it stands, `chunk_size`
        bytes at a time: never whole into memory). `kind` defaults to `audio` for an audio file
        name, else `video`. Returns the asset as the completion answers it (`processing`); use
        `wait` for the outcome.
        """
        name = filename or _name_of(source)
        kind = kind or _kind_of(name)
        asset = self.create(kind, name)
        part = "video" if kind == "video" else "audio"
        if not asset.upload or part not in asset.upload:
            raise ValueError(f"the new asset {asset.id} offers no {part} upload")
        self.put_part(asset.upload[part], source, progress=progress, chunk_size=chunk_size)
        return self.complete(asset.id, part)

    def put_part(
        self,
        target: UploadTarget,
        source: str | os.PathLike[str] | IO[bytes],
        *,
        progress: BytesProgress | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        """PUT the bytes of `source` to an upload target, streamed, with a Content-Length."""
        if isinstance(source, str | os.PathLike):
            with open(source, "rb") as fh:
                self._put(target, fh, progress, chunk_size)
        else:
            self._put(target, source, progress, chunk_size)

    def _put(self, target: UploadTarget, fh: IO[bytes], progress: BytesProgress | None, chunk_size: int) -> None:
        start = fh.tell()
        total = fh.seek(0, os.SEEK_END) - start
        headers = {**target.headers, "Content-Length": str(total)}

        def chunks() -> Iterator[bytes]:
            fh.seek(start)  # again from the start on a retry
            sent = 0
            if progress is not None:
                progress(0, total)
            while chunk := fh.read(chunk_size):
                sent += len(chunk)
                yield chunk
                if progress is not None:
                    progress(sent, total)

        self._client.send_file_request(
            lambda: self._client.files.build_request(target.method, target.url, headers=headers, content=chunks())
        ).close()

    def wait(
        self,
        asset_id: str,
        *,
        progress: Callable[[Asset], None] | None = None,
        poll_interval: float = 0.5,
        timeout: float | None = None,
    ) -> Asset:
        """Poll until the asset is `ready`, `failed` or `payment_required`; `progress` sees each read."""
        return self._wait(lambda: self.get(asset_id), ASSET_FINAL, progress, poll_interval, timeout)


class Cuts(Resource):
    def create(
        self,
        asset_id: str,
        *,
        segments: list[Segment] | list[tuple[float, float]] | None = None,
        method: str | None = None,
        min_silence: float | None = None,
        threshold_db: float | None = None,
        padding: float | None = None,
    ) -> Cut:
        """An explicit cut (`segments`, seconds on the source) or a derived one (`method="silence"`)."""
        body: dict[str, Any] = {}
        if segments is not None:
            body["segments"] = [_segment(s) for s in segments]
        if method is None and segments is None:
            method = "silence"
        extra = {"method": method, "min_silence": min_silence, "threshold_db": threshold_db, "padding": padding}
        body.update({key: value for key, value in extra.items() if value is not None})
        path = f"/v1/assets/{asset_id}/cuts"
        return Cut.model_validate(self._client.request("POST", path, json=body, idempotency=True))

    def get(self, cut_id: str) -> Cut:
        return Cut.model_validate(self._client.request("GET", f"/v1/cuts/{cut_id}"))

    def list(self, asset_id: str, *, limit: int | None = None, starting_after: str | None = None) -> Page[Cut]:
        return self._page(Cut, f"/v1/assets/{asset_id}/cuts", {"limit": limit, "starting_after": starting_after})

    def iter(self, asset_id: str, *, page_size: int = 100) -> Iterator[Cut]:
        return self._iter(Cut, f"/v1/assets/{asset_id}/cuts", {}, page_size)

    def delete(self, cut_id: str) -> None:
        self._client.request("DELETE", f"/v1/cuts/{cut_id}")

    def wait(
        self,
        cut_id: str,
        *,
        progress: Callable[[Cut], None] | None = None,
        poll_interval: float = 0.5,
        timeout: float | None = None,
    ) -> Cut:
        return self._wait(lambda: self.get(cut_id), CUT_FINAL, progress, poll_interval, timeout)


class Renders(Resource):
    def create(
        self,
        asset_id: str,
        format: str,
        *,
        cut_id: str | None = None,
        resolution: str | None = None,
        video_bitrate: int | None = None,
        audio_bitrate: int | None = None,
    ) -> Render:
        """A render (201), or the existing one of the same content (200, SPEC 5.4): safe to retry."""
        output = {"format": format, "resolution": resolution, "video_bitrate": video_bitrate}
        output["audio_bitrate"] = audio_bitrate
        body: dict[str, Any] = {"asset_id": asset_id, "output": {k: v for k, v in output.items() if v is not None}}
        if cut_id is not None:
            body["cut_id"] = cut_id
        return Render.model_validate(self._client.request("POST", "/v1/renders", json=body, safe=True))

    def get(self, render_id: str) -> Render:
        return Render.model_validate(self._client.request("GET", f"/v1/renders/{render_id}"))

    def list(
        self,
        *,
        asset_id: str | None = None,
        state: str | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
    ) -> Page[Render]:
        params = {"asset_id": asset_id, "state": state, "limit": limit, "starting_after": starting_after}
        return self._page(Render, "/v1/renders", params)

    def iter(self, *, asset_id: str | None = None, state: str | None = None, page_size: int = 100) -> Iterator[Render]:
        return self._iter(Render, "/v1/renders", {"asset_id": asset_id, "state": state}, page_size)

    def cancel(self, render_id: str) -> None:
        """Hard delete: the render and its output are gone, a running encode stops."""
        self._client.request("DELETE", f"/v1/renders/{render_id}")

    def wait(
        self,
        render_id: str,
        *,
        progress: Callable[[Render], None] | None = None,
        poll_interval: float = 0.5,
        timeout: float | None = None,
    ) -> Render:
        """Poll until `completed` or `failed`; `progress` sees each read (`render.progress` 0-1)."""
        return self._wait(lambda: self.get(render_id), RENDER_FINAL, progress, poll_interval, timeout)

    def download(
        self,
        render: Render | str,
        path: str | os.PathLike[str] | None = None,
        *,
        progress: BytesProgress | None = None,
    ) -> Path:
        """Stream a completed render's file to `path` (a file, or a directory to put it in; default
        the current directory) under the name its Content-Disposition gives. The file appears
        whole or not at all (written beside, then renamed). An expired URL is fetched afresh."""
        if isinstance(render, str) or not render.download_url:
            render = self.get(render if isinstance(render, str) else render.id)
        try:
            return self._download(render, path, progress)
        except Forbidden:
            return self._download(self.get(render.id), path, progress)  # the signed URL expired

    def _download(self, render: Render, path: str | os.PathLike[str] | None, progress: BytesProgress | None) -> Path:
        if not render.download_url:
            raise ValueError(f"render {render.id} is {render.state}: it has no file to download")
        url = render.download_url
        response = self._client.send_file_request(lambda: self._client.files.build_request("GET", url), stream=True)
        try:
            dest = _destination(path, _disposition_filename(response.headers.get("content-disposition")) or render.id)
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
            _write_atomically(dest, response, total, progress)
        finally:
            response.close()
        return dest


class WebhookEndpoints(Resource):
    def create(self, url: str, events: list[str]) -> WebhookEndpoint:
        """The answer carries the signing `secret`: shown only here (and on rotation)."""
        body = {"url": url, "events": events}
        return WebhookEndpoint.model_validate(self._client.request("POST", "/v1/webhook_endpoints", json=body))

    def get(self, endpoint_id: str) -> WebhookEndpoint:
        return WebhookEndpoint.model_validate(self._client.request("GET", f"/v1/webhook_endpoints/{endpoint_id}"))

    def list(self, *, limit: int | None = None, starting_after: str | None = None) -> Page[WebhookEndpoint]:
        params = {"limit": limit, "starting_after": starting_after}
        return self._page(WebhookEndpoint, "/v1/webhook_endpoints", params)

    def iter(self, *, page_size: int = 100) -> Iterator[WebhookEndpoint]:
        return self._iter(WebhookEndpoint, "/v1/webhook_endpoints", {}, page_size)

    def delete(self, endpoint_id: str) -> None:
        self._client.request("DELETE", f"/v1/webhook_endpoints/{endpoint_id}")

    def deliveries(
        self, endpoint_id: str, *, limit: int | None = None, starting_after: str | None = None
    ) -> Page[Delivery]:
        path = f"/v1/webhook_endpoints/{endpoint_id}/deliveries"
        return self._page(Delivery, path, {"limit": limit, "starting_after": starting_after})


class Events(Resource):
    def redeliver(self, event_id: str) -> Redelivery:
        """Queue the event again (same `evt_` id) to every endpoint that wants it."""
        return Redelivery.model_validate(self._client.request("POST", f"/v1/events/{event_id}/redeliver"))


class CreditsResource(Resource):
    def get(self) -> Credits:
        return Credits.model_validate(self._client.request("GET", "/v1/credits"))


# -- helpers -------------------------------------------------------------------------------------

AUDIO_SUFFIXES = frozenset({".mp3", ".m4a", ".aac", ".wav", ".flac", ".ogg", ".opus", ".mka", ".wma", ".aiff"})


def new_idempotency_key() -> str:
    return f"sdk_{uuid.uuid4().hex}"


def _name_of(source: str | os.PathLike[str] | IO[bytes]) -> str:
    if isinstance(source, str | os.PathLike):
        return Path(source).name
    name = getattr(source, "name", None)
    if isinstance(name, str) and name:
        return Path(name).name
    raise ValueError("pass filename= when uploading a file object without a name")


def _kind_of(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    guessed = mimetypes.guess_type(filename)[0] or ""
    return "audio" if suffix in AUDIO_SUFFIXES or guessed.startswith("audio/") else "video"


def _segment(segment: Segment | tuple[float, float]) -> dict[str, float]:
    if isinstance(segment, Segment):
        return {"start": segment.start, "end": segment.end}
    start, end = segment
    return {"start": float(start), "end": float(end)}


_FILENAME_STAR = re.compile(r"filename\*\s*=\s*(?:[\w-]+)?'[^']*'([^;]+)", re.IGNORECASE)
_FILENAME = re.compile(r'filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]+))', re.IGNORECASE)


def _disposition_filename(header: str | None) -> str | None:
    """The file name a Content-Disposition suggests (RFC 6266: `filename*` first), made safe:
    its last path component only, never `.` or `..`."""
    if not header:
        return None
    star = _FILENAME_STAR.search(header)
    plain = _FILENAME.search(header)
    if star:
        name = unquote(star.group(1).strip())
    elif plain:
        name = (plain.group(1) if plain.group(1) is not None else plain.group(2)).strip()
    else:
        return None
    name = Path(name.replace("\\", "/")).name
    return name if name not in ("", ".", "..") else None


def _destination(path: str | os.PathLike[str] | None, suggested: str) -> Path:
    dest = Path(path) if path is not None else Path.cwd()
    return dest / suggested if dest.is_dir() else dest


def _write_atomically(dest: Path, response: httpx.Response, total: int | None, progress: BytesProgress | None) -> None:
    fd, temp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        umask = os.umask(0o022)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # as any new file (mkstemp makes it owner-only)
        with os.fdopen(fd, "wb") as out:
            done = 0
            if progress is not None:
                progress(0, total)
            try:
                for chunk in response.iter_bytes(CHUNK_SIZE):
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
            except httpx.TransportError as exc:  # the connection dropped mid-file
                url = response.request.url
                raise ConnectionFailed(f"{url.scheme}://{url.netloc.decode()}", exc) from exc
        os.replace(temp, dest)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
