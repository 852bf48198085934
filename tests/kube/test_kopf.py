"""The real kopf runs against the emulator: what the operator work builds on."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import kopf
import pytest
from kubernetes import client as k8s

from roughy.kube import crd
from tests.kube.conftest import NAMESPACE
from tests.kube.harness import EmulatorServer, running_operator

pytestmark = pytest.mark.kubernetes


def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.02)


def test_kopf_reconciles_renders_through_the_emulator(kube: EmulatorServer, kube_api: k8s.ApiClient) -> None:
    registry = kopf.OperatorRegistry()
    jobs = k8s.BatchV1Api(kube_api)

    @kopf.on.create(crd.GROUP, crd.VERSION, crd.PLURAL, registry=registry)
    def create_job(body: kopf.Body, name: str, namespace: str | None, patch: kopf.Patch, **_: Any) -> None:
        pod = {"restartPolicy": "Never", "containers": [{"name": "encoder", "image": "roughy-encoder"}]}
        job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": f"{name}-encode"},
               "spec": {"template": {"spec": pod}}}  # fmt: skip
        kopf.adopt(job, owner=body)
        jobs.create_namespaced_job(namespace, job)
        patch.status["state"] = "running"
        kopf.info(body, reason="Started", message="encoder job created")

    @kopf.on.delete(crd.GROUP, crd.VERSION, crd.PLURAL, registry=registry)
    def cleanup(**_: Any) -> None:
        pass

    objects = k8s.CustomObjectsApi(kube_api)
    body = {"apiVersion": crd.API_VERSION, "kind": crd.KIND, "metadata": {"name": "r-1"}, "spec": {"n": 1}}
    with running_operator(kube, registry, namespaces=[NAMESPACE]):
        objects.create_namespaced_custom_object(crd.GROUP, crd.VERSION, NAMESPACE, crd.PLURAL, body)
        render = eventually(lambda: (kube.object("renders", NAMESPACE, "r-1") or {}).get("status", {}).get("state"))
        assert render == "running"
        stored = kube.object("renders", NAMESPACE, "r-1")
        assert stored is not None and stored["metadata"]["finalizers"]  # kopf's, for the delete handler
        job = kube.object("jobs", NAMESPACE, "r-1-encode")
        assert job is not None and job["metadata"]["ownerReferences"][0]["uid"] == stored["metadata"]["uid"]
        assert kube.call(lambda emulator: any(key[0].plural == "events" for key in emulator.objects))

        objects.delete_namespaced_custom_object(
            crd.GROUP, crd.VERSION, NAMESPACE, crd.PLURAL, "r-1", propagation_policy="Foreground"
        )
        assert eventually(lambda: kube.object("renders", NAMESPACE, "r-1") is None)
        assert kube.object("jobs", NAMESPACE, "r-1-encode") is None


def test_kopf_lists_again_after_410_gone_and_keeps_reconciling(kube: EmulatorServer, kube_api: k8s.ApiClient) -> None:
    """A watch that resumes from a compacted resourceVersion gets an ERROR event with 410 Gone, as
    from a real API server; kopf must list again and go on (else new Renders go unnoticed)."""
    registry = kopf.OperatorRegistry()
    seen: list[str] = []

    @kopf.on.create(crd.GROUP, crd.VERSION, crd.PLURAL, registry=registry)
    def created(name: str, **_: Any) -> None:
        seen.append(name)

    objects = k8s.CustomObjectsApi(kube_api)

    def create(name: str) -> None:
        body = {"apiVersion": crd.API_VERSION, "kind": crd.KIND, "metadata": {"name": name}, "spec": {"n": 1}}
        objects.create_namespaced_custom_object(crd.GROUP, crd.VERSION, NAMESPACE, crd.PLURAL, body)

    with running_operator(kube, registry, namespaces=[NAMESPACE]):
        create("r-1")
        assert eventually(lambda: seen == ["r-1"])
        time.sleep(0.5)  # kopf's own patches of r-1 are done: its watch is idle
        # A write elsewhere moves the resourceVersion past the last Render event kopf saw.
        k8s.CoreV1Api(kube_api).create_namespaced_secret(NAMESPACE, {"metadata": {"name": "elsewhere"}})
        kube.expire_watches()
        assert eventually(lambda: kube.call(lambda e: [w for w in e.expired if "/renders" in w]))
        create("r-2")
        assert eventually(lambda: seen == ["r-1", "r-2"], timeout=10), seen
