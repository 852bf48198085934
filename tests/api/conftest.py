"""The API contract runs on both runtimes: every test here that takes `service` (or `api`) runs
once on the embedded runtime and once on the Kubernetes runtime without a cluster
(tests/kube/stack.py: the kmock emulator, the real kopf operator, a fake kubelet running the
encoder Jobs, moto's S3 over HTTP, PostgreSQL when configured).

A test that looks inside the embedded runtime (local file paths, the subprocess executor's
processes, the upload route the API serves itself) is marked `embedded_only("why")`: on the
Kubernetes runtime it skips with that reason; the Kubernetes tier has its own tests of the same
behaviour where one applies (tests/kube/test_runtime.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import start_service


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "embedded_only(reason): the test looks inside the embedded runtime")


@pytest.fixture(params=["embedded", pytest.param("kubernetes", marks=pytest.mark.kubernetes)])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "embedded":
        svc = start_service(tmp_path / "data")
        yield svc
        svc.stop()
        return
    marker = request.node.get_closest_marker("embedded_only")
    if marker is not None:
        pytest.skip(f"embedded runtime only ({marker.args[0]}); it runs in the embedded tier")
    from tests.kube.stack import start_kube_service

    server = request.getfixturevalue("s3_server")
    request.getfixturevalue("s3")  # the bucket
    with start_kube_service(tmp_path, server.url) as kube_service:
        yield kube_service


# S3 over HTTP (moto's server), for the Kubernetes runtime's media.
from tests.storage.conftest import s3, s3_server  # noqa: E402, F401
