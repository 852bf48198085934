"""S3Storage against moto's S3 server over real HTTP: boto3 for the adapter, httpx for every
presigned URL (what a client, a browser or the encoder does with it)."""

from __future__ import annotations

import inspect
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from roughy.adapters.storage.local import LocalStorage
from roughy.adapters.storage.s3 import (
    MiB,
    S3Storage,
    StorageUnavailable,
    _edge,
    client_config,
    content_disposition,
    plan_part_size,
)
from roughy.core.errors import Forbidden, NotFound, PayloadTooLarge
from roughy.core.ports import Storage
from roughy.settings import Settings
from roughy.testing import MemoryStorage
from tests.storage.conftest import BUCKET
from tests.storage.s3server import StrictS3Server, seed

# -- helpers ---------------------------------------------------------------------------------


def blob(size: int, seed: int = 7) -> bytes:
    """Deterministic bytes that differ at every offset (a misplaced part would show)."""
    pattern = bytes((i * 31 + seed) % 251 for i in range(251))
    return (pattern * (size // len(pattern) + 1))[:size]


async def chunked(data: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def write(storage: S3Storage, key: str, data: bytes, *, limit: int | None = None) -> int:
    return anyio.run(lambda: storage.write_stream(key, chunked(data), limit=limit or len(data) + 1))


def pending_uploads(s3: Any, prefix: str) -> list[dict[str, Any]]:
    return list(s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", []))


def time_now() -> datetime:
    return datetime.now(UTC)


def get(s3: Any, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


# -- client uploads --------------------------------------------------------------------------


def test_presigned_put_then_exists_and_size(storage: S3Storage, http: httpx.Client, root: str) -> None:
    key = f"assets/{root}/video"
    assert not storage.exists(key)
    target = storage.upload_target(key, 300)
    assert target["method"] == "PUT" and target["headers"] == {}
    assert 290 <= (target["expires_at"] - time_now()).total_seconds() <= 300  # type: ignore[operator]
    data = blob(300_000)
    res = http.put(str(target["url"]), content=data)
    assert res.status_code == 200, res.text
    assert storage.exists(key)
    assert storage.size(key) == len(data)


def test_altered_presigned_url_is_refused(storage: S3Storage, http: httpx.Client, root: str) -> None:
    url = str(storage.upload_target(f"assets/{root}/video", 300)["url"])
    res = http.put(url.replace(f"{root}/video", f"{root}/audio"), content=b"x")
    assert res.status_code == 403
    assert "SignatureDoesNotMatch" in res.text
    assert not storage.exists(f"assets/{root}/audio")


def test_expired_presigned_urls_are_refused(storage: S3Storage, s3: Any, http: httpx.Client, root: str) -> None:
    key = f"renders/{root}/output.mp4"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"rendered")
    download, _ = storage.download_url(key, "talk.mp4", 1)
    upload = str(storage.upload_target(f"assets/{root}/video", 1)["url"])
    assert http.get(download).status_code == 200  # valid while fresh
    time.sleep(2.1)
    res = http.get(download)
    assert res.status_code == 403 and "expired" in res.text
    assert http.put(upload, content=b"late").status_code == 403
    assert not storage.exists(f"assets/{root}/video")


def test_public_endpoint_names_the_client_facing_urls(
    s3_settings: Settings, s3_server: StrictS3Server, s3: Any, http: httpx.Client, root: str
) -> None:
    """Clients may reach the store at another address (here `localhost`) than the cluster."""
    public = s3_server.url.replace("127.0.0.1", "localhost")
    storage = S3Storage.from_settings(s3_settings.model_copy(update={"s3_public_endpoint_url": public}))
    key = f"assets/{root}/video"
    target = storage.upload_target(key, 60)
    assert str(target["url"]).startswith(public + "/")
    assert storage.source_url(key).startswith(s3_server.url + "/")  # the encoder stays inside
    assert http.put(str(target["url"]), content=b"abc").status_code == 200
    url, _ = storage.download_url(key, "a.mp4", 60)
    assert url.startswith(public + "/")
    assert http.get(url).content == b"abc"


# -- write_stream ----------------------------------------------------------------------------


def test_write_stream_small_is_one_put(storage: S3Storage, s3: Any, root: str) -> None:
    key = f"assets/{root}/audio"
    data = blob(1 * MiB)
    assert write(storage, key, data) == len(data)
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert "-" not in head["ETag"]  # not a multipart object
    assert get(s3, key) == data


def test_write_stream_multipart(storage: S3Storage, s3: Any, root: str) -> None:
    key = f"assets/{root}/video"
    data = blob(12 * MiB)
    assert storage.multipart_threshold == storage.part_size == 5 * MiB
    assert write(storage, key, data, limit=20 * MiB) == len(data)
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ETag"].strip('"').endswith("-3")  # 5 + 5 + 2 MiB
    assert head["ContentLength"] == len(data)
    assert get(s3, key) == data
    assert pending_uploads(s3, f"assets/{root}/") == []


def test_write_stream_over_the_limit_leaves_nothing(storage: S3Storage, s3: Any, root: str) -> None:
    key = f"assets/{root}/video"
    with pytest.raises(PayloadTooLarge):  # past the limit after two parts were uploaded
        write(storage, key, blob(12 * MiB), limit=11 * MiB)
    assert not storage.exists(key)
    assert pending_uploads(s3, f"assets/{root}/") == []
    with pytest.raises(PayloadTooLarge):  # past the limit before any multipart upload
        write(storage, key, blob(2 * MiB), limit=MiB)
    assert not storage.exists(key)


def test_write_stream_failure_or_cancel_aborts_the_upload(storage: S3Storage, s3: Any, root: str) -> None:
    key = f"assets/{root}/video"

    async def broken() -> AsyncIterator[bytes]:
        async for chunk in chunked(blob(11 * MiB)):
            yield chunk
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        anyio.run(lambda: storage.write_stream(key, broken(), limit=100 * MiB))

    stalled = anyio.Event()

    async def stalls() -> AsyncIterator[bytes]:  # a client that stops sending mid-upload
        async for chunk in chunked(blob(11 * MiB)):
            yield chunk
        stalled.set()
        await anyio.sleep(60)
        yield b""

    async def cancelled() -> None:  # ... and whose connection is then dropped
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: storage.write_stream(key, stalls(), limit=100 * MiB))
            await stalled.wait()
            open_uploads = await anyio.to_thread.run_sync(lambda: pending_uploads(s3, f"assets/{root}/"))
            assert len(open_uploads) == 1  # two parts are up
            tg.cancel_scope.cancel()

    anyio.run(cancelled)
    assert not storage.exists(key)
    assert pending_uploads(s3, f"assets/{root}/") == []


# -- downloads and the encoder's reads --------------------------------------------------------


def test_download_url_names_the_file_and_serves_ranges(
    storage: S3Storage, s3: Any, http: httpx.Client, root: str
) -> None:
    key = f"renders/{root}/output.mp4"
    data = blob(100_000)
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    url, expires_at = storage.download_url(key, "talk.mp4", 900)
    assert 890 <= (expires_at - time_now()).total_seconds() <= 900
    res = http.get(url)
    assert res.status_code == 200
    assert res.content == data
    assert res.headers["content-type"] == "video/mp4"
    assert res.headers["content-length"] == str(len(data))
    assert res.headers["content-disposition"] == 'attachment; filename="talk.mp4"'
    part = http.get(url, headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206
    assert part.content == data[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(data)}"

    url, _ = storage.download_url(key.replace(".mp4", ".m4a"), 'Vidéo "final".m4a', 60)
    s3.put_object(Bucket=BUCKET, Key=key.replace(".mp4", ".m4a"), Body=b"m4a")
    res = http.get(url)
    assert res.headers["content-type"] == "audio/mp4"
    assert res.headers["content-disposition"] == (
        "attachment; filename=\"Video _final_.m4a\"; filename*=UTF-8''Vid%C3%A9o%20%22final%22.m4a"
    )


def test_source_url_is_read_with_range_requests(storage: S3Storage, s3: Any, http: httpx.Client, root: str) -> None:
    key = f"assets/{root}/video"
    data = blob(3 * MiB)
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    url = storage.source_url(key)
    expires = int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0])
    assert expires == 24 * 3600  # s3_encoder_url_ttl: outlives the encode
    assert int(parse_qs(urlsplit(storage.source_url(key, ttl=30 * 24 * 3600)).query)["X-Amz-Expires"][0]) == 604800
    res = http.get(url, headers={"Range": f"bytes={2 * MiB}-"})  # what a seek near the end does
    assert res.status_code == 206
    assert res.content == data[2 * MiB :]
    assert http.head(url).status_code == 403  # a GET presign does not sign HEAD


def test_the_encoder_probes_a_presigned_source(storage: S3Storage, s3: Any, tmp_path: Path, root: str) -> None:
    """The real probe (PyAV/FFmpeg's http protocol, which seeks with Range) on a presigned URL."""
    from roughy.encoder.probe import probe
    from tests.media import make_video

    src = make_video(tmp_path / "src.mp4", duration=1.0)
    key = f"assets/{root}/video"
    s3.put_object(Bucket=BUCKET, Key=key, Body=src.read_bytes())
    info = probe(storage.source_url(key))
    assert info.duration == pytest.approx(1.0, abs=0.1)
    assert info.video is not None and (info.video.width, info.video.height) == (320, 240)


# -- the encoder's outputs --------------------------------------------------------------------


def test_output_target_is_a_single_presigned_put(storage: S3Storage, http: httpx.Client, root: str) -> None:
    key = f"renders/{root}/output.mp4"
    url = storage.output_target(key)
    assert int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0]) == 24 * 3600
    data = blob(2 * MiB)
    assert http.put(url, content=data).status_code == 200
    assert storage.size(key) == len(data)


def test_output_upload_small_is_a_put(storage: S3Storage, http: httpx.Client, root: str) -> None:
    target = storage.output_upload(f"renders/{root}/output.m4a", 4 * MiB)
    assert target["method"] == "PUT"
    assert http.put(target["url"], content=b"audio").status_code == 200
    assert storage.size(f"renders/{root}/output.m4a") == 5


def test_output_upload_multipart_completes_without_credentials(
    storage: S3Storage, s3: Any, http: httpx.Client, root: str
) -> None:
    """An encoder with nothing but the URLs uploads an output bigger than one part."""
    key = f"renders/{root}/output.mp4"
    target = storage.output_upload(key, 40 * MiB, part_size=5 * MiB)
    assert target["method"] == "multipart" and target["part_size"] == 5 * MiB
    assert len(target["parts"]) == 8  # URLs for up to max_size; the encoder uses what it needs
    data = blob(11 * MiB)
    etags = []
    for part in target["parts"]:
        body = data[part["offset"] : part["offset"] + target["part_size"]]
        if not body:
            break
        res = http.put(part["url"], content=body)
        assert res.status_code == 200, res.text
        etags.append((part["part_number"], res.headers["etag"]))
    assert not storage.exists(key)  # invisible until completed
    xml = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in etags)
    res = http.post(target["complete"]["url"], content=f"<CompleteMultipartUpload>{xml}</CompleteMultipartUpload>")
    assert res.status_code == 200, res.text
    assert get(s3, storage.object_key(key)) == data
    assert pending_uploads(s3, f"renders/{root}/") == []


def test_output_upload_abort_url(storage: S3Storage, s3: Any, http: httpx.Client, root: str) -> None:
    target = storage.output_upload(f"renders/{root}/output.mp4", 40 * MiB)
    assert len(target["parts"]) <= 100
    assert http.put(target["parts"][0]["url"], content=blob(target["part_size"])).status_code == 200
    assert http.delete(target["abort"]["url"]).status_code == 204
    assert pending_uploads(s3, f"renders/{root}/") == []


def test_abort_multipart_is_idempotent(storage: S3Storage, s3: Any, root: str) -> None:
    """What the operator calls when an encoder's multipart upload is left open."""
    key = f"renders/{root}/output.mp4"
    target = storage.output_upload(key, 40 * MiB)
    assert len(pending_uploads(s3, f"renders/{root}/")) == 1
    storage.abort_multipart(key, target["upload_id"])
    storage.abort_multipart(key, target["upload_id"])
    assert pending_uploads(s3, f"renders/{root}/") == []


def test_part_sizes_respect_s3_limits() -> None:
    assert plan_part_size(12 * MiB, 5 * MiB) == 5 * MiB
    assert plan_part_size(MiB, 1) == 5 * MiB  # S3's minimum part
    assert plan_part_size(5 * 1024**3, 5 * MiB, 1000) == 6 * MiB  # 5 GiB in <= 1000 parts
    assert plan_part_size(5 * 1024**4, 5 * MiB) == 525 * MiB  # 5 TiB in <= 10,000 parts
    with pytest.raises(PayloadTooLarge):
        plan_part_size(6 * 1024**4, 5 * MiB, 1000)


# -- deleting -------------------------------------------------------------------------------


def test_delete_prefix_paginates_and_spares_neighbours(
    storage: S3Storage, s3: Any, http: httpx.Client, root: str
) -> None:
    keys = [f"renders/{root}_1/seg/{i:04d}.ts" for i in range(1105)] + [f"renders/{root}_1/output.mp4"]
    neighbours = [f"renders/{root}_12/output.mp4", f"renders/{root}_1x", f"assets/{root}_1/video"]
    seed(BUCKET, keys)
    for key in neighbours:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b".")
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=f"renders/{root}_1/")["IsTruncated"]  # > 1 page
    open_upload = storage.output_upload(f"renders/{root}_1/final.mp4", 40 * MiB)  # a stopped encoder's
    assert http.put(open_upload["parts"][0]["url"], content=blob(open_upload["part_size"])).status_code == 200

    storage.delete_prefix(f"renders/{root}_1/")

    left = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"renders/{root}_1/")
    assert left["KeyCount"] == 0
    assert pending_uploads(s3, f"renders/{root}_1/") == []
    for key in neighbours:
        assert storage.exists(key), key
    storage.delete_prefix(f"renders/{root}_1")  # nothing left: fine
    storage.delete_prefix(f"renders/{root}_1x")  # a single object by its own name
    assert not storage.exists(f"renders/{root}_1x")
    assert storage.exists(f"renders/{root}_12/output.mp4")


# -- errors at the edge ---------------------------------------------------------------------


def test_missing_objects_and_bad_keys(storage: S3Storage, root: str) -> None:
    assert not storage.exists(f"assets/{root}/video")
    with pytest.raises(NotFound):
        storage.size(f"assets/{root}/video")
    for bad in ("", "/etc/passwd", "assets/../secrets", "assets//video", "a/./b"):
        with pytest.raises(Forbidden):
            storage.exists(bad)
    with pytest.raises(Forbidden):
        storage.delete_prefix("/")


def test_store_problems_are_storage_unavailable(s3_settings: Settings) -> None:
    """A missing bucket, a dead endpoint: 503 storage_unavailable, never a botocore error.
    (A HEAD answers a bare 404 for a missing bucket as for a missing key: `check()` tells.)"""
    missing = S3Storage.from_settings(s3_settings.model_copy(update={"s3_bucket": "no-such-bucket"}))
    with pytest.raises(StorageUnavailable) as err:
        missing.check()
    assert err.value.status == 503 and err.value.code == "storage_unavailable"
    with pytest.raises(StorageUnavailable):
        anyio.run(lambda: missing.write_stream("assets/a/video", chunked(b"abc"), limit=10))
    with pytest.raises(StorageUnavailable):
        missing.delete_prefix("assets/a/")

    with socket.socket() as sock:  # a loopback port with nobody listening
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    down = S3Storage.from_settings(
        s3_settings.model_copy(update={"s3_endpoint_url": dead, "s3_max_attempts": 1, "s3_timeout": 2.0})
    )
    with pytest.raises(StorageUnavailable):
        down.size("assets/a/video")
    with pytest.raises(StorageUnavailable):
        anyio.run(lambda: down.write_stream("assets/a/video", chunked(b"abc"), limit=10))


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("NoSuchKey", 404, NotFound),
        ("404", 404, NotFound),
        ("NoSuchUpload", 404, NotFound),
        ("NoSuchBucket", 404, StorageUnavailable),
        ("AccessDenied", 403, StorageUnavailable),
        ("SlowDown", 503, StorageUnavailable),
        ("InvalidPart", 400, StorageUnavailable),
    ],
)
def test_client_errors_are_translated(code: str, status: int, expected: type) -> None:
    with pytest.raises(expected):
        with _edge("op", "k"):
            raise _client_error(code, status)
    with pytest.raises(StorageUnavailable):
        with _edge("op", "k"):
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")


def test_check_passes_on_a_reachable_bucket(storage: S3Storage) -> None:
    storage.check()


# -- construction -----------------------------------------------------------------------------


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, s3_server: StrictS3Server) -> None:
    env = {
        "ROUGHY_S3_BUCKET": BUCKET,
        "ROUGHY_S3_ENDPOINT_URL": s3_server.url,
        "ROUGHY_S3_REGION": "eu-west-3",
        "ROUGHY_S3_ACCESS_KEY_ID": "testing-key",
        "ROUGHY_S3_SECRET_ACCESS_KEY": "testing-secret",
        "ROUGHY_S3_PREFIX": "/tenant-a/",
        "ROUGHY_S3_ADDRESSING_STYLE": "path",
        "ROUGHY_S3_MULTIPART_THRESHOLD": str(8 * MiB),
        "ROUGHY_S3_MULTIPART_PART_SIZE": str(6 * MiB),
        "ROUGHY_S3_ENCODER_URL_TTL": "7200",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert "testing-secret" not in repr(settings)
    storage = S3Storage.from_settings(settings)
    assert (storage.bucket, storage.prefix) == (BUCKET, "tenant-a/")
    assert (storage.multipart_threshold, storage.part_size, storage.encoder_url_ttl) == (8 * MiB, 6 * MiB, 7200)
    assert storage.object_key("assets/a/video") == "tenant-a/assets/a/video"
    url = storage.source_url("assets/a/video")
    assert "eu-west-3" in url and f"/{BUCKET}/tenant-a/assets/a/video?" in url
    with pytest.raises(ValueError):
        S3Storage.from_settings(Settings(s3_bucket=None))
    with pytest.raises(ValueError):
        S3Storage(object(), BUCKET, part_size=MiB)


def test_client_config() -> None:
    config = client_config(addressing_style="virtual", max_attempts=3)
    assert config.signature_version == "s3v4"
    assert config.s3 == {"addressing_style": "virtual"}
    assert config.retries == {"mode": "standard", "max_attempts": 3}


def test_content_disposition() -> None:
    assert content_disposition("talk.mp4") == 'attachment; filename="talk.mp4"'
    assert content_disposition("") == "attachment"
    assert content_disposition("a\r\nSet-Cookie: x.mp4") == 'attachment; filename="aSet-Cookie: x.mp4"'
    assert (
        content_disposition("日本.mp4")
        == "attachment; filename=\"download.mp4\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.mp4"
    )


# -- the port -------------------------------------------------------------------------------


def _port_methods() -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(Storage).items()
        if callable(member) and not name.startswith("_")
    }


@pytest.mark.parametrize("impl", [LocalStorage, S3Storage, MemoryStorage])
def test_implements_the_storage_port(impl: type) -> None:
    """Every port method exists with the port's parameters (names, kinds, order); extra
    parameters are optional; coroutine functions stay coroutine functions."""
    methods = _port_methods()
    assert set(methods) == {
        "exists",
        "size",
        "delete_prefix",
        "move",
        "source_url",
        "output_target",
        "upload_target",
        "download_url",
    }
    for name, port_sig in methods.items():
        member = getattr(impl, name, None)
        assert member is not None, f"{impl.__name__} lacks {name}"
        assert inspect.iscoroutinefunction(member) == inspect.iscoroutinefunction(getattr(Storage, name)), name
        sig = inspect.signature(member)
        wanted = [(p.name, p.kind) for p in port_sig.parameters.values()]
        have = [(p.name, p.kind) for p in sig.parameters.values()][: len(wanted)]
        assert have == wanted, f"{impl.__name__}.{name}{sig} vs port {port_sig}"
        for extra in list(sig.parameters.values())[len(wanted) :]:
            assert extra.default is not inspect.Parameter.empty, f"{impl.__name__}.{name}: {extra.name} needs a default"


def test_both_storages_type_as_the_port(tmp_path: Path, storage: S3Storage) -> None:
    local = LocalStorage(tmp_path, signing_key=b"k", public_url="http://127.0.0.1:1")
    chosen: list[Storage] = [local, storage]  # what mypy checks structurally
    assert all(callable(s.upload_target) for s in chosen)


def test_move_puts_the_bytes_at_the_target_and_removes_the_source(storage: S3Storage, s3: Any, root: str) -> None:
    """Completing a part moves its upload where it is read from (a server-side copy)."""
    write(storage, "assets/a/uploads/video", b"probed bytes")
    write(storage, "assets/a/video", b"older bytes")
    storage.move("assets/a/uploads/video", "assets/a/video")
    assert not storage.exists("assets/a/uploads/video")
    assert storage.size("assets/a/video") == len(b"probed bytes")
