"""The kube executor against the emulated API server: what the API does to Render resources."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kmock
import pytest
from kubernetes import client as k8s

from roughy.adapters.executor.kube import (
    ANNOTATION_DELETION_REASON,
    ExecutorFailed,
    ExecutorUnavailable,
    KubeExecutor,
)
from roughy.adapters.kubeapi import KubeApi, KubeTemporaryError
from roughy.core.errors import RoughyError
from roughy.core.models import Format, Resolution, Segment
from roughy.core.plan import AudioPlan, EncodePlan, VideoPlan
from roughy.core.signature import resource_name
from roughy.kube import crd
from tests.kube.conftest import NAMESPACE
from tests.kube.harness import RENDERS, EmulatorServer

pytestmark = pytest.mark.kubernetes

SIGNATURE = "ab" * 32
NAME = resource_name(SIGNATURE)
PLAN = EncodePlan(
    format=Format.MP4,
    duration=12.5,
    video=VideoPlan(width=1280, height=720, fps=30.0, bitrate_kbps=2500),
    audio=AudioPlan(bitrate_kbps=128, channels=2, sample_rate=48000),
    segments=(Segment(1.0, 5.0), Segment(7.0, 15.5)),
)
SOURCES = {"video": "assets/ast_1/video", "audio": None}


def submit(executor: KubeExecutor, render_id: str = "rnd_1", signature: str = SIGNATURE) -> str:
    return executor.submit(render_id, "acct_1", "ast_1", signature, PLAN, SOURCES, f"renders/{render_id}/output.mp4")


def objects(api: k8s.ApiClient) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(api)


def get(api: k8s.ApiClient, name: str = NAME) -> dict[str, Any]:
    return dict(objects(api).get_namespaced_custom_object(crd.GROUP, crd.VERSION, NAMESPACE, crd.PLURAL, name))


def patch(api: k8s.ApiClient, body: dict[str, Any], name: str = NAME) -> dict[str, Any]:
    return dict(objects(api).patch_namespaced_custom_object(crd.GROUP, crd.VERSION, NAMESPACE, crd.PLURAL, name, body))


def set_status(api: k8s.ApiClient, status: dict[str, Any], name: str = NAME) -> None:
    """The status, and for a finished render the label the operator then adds."""
    objects(api).patch_namespaced_custom_object_status(
        crd.GROUP, crd.VERSION, NAMESPACE, crd.PLURAL, name, {"status": status}
    )
    if status.get("state") in ("completed", "failed"):
        labels = {"metadata": {"labels": {crd.LABEL_FINISHED: "true"}}}
        objects(api).patch_namespaced_custom_object(crd.GROUP, crd.VERSION, NAMESPACE, crd.PLURAL, name, labels)


def controller(kube: EmulatorServer, action: Callable[[], Any], delay: float = 0.3) -> threading.Thread:
    """A stand-in for the operator: once the Render is being deleted, wait `delay`, then `action`."""

    def run() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            current = kube.object("renders", NAMESPACE, NAME)
            if current is not None and current["metadata"].get("deletionTimestamp"):
                break
            time.sleep(0.01)
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- submit ------------------------------------------------------------------------------------


def test_submit_creates_the_render_named_by_signature(executor: KubeExecutor, kube_api: k8s.ApiClient) -> None:
    assert submit(executor) == NAME == "r-" + SIGNATURE[:40]
    obj = get(kube_api)
    assert obj["apiVersion"] == "roughy.ai/v1alpha1" and obj["kind"] == "Render"
    assert obj["metadata"]["namespace"] == NAMESPACE
    assert obj["metadata"]["labels"] == {
        "roughy.ai/account": "acct_1",
        "roughy.ai/asset": "ast_1",
        "roughy.ai/render": "rnd_1",
        "app.kubernetes.io/managed-by": "roughy",
    }
    spec = obj["spec"]
    assert spec["renderId"] == "rnd_1" and spec["accountId"] == "acct_1" and spec["assetId"] == "ast_1"
    assert spec["sources"] == {"video": "assets/ast_1/video"}
    assert spec["outputKey"] == "renders/rnd_1/output.mp4"
    assert spec["tier"] == Resolution.P720.value
    assert crd.RenderSpec.model_validate(spec).plan.to_plan() == PLAN  # the plan survives the trip


def test_submitting_twice_is_idempotent(executor: KubeExecutor, kube: EmulatorServer, kube_api: k8s.ApiClient) -> None:
    first = submit(executor)
    version = get(kube_api)["metadata"]["resourceVersion"]
    assert submit(executor) == first
    listed = objects(kube_api).list_namespaced_custom_object(crd.GROUP, crd.VERSION, NAMESPACE, crd.PLURAL)
    assert [item["metadata"]["name"] for item in listed["items"]] == [first]
    assert get(kube_api)["metadata"]["resourceVersion"] == version  # untouched


def test_a_replaced_failed_render_recreates_the_resource(
    executor: KubeExecutor, kube: EmulatorServer, kube_api: k8s.ApiClient
) -> None:
    submit(executor, "rnd_old")
    old = get(kube_api)
    set_status(kube_api, {"state": "failed", "completedAt": iso(datetime.now(UTC))})

    assert submit(executor, "rnd_new") == NAME
    new = get(kube_api)
    assert new["spec"]["renderId"] == "rnd_new"
    assert new["metadata"]["labels"]["roughy.ai/render"] == "rnd_new"
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    assert "status" not in new
    # The operator's finalizer can tell a replacement from a hard delete.
    assert kube.emulator is not None
    history = kube.emulator.objects[RENDERS, NAMESPACE, NAME].history
    reasons = [
        dict(version["metadata"]).get("annotations", {}).get(ANNOTATION_DELETION_REASON)
        for version in history
        if version is not None
    ]
    assert "replaced" in reasons


def test_replacing_waits_for_the_old_resource_to_be_finalized(
    executor: KubeExecutor, kube: EmulatorServer, kube_api: k8s.ApiClient
) -> None:
    submit(executor, "rnd_old")
    patch(kube_api, {"metadata": {"finalizers": ["roughy.ai/cleanup"]}})
    controller(kube, lambda: patch(kube_api, {"metadata": {"finalizers": None}}))

    started = time.monotonic()
    assert submit(executor, "rnd_new") == NAME
    assert time.monotonic() - started >= 0.3
    assert get(kube_api)["spec"]["renderId"] == "rnd_new"


def test_replacing_a_resource_stuck_in_finalization_is_a_temporary_failure(kube_api: k8s.ApiClient) -> None:
    executor = KubeExecutor(KubeApi(kube_api), namespace=NAMESPACE, replace_wait=0.2, poll_interval=0.02)
    submit(executor, "rnd_old")
    patch(kube_api, {"metadata": {"finalizers": ["roughy.ai/cleanup"]}})
    with pytest.raises(ExecutorUnavailable) as caught:
        submit(executor, "rnd_new")
    assert caught.value.status == 503 and caught.value.code == "executor_unavailable"
    assert get(kube_api)["spec"]["renderId"] == "rnd_old"  # still finalizing, untouched


# --- cancel -----------------------------------------------------------------------------------


def test_cancel_deletes_the_resource(executor: KubeExecutor, kube: EmulatorServer) -> None:
    submit(executor)
    assert executor.cancel_resource(SIGNATURE) is True
    assert kube.object("renders", NAMESPACE, NAME) is None
    assert executor.cancel_resource(NAME) is True  # nothing left: fine


def test_cancel_waits_for_the_finalizer_and_deletes_in_foreground(
    executor: KubeExecutor, kube: EmulatorServer, kube_api: k8s.ApiClient
) -> None:
    submit(executor)
    render = patch(kube_api, {"metadata": {"finalizers": ["roughy.ai/cleanup"]}})
    owner = {
        "apiVersion": render["apiVersion"],
        "kind": "Render",
        "name": NAME,
        "uid": render["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    k8s.BatchV1Api(kube_api).create_namespaced_job(
        NAMESPACE,
        {
            "metadata": {"name": f"{NAME}-encode", "ownerReferences": [owner]},
            "spec": {
                "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "encoder", "image": "x"}]}}
            },
        },
    )

    controller(kube, lambda: patch(kube_api, {"metadata": {"finalizers": None}}))  # cleans up, lets go
    started = time.monotonic()
    assert executor.cancel_resource(NAME) is True
    assert time.monotonic() - started >= 0.3
    assert kube.object("renders", NAMESPACE, NAME) is None
    assert kube.object("jobs", NAMESPACE, f"{NAME}-encode") is None  # foreground: the Job went with it
    deletes = [r for r in kube.emulator or [] if r.action == kmock.action.DELETE and r.resource == RENDERS]
    assert deletes[0].data["propagationPolicy"] == "Foreground"


def test_cancel_reports_a_finalizer_that_has_not_finished(kube_api: k8s.ApiClient, kube: EmulatorServer) -> None:
    executor = KubeExecutor(KubeApi(kube_api), namespace=NAMESPACE, cancel_wait=0.2, poll_interval=0.02)
    submit(executor)
    patch(kube_api, {"metadata": {"finalizers": ["roughy.ai/cleanup"]}})
    assert executor.cancel_resource(NAME) is False
    assert kube.object("renders", NAMESPACE, NAME)["metadata"]["deletionTimestamp"]  # type: ignore[index]


def test_cancel_leaves_another_renders_resource_alone(executor: KubeExecutor, kube: EmulatorServer) -> None:
    submit(executor, "rnd_new")
    assert executor.cancel_resource(SIGNATURE, render_id="rnd_old") is True
    assert kube.object("renders", NAMESPACE, NAME) is not None


# --- prune ------------------------------------------------------------------------------------


def test_prune_deletes_only_old_terminal_resources(
    executor: KubeExecutor, kube: EmulatorServer, kube_api: k8s.ApiClient
) -> None:
    now = datetime.now(UTC)
    cases = {
        "completed-old": {"state": "completed", "completedAt": iso(now - timedelta(hours=2))},
        "failed-old": {"state": "failed", "completedAt": iso(now - timedelta(hours=3))},
        "completed-new": {"state": "completed", "completedAt": iso(now - timedelta(minutes=5))},
        "running": {"state": "running", "startedAt": iso(now - timedelta(hours=5))},
        "pending": None,
    }
    signatures = {}
    for index, (label, status) in enumerate(cases.items()):
        signature = f"{index:02d}" * 32
        signatures[label] = resource_name(signature)
        submit(executor, f"rnd_{index}", signature)
        if status:
            set_status(kube_api, status, signatures[label])
    # An old terminal Render that roughy did not create: not ours to prune.
    foreign = executor.render_body("rnd_x", "acct_1", "ast_1", "ff" * 32, PLAN, SOURCES, "renders/rnd_x/out.mp4")
    del foreign["metadata"]["labels"]["app.kubernetes.io/managed-by"]
    objects(kube_api).create_namespaced_custom_object(crd.GROUP, crd.VERSION, NAMESPACE, crd.PLURAL, foreign)
    set_status(kube_api, cases["completed-old"], foreign["metadata"]["name"])  # type: ignore[arg-type]

    pruned = executor.prune_terminal()
    assert sorted(pruned) == sorted([signatures["completed-old"], signatures["failed-old"]])
    for label, name in signatures.items():
        assert (kube.object("renders", NAMESPACE, name) is None) == (label in {"completed-old", "failed-old"})
    assert kube.object("renders", NAMESPACE, foreign["metadata"]["name"]) is not None

    lists = [r for r in kube.emulator or [] if r.action == kmock.action.LIST and r.resource == RENDERS]
    assert lists[-1].params["labelSelector"] == "app.kubernetes.io/managed-by=roughy,roughy.ai/finished=true"
    # A shorter retention prunes the recent one too; the reason is recorded before the delete.
    assert executor.prune_terminal(60) == [signatures["completed-new"]]
    assert kube.emulator is not None
    last_seen = kube.emulator.objects[RENDERS, NAMESPACE, signatures["completed-new"]].history.last
    assert last_seen["metadata"]["annotations"][ANNOTATION_DELETION_REASON] == "retention"


def test_prune_skips_resources_already_being_deleted(executor: KubeExecutor, kube_api: k8s.ApiClient) -> None:
    submit(executor)
    set_status(kube_api, {"state": "completed", "completedAt": iso(datetime.now(UTC) - timedelta(days=1))})
    patch(kube_api, {"metadata": {"finalizers": ["roughy.ai/cleanup"]}})
    objects(kube_api).delete_namespaced_custom_object(crd.GROUP, crd.VERSION, NAMESPACE, crd.PLURAL, NAME)
    assert executor.prune_terminal() == []


def test_what_is_executing_is_listed_without_the_finished_renders(
    executor: KubeExecutor, kube: EmulatorServer, kube_api: k8s.ApiClient
) -> None:
    """The API's lost-claim sweep asks this every 30 s: the API server filters out the finished
    Renders kept for their retention, so the answer grows with the work in flight only."""
    submit(executor, "rnd_running", "01" * 32)
    submit(executor, "rnd_done", "02" * 32)
    set_status(kube_api, {"state": "completed", "completedAt": iso(datetime.now(UTC))}, resource_name("02" * 32))
    assert executor.executing() == {"rnd_running"}
    lists = [r for r in kube.emulator or [] if r.action == kmock.action.LIST and r.resource == RENDERS]
    assert lists[-1].params["labelSelector"] == "app.kubernetes.io/managed-by=roughy,roughy.ai/finished!=true"


# --- errors at the edge -------------------------------------------------------------------------


def test_a_server_error_is_executor_unavailable(executor: KubeExecutor, kube: EmulatorServer) -> None:
    assert kube.emulator is not None
    kube.emulator.fail(500, method="POST", plural="renders")
    with pytest.raises(ExecutorUnavailable) as caught:
        submit(executor)
    assert caught.value.status == 503 and caught.value.code == "executor_unavailable"
    assert not isinstance(caught.value, k8s.ApiException)
    assert isinstance(caught.value.__cause__, KubeTemporaryError) and caught.value.__cause__.status == 500
    assert isinstance(caught.value.__cause__.__cause__, k8s.ApiException)  # the client's, kept as the cause

    kube.emulator[kmock.action.LIST, RENDERS] << 503  # kmock's own reactions answer too
    with pytest.raises(ExecutorUnavailable):
        executor.prune_terminal()


def test_permanent_refusals_are_executor_failed(executor: KubeExecutor, kube: EmulatorServer) -> None:
    assert kube.emulator is not None
    kube.emulator.fail(403, method="POST", plural="renders", reason="Forbidden")
    with pytest.raises(ExecutorFailed, match="RBAC") as caught:
        submit(executor)
    assert caught.value.status == 500 and isinstance(caught.value, RoughyError)


def test_a_stopped_server_is_executor_unavailable(executor: KubeExecutor, kube: EmulatorServer) -> None:
    submit(executor)
    kube.stop()
    calls: list[Callable[[], Any]] = [
        lambda: submit(executor),
        lambda: executor.cancel_resource(NAME),
        lambda: executor.prune_terminal(),
    ]
    for call in calls:
        with pytest.raises(ExecutorUnavailable):
            call()


# --- configuration ------------------------------------------------------------------------------


def test_from_environment_reads_kubeconfig(
    kube: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
        f"clusters: [{{name: kmock, cluster: {{server: '{kube.url}'}}}}]\n"
        "users: [{name: tester, user: {token: abc}}]\n"
        f"contexts: [{{name: test, context: {{cluster: kmock, user: tester, namespace: {NAMESPACE}}}}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(config))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    executor = KubeExecutor.from_environment(retention=10)
    try:
        assert executor.namespace == NAMESPACE and executor.retention == 10
        assert submit(executor) == NAME
    finally:
        executor.close()


def test_from_environment_without_any_configuration_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ExecutorFailed, match="no Kubernetes configuration"):
        KubeExecutor.from_environment()


def test_a_hanging_server_is_executor_unavailable_after_the_timeout(
    kube: EmulatorServer, kube_api: k8s.ApiClient
) -> None:
    assert kube.emulator is not None
    kube.emulator[kmock.action.FETCH, RENDERS] << (lambda: asyncio.sleep(1.5))
    executor = KubeExecutor(KubeApi(kube_api, timeout=0.3), namespace=NAMESPACE)
    started = time.monotonic()
    with pytest.raises(ExecutorUnavailable, match="unreachable"):
        executor.cancel_resource(NAME)  # its first call reads the Render
    assert time.monotonic() - started < 1.2
