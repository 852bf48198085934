"""Kubernetes without a cluster: a kmock-based API server over real HTTP on 127.0.0.1.

`kube` is a fresh `EmulatorServer` per test (tests/kube/harness.py) running `KubeEmulator`
(tests/kube/emulator.py: kmock's KubernetesEmulator plus label selectors, resourceVersion and
conflicts, generation, the status subresource, finalizers and owner-reference GC), with the
Render, Job, Pod and Event resources registered. `kube_api` is a `kubernetes.client.ApiClient`
for it; `executor` is the real `KubeExecutor` (on a `KubeApi` over that client) on namespace `roughy`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from roughy.adapters.executor.kube import KubeExecutor
from roughy.adapters.kubeapi import KubeApi
from tests.kube.harness import EmulatorServer

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
