"""The whole Kubernetes runtime on one machine, with no cluster: what `start_kube_service` runs.

- the API exactly as `ROUGHY_RUNTIME=kubernetes roughy serve` wires it (`build_kubernetes`), in
  a uvicorn thread on a free port;
- the operator as `roughy operator` wires it (`build_operator`): the real kopf with its
  handlers, plus the background service (asset processing, webhook delivery, pruning);
- the Kubernetes API: `KubeEmulator` over HTTP (tests/kube/emulator.py), with `FakeKubelet`
  (tests/kube/kubelet.py) playing the Job controller and the kubelet: each Job's container
  command (`roughy-encode render ...`) runs as a local process;
- S3: moto's server over HTTP (tests/storage/s3server.py), a key prefix of the test's own;
- the store: PostgreSQL (a fresh schema) when ROUGHY_TEST_DATABASE_URL is set, else SQLite.

What this cannot show: scheduling on real nodes, image pulls, the GPU pool, the CRD's schema
validation by a real API server, RBAC. The kind suite (tests/e2e) covers those where Docker runs.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from roughy.adapters.storage.s3 import MiB, S3Storage
from roughy.adapters.store import SqlStore, make_engine, migrate
from roughy.bootstrap import Kubernetes, Operator, build_kubernetes, build_operator, first_start
from roughy.settings import Settings
from tests.conftest import ADMIN_KEY, free_port, postgres_url
from tests.kube.harness import EmulatorServer, install_render_schema, running_operator
from tests.kube.kubelet import FakeKubelet
from tests.storage.conftest import BUCKET
from tests.store.conftest import postgres_store

NAMESPACE = "roughy"
ENCODER_IMAGE = "roughy-encoder:test"


@dataclass
class KubeService:
    """The same surface as tests.conftest.Service, for the Kubernetes runtime."""

    kubernetes: Kubernetes
    operator: Operator
    kube: EmulatorServer
    kubelet: FakeKubelet
    url: str
    account_id: str
    key: str
    kopf: contextlib.ExitStack

    def operator_stop(self) -> None:
        """Stop kopf (the operator's handlers); `running_operator` starts it again."""
        self.kopf.close()

    @property
    def settings(self) -> Settings:
        return self.kubernetes.settings

    @property
    def store(self) -> SqlStore:
        return self.kubernetes.store

    @property
    def assets(self) -> Any:
        """The asset and cut processing (AssetWork), which runs in the operator process."""
        return self.operator.service.assets

    def stored_keys(self, prefix: str) -> list[str]:
        """Storage keys under `prefix` (objects under the test's key prefix in the bucket)."""
        storage = self.storage
        base = storage.object_key(prefix)
        pages = storage._client.get_paginator("list_objects_v2").paginate(Bucket=storage.bucket, Prefix=base)
        keys = [obj["Key"] for page in pages for obj in page.get("Contents") or []]
        return sorted(key[len(storage.prefix) :] for key in keys)

    @property
    def storage(self) -> S3Storage:
        return self.kubernetes.storage  # type: ignore[no-any-return]

    def read_media(self, key: str) -> bytes:
        storage = self.storage
        return storage._client.get_object(Bucket=storage.bucket, Key=storage.object_key(key))["Body"].read()  # type: ignore[no-any-return]

    def write_media(self, key: str, data: bytes) -> None:
        """Change stored media behind the service's back (a source gone bad after its probe)."""
        storage = self.storage
        storage._client.put_object(Bucket=storage.bucket, Key=storage.object_key(key), Body=data)

    def stop_processing(self) -> None:
        """No worker any more: the operator's asset and cut processing stops."""
        self.operator.service.stop()

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)


@contextlib.contextmanager
def test_store(tmp_path: Path) -> Iterator[SqlStore]:
    """PostgreSQL (a fresh schema, dropped after) when the test database is configured, else SQLite."""
    url = postgres_url()
    if not url:
        engine = make_engine(f"sqlite:///{tmp_path / 'roughy.db'}")
        migrate(engine)
        try:
            yield SqlStore(engine)
        finally:
            engine.dispose()
        return
    with postgres_store(url, prefix="roughy_kube") as store:
        yield store


def kube_settings(s3_url: str, port: int, **overrides: Any) -> Settings:
    return Settings(
        runtime="kubernetes",
        namespace=NAMESPACE,
        host="127.0.0.1",
        port=port,
        admin_key=ADMIN_KEY,
        encoder_image=ENCODER_IMAGE,
        s3_bucket=BUCKET,
        s3_endpoint_url=s3_url,
        s3_addressing_style="path",
        s3_prefix=f"t{uuid.uuid4().hex[:12]}/",
        s3_multipart_threshold=5 * MiB,  # bigger outputs go up as multipart uploads
        s3_max_attempts=2,
        **overrides,
    )


@contextlib.contextmanager
def start_kube_service(tmp_path: Path, s3_url: str, **overrides: Any) -> Iterator[KubeService]:
    port = free_port()
    settings = kube_settings(s3_url, port, starter_credits=overrides.pop("starter_credits", 10), **overrides)
    with contextlib.ExitStack() as stack:
        kube = EmulatorServer().start()
        stack.callback(kube.stop)
        # Every status the operator writes must pass the CRD's schema, with nothing pruned; every
        # spec the API writes is pruned and validated as the API server does, and is immutable.
        kube.call(install_render_schema)
        store = stack.enter_context(test_store(tmp_path))
        storage = S3Storage.from_settings(settings)
        api_client = kube.api_client()
        api_client.user_agent = "roughy-api/test"  # who made a request, in the emulator's record
        stack.callback(api_client.close)
        operator_client = kube.api_client()
        operator_client.user_agent = "roughy-operator/test"
        stack.callback(operator_client.close)

        service = build_kubernetes(settings, store=store, storage=storage, api=api_client)
        service.executor._cancel_wait = 30.0  # a cancel waits for the finalizer (the kubelet's kill)
        created = first_start(store, settings)
        assert created is not None
        account_id, key = created

        operator = build_operator(
            settings, store=store, storage=storage, api=operator_client, sweep_interval=0.3, login=False
        )
        operator.service.poll_interval = 0.1
        operator.service.assets.processor.tasks.poll_interval = 0.05
        kubelet = stack.enter_context(FakeKubelet(kube, namespaces=(NAMESPACE,), workdir=tmp_path / "kubelet"))
        operator.service.start()
        stack.callback(operator.service.stop)
        kopf = contextlib.ExitStack()
        stack.callback(kopf.close)
        kopf.enter_context(running_operator(kube, operator.registry, namespaces=[NAMESPACE]))

        server = uvicorn.Server(
            uvicorn.Config(service.app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        stack.callback(thread.join, 15)
        stack.callback(setattr, server, "should_exit", True)
        deadline = time.monotonic() + 15
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the API did not start")
            time.sleep(0.02)
        service.runtime.scheduler.poll_interval = 0.1
        yield KubeService(service, operator, kube, kubelet, f"http://127.0.0.1:{port}", account_id, key, kopf)
