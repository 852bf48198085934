"""The emulator's extensions of kmock, each checked over HTTP as a client would see them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import kmock
import pytest
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch

from tests.kube.harness import RENDERS, EmulatorServer

pytestmark = pytest.mark.kubernetes

NS = "ns"
RENDERS_URL = f"/apis/roughy.ai/v1alpha1/namespaces/{NS}/renders"
JOBS_URL = f"/apis/batch/v1/namespaces/{NS}/jobs"
PODS_URL = f"/api/v1/namespaces/{NS}/pods"
MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture
def http(kube: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=kube.url, timeout=5) as client:
        yield client


def render(name: str, labels: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"n": 1}, **extra}


def create(http: httpx.Client, url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = http.post(url, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def patch(http: httpx.Client, url: str, body: Any, status: int = 200) -> dict[str, Any]:
    headers = {"Content-Type": "application/json-patch+json"} if isinstance(body, list) else MERGE
    response = http.patch(url, content=json.dumps(body), headers=headers)
    assert response.status_code == status, response.text
    return dict(response.json())


def names(http: httpx.Client, url: str, **params: str) -> list[str]:
    response = http.get(url, params=params)
    assert response.status_code == 200, response.text
    return [item["metadata"]["name"] for item in response.json()["items"]]


def owner_ref(owner: dict[str, Any], kind: str, block: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": block,
    }


def watch_events(http: httpx.Client, url: str, **params: str) -> list[tuple[str, str]]:
    with http.stream("GET", url, params={"watch": "true", "timeoutSeconds": "0.5", **params}) as response:
        assert response.status_code == 200
        events = [json.loads(line) for line in response.iter_lines() if line.strip()]
    return [(event["type"], event["object"]["metadata"]["name"]) for event in events]


# --- label and field selectors ------------------------------------------------------------------


def test_list_filters_by_label_selector(http: httpx.Client) -> None:
    create(http, RENDERS_URL, render("a", {"app": "x", "tier": "gpu"}))
    create(http, RENDERS_URL, render("b", {"app": "x"}))
    create(http, RENDERS_URL, render("c", {"app": "y", "tier": "cpu"}))
    create(http, RENDERS_URL, render("d"))

    assert names(http, RENDERS_URL, labelSelector="app=x,tier") == ["a"]
    assert names(http, RENDERS_URL, labelSelector="app==x") == ["a", "b"]
    assert names(http, RENDERS_URL, labelSelector="app!=x") == ["c", "d"]  # absent labels match !=
    assert names(http, RENDERS_URL, labelSelector="tier in (gpu, cpu)") == ["a", "c"]
    assert names(http, RENDERS_URL, labelSelector="tier notin (gpu),app") == ["b", "c"]
    assert names(http, RENDERS_URL, labelSelector="!tier") == ["b", "d"]
    assert names(http, RENDERS_URL, labelSelector="") == ["a", "b", "c", "d"]
    assert names(http, RENDERS_URL, fieldSelector="metadata.name=c") == ["c"]
    assert names(http, RENDERS_URL, fieldSelector="metadata.name!=c", labelSelector="app") == ["a", "b"]
    # All namespaces, and the selector still applies.
    assert names(http, "/apis/roughy.ai/v1alpha1/renders", labelSelector="app=y") == ["c"]


def test_a_bad_selector_is_a_400(http: httpx.Client) -> None:
    response = http.get(RENDERS_URL, params={"labelSelector": "app in x"})
    assert response.status_code == 400
    assert response.json()["reason"] == "BadRequest"


def test_watch_filters_by_label_selector_and_reports_objects_leaving_it(http: httpx.Client) -> None:
    create(http, RENDERS_URL, render("a", {"app": "x"}))
    listed = http.get(RENDERS_URL).json()["metadata"]["resourceVersion"]
    create(http, RENDERS_URL, render("b", {"app": "y"}))
    patch(http, f"{RENDERS_URL}/b", {"metadata": {"labels": {"app": "x"}}})  # moves into the selector
    patch(http, f"{RENDERS_URL}/a", {"metadata": {"labels": {"app": "z"}}})  # moves out of it

    # From the list's resourceVersion: only what happened after it, as seen through the selector.
    assert watch_events(http, RENDERS_URL, labelSelector="app=x", resourceVersion=listed) == [
        ("ADDED", "b"),
        ("DELETED", "a"),
    ]
    # Without a resourceVersion: the current matching objects first.
    assert watch_events(http, RENDERS_URL, labelSelector="app=x") == [("ADDED", "b")]


# --- resourceVersion and conflicts ------------------------------------------------------------------


def test_resource_version_grows_on_every_write_but_not_on_a_no_op(http: httpx.Client) -> None:
    first = create(http, RENDERS_URL, render("a"))
    v1 = int(first["metadata"]["resourceVersion"])
    v2 = int(patch(http, f"{RENDERS_URL}/a", {"spec": {"n": 2}})["metadata"]["resourceVersion"])
    v3 = int(patch(http, f"{RENDERS_URL}/a/status", {"status": {"state": "running"}})["metadata"]["resourceVersion"])
    same = patch(http, f"{RENDERS_URL}/a", {"spec": {"n": 2}})
    assert v1 < v2 < v3
    assert int(same["metadata"]["resourceVersion"]) == v3
    assert http.get(RENDERS_URL).json()["metadata"]["resourceVersion"] == str(v3)
    assert first["metadata"]["uid"] and first["metadata"]["creationTimestamp"].endswith("Z")


def test_a_stale_resource_version_is_a_409_conflict_on_patch_and_put(http: httpx.Client) -> None:
    created = create(http, RENDERS_URL, render("a"))
    stale = created["metadata"]["resourceVersion"]
    current = patch(http, f"{RENDERS_URL}/a", {"spec": {"n": 2}})

    conflict = patch(http, f"{RENDERS_URL}/a", {"metadata": {"resourceVersion": stale}, "spec": {"n": 3}}, 409)
    assert conflict["reason"] == "Conflict"
    response = http.put(f"{RENDERS_URL}/a", json={**created, "spec": {"n": 4}})
    assert response.status_code == 409

    replaced = http.put(f"{RENDERS_URL}/a", json={**current, "spec": {"n": 5}})
    assert replaced.status_code == 200
    assert replaced.json()["spec"] == {"n": 5}
    ok = patch(
        http,
        f"{RENDERS_URL}/a",
        {"metadata": {"resourceVersion": replaced.json()["metadata"]["resourceVersion"]}, "spec": {"n": 6}},
    )
    assert ok["spec"] == {"n": 6}


def test_the_official_client_sees_conflicts_as_api_exceptions(kube_api: k8s.ApiClient) -> None:
    objects = k8s.CustomObjectsApi(kube_api)
    created = objects.create_namespaced_custom_object("roughy.ai", "v1alpha1", NS, "renders", render("a"))
    objects.patch_namespaced_custom_object("roughy.ai", "v1alpha1", NS, "renders", "a", {"spec": {"n": 2}})
    with pytest.raises(k8s.ApiException) as caught:
        objects.replace_namespaced_custom_object("roughy.ai", "v1alpha1", NS, "renders", "a", created)
    assert caught.value.status == 409


def test_leases_are_served_with_conflicts_on_a_stale_put(kube_api: k8s.ApiClient) -> None:
    """What the operator's leader election relies on (roughy/operator/leader.py): a Lease is
    created once (AlreadyExists after), and a PUT naming a stale resourceVersion is refused."""
    leases = k8s.CoordinationV1Api(kube_api)
    body = {"metadata": {"name": "op"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}
    created = leases.create_namespaced_lease(NS, body)
    assert created.kind == "Lease" and created.spec.holder_identity == "a"
    with pytest.raises(k8s.ApiException) as caught:
        leases.create_namespaced_lease(NS, body)
    assert caught.value.status == 409 and json.loads(caught.value.body)["reason"] == "AlreadyExists"

    version = created.metadata.resource_version
    taken = {"metadata": {"name": "op", "resourceVersion": version}, "spec": {"holderIdentity": "b"}}
    replaced = leases.replace_namespaced_lease("op", NS, taken)
    assert replaced.spec.holder_identity == "b" and int(replaced.metadata.resource_version) > int(version)
    stale = {"metadata": {"name": "op", "resourceVersion": version}, "spec": {"holderIdentity": "c"}}
    with pytest.raises(k8s.ApiException) as caught:
        leases.replace_namespaced_lease("op", NS, stale)
    assert caught.value.status == 409 and json.loads(caught.value.body)["reason"] == "Conflict"
    assert leases.read_namespaced_lease("op", NS).spec.holder_identity == "b"


# --- generation -------------------------------------------------------------------------------


def test_generation_follows_the_spec_only(http: httpx.Client) -> None:
    assert create(http, RENDERS_URL, render("a"))["metadata"]["generation"] == 1
    assert patch(http, f"{RENDERS_URL}/a", {"spec": {"n": 2}})["metadata"]["generation"] == 2
    assert patch(http, f"{RENDERS_URL}/a/status", {"status": {"state": "x"}})["metadata"]["generation"] == 2
    assert patch(http, f"{RENDERS_URL}/a", {"metadata": {"labels": {"l": "v"}}})["metadata"]["generation"] == 2
    assert (
        patch(http, f"{RENDERS_URL}/a", [{"op": "replace", "path": "/spec/n", "value": 3}])["metadata"]["generation"]
        == 3
    )


# --- the status subresource ----------------------------------------------------------------------


def test_status_writes_change_only_status_and_object_writes_never_status(http: httpx.Client) -> None:
    created = create(http, RENDERS_URL, render("a", status={"state": "forged"}))
    assert "status" not in created  # dropped on create

    after_status = patch(
        http,
        f"{RENDERS_URL}/a/status",
        {"status": {"state": "running"}, "spec": {"n": 99}, "metadata": {"labels": {"x": "y"}}},
    )
    assert after_status["status"] == {"state": "running"}
    assert after_status["spec"] == {"n": 1} and after_status["metadata"]["labels"] == {}

    after_main = patch(http, f"{RENDERS_URL}/a", {"status": {"state": "completed"}, "spec": {"n": 2}})
    assert after_main["status"] == {"state": "running"} and after_main["spec"] == {"n": 2}

    put = http.put(f"{RENDERS_URL}/a/status", json={**after_main, "status": {"state": "failed"}, "spec": {"n": 7}})
    assert put.status_code == 200
    assert put.json()["status"] == {"state": "failed"} and put.json()["spec"] == {"n": 2}
    fetched = http.get(f"{RENDERS_URL}/a/status").json()
    assert fetched["status"] == {"state": "failed"}


# --- finalizers ---------------------------------------------------------------------------------


def test_finalizers_hold_a_deleted_object_until_they_are_removed(http: httpx.Client) -> None:
    create(http, RENDERS_URL, render("a") | {"metadata": {"name": "a", "finalizers": ["roughy.ai/cleanup"]}})
    deleted = http.delete(f"{RENDERS_URL}/a")
    assert deleted.status_code == 200
    held = http.get(f"{RENDERS_URL}/a").json()
    assert held["metadata"]["deletionTimestamp"]
    assert http.delete(f"{RENDERS_URL}/a").status_code == 200  # deleting again changes nothing

    refused = patch(http, f"{RENDERS_URL}/a", {"metadata": {"finalizers": ["roughy.ai/cleanup", "new"]}}, 422)
    assert "no new finalizers" in refused["message"]

    patch(http, f"{RENDERS_URL}/a", {"metadata": {"finalizers": None}})
    assert http.get(f"{RENDERS_URL}/a").status_code == 404
    assert http.post(RENDERS_URL, json=render("a")).status_code == 201  # the name is free again


# --- owner references and the garbage collector -------------------------------------------------------


def _tree(http: httpx.Client, job_finalizers: list[str] | None = None) -> tuple[dict[str, Any], ...]:
    owner = create(http, RENDERS_URL, render("r"))
    job_meta: dict[str, Any] = {"name": "r-job", "ownerReferences": [owner_ref(owner, "Render")]}
    if job_finalizers:
        job_meta["finalizers"] = job_finalizers
    job = create(http, JOBS_URL, {"metadata": job_meta, "spec": {}})
    pod = create(
        http, PODS_URL, {"metadata": {"name": "r-job-x", "ownerReferences": [owner_ref(job, "Job")]}, "spec": {}}
    )
    return owner, job, pod


def test_background_deletion_collects_dependents_recursively(http: httpx.Client) -> None:
    _tree(http)
    assert http.request("DELETE", f"{RENDERS_URL}/r", json={"propagationPolicy": "Background"}).status_code == 200
    assert http.get(f"{RENDERS_URL}/r").status_code == 404
    assert http.get(f"{JOBS_URL}/r-job").status_code == 404
    assert http.get(f"{PODS_URL}/r-job-x").status_code == 404


def test_foreground_deletion_waits_for_blocking_dependents(http: httpx.Client) -> None:
    _tree(http, job_finalizers=["test/hold"])
    response = http.request("DELETE", f"{RENDERS_URL}/r", json={"propagationPolicy": "Foreground"})
    assert response.status_code == 200
    owner = http.get(f"{RENDERS_URL}/r").json()
    assert owner["metadata"]["deletionTimestamp"]
    assert owner["metadata"]["finalizers"] == ["foregroundDeletion"]
    job = http.get(f"{JOBS_URL}/r-job").json()
    assert job["metadata"]["deletionTimestamp"]  # being deleted, held by its own finalizer
    assert http.get(f"{PODS_URL}/r-job-x").status_code == 404  # the job's pod went first

    patch(http, f"{JOBS_URL}/r-job", {"metadata": {"finalizers": None}})
    assert http.get(f"{JOBS_URL}/r-job").status_code == 404
    assert http.get(f"{RENDERS_URL}/r").status_code == 404  # released by the GC once the job is gone


def test_a_dependent_created_while_its_owner_waits_in_the_foreground_is_deleted(http: httpx.Client) -> None:
    """A Job controller that creates one more pod before it sees its Job's delete: the GC
    collects that pod too, or the Job would wait for it for ever."""
    _, job, _ = _tree(http)
    held = {"metadata": {"name": "r-job-y", "finalizers": ["test/hold"],
                         "ownerReferences": [owner_ref(job, "Job")]}, "spec": {}}  # fmt: skip
    create(http, PODS_URL, held)
    assert http.request("DELETE", f"{JOBS_URL}/r-job", json={"propagationPolicy": "Foreground"}).status_code == 200
    assert http.get(f"{JOBS_URL}/r-job").json()["metadata"]["finalizers"] == ["foregroundDeletion"]
    late = {"metadata": {"name": "r-job-z", "ownerReferences": [owner_ref(job, "Job")]}, "spec": {}}
    assert http.post(PODS_URL, json=late).status_code == 201
    assert http.get(f"{PODS_URL}/r-job-z").status_code == 404  # collected at once
    patch(http, f"{PODS_URL}/r-job-y", {"metadata": {"finalizers": None}})
    assert http.get(f"{JOBS_URL}/r-job").status_code == 404


def test_orphan_deletion_keeps_dependents_and_drops_their_references(http: httpx.Client) -> None:
    _tree(http)
    assert http.request("DELETE", f"{RENDERS_URL}/r", params={"propagationPolicy": "Orphan"}).status_code == 200
    job = http.get(f"{JOBS_URL}/r-job").json()
    assert "ownerReferences" not in job["metadata"]


def test_a_job_deleted_without_a_policy_orphans_its_pods_as_batch_v1_does(http: httpx.Client) -> None:
    _tree(http)
    assert http.delete(f"{JOBS_URL}/r-job").status_code == 200
    assert http.get(f"{PODS_URL}/r-job-x").status_code == 200
    assert http.get(f"{RENDERS_URL}/r").status_code == 200


def test_a_delete_precondition_on_uid_is_a_409(http: httpx.Client) -> None:
    create(http, RENDERS_URL, render("a"))
    response = http.request("DELETE", f"{RENDERS_URL}/a", json={"preconditions": {"uid": "other"}})
    assert response.status_code == 409
    assert http.get(f"{RENDERS_URL}/a").status_code == 200


# --- other API-server behaviour the operator relies on ---------------------------------------------


def test_generate_name_and_name_validation(http: httpx.Client) -> None:
    first = create(http, f"/api/v1/namespaces/{NS}/events", {"metadata": {"generateName": "kopf-event-"}})
    second = create(http, f"/api/v1/namespaces/{NS}/events", {"metadata": {"generateName": "kopf-event-"}})
    assert first["metadata"]["name"].startswith("kopf-event-")
    assert first["metadata"]["name"] != second["metadata"]["name"]
    assert http.post(RENDERS_URL, json=render("Not_A_Name")).status_code == 422
    assert http.post(RENDERS_URL, json=render("a", {"k": "x" * 64})).status_code == 422
    assert http.post(RENDERS_URL, json=render("a")).status_code == 201
    duplicate = http.post(RENDERS_URL, json=render("a"))
    assert duplicate.status_code == 409 and duplicate.json()["reason"] == "AlreadyExists"


def test_delete_collection_by_label(http: httpx.Client) -> None:
    create(http, RENDERS_URL, render("a", {"app": "x"}))
    create(http, RENDERS_URL, render("b", {"app": "y"}))
    response = http.request("DELETE", RENDERS_URL, params={"labelSelector": "app=x"})
    assert response.status_code == 200
    assert names(http, RENDERS_URL) == ["b"]


def test_discovery_serves_what_kopf_and_the_client_read(kube_api: k8s.ApiClient) -> None:
    groups = {group.name for group in k8s.ApisApi(kube_api).get_api_versions().groups}
    assert {"roughy.ai", "batch"} <= groups
    resources = k8s.CustomObjectsApi(kube_api).get_api_resources("roughy.ai", "v1alpha1")
    by_name = {resource.name: resource for resource in resources.resources}
    assert by_name["renders"].kind == "Render" and by_name["renders"].namespaced is True
    assert "renders/status" in by_name
    assert "rnd" in by_name["renders"].short_names


def test_the_official_watch_stream_ends_at_its_timeout(kube: EmulatorServer, kube_api: k8s.ApiClient) -> None:
    objects = k8s.CustomObjectsApi(kube_api)
    objects.create_namespaced_custom_object("roughy.ai", "v1alpha1", NS, "renders", render("a"))
    listed = objects.list_namespaced_custom_object("roughy.ai", "v1alpha1", NS, "renders")
    objects.patch_namespaced_custom_object("roughy.ai", "v1alpha1", NS, "renders", "a", {"spec": {"n": 2}})

    started = time.monotonic()
    stream = k8s_watch.Watch().stream(
        objects.list_namespaced_custom_object, "roughy.ai", "v1alpha1", NS, "renders",
        resource_version=listed["metadata"]["resourceVersion"], timeout_seconds=1,
    )  # fmt: skip
    seen = [(event["type"], event["object"]["spec"]["n"]) for event in stream]
    assert seen == [("MODIFIED", 2)]  # what happened after the listing, then the server ends the stream
    assert 0.9 < time.monotonic() - started < 3


def test_stopping_the_server_closes_open_watches(kube: EmulatorServer, http: httpx.Client) -> None:
    opened = threading.Event()

    def watch() -> None:
        try:
            with httpx.stream("GET", f"{kube.url}{RENDERS_URL}", params={"watch": "true"}, timeout=10) as response:
                opened.set()
                for _ in response.iter_lines():
                    pass
        except httpx.HTTPError:
            pass

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert opened.wait(5)
    started = time.monotonic()
    kube.stop()
    watcher.join(5)
    assert not watcher.is_alive()
    assert time.monotonic() - started < 3


def test_injected_faults_change_nothing_and_kmock_reactions_still_apply(
    kube: EmulatorServer, http: httpx.Client
) -> None:
    assert kube.emulator is not None
    kube.emulator.fail(500, method="POST", plural="renders")
    assert http.post(RENDERS_URL, json=render("a")).status_code == 500
    assert kube.object("renders", NS, "a") is None
    assert http.post(RENDERS_URL, json=render("a")).status_code == 201  # only the next request failed

    kube.emulator[kmock.action.LIST, RENDERS] << 503  # kmock's DSL, in front of the emulator
    assert http.get(RENDERS_URL).status_code == 503
    assert http.get(f"{RENDERS_URL}/a").status_code == 200


def test_namespaces_and_the_render_crd_are_served(http: httpx.Client) -> None:
    # kmock cannot parse /api/v1/namespaces[/NAME]: the emulator maps these paths itself (kopf lists them).
    assert {"default", "roughy"} <= set(names(http, "/api/v1/namespaces"))
    namespace = http.get("/api/v1/namespaces/roughy")
    assert namespace.status_code == 200 and namespace.json()["kind"] == "Namespace"
    assert "namespace" not in namespace.json()["metadata"]  # cluster-scoped
    create(http, "/api/v1/namespaces", {"metadata": {"name": "extra"}})
    assert watch_events(http, "/api/v1/namespaces", fieldSelector="metadata.name=extra") == [("ADDED", "extra")]
    assert names(http, PODS_URL) == []  # namespaced paths are unaffected
    crd = http.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/renders.roughy.ai")
    assert crd.status_code == 200 and crd.json()["spec"]["names"]["kind"] == "Render"
