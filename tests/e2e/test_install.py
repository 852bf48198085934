"""The installed release: pods up (kopf's liveness answering), CRD served, RBAC as narrow as the
chart says, the migration hook done, the API's probes and metrics answering."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e import cluster
from tests.e2e.cluster import NAMESPACE, RELEASE, can_i, items, kubectl, kubectl_json

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(cluster.skip_reason() is not None, reason=str(cluster.skip_reason()))]


def test_deployments_are_available_and_never_restarted() -> None:
    for component in ("api", "operator"):
        deployment = kubectl_json("get", "deployment", f"{RELEASE}-{component}")
        assert deployment["status"].get("availableReplicas") == deployment["spec"]["replicas"], deployment["status"]
        pods = items(
            "pods", "--selector", f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}"
        )
        assert pods, component
        for pod in pods:
            for status in pod["status"]["containerStatuses"]:
                assert status["ready"] and status["restartCount"] == 0, (component, status)


def test_two_operators_run_and_one_holds_the_leader_lease() -> None:
    deployment = kubectl_json("get", "deployment", f"{RELEASE}-operator")
    assert deployment["spec"]["replicas"] == 2 and deployment["spec"]["strategy"]["type"] == "Recreate"
    lease = kubectl_json("get", "lease", f"{RELEASE}-operator")["spec"]
    pods = items("pods", "--selector", f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=operator")
    assert lease["holderIdentity"] in {pod["metadata"]["name"] for pod in pods}
    assert lease["leaseDurationSeconds"] == 15


def test_the_render_crd_is_served_with_its_short_name_and_category() -> None:
    resources = kubectl("api-resources", "--api-group", "roughy.ai", "--output", "wide")
    assert "renders" in resources and "rnd" in resources and "roughy" in resources
    assert kubectl("get", "rnd") is not None  # the short name resolves


def test_the_migration_hook_ran_and_went_away() -> None:
    found = kubectl("get", "job", f"{RELEASE}-migrate", "--ignore-not-found")
    assert found.strip() == "", "hook-succeeded deletes the migration Job after it succeeded"


@pytest.mark.parametrize(
    ("account", "verb", "resource", "allowed"),
    [
        ("api", "create", "renders.roughy.ai", True),
        ("api", "delete", "renders.roughy.ai", True),
        ("api", "create", "jobs.batch", False),
        ("api", "get", "secrets", False),
        ("operator", "patch", "renders.roughy.ai/status", True),
        ("operator", "create", "jobs.batch", True),
        ("operator", "get", "pods/log", True),
        ("operator", "create", "events", True),
        ("operator", "create", "renders.roughy.ai", False),
        ("operator", "delete", "renders.roughy.ai", True),  # retention pruning, orphans
        ("operator", "create", "pods", False),
        ("operator", "list", "secrets", False),
        ("operator", "list", "namespaces", False),
        ("operator", "create", "leases.coordination.k8s.io", True),
        ("operator", "list", "leases.coordination.k8s.io", False),
        ("encoder", "get", "pods", False),
        ("encoder", "list", "renders.roughy.ai", False),
    ],
)
def test_rbac(account: str, verb: str, resource: str, allowed: bool) -> None:
    assert can_i(f"{RELEASE}-{account}", verb, resource) is allowed


def test_the_encoder_account_mounts_no_token() -> None:
    account = kubectl_json("get", "serviceaccount", f"{RELEASE}-encoder")
    assert account["automountServiceAccountToken"] is False


def test_namespace_enforces_restricted_pod_security() -> None:
    labels = kubectl_json("get", "namespace", NAMESPACE, namespace=NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted", "deploy.sh sets it: every pod is checked"


def test_probes_and_metrics(api: httpx.Client) -> None:
    assert api.get("/healthz").status_code == 200
    assert api.get("/readyz").status_code == 200
    metrics = api.get("/metrics")
    assert metrics.status_code == 200 and "roughy_" in metrics.text
