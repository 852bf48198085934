"""Media in S3 or an S3-compatible store, through one boto3 client (Kubernetes runtime).

Keys are the embedded runtime's keys (`assets/<id>/video`, `renders/<id>/output.mp4`) under an
optional bucket prefix. Nothing botocore leaves this module: a missing object is `NotFound`, a
store that cannot be reached or refuses our credentials is `StorageUnavailable` (503, code
`storage_unavailable`), a stream over its limit is `PayloadTooLarge`.

Who gets which URL
------------------
- Clients (asset part uploads, render downloads) get presigned URLs signed for
  `s3_public_endpoint_url` when it is set (clients may reach the store by another address than
  the cluster does); a SigV4 signature covers the host, so the URL cannot be rewritten later.
- The encoder (a Job in the cluster) gets presigned URLs for `s3_endpoint_url`:
  `source_url` is a GET it reads with HTTP range requests (ffmpeg's http protocol seeks with
  `Range`, so a cut of a long source never downloads all of it); `output_target` is one
  presigned PUT, and `output_upload` a presigned multipart upload for outputs that may pass
  5 GiB (see there). Both live `s3_encoder_url_ttl` seconds by default (24 h): longer than the
  longest encode.

S3 limits this module is built around
-------------------------------------
- A single PUT (put_object, a presigned PUT) carries at most 5 GiB.
- A multipart upload has 1-10,000 parts of 5 MiB-5 GiB each (the last may be smaller); an object
  is at most 5 TiB. Until it is completed or aborted, an upload's parts are stored (and billed)
  but invisible: `write_stream` and `delete_prefix` abort what they leave behind; a bucket
  lifecycle rule (AbortIncompleteMultipartUpload) should sweep uploads whose client vanished.
- A SigV4 presigned URL lives at most 7 days (longer TTLs are clamped to that), and one signed
  with temporary credentials (IRSA, EKS pod identity, STS) stops working when they expire,
  whatever its TTL.
- A presigned PUT cannot cap the size of what is uploaded through it: the API checks the size of
  an uploaded part when the client completes it (`size`).
"""

from __future__ import annotations

import logging
import math
import mimetypes
import time
import unicodedata
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import anyio
import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from roughy.core.errors import ErrorCode, Forbidden, NotFound, PayloadTooLarge, RoughyError, ValidationFailed
from roughy.core.formats import format_of

if TYPE_CHECKING:
    from roughy.settings import Settings

log = logging.getLogger("roughy.storage.s3")

T = TypeVar("T")

MiB = 1024**2
GiB = 1024**3
MAX_SINGLE_PUT = 5 * GiB  # S3's limit for one PUT
MIN_PART_SIZE = 5 * MiB  # every part but the last
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = 5 * 1024 * GiB  # 5 TiB
MAX_PRESIGN_TTL = 7 * 24 * 3600  # SigV4 query signatures
PRESIGNED_MAX_PARTS = 1000  # part URLs presigned for one upload at most
ENCODER_TARGET_PARTS = 40  # output_upload grows its parts so a Job carries ~40 URLs: one env var (128 KiB max)
DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys

_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}


class StorageUnavailable(RoughyError):
    """Object storage could not be reached, or refused the service's own credentials/bucket."""

    code, status = ErrorCode.STORAGE_UNAVAILABLE, 503

    def __init__(self, message: str, *, retry_after: int = 5):
        super().__init__(message, headers={"Retry-After": str(retry_after)})


@contextmanager
def _edge(action: str, key: str = "") -> Iterator[None]:
    """Translate botocore's errors into roughy's at the edge (logging the vendor detail)."""
    try:
        yield
    except ClientError as exc:
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code != "NoSuchBucket" and (code in _NOT_FOUND_CODES or status == 404):
            raise NotFound(f"no such object: {key}" if code != "NoSuchUpload" else "no such upload") from None
        log.warning("S3 %s of %r failed: %s (%s) %s", action, key, code, status, err.get("Message", ""))
        raise StorageUnavailable(f"object storage refused the {action} ({code or status})") from None
    except BotoCoreError as exc:
        log.warning("S3 %s of %r failed: %s", action, key, exc)
        raise StorageUnavailable(f"object storage is unreachable ({type(exc).__name__})") from None


def client_config(
    *, addressing_style: str = "auto", max_attempts: int = 5, timeout: float = 60.0, pool: int = 32
) -> Config:
    """The botocore configuration every roughy S3 client uses.

    Checksums only where S3 requires them: botocore >= 1.36 otherwise adds CRC32 checksum headers
    and presigned-URL parameters that several S3-compatible stores reject, and that a client
    PUTting to a presigned URL would have to send.
    """
    return Config(
        signature_version="s3v4",
        s3={"addressing_style": addressing_style},
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=timeout,
        read_timeout=timeout,
        max_pool_connections=pool,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII `filename` and, for other names, an RFC 5987 `filename*`."""
    name = "".join(ch for ch in filename if ch >= " " and ch != "\x7f").strip()
    if not name:
        return "attachment"
    fallback = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    fallback = fallback.replace("\\", "_").replace('"', "_").strip()
    stem, dot, ext = fallback.rpartition(".")
    if not (stem if dot else fallback).strip(" ."):
        fallback = f"download.{ext}" if dot and ext else "download"
    if fallback == name:
        return f'attachment; filename="{name}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def content_type(key: str) -> str:
    fmt = format_of(key)
    if fmt is not None:
        return fmt.mime_type
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


def plan_part_size(total: int, requested: int, max_parts: int = MAX_PARTS) -> int:
    """The part size for `total` bytes: at least `requested` and 5 MiB, grown (to whole MiB) so
    that no more than `max_parts` parts are needed."""
    size = max(requested, MIN_PART_SIZE, math.ceil(total / max_parts))
    size = math.ceil(size / MiB) * MiB
    if size > MAX_PART_SIZE:
        raise PayloadTooLarge(f"{total} bytes do not fit in {max_parts} parts of at most {MAX_PART_SIZE} bytes")
    return size


def _expires_at(ttl: int) -> datetime:
    return datetime.fromtimestamp(int(time.time()) + ttl, UTC)


def _ttl(ttl: int) -> int:
    return min(max(int(ttl), 1), MAX_PRESIGN_TTL)


class S3Storage:
    """The `Storage` port on S3. One boto3 client (thread-safe) serves every call; a second one,
    used only to presign, when client-facing URLs must name another endpoint."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        prefix: str = "",
        presign_client: Any = None,
        multipart_threshold: int = 16 * MiB,
        part_size: int = 16 * MiB,
        encoder_url_ttl: int = 24 * 3600,
    ):
        if not bucket:
            raise ValueError("an S3 bucket is required (ROUGHY_S3_BUCKET)")
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be {MIN_PART_SIZE}-{MAX_PART_SIZE} bytes")
        if not 0 <= multipart_threshold <= MAX_SINGLE_PUT:
            raise ValueError(f"multipart_threshold must be 0-{MAX_SINGLE_PUT} bytes")
        self._client = client
        self._presigner = presign_client or client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.encoder_url_ttl = _ttl(encoder_url_ttl)

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        """Build the clients once from `ROUGHY_S3_*`; credentials default to boto3's chain."""
        if not settings.s3_bucket:
            raise ValueError("ROUGHY_S3_BUCKET is required for S3 storage")
        session = boto3.session.Session(
            aws_access_key_id=settings.s3_access_key_id or None,
            aws_secret_access_key=settings.s3_secret_access_key or None,
            region_name=settings.s3_region,
        )
        config = client_config(
            addressing_style=settings.s3_addressing_style,
            max_attempts=settings.s3_max_attempts,
            timeout=settings.s3_timeout,
        )
        client = session.client("s3", endpoint_url=settings.s3_endpoint_url or None, config=config)
        public = settings.s3_public_endpoint_url
        presigner = None
        if public and public != settings.s3_endpoint_url:
            presigner = session.client("s3", endpoint_url=public, config=config)
        return cls(
            client,
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            presign_client=presigner,
            multipart_threshold=settings.s3_multipart_threshold,
            part_size=settings.s3_multipart_part_size,
            encoder_url_ttl=settings.s3_encoder_url_ttl,
        )

    # -- keys -------------------------------------------------------------------------------

    def object_key(self, key: str) -> str:
        """The bucket key of a storage key; refuses keys that would escape their folder."""
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in key:
            raise Forbidden("bad storage key")
        return self.prefix + key

    def _call(self, action: str, key: str, fn: Callable[..., T], **kwargs: Any) -> T:
        with _edge(action, key):
            return fn(Bucket=self.bucket, **kwargs)

    # -- objects ----------------------------------------------------------------------------

    def check(self) -> None:
        """Readiness: the bucket is reachable with our credentials, else StorageUnavailable."""
        try:
            self._call("bucket check", "", self._client.head_bucket)
        except NotFound:
            raise StorageUnavailable(f"bucket {self.bucket!r} does not exist") from None

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except NotFound:
            return False
        return True

    def size(self, key: str) -> int:
        head = self._call("HEAD", key, self._client.head_object, Key=self.object_key(key))
        return int(head["ContentLength"])

    async def write_stream(self, key: str, chunks: AsyncIterator[bytes], *, limit: int) -> int:
        """Store a stream: one PUT up to `multipart_threshold` bytes, a multipart upload beyond.

        The object appears only whole (S3 makes a PUT or a completed upload visible at once).
        Past `limit` bytes, or on any failure or cancellation, an open multipart upload is
        aborted, so nothing is left: no object, no stored parts. Memory: one part buffered.
        """
        obj = self.object_key(key)
        part_size = plan_part_size(min(limit, MAX_OBJECT_SIZE), self.part_size)
        buf = bytearray()
        written = 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []

        async def put_part(body: bytes) -> None:
            assert upload_id is not None
            number = len(parts) + 1
            res = await anyio.to_thread.run_sync(
                lambda: self._call(
                    "part upload",
                    key,
                    self._client.upload_part,
                    Key=obj,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=body,
                )
            )
            parts.append({"PartNumber": number, "ETag": res["ETag"]})

        try:
            async for chunk in chunks:
                written += len(chunk)
                if written > limit:
                    raise PayloadTooLarge(f"upload is over the limit of {limit} bytes")
                buf += chunk
                if upload_id is None and len(buf) > self.multipart_threshold:
                    res = await anyio.to_thread.run_sync(
                        lambda: self._call(
                            "multipart start",
                            key,
                            self._client.create_multipart_upload,
                            Key=obj,
                            ContentType=content_type(key),
                        )
                    )
                    upload_id = str(res["UploadId"])
                while upload_id is not None and len(buf) >= part_size:
                    body = bytes(buf[:part_size])
                    del buf[:part_size]
                    await put_part(body)
            if upload_id is None:
                body = bytes(buf)
                await anyio.to_thread.run_sync(
                    lambda: self._call(
                        "upload", key, self._client.put_object, Key=obj, Body=body, ContentType=content_type(key)
                    )
                )
            else:
                if buf or not parts:
                    await put_part(bytes(buf))
                await anyio.to_thread.run_sync(
                    lambda: self._call(
                        "multipart completion",
                        key,
                        self._client.complete_multipart_upload,
                        Key=obj,
                        UploadId=upload_id,
                        MultipartUpload={"Parts": parts},
                    )
                )
                upload_id = None
        finally:
            if upload_id is not None:
                pending = upload_id
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(lambda: self._abort_quietly(obj, pending))
        return written

    def _abort_quietly(self, obj: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=obj, UploadId=upload_id)
        except (BotoCoreError, ClientError) as exc:  # the lifecycle rule sweeps what is left
            log.warning("could not abort multipart upload %s of %r: %s", upload_id, obj, exc)

    def move(self, source: str, target: str) -> None:
        """A server-side copy (multipart for big objects), then the source's delete."""
        copy_source = {"Bucket": self.bucket, "Key": self.object_key(source)}
        with _edge("copy", source):
            self._client.copy(copy_source, self.bucket, self.object_key(target))
        self._call("delete", source, self._client.delete_object, Key=self.object_key(source))

    def delete_prefix(self, prefix: str) -> None:
        """Delete the object named `prefix` and everything under `prefix/` (as LocalStorage
        removes a file or a directory: `renders/r_1` never touches `renders/r_12/...`), after
        aborting the multipart uploads still open there (an encoder's unfinished output)."""
        base = self.object_key(prefix.rstrip("/"))
        under = base + "/"
        with _edge("cleanup listing", prefix):
            uploads = self._client.get_paginator("list_multipart_uploads")
            for page in uploads.paginate(Bucket=self.bucket, Prefix=base):
                for up in page.get("Uploads", []):
                    if up["Key"] == base or up["Key"].startswith(under):
                        self._call(
                            "multipart abort",
                            up["Key"],
                            self._client.abort_multipart_upload,
                            Key=up["Key"],
                            UploadId=up["UploadId"],
                        )
            batch: list[str] = [base]
            listing = self._client.get_paginator("list_objects_v2")
            for page in listing.paginate(Bucket=self.bucket, Prefix=under):
                for obj in page.get("Contents", []):
                    batch.append(obj["Key"])
                    if len(batch) == DELETE_BATCH:
                        self._delete_batch(batch)
                        batch = []
            if batch:
                self._delete_batch(batch)

    def _delete_batch(self, keys: list[str]) -> None:
        res = self._call(
            "delete",
            keys[0],
            self._client.delete_objects,
            Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True},
        )
        errors = res.get("Errors") or []
        if errors:
            first = errors[0]
            log.warning("S3 refused to delete %d objects, e.g. %r: %s", len(errors), first.get("Key"), first)
            raise StorageUnavailable(f"object storage refused to delete {len(errors)} objects ({first.get('Code')})")

    # -- presigned URLs ---------------------------------------------------------------------

    def _presign(self, operation: str, params: dict[str, Any], ttl: int, *, public: bool) -> str:
        client = self._presigner if public else self._client
        with _edge("presign", str(params.get("Key", ""))):
            url: str = client.generate_presigned_url(operation, Params={"Bucket": self.bucket, **params}, ExpiresIn=ttl)
        return url

    def source_url(self, key: str, ttl: int | None = None) -> str:
        """A presigned GET the encoder reads with HTTP range requests (`s3_encoder_url_ttl`)."""
        return self._presign(
            "get_object", {"Key": self.object_key(key)}, _ttl(ttl or self.encoder_url_ttl), public=False
        )

    def output_target(self, key: str, ttl: int | None = None) -> str:
        """A presigned PUT for an encoder's finished output, up to 5 GiB (S3's single-PUT limit).

        The encoder renders to local scratch (MP4 `+faststart` rewrites the file, so ffmpeg
        cannot write to HTTP directly), then sends one `PUT` with a `Content-Length` (S3 refuses
        chunked transfer encoding) and no other required header. Larger outputs: `output_upload`.
        """
        return self._presign(
            "put_object", {"Key": self.object_key(key)}, _ttl(ttl or self.encoder_url_ttl), public=False
        )

    def output_upload(
        self, key: str, max_size: int, *, part_size: int | None = None, ttl: int | None = None
    ) -> dict[str, Any]:
        """What an encoder Job needs to store an output of up to `max_size` bytes, credential-free.

        Up to `multipart_threshold`: `{"method": "PUT", "url", "headers": {}, "expires_at"}`, as
        `output_target`. Beyond (and necessarily beyond 5 GiB): a multipart upload opened now,
        `{"method": "multipart", "upload_id", "part_size", "parts": [{"part_number", "url",
        "method": "PUT", "offset", "size"}], "complete": {"url", "method": "POST"}, "abort":
        {"url", "method": "DELETE"}, "expires_at"}`. The encoder PUTs bytes
        `[offset, offset + part_size)` of its file to each part URL in turn until the file ends
        (later URLs stay unused; parts are retried on their own), keeps each response's `ETag`
        header, then POSTs `<CompleteMultipartUpload><Part><PartNumber>n</PartNumber><ETag>..
        </ETag></Part>...</CompleteMultipartUpload>` to `complete.url` (the object appears
        then), or DELETEs `abort.url` on failure. `max_size` is an upper bound the operator
        derives from the plan (bitrates x duration, with a margin): an output past it fails.
        Parts grow so that about 40 URLs are handed out. `delete_prefix` aborts an upload left
        open by a stopped encoder.
        """
        ttl = _ttl(ttl or self.encoder_url_ttl)
        obj = self.object_key(key)
        if max_size <= self.multipart_threshold:
            url = self._presign("put_object", {"Key": obj}, ttl, public=False)
            return {"method": "PUT", "url": url, "headers": {}, "expires_at": _expires_at(ttl)}
        size = part_size or max(self.part_size, math.ceil(max_size / ENCODER_TARGET_PARTS))
        out = self._open_multipart(key, max_size, size, ttl)
        upload = {"Key": obj, "UploadId": out["upload_id"]}
        out["method"] = "multipart"
        out["complete"] = {
            "url": self._presign("complete_multipart_upload", upload, ttl, public=False),
            "method": "POST",
        }
        out["abort"] = {"url": self._presign("abort_multipart_upload", upload, ttl, public=False), "method": "DELETE"}
        return out

    def upload_target(self, key: str, ttl: int) -> dict[str, object]:
        """A client's presigned PUT: `{url, method: "PUT", headers: {}, expires_at}`.

        One PUT carries at most 5 GiB (S3's limit, and the default `max_upload_bytes`); nothing
        in the URL caps the size, so the API checks `size(key)` when the part is completed.
        """
        ttl = _ttl(ttl)
        url = self._presign("put_object", {"Key": self.object_key(key)}, ttl, public=True)
        return {"url": url, "method": "PUT", "headers": {}, "expires_at": _expires_at(ttl)}

    def _open_multipart(self, key: str, size: int, part_size: int, ttl: int) -> dict[str, Any]:
        """Open a multipart upload of `size` bytes; presign a PUT for each of its parts."""
        if size <= 0:
            raise ValidationFailed("the upload size must be positive", param="size")
        if size > MAX_OBJECT_SIZE:
            raise PayloadTooLarge(f"an object is at most {MAX_OBJECT_SIZE} bytes")
        part_size = plan_part_size(size, part_size, PRESIGNED_MAX_PARTS)
        obj = self.object_key(key)
        res = self._call(
            "multipart start", key, self._client.create_multipart_upload, Key=obj, ContentType=content_type(key)
        )
        upload_id = str(res["UploadId"])
        parts = []
        for number in range(1, math.ceil(size / part_size) + 1):
            offset = (number - 1) * part_size
            params = {"Key": obj, "UploadId": upload_id, "PartNumber": number}
            parts.append(
                {
                    "part_number": number,
                    "url": self._presign("upload_part", params, ttl, public=False),
                    "method": "PUT",
                    "offset": offset,
                    "size": min(part_size, size - offset),
                }
            )
        return {
            "upload_id": upload_id,
            "part_size": part_size,
            "parts": parts,
            "headers": {},
            "expires_at": _expires_at(ttl),
        }

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop an open multipart upload and its parts; an unknown upload is not an error."""
        try:
            self._call(
                "multipart abort",
                key,
                self._client.abort_multipart_upload,
                Key=self.object_key(key),
                UploadId=upload_id,
            )
        except NotFound:
            pass

    def download_url(self, key: str, filename: str, ttl: int) -> tuple[str, datetime]:
        """A presigned GET that serves the file as an attachment named `filename`, with the
        Content-Type of its format; S3 answers Content-Length and byte ranges (206) itself."""
        ttl = _ttl(ttl)
        params = {
            "Key": self.object_key(key),
            "ResponseContentDisposition": content_disposition(filename),
            "ResponseContentType": content_type(key),
        }
        return self._presign("get_object", params, ttl, public=True), _expires_at(ttl)
