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

from tests.kube.emulator import KubeEmulator
from tests.kube.harness import RENDERS, EmulatorServer, SpecSchemaCheck, install_render_schema

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


# --- RBAC (opt-in: tokens granted rules; others unrestricted) ------------------------------------

RBAC_USER = "system:serviceaccount:ns:robot"


@pytest.fixture
def robot(kube: EmulatorServer) -> Iterator[httpx.Client]:
    rules = [
        {"apiGroups": ["roughy.ai"], "resources": ["renders"], "verbs": ["get", "list", "create"]},
        {"apiGroups": ["roughy.ai"], "resources": ["renders/status"], "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"], "resourceNames": ["allowed"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["*"], "verbs": ["*"]},
    ]
    kube.call(lambda e: e.grant("robot-token", RBAC_USER, rules, namespace=NS))
    headers = {"Authorization": "Bearer robot-token"}
    with httpx.Client(base_url=kube.url, timeout=5, headers=headers) as client:
        yield client


def forbidden(response: httpx.Response, message: str) -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert (body["kind"], body["status"], body["reason"], body["code"]) == ("Status", "Failure", "Forbidden", 403)
    assert body["message"] == message


def test_rbac_allows_what_a_rule_grants_and_refuses_the_rest_as_the_api_server_words_it(
    kube: EmulatorServer, robot: httpx.Client, http: httpx.Client
) -> None:
    assert robot.post(RENDERS_URL, json=render("r-1")).status_code == 201
    assert robot.get(f"{RENDERS_URL}/r-1").status_code == 200
    assert robot.get(RENDERS_URL).status_code == 200
    forbidden(
        robot.patch(f"{RENDERS_URL}/r-1", content=json.dumps({"spec": {"n": 2}}), headers=MERGE),
        'renders.roughy.ai "r-1" is forbidden: User "system:serviceaccount:ns:robot" cannot patch resource '
        '"renders" in API group "roughy.ai" in the namespace "ns"',
    )
    forbidden(
        robot.delete(RENDERS_URL),
        'renders.roughy.ai is forbidden: User "system:serviceaccount:ns:robot" cannot deletecollection resource '
        '"renders" in API group "roughy.ai" in the namespace "ns"',
    )
    forbidden(
        robot.get(PODS_URL),
        'pods is forbidden: User "system:serviceaccount:ns:robot" cannot list resource "pods" in API group "" '
        'in the namespace "ns"',
    )
    # A Role's rules hold in its namespace only; cluster-scoped resources need a ClusterRole.
    assert robot.get("/apis/roughy.ai/v1alpha1/namespaces/default/renders").status_code == 403
    forbidden(
        robot.get("/api/v1/namespaces"),
        'namespaces is forbidden: User "system:serviceaccount:ns:robot" cannot list resource "namespaces" '
        'in API group "" at the cluster scope',
    )
    # Discovery is everyone's (system:discovery); a token without grants, or none, is not restricted.
    for path in ("/api", "/apis", "/version", "/apis/roughy.ai/v1alpha1", "/api/v1"):
        assert robot.get(path).status_code == 200, path
    assert http.patch(f"{RENDERS_URL}/r-1", content=json.dumps({"spec": {"n": 2}}), headers=MERGE).status_code == 200
    other = http.get(PODS_URL, headers={"Authorization": "Bearer someone-else"})
    assert other.status_code == 200
    refused = kube.call(lambda e: [(r.attributes.verb, r.request) for r in e.forbidden])
    assert refused == [
        ("patch", f"PATCH {RENDERS_URL}/r-1"),
        ("deletecollection", f"DELETE {RENDERS_URL}"),
        ("list", f"GET {PODS_URL}"),
        ("list", "GET /apis/roughy.ai/v1alpha1/namespaces/default/renders"),
        ("list", "GET /api/v1/namespaces"),
    ]
    assert kube.object("renders", NS, "r-1")["spec"] == {"n": 2}, "the refused patch changed nothing"


def test_rbac_subresources_resource_names_watch_and_wildcards(
    kube: EmulatorServer, robot: httpx.Client, http: httpx.Client
) -> None:
    create(http, RENDERS_URL, render("r-1"))
    # renders/status is its own resource: patch allowed there, not on the object, and vice versa.
    status = robot.patch(f"{RENDERS_URL}/r-1/status", content=json.dumps({"status": {"x": 1}}), headers=MERGE)
    assert status.status_code == 200, status.text
    forbidden(
        robot.get(f"{RENDERS_URL}/r-1/status"),
        'renders.roughy.ai "r-1" is forbidden: User "system:serviceaccount:ns:robot" cannot get resource '
        '"renders/status" in API group "roughy.ai" in the namespace "ns"',
    )
    # pods/log: get on the subresource is not get on pods.
    create(http, PODS_URL, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}})
    assert robot.get(f"{PODS_URL}/p").status_code == 403
    assert robot.get(f"{PODS_URL}/p/log").status_code == 400  # allowed; the pod has no node yet
    # watch=true on a list is the verb `watch`, which the rule does not grant (list and get it does).
    forbidden(
        robot.get(RENDERS_URL, params={"watch": "true"}),
        'renders.roughy.ai is forbidden: User "system:serviceaccount:ns:robot" cannot watch resource "renders" '
        'in API group "roughy.ai" in the namespace "ns"',
    )
    assert robot.get(RENDERS_URL, params={"watch": "True"}).status_code == 403  # the official client's spelling
    # resourceNames: that name only; a list (no name) is not covered.
    create(http, JOBS_URL, {"metadata": {"name": "allowed"}, "spec": {}})
    create(http, JOBS_URL, {"metadata": {"name": "other"}, "spec": {}})
    assert robot.get(f"{JOBS_URL}/allowed").status_code == 200
    assert robot.get(f"{JOBS_URL}/other").status_code == 403
    assert robot.get(JOBS_URL).status_code == 403
    # `*` verbs and resources: anything in that group (leases), in the Role's namespace.
    leases = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"
    assert robot.post(leases, json={"metadata": {"name": "l"}, "spec": {}}).status_code == 201
    assert (
        robot.put(f"{leases}/l", json={"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}}).status_code == 200
    )
    assert robot.delete(f"{leases}/l").status_code == 200
    assert len(kube.call(lambda e: e.forbidden)) == 6


def test_rbac_refuses_before_anything_changes(kube: EmulatorServer, robot: httpx.Client, http: httpx.Client) -> None:
    create(http, JOBS_URL, {"metadata": {"name": "other"}, "spec": {}})
    version = kube.call(lambda e: e.resource_version)
    assert robot.delete(f"{JOBS_URL}/other").status_code == 403
    assert robot.post(JOBS_URL, json={"metadata": {"name": "new"}, "spec": {}}).status_code == 403
    assert kube.call(lambda e: e.resource_version) == version
    assert kube.object("jobs", NS, "other") is not None and kube.object("jobs", NS, "new") is None


# --- 410 Gone: a watch from a resourceVersion the history no longer holds ---------------------------


def raw_watch(http: httpx.Client, url: str, **params: str) -> list[dict[str, Any]]:
    with http.stream("GET", url, params={"watch": "true", "timeoutSeconds": "0.5", **params}) as response:
        assert response.status_code == 200
        return [json.loads(line) for line in response.iter_lines() if line.strip()]


def test_a_watch_from_before_the_history_window_gets_410_gone() -> None:
    server = EmulatorServer(lambda: KubeEmulator(history_limit=2)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=5) as http:
            versions = [create(http, RENDERS_URL, render(name))["metadata"]["resourceVersion"] for name in "abcd"]
            # c and d are kept: from b's version on, nothing is missing.
            assert watch_events(http, RENDERS_URL, resourceVersion=versions[1]) == [("ADDED", "c"), ("ADDED", "d")]
            (event,) = raw_watch(http, RENDERS_URL, resourceVersion=versions[0])
            assert event["type"] == "ERROR"
            status = event["object"]
            assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
            assert status["message"] == f"too old resource version: {versions[0]} ({int(versions[1]) + 1})"
            # A list, then a watch from its resourceVersion, recovers (what a client does on 410).
            listed = http.get(RENDERS_URL).json()
            assert len(listed["items"]) == 4
            create(http, RENDERS_URL, render("e"))
            assert watch_events(http, RENDERS_URL, resourceVersion=listed["metadata"]["resourceVersion"]) == [
                ("ADDED", "e")
            ]
            # Without a resourceVersion: the current state, never 410.
            assert len(watch_events(http, RENDERS_URL)) == 5
        assert server.call(lambda e: e.expired) == [
            f"GET {RENDERS_URL}?watch=true&timeoutSeconds=0.5&resourceVersion={versions[0]}"
        ]
    finally:
        server.stop()


def test_compaction_expires_every_older_watch(kube: EmulatorServer, http: httpx.Client) -> None:
    before = create(http, RENDERS_URL, render("a"))["metadata"]["resourceVersion"]
    create(http, RENDERS_URL, render("b"))
    kube.call(lambda e: e.compact())
    # From the compaction's resourceVersion itself nothing is missing.
    assert watch_events(http, RENDERS_URL, resourceVersion=str(kube.call(lambda e: e.resource_version))) == []
    (event,) = raw_watch(http, RENDERS_URL, resourceVersion=before)
    assert (event["type"], event["object"]["code"]) == ("ERROR", 410)
    now = str(kube.call(lambda e: e.resource_version))
    create(http, RENDERS_URL, render("c"))
    assert watch_events(http, RENDERS_URL, resourceVersion=now) == [("ADDED", "c")]


# --- size limits: the API server's on request bodies, etcd's on stored objects ----------------------


def test_a_request_body_over_3_mib_is_413_and_an_object_over_1_5_mib_is_refused_by_etcd(
    kube: EmulatorServer, http: httpx.Client
) -> None:
    big = http.post(RENDERS_URL, json=render("a", note="x" * (3 * 1024 * 1024)))
    assert big.status_code == 413, big.text[:300]
    assert big.json() | {"metadata": {}} == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Request entity too large: limit is 3145728", "reason": "RequestEntityTooLarge", "code": 413,
    }  # fmt: skip
    # Chunked (no Content-Length): measured as it is read.
    chunked = http.post(
        RENDERS_URL,
        content=iter([json.dumps(render("a", note="x" * (3 * 1024 * 1024))).encode()]),
        headers={"Content-Type": "application/json"},
    )
    assert chunked.status_code == 413, chunked.text[:300]
    # Under 3 MiB the request is read; over 1.5 MiB stored, etcd refuses it (a 500, as passed on).
    stored = http.post(RENDERS_URL, json=render("a", note="x" * (2 * 1024 * 1024)))
    assert stored.status_code == 500, stored.text[:300]
    assert stored.json()["message"] == "etcdserver: request is too large"
    assert kube.object("renders", NS, "a") is None
    # Between 1 and 1.5 MiB (above aiohttp's own 1 MiB default): accepted, and so is a status
    # patch that keeps it under; one that takes it over is refused and changes nothing.
    create(http, RENDERS_URL, render("a", note="x" * (1200 * 1024)))
    patch(http, f"{RENDERS_URL}/a/status", {"status": {"detail": "y" * 1024}})
    over = http.patch(
        f"{RENDERS_URL}/a/status", content=json.dumps({"status": {"detail": "y" * (400 * 1024)}}), headers=MERGE
    )
    assert over.status_code == 500, over.text[:300]
    assert len(kube.object("renders", NS, "a")["status"]["detail"]) == 1024


# --- the Render CRD's schema on spec: pruning, validation, immutability (opt-in) --------------------


def valid_spec() -> dict[str, Any]:
    return {
        "renderId": "rnd_1", "accountId": "acc_1", "assetId": "ast_1",
        "plan": {"format": "mp3", "duration": 3.0, "audio": {"bitrateKbps": 192, "channels": 2, "sampleRate": 48000}},
        "sources": {"audio": "k/audio"}, "outputKey": "k/out.mp3",
    }  # fmt: skip


@pytest.fixture
def schema(kube: EmulatorServer) -> SpecSchemaCheck:
    spec = SpecSchemaCheck()
    kube.call(lambda emulator: install_render_schema(emulator, spec))
    return spec


def test_a_render_spec_is_pruned_then_validated_against_the_crd(
    kube: EmulatorServer, http: httpx.Client, schema: SpecSchemaCheck
) -> None:
    created = create(http, RENDERS_URL, {"metadata": {"name": "r-1"}, "spec": valid_spec()})
    assert created["spec"] == valid_spec() and schema.pruned == []
    # Fields the schema does not name are dropped, as the API server prunes them (recorded here).
    extra = valid_spec() | {"surprise": 1}
    extra["plan"] = extra["plan"] | {"gpu": True}
    created = create(http, RENDERS_URL, {"metadata": {"name": "r-2"}, "spec": extra})
    assert created["spec"] == valid_spec() == kube.object("renders", NS, "r-2")["spec"]
    assert schema.pruned == ["spec.plan.gpu", "spec.surprise"]
    # Invalid: 422, nothing stored.
    for bad in (
        valid_spec() | {"outputKey": ""},
        {k: v for k, v in valid_spec().items() if k != "assetId"},
        valid_spec() | {"plan": {"format": "wav", "duration": 1}},
    ):
        response = http.post(RENDERS_URL, json={"metadata": {"name": "r-3"}, "spec": bad})
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["reason"] == "Invalid"
        assert response.json()["message"].startswith('Render.roughy.ai "r-3" is invalid: spec')
    assert http.post(RENDERS_URL, json={"metadata": {"name": "r-3"}}).status_code == 422  # spec is required
    assert kube.object("renders", NS, "r-3") is None
    # Optional fields may be null (nullable), as OpenAPI allows.
    create(http, RENDERS_URL, {"metadata": {"name": "r-4"}, "spec": valid_spec() | {"cutId": None}})


def test_a_render_spec_is_immutable_but_its_metadata_and_status_are_not(
    kube: EmulatorServer, http: httpx.Client, schema: SpecSchemaCheck
) -> None:
    create(http, RENDERS_URL, {"metadata": {"name": "r-1"}, "spec": valid_spec()})
    response = http.patch(f"{RENDERS_URL}/r-1", content=json.dumps({"spec": {"outputKey": "k/other"}}), headers=MERGE)
    assert response.status_code == 422, response.text
    assert response.json()["message"] == (
        'Render.roughy.ai "r-1" is invalid: spec: Invalid value: "object": '
        "spec is immutable: delete the Render and create another"
    )
    assert kube.object("renders", NS, "r-1")["spec"] == valid_spec()
    patch(http, f"{RENDERS_URL}/r-1", {"metadata": {"labels": {"a": "b"}, "finalizers": ["x/y"]}})
    patch(http, f"{RENDERS_URL}/r-1", {"spec": valid_spec()})  # the same spec: no change, allowed
    assert http.delete(f"{RENDERS_URL}/r-1").status_code == 200  # deletion marks pass too
    patch(http, f"{RENDERS_URL}/r-1", {"metadata": {"finalizers": None}})
    assert kube.object("renders", NS, "r-1") is None
