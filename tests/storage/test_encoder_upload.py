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


def test_a_failed_part_leaves_the_upload_for_the_jobs_next_pod(
    storage: S3Storage, s3: Any, root: str, tmp_path: Path
) -> None:
    """A pod that fails mid-upload (here: a refused part) leaves the upload open; the Job's next
    pod has the same URLs and finishes it. What is left open when a render fails or is
    cancelled, the operator's delete_prefix aborts."""
    key = f"renders/{root}/output.mp4"
    target = storage.output_upload(key, 40 * MiB, part_size=5 * MiB)
    broken = json.loads(json.dumps(target, default=str))
    broken["parts"][1]["url"] = broken["parts"][1]["url"].replace("X-Amz-Signature=", "X-Amz-Signature=0")
    data = blob(11 * MiB)
    with pytest.raises(EncodeFailed, match="403"):
        upload_to_target(written(tmp_path, data), broken, "video/mp4")
    assert not storage.exists(key) and len(pending_uploads(s3, f"renders/{root}/")) == 1

    upload_to_target(written(tmp_path, data), target, "video/mp4")  # the retry
    assert get(s3, storage.object_key(key)) == data
    assert pending_uploads(s3, f"renders/{root}/") == []

    other = storage.output_upload(f"renders/{root}/other.mp4", 40 * MiB, part_size=5 * MiB)
    with pytest.raises(EncodeFailed):
        upload_to_target(written(tmp_path, data), {**other, "parts": broken["parts"][1:2]}, "video/mp4")
    storage.delete_prefix(f"renders/{root}/")
    assert pending_uploads(s3, f"renders/{root}/") == []


def test_a_small_target_is_one_put(storage: S3Storage, s3: Any, root: str, tmp_path: Path) -> None:
    key = f"renders/{root}/output.m4a"
    target = storage.output_upload(key, 4 * MiB)
    assert target["method"] == "PUT"
    upload_to_target(written(tmp_path, b"audio" * 1000), target, "audio/mp4")
    assert get(s3, storage.object_key(key)) == b"audio" * 1000
