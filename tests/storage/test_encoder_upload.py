"""The encoder's side of output uploads (roughy.encoder.upload.upload_to_target) against S3 over
HTTP, with nothing but what the operator hands a Job: one presigned PUT, or a presigned
multipart upload for outputs past the storage's threshold (and S3's 5 GiB single PUT)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from roughy.adapters.storage.s3 import MiB, S3Storage
from roughy.encoder.errors import EncodeFailed
from roughy.encoder.upload import upload_to_target
from tests.storage.test_s3 import blob, get, pending_uploads


def written(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "output.mp4"
    path.write_bytes(data)
    return str(path)


def test_a_multipart_target_stores_the_whole_file(storage: S3Storage, s3: Any, root: str, tmp_path: Path) -> None:
    key = f"renders/{root}/output.mp4"
    target = storage.output_upload(key, 40 * MiB, part_size=5 * MiB)
    assert target["method"] == "multipart"
    data = blob(11 * MiB + 123)  # three parts, the last one short
    # what the Job's environment carries, and the encoder reads back
    upload_to_target(written(tmp_path, data), json.loads(json.dumps(target, default=str)), "video/mp4")
    assert get(s3, storage.object_key(key)) == data
    assert pending_uploads(s3, f"renders/{root}/") == []


def test_an_output_larger_than_planned_fails_and_aborts_the_upload(
    storage: S3Storage, s3: Any, root: str, tmp_path: Path
) -> None:
    key = f"renders/{root}/output.mp4"
    target = storage.output_upload(key, 20 * MiB, part_size=5 * MiB)
    assert target["method"] == "multipart" and len(target["parts"]) == 4
    with pytest.raises(EncodeFailed, match="larger than the upload planned"):
        upload_to_target(written(tmp_path, blob(21 * MiB)), target, "video/mp4")
    assert not storage.exists(key)
    assert pending_uploads(s3, f"renders/{root}/") == [], "the multipart upload was aborted"


def test_a_refused_part_aborts_the_upload(storage: S3Storage, s3: Any, root: str, tmp_path: Path) -> None:
    key = f"renders/{root}/output.mp4"
    target = storage.output_upload(key, 40 * MiB, part_size=5 * MiB)
    target["parts"][1]["url"] = target["parts"][1]["url"].replace("X-Amz-Signature=", "X-Amz-Signature=0")
    with pytest.raises(EncodeFailed, match="403"):
        upload_to_target(written(tmp_path, blob(11 * MiB)), target, "video/mp4")
    assert not storage.exists(key) and pending_uploads(s3, f"renders/{root}/") == []


def test_a_small_target_is_one_put(storage: S3Storage, s3: Any, root: str, tmp_path: Path) -> None:
    key = f"renders/{root}/output.m4a"
    target = storage.output_upload(key, 4 * MiB)
    assert target["method"] == "PUT"
    upload_to_target(written(tmp_path, b"audio" * 1000), target, "audio/mp4")
    assert get(s3, storage.object_key(key)) == b"audio" * 1000
