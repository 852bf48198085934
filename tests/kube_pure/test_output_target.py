"""How the operator plans an output's upload: its size bound, and part URLs that fit in the
encoder's environment (one env string: 128 KiB at most on Linux)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from kubernetes import client as k8s

from roughy.adapters.kubeapi import KubeApi
from roughy.app.renders import RenderService
from roughy.kube.jobs import JobSettings
from roughy.operator.controller import OUTPUT_UPLOAD_BUDGET, Controller, ControllerConfig
from roughy.testing import MemoryExecutor, MemoryStore

MiB = 2**20


class FakeStorage:
    """S3Storage.output_upload's shape, with URLs of a chosen length (a session token makes
    presigned URLs several KiB long)."""

    def __init__(self, url_length: int):
        self.url = "https://s3.example/o?" + "x" * url_length
        self.opened: list[int] = []
        self.aborted: list[str] = []

    def output_upload(self, key: str, max_size: int, *, part_size: int | None = None, ttl: int | None = None) -> Any:
        size = part_size or max(5 * MiB, math.ceil(max_size / 40))
        self.opened.append(size)
        parts = [{"part_number": i + 1, "url": self.url, "offset": i * size} for i in range(math.ceil(max_size / size))]
        return {"method": "multipart", "upload_id": f"u{len(self.opened)}", "part_size": size, "parts": parts,
                "complete": {"url": self.url}, "abort": {"url": self.url}}  # fmt: skip

    def abort_multipart(self, key: str, upload_id: str) -> None:
        self.aborted.append(upload_id)


def controller(storage: FakeStorage) -> Controller:
    config = ControllerConfig(namespace="roughy", jobs=JobSettings(image="encoder:test"))
    renders = RenderService(MemoryStore(), storage, MemoryExecutor())  # type: ignore[arg-type]
    return Controller(renders, storage, KubeApi(k8s.ApiClient()), config)  # type: ignore[arg-type]


def test_short_urls_keep_the_first_plan() -> None:
    storage = FakeStorage(600)
    target = controller(storage)._output_target("renders/r/output.mp4", 10 * 2**30, 3600)
    assert target["upload_id"] == "u1" and len(target["parts"]) == 40 and storage.aborted == []


def test_long_urls_get_fewer_bigger_parts_and_the_first_upload_is_aborted() -> None:
    storage = FakeStorage(3000)
    target = controller(storage)._output_target("renders/r/output.mp4", 10 * 2**30, 3600)
    assert len(json.dumps(target)) <= OUTPUT_UPLOAD_BUDGET
    assert storage.aborted == ["u1"] and target["upload_id"] == "u2"
    assert target["part_size"] * len(target["parts"]) >= 10 * 2**30  # still room for the whole output


def test_urls_that_can_never_fit_are_refused() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        controller(FakeStorage(200_000))._output_target("renders/r/output.mp4", 10 * 2**30, 3600)
