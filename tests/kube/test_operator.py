"""The operator's rules on the whole no-cluster stack (tests/kube/stack.py): what happens when
the cluster misbehaves, when Renders are deleted by something other than the API, when the
operator restarts mid-encode, and what a platform engineer sees with kubectl."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s
from standardwebhooks import Webhook

from roughy.app.scheduler import Scheduler
from roughy.core.events import render_events
from roughy.kube import crd
from tests.conftest import ready_asset, wait_for
from tests.kube.harness import running_operator
from tests.kube.stack import NAMESPACE, KubeService, start_kube_service
from tests.media import make_video
from tests.storage.s3server import StrictS3Server
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.kubernetes


@pytest.fixture
def kube_service(tmp_path: Path, s3_server: StrictS3Server, s3: Any) -> Iterator[KubeService]:
    with start_kube_service(tmp_path, s3_server.url, webhook_allow_private=True) as service:
        yield service


@pytest.fixture
def asset(api: httpx.Client, clip: Path) -> dict[str, Any]:
    ready = ready_asset(api, clip)
    assert ready["state"] == "ready", ready
    return ready


def render_of(api: httpx.Client, render_id: str) -> dict[str, Any]:
    return api.get(f"/v1/renders/{render_id}").json()  # type: ignore[no-any-return]


def finished(api: httpx.Client, render_id: str, timeout: float = 60) -> dict[str, Any]:
    return wait_for(lambda: render_of(api, render_id), lambda r: r["state"] in ("completed", "failed"), timeout)


def resources(service: KubeService, plural: str) -> list[dict[str, Any]]:
    def read(emulator: Any) -> list[dict[str, Any]]:
        return [obj.raw for key, obj in emulator.objects.items() if key[0].plural == plural and not obj.deleted]

    return service.kube.call(read)


def the_render_resource(service: KubeService, render_id: str) -> dict[str, Any] | None:
    found = [r for r in resources(service, crd.PLURAL) if r["spec"]["renderId"] == render_id]
    return found[0] if found else None


def objects_api(service: KubeService) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(service.kube.api_client())


def long_asset(api: httpx.Client, tmp_path: Path) -> dict[str, Any]:
    """A source whose 720p encode takes several seconds here: time to act while it runs."""
    ready = ready_asset(api, make_video(tmp_path / "long.mp4", duration=30.0, width=1280, height=720, fps=25))
    assert ready["state"] == "ready", ready
    return ready


def test_state_changes_are_kubernetes_events_on_the_render(kube_service: KubeService, api: httpx.Client, asset):
    render = api.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "mp4"}}).json()
    assert finished(api, render["id"])["state"] == "completed"
    resource = the_render_resource(kube_service, render["id"])
    assert resource is not None
    uid = resource["metadata"]["uid"]

    def reasons() -> dict[str, Any]:
        events = [e for e in resources(kube_service, "events") if e.get("involvedObject", {}).get("uid") == uid]
        return {"reasons": [e["reason"] for e in events]}

    seen = wait_for(reasons, lambda r: "Completed" in r["reasons"], timeout=10)["reasons"]
    assert "JobCreated" in seen and "Completed" in seen


def test_an_unreachable_cluster_keeps_the_render_queued_then_it_runs(
    kube_service: KubeService, api: httpx.Client, asset
):
    kube_service.kube.emulator.fail(503, plural=crd.PLURAL, method="POST", times=3)  # type: ignore[union-attr]
    render = api.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "mp3"}})
    assert render.status_code == 201, "the API accepts the render: the database is the queue"
    done = finished(api, render.json()["id"])
    assert done["state"] == "completed", done


def test_a_render_left_claimed_by_a_dead_api_is_submitted_again(kube_service: KubeService, api: httpx.Client, asset):
    runtime = kube_service.kubernetes.runtime
    runtime.stop()  # this API replica dies right after its claim, before it creates the Render
    render = api.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "m4a"}}).json()
    claimed = kube_service.store.claim_next_render(render_events)
    assert claimed is not None and claimed.id == render["id"]
    assert the_render_resource(kube_service, render["id"]) is None
    assert render_of(api, render["id"])["state"] == "running"

    kube = kube_service.kubernetes
    replica = Scheduler(kube.store, kube.application.renders, kube.executor)
    assert replica.sweep(0.0) == [render["id"]]  # what another API replica does once the claim is old enough
    replica.tick()  # and it hands the render over again
    assert the_render_resource(kube_service, render["id"]) is not None
    assert finished(api, render["id"])["state"] == "completed"


def test_the_lost_claim_sweep_leaves_renders_that_have_their_render_alone(
    kube_service: KubeService, api: httpx.Client, tmp_path: Path
):
    source = long_asset(api, tmp_path)
    render = api.post("/v1/renders", json={"asset_id": source["id"], "output": {"format": "mp4"}}).json()
    wait_for(lambda: render_of(api, render["id"]), lambda r: r["progress"] > 0, timeout=60)
    kube = kube_service.kubernetes
    # A create now would fail (and put the render back in the queue): the sweep must not try one.
    kube_service.kube.emulator.fail(503, plural=crd.PLURAL, method="POST", times=5)  # type: ignore[union-attr]
    assert Scheduler(kube.store, kube.application.renders, kube.executor).sweep(0.0) == []
    assert render_of(api, render["id"])["state"] == "running"
    assert finished(api, render["id"])["state"] == "completed"


def test_an_outcome_lands_even_when_the_api_put_the_render_back_in_the_queue(
    kube_service: KubeService, api: httpx.Client, asset
):
    """A create that timed out on the API's side may have happened: the row went back to
    pending, but the Render runs. Its outcome must be recorded, not dropped."""
    runtime = kube_service.kubernetes.runtime
    runtime.stop()
    render = api.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "mp3"}}).json()
    claimed = kube_service.store.claim_next_render(render_events)
    assert claimed is not None
    assert kube_service.kubernetes.application.renders.start(claimed)
    assert kube_service.store.release_render(claimed.id, render_events)  # what the API does after an unknown outcome
    done = finished(api, render["id"])
    assert done["state"] == "completed" and done["result"]["format"] == "mp3"


def test_a_render_resource_deleted_by_hand_fails_its_render_and_is_not_resubmitted(
    kube_service: KubeService, api: httpx.Client, tmp_path: Path
):
    source = long_asset(api, tmp_path)
    render = api.post("/v1/renders", json={"asset_id": source["id"], "output": {"format": "mp4"}}).json()
    wait_for(lambda: render_of(api, render["id"]), lambda r: r["progress"] > 0, timeout=60)
    resource = the_render_resource(kube_service, render["id"])
    assert resource is not None
    objects_api(kube_service).delete_namespaced_custom_object(  # kubectl delete render r-...
        crd.GROUP, crd.VERSION, NAMESPACE, crd.PLURAL, resource["metadata"]["name"]
    )
    failed = finished(api, render["id"])
    assert failed["state"] == "failed" and failed["error"]["code"] == "encode_failed"
    assert "deleted on the cluster" in failed["error"]["message"]
    # The Render goes once its Job's pod has stopped: 15 s alone, longer beside two other workers.
    wait_for(lambda: {"n": len(resources(kube_service, crd.PLURAL))}, lambda d: d["n"] == 0, timeout=60)
    assert kube_service.kubelet.processes() == {}, "the Job's encoder was stopped"
    kube_service.kubernetes.runtime.scheduler.sweep(0.0)
    kube_service.kubernetes.runtime.scheduler.tick()
    assert resources(kube_service, crd.PLURAL) == [], "a failed render is not submitted again"


def test_a_render_resource_whose_render_is_gone_is_removed_by_the_operator(
    kube_service: KubeService, api: httpx.Client, tmp_path: Path
):
    """A cancel that could not reach the cluster: the row is gone, the Render still runs."""
    source = long_asset(api, tmp_path)
    render = api.post("/v1/renders", json={"asset_id": source["id"], "output": {"format": "mp4"}}).json()
    wait_for(lambda: render_of(api, render["id"]), lambda r: r["progress"] > 0, timeout=60)
    assert kube_service.store.delete_render(render["id"])  # behind the API's back
    # The Render goes once its Job's pod has stopped: 15 s alone, longer beside two other workers.
    wait_for(lambda: {"n": len(resources(kube_service, crd.PLURAL))}, lambda d: d["n"] == 0, timeout=60)
    assert kube_service.kubelet.processes() == {}
    assert kube_service.stored_keys(f"renders/{render['id']}") == []


def test_drain_requeues_unfinished_renders_and_keeps_finished_outputs(
    kube_service: KubeService, api: httpx.Client, asset, tmp_path: Path
):
    done = api.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "m4a"}}).json()
    assert finished(api, done["id"])["state"] == "completed"
    source = long_asset(api, tmp_path)
    busy = api.post("/v1/renders", json={"asset_id": source["id"], "output": {"format": "mp4"}}).json()
    wait_for(lambda: render_of(api, busy["id"]), lambda r: r["progress"] > 0, timeout=60)
    kube_service.kubernetes.runtime.stop()  # `roughy drain --stop-api` scales the API to 0 first

    assert kube_service.kubernetes.executor.drain(wait=30) == []
    assert resources(kube_service, crd.PLURAL) == [] and resources(kube_service, "jobs") == []
    assert kube_service.kubelet.processes() == {}
    assert render_of(api, busy["id"])["state"] == "pending", "it runs again after a reinstall"
    assert render_of(api, done["id"])["state"] == "completed"
    assert kube_service.stored_keys(f"renders/{done['id']}") == [f"renders/{done['id']}/output.m4a"]
    assert httpx.get(render_of(api, done["id"])["download_url"]).status_code == 200


def test_a_job_that_finishes_while_the_operator_is_down_is_recorded_on_resume(
    kube_service: KubeService, api: httpx.Client, tmp_path: Path
):
    source = long_asset(api, tmp_path)
    kube_service.operator_stop()  # no operator: the Render waits, nothing creates its Job
    render = api.post("/v1/renders", json={"asset_id": source["id"], "output": {"format": "mp4"}}).json()
    wait_for(lambda: {"r": the_render_resource(kube_service, render["id"])}, lambda d: d["r"] is not None, 10)
    assert resources(kube_service, "jobs") == []
    with running_operator(kube_service.kube, kube_service.operator.registry, namespaces=[NAMESPACE]):
        wait_for(lambda: {"jobs": resources(kube_service, "jobs")}, lambda d: bool(d["jobs"]), timeout=20)
    # The operator stops again while the Job runs; the Job finishes meanwhile.
    assert kube_service.kubelet.wait_idle(60)
    assert render_of(api, render["id"])["state"] == "running"
    with running_operator(kube_service.kube, kube_service.operator.registry, namespaces=[NAMESPACE]):
        done = finished(api, render["id"], timeout=30)
    assert done["state"] == "completed" and done["result"]["format"] == "mp4"
    # The Job names no URL and holds no secret: its pod asked the API for them (an output this
    # size, 30 s at the 720p bitrate, goes up as a multipart upload), and the output reads back.
    (job,) = resources(kube_service, "jobs")
    env = {e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {"ROUGHY_API_URL", "ROUGHY_RENDER_ID", "ROUGHY_TOKEN_FILE"} <= env
    assert "X-Amz-" not in json.dumps(job) and not env & {"ROUGHY_OUTPUT_UPLOAD", "ROUGHY_OUTPUT_URL"}
    fetched = httpx.get(render_of(api, render["id"])["download_url"], timeout=30)
    assert fetched.status_code == 200 and len(fetched.content) == done["result"]["size_bytes"]


def test_webhooks_are_delivered_by_the_operator_process(kube_service: KubeService, api: httpx.Client, asset):
    receiver = Receiver()
    try:
        endpoint = api.post(
            "/v1/webhook_endpoints", json={"url": receiver.url(), "events": ["render.completed"]}
        ).json()
        render = api.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "mp3"}}).json()
        assert finished(api, render["id"])["state"] == "completed"
        (request,) = receiver.wait(1)
        payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
        assert payload["type"] == "render.completed" and payload["data"]["id"] == render["id"]
    finally:
        receiver.close()


def test_a_restart_costs_nothing_for_a_finished_render(kube_service: KubeService, api: httpx.Client, asset):
    """On start, kopf lists every Render once; a finished one gets no handler and no API call of
    its own (no read of it, of its Job, of its pods), and it carries the finished label the
    lists of work in flight leave out."""
    render = api.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "mp3"}}).json()
    assert finished(api, render["id"])["state"] == "completed"
    def labelled(seen: dict[str, Any]) -> bool:
        return (seen["r"]["metadata"].get("labels") or {}).get(crd.LABEL_FINISHED) == "true"

    resource = wait_for(lambda: {"r": the_render_resource(kube_service, render["id"])}, labelled)["r"]
    name = resource["metadata"]["name"]
    kube_service.operator_stop()
    seen = kube_service.kube.call(lambda emulator: len(emulator._requests))
    with running_operator(kube_service.kube, kube_service.operator.registry, namespaces=[NAMESPACE]):
        time.sleep(1.5)  # kopf has listed and watched; the handlers it would call have run
        calls = kube_service.kube.call(lambda emulator: [str(r.url) for r in emulator._requests[seen:]])
    assert calls and not [url for url in calls if name in url]

    # A Render that finished before the label existed gets it on the next start (pruning lists
    # labelled Renders only), and nothing more.
    kube_service.operator_stop()
    objects = k8s.CustomObjectsApi(kube_service.kube.api_client())
    unlabel = {"metadata": {"labels": {crd.LABEL_FINISHED: None}}}
    objects.patch_namespaced_custom_object(crd.GROUP, crd.VERSION, NAMESPACE, crd.PLURAL, name, unlabel)
    with running_operator(kube_service.kube, kube_service.operator.registry, namespaces=[NAMESPACE]):
        wait_for(lambda: {"r": the_render_resource(kube_service, render["id"])}, labelled, timeout=10)
