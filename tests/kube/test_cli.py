"""The Kubernetes runtime's commands as real processes, configured only by environment and a
kubeconfig, as the Helm chart runs them: `roughy migrate`, `roughy operator` (with kopf's
liveness endpoint), `ROUGHY_RUNTIME=kubernetes roughy serve`, and `roughy drain`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from roughy.kube import crd
from tests.conftest import ADMIN_KEY, free_port, ready_asset, wait_for
from tests.kube.harness import EmulatorServer, kubeconfig
from tests.kube.kubelet import FakeKubelet
from tests.storage.conftest import BUCKET
from tests.storage.s3server import StrictS3Server

pytestmark = pytest.mark.kubernetes
NAMESPACE = "roughy"


@pytest.fixture
def environment(kube: EmulatorServer, s3_server: StrictS3Server, s3: Any, tmp_path: Path) -> dict[str, str]:
    """What the chart gives both Deployments (values as environment; no ROUGHY_NAMESPACE: the
    kubeconfig's context names it, as the service account's namespace does in a pod)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ROUGHY_")}
    env |= {
        "KUBECONFIG": str(kubeconfig(tmp_path / "kubeconfig", kube.url)),
        "ROUGHY_RUNTIME": "kubernetes",
        "ROUGHY_DATABASE_URL": f"sqlite:///{tmp_path / 'roughy.db'}",
        "ROUGHY_ADMIN_KEY": ADMIN_KEY,
        "ROUGHY_S3_BUCKET": BUCKET,
        "ROUGHY_S3_ENDPOINT_URL": s3_server.url,
        "ROUGHY_S3_ADDRESSING_STYLE": "path",
        "ROUGHY_S3_PREFIX": f"t{uuid.uuid4().hex[:12]}/",
        "ROUGHY_ENCODER_IMAGE": "roughy-encoder:test",
        "ROUGHY_DATA_DIR": str(tmp_path / "data"),
        "ROUGHY_LOG_FORMAT": "json",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    if os.environ.get("ROUGHY_FFMPEG"):
        env["ROUGHY_FFMPEG"] = os.environ["ROUGHY_FFMPEG"]
    return env


def roughy(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "roughy.cli", *args], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def answers(url: str, deadline: float, proc: subprocess.Popen[bytes], log: Path) -> httpx.Response:
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{url} never answered; the process said:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.1)


def test_the_commands_run_the_runtime_from_environment_alone(
    environment: dict[str, str], kube: EmulatorServer, tmp_path: Path, processes: list[Any], clip: Path
) -> None:
    migrate = subprocess.run([sys.executable, "-m", "roughy.cli", "migrate"], env=environment, capture_output=True)
    assert migrate.returncode == 0, migrate.stderr.decode()

    operator_log, api_log = tmp_path / "operator.log", tmp_path / "api.log"
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    metrics = free_port()
    port = free_port()
    # Encoder pods reach the API at the address the chart gives them (its Service): here, its port.
    operator_env = environment | {"ROUGHY_ENCODER_API_URL": f"http://127.0.0.1:{port}"}
    operator = roughy("operator", "--liveness", liveness, "--metrics-port", str(metrics), env=operator_env,
                      log=operator_log)  # fmt: skip
    processes.append(operator)
    api = roughy("serve", "--port", str(port), env=environment, log=api_log)
    processes.append(api)
    deadline = time.monotonic() + 30
    assert answers(liveness, deadline, operator, operator_log).status_code == 200
    assert answers(f"http://127.0.0.1:{port}/readyz", deadline, api, api_log).status_code == 200

    with FakeKubelet(kube, namespaces=(NAMESPACE,), workdir=tmp_path / "kubelet"):
        admin = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        account = admin.post("/v1/admin/accounts", json={"name": "cli"}).json()
        key = admin.post(f"/v1/admin/accounts/{account['id']}/api_keys").json()["key"]
        admin.post(f"/v1/admin/accounts/{account['id']}/credits", json={"amount": 5, "reason": "test"})
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"})
        asset = ready_asset(client, clip)
        assert asset["state"] == "ready", (asset, operator_log.read_text()[-3000:])
        render = client.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "mp3"}}).json()
        done = wait_for(lambda: client.get(f"/v1/renders/{render['id']}").json(),
                        lambda r: r["state"] in ("completed", "failed"), timeout=60)  # fmt: skip
        assert done["state"] == "completed", (done, operator_log.read_text()[-3000:])

    # The operator's own /metrics: its reconciles, and the outcome it recorded.
    scraped = httpx.get(f"http://127.0.0.1:{metrics}/metrics", timeout=10).text
    assert re.search(r'^roughy_operator_reconciles_total\{outcome="ok",trigger="\w+"\} [1-9]', scraped, re.M), scraped
    assert re.search(r'^roughy_renders_finished_total\{state="completed"\} 1\.0$', scraped, re.M), scraped

    # The uninstall hook: stop the API (here: SIGTERM, as a scale-down does), drain the Renders.
    api.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal it caught: "terminated by SIGTERM"
    assert api.wait(timeout=20) in (0, -signal.SIGTERM), api_log.read_text()[-3000:]
    drain = subprocess.run(
        [sys.executable, "-m", "roughy.cli", "drain", "--wait", "30"], env=environment, capture_output=True
    )
    assert drain.returncode == 0, drain.stderr.decode()
    assert kube.call(lambda e: [k for k, o in e.objects.items() if k[0].plural == crd.PLURAL and not o.deleted]) == []
    operator.send_signal(signal.SIGTERM)
    assert operator.wait(timeout=30) == 0, operator_log.read_text()[-3000:]
