"""Kubernetes without a cluster: a kmock-based API server over real HTTP on 127.0.0.1.

`kube` is a fresh `EmulatorServer` per test (tests/kube/harness.py) running `KubeEmulator`
(tests/kube/emulator.py: kmock's KubernetesEmulator plus label selectors, resourceVersion and
conflicts, generation, the status subresource, finalizers and owner-reference GC), with the
Render, Job, Pod and Event resources registered. `kube_api` is a `kubernetes.client.ApiClient`
for it; `executor` is the real `KubeExecutor` (on a `KubeApi` over that client) on namespace `roughy`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s

from roughy.adapters.executor.kube import KubeExecutor
from roughy.adapters.kubeapi import KubeApi
from tests.kube.harness import EmulatorServer
from tests.kube.stack import KubeService, start_kube_service
from tests.storage.s3server import StrictS3Server

NAMESPACE = "roughy"


@pytest.fixture
def kube() -> Iterator[EmulatorServer]:
    server = EmulatorServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def kube_api(kube: EmulatorServer) -> Iterator[k8s.ApiClient]:
    api = kube.api_client()
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def executor(kube_api: k8s.ApiClient) -> KubeExecutor:
    return KubeExecutor(
        KubeApi(kube_api), namespace=NAMESPACE, retention=3600, replace_wait=2.0, cancel_wait=2.0, poll_interval=0.02
    )


# S3 over HTTP (moto's server), shared with tests/storage: the Kubernetes runtime's media store.
from tests.storage.conftest import s3, s3_server  # noqa: E402, F401


# The whole Kubernetes runtime without a cluster (tests/kube/stack.py), and a client of its API
# with the first account's key. A test module that needs other settings defines its own
# `kube_service`; `api` follows it.
@pytest.fixture
def kube_service(tmp_path: Path, s3_server: StrictS3Server, s3: Any) -> Iterator[KubeService]:  # noqa: F811
    with start_kube_service(tmp_path, s3_server.url) as service:
        yield service


@pytest.fixture
def api(kube_service: KubeService) -> Iterator[httpx.Client]:
    with kube_service.client() as client:
        yield client
