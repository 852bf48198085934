"""The Kubernetes runtime end to end, with no cluster (tests/kube/stack.py says what runs):
POST -> Render -> operator -> Job -> encoder -> S3 -> status -> presigned download, and cancel
through the finalizer."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from roughy.encoder.probe import probe
from roughy.kube import crd
from roughy.operator.handlers import RECONCILES, build_registry
from tests.conftest import ready_asset, wait_for
from tests.kube.harness import running_operator
from tests.kube.stack import ENCODER_IMAGE, NAMESPACE, KubeService, start_kube_service
from tests.media import make_video
from tests.storage.s3server import StrictS3Server

pytestmark = pytest.mark.kubernetes


def renders_in_cluster(service: KubeService) -> list[dict[str, Any]]:
    def read(emulator: Any) -> list[dict[str, Any]]:
        return [
            obj.raw for key, obj in emulator.objects.items()
            if key[0].plural == crd.PLURAL and not obj.deleted
        ]  # fmt: skip

    return service.kube.call(read)


def test_a_render_runs_as_a_job_and_downloads_from_s3(
    kube_service: KubeService, api: httpx.Client, clip: Path, tmp_path: Path
) -> None:
    asset = ready_asset(api, clip)
    assert asset["state"] == "ready", asset
    assert asset["video"]["width"] == 640  # probed by the operator through a presigned URL

    resp = api.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "mp4"}})
    assert resp.status_code == 201, resp.text
    render = resp.json()
    done = wait_for(lambda: api.get(f"/v1/renders/{render['id']}").json(),
                    lambda r: r["state"] in ("completed", "failed"), timeout=90)  # fmt: skip
    assert done["state"] == "completed", done
    assert done["progress"] == 1.0 and (done["result"]["width"], done["result"]["height"]) == (640, 360)

    # The Render resource: named by the signature, labelled, its status copied from the Job.
    (resource,) = renders_in_cluster(kube_service)
    assert resource["metadata"]["name"].startswith("r-")
    assert resource["metadata"]["labels"][crd.LABEL_RENDER] == render["id"]
    status = resource["status"]
    assert status["state"] == "completed" and status["encoder"] == "libx264"
    assert status["result"]["sizeBytes"] == done["result"]["size_bytes"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"Running": "False", "Complete": "True", "Ready": "True"}  # kubectl wait --for=...Complete
    job = kube_service.kube.object("jobs", NAMESPACE, resource["metadata"]["name"])
    assert job is not None and job["metadata"]["ownerReferences"][0]["uid"] == resource["metadata"]["uid"]

    # The download is a presigned S3 URL that works, with the file the render describes.
    url = done["download_url"]
    assert url.startswith(kube_service.kubernetes.settings.s3_endpoint_url or "") and "X-Amz-Signature=" in url
    fetched = httpx.get(url, timeout=30)
    assert fetched.status_code == 200
    out = tmp_path / "fetched.mp4"
    out.write_bytes(fetched.content)
    assert len(fetched.content) == done["result"]["size_bytes"]
    info = probe(str(out))
    assert info.video is not None and (info.video.width, info.video.height) == (640, 360)


def test_cancel_stops_the_job_and_deletes_the_outputs_through_the_finalizer(
    kube_service: KubeService, api: httpx.Client, tmp_path: Path
) -> None:
    source = make_video(tmp_path / "long.mp4", duration=30.0, width=1280, height=720, fps=25)
    asset = ready_asset(api, source)
    assert asset["state"] == "ready", asset
    resp = api.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "mp4"}})
    render = resp.json()
    running = wait_for(lambda: api.get(f"/v1/renders/{render['id']}").json(),
                       lambda r: r["state"] != "pending" and r["progress"] > 0, timeout=60)  # fmt: skip
    assert running["state"] == "running", running
    assert kube_service.kubelet.processes(), "the encoder runs as the Job's pod"

    assert api.delete(f"/v1/renders/{render['id']}").status_code == 204
    assert api.get(f"/v1/renders/{render['id']}").status_code == 404
    # The DELETE waited for the finalizer: the Render, the Job and the encoder process are gone...
    assert renders_in_cluster(kube_service) == []
    name = running and kube_service.kube.call(lambda e: [k[2] for k in e.objects if k[0].plural == "jobs"])
    assert all(kube_service.kube.object("jobs", NAMESPACE, job) is None for job in name)
    assert kube_service.kubelet.processes() == {}
    # ... and nothing of the render is left in S3.
    assert not kube_service.storage.exists(f"renders/{render['id']}/output.mp4")


def test_the_stack_refuses_a_status_the_crd_would_not_keep(
    kube_service: KubeService, api: httpx.Client, clip: Path
) -> None:
    """The guard behind every status the operator writes in these tests: fields the CRD does not
    name (a real API server would prune them) and values it forbids are refused."""
    asset = ready_asset(api, clip)
    render = api.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "mp3"}}).json()
    wait_for(lambda: {"n": len(renders_in_cluster(kube_service))}, lambda d: d["n"] == 1, timeout=20)
    (resource,) = renders_in_cluster(kube_service)
    objects = k8s.CustomObjectsApi(kube_service.kube.api_client())
    for bad in ({"bogus": 1}, {"state": "exploded"}, {"progress": 2.0}):
        with pytest.raises(ApiException) as refused:
            objects.patch_namespaced_custom_object_status(
                crd.GROUP, crd.VERSION, NAMESPACE, crd.PLURAL, resource["metadata"]["name"], {"status": bad}
            )
        assert refused.value.status == 422, bad
    assert render["id"]


def test_a_render_that_finds_no_capacity_fails_with_no_capacity_and_leaves_nothing(
    tmp_path: Path, s3_server: StrictS3Server, s3: Any, clip: Path
) -> None:
    """Jobs go to a Kueue queue that never admits them (the FakeKubelet starts no pod of a
    suspended Job): past the queue budget the render fails as waiting, not as an encode timeout."""
    config = tmp_path / "jobs.json"
    config.write_text(json.dumps({"image": ENCODER_IMAGE, "queue_seconds": 2, "kueue_queue": "renders"}))
    with start_kube_service(tmp_path, s3_server.url, jobs_config=config) as service, service.client() as api:
        asset = ready_asset(api, clip)
        assert asset["state"] == "ready", asset
        render = api.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "mp3"}}).json()
        (resource,) = wait_for(lambda: {"r": renders_in_cluster(service)}, lambda d: len(d["r"]) == 1)["r"]
        job = wait_for(lambda: {"j": service.kube.object("jobs", NAMESPACE, resource["metadata"]["name"])},
                       lambda d: d["j"] is not None)["j"]  # fmt: skip
        assert job["spec"]["suspend"] is True and job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "renders"
        done = wait_for(lambda: api.get(f"/v1/renders/{render['id']}").json(),
                        lambda r: r["state"] in ("completed", "failed"), timeout=30)  # fmt: skip
        assert done["state"] == "failed" and done["error"]["code"] == "no_capacity", done
        assert wait_for(lambda: {"j": service.kube.object("jobs", NAMESPACE, resource["metadata"]["name"])},
                        lambda d: d["j"] is None)["j"] is None  # fmt: skip
        assert service.stored_keys(f"renders/{render['id']}") == []


def test_a_render_waiting_for_capacity_is_not_polled(
    tmp_path: Path, s3_server: StrictS3Server, s3: Any, clip: Path
) -> None:
    """Job events move a waiting render on, and the sweep (here every 0.1 s) lists the
    unfinished Renders but reconciles none that has no budget to enforce and was reconciled
    lately: a long queue costs the API server one list per sweep, not calls per render."""
    config = tmp_path / "jobs.json"
    config.write_text(json.dumps({"image": ENCODER_IMAGE, "queue_seconds": 0, "kueue_queue": "renders"}))
    with start_kube_service(tmp_path, s3_server.url, jobs_config=config) as service, service.client() as api:
        asset = ready_asset(api, clip)
        assert asset["state"] == "ready", asset
        service.operator_stop()
        registry = build_registry(service.operator.controller, sweep_interval=0.1, login=False)
        with running_operator(service.kube, registry, namespaces=[NAMESPACE]):
            render = api.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "mp3"}}).json()
            def job_made(seen: dict[str, Any]) -> bool:
                return len(seen["r"]) == 1 and bool((seen["r"][0].get("status") or {}).get("jobName"))

            (resource,) = wait_for(lambda: {"r": renders_in_cluster(service)}, job_made)["r"]
            before = sum(RECONCILES.labels("sweep", outcome)._value.get() for outcome in ("ok", "retry", "error"))
            time.sleep(1.5)  # 15 sweeps
            after = sum(RECONCILES.labels("sweep", outcome)._value.get() for outcome in ("ok", "retry", "error"))
            assert after == before
        assert render["id"] and resource["status"]["state"] == "pending"
