"""RBAC from the chart, enforced (issue 10): `roughy serve` and `roughy operator` (leader election
on, as the chart runs it) as real processes, each with a token of its own that the emulator maps
to the rules of the Roles the chart binds to its ServiceAccount (`helm template` with the
default values and tests/chart/values-test.yaml's database and bucket).

A render to completion, an etcd compaction under the operator's watches (410 Gone: kopf lists
again) and the cancel of a running render meet not a single 403; a Role without one of its rules
(the operator's `secrets`) stops a render, with the 403 recorded: the check bites.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from tests.chart import chart
from tests.chart.test_helm import HELM, TEST_VALUES, helm
from tests.conftest import free_port, ready_asset, wait_for
from tests.kube.emulator import Refusal
from tests.kube.harness import EmulatorServer, SpecSchemaCheck, install_render_schema, kubeconfig
from tests.kube.kubelet import FakeKubelet
from tests.kube.test_cli import answers, environment, processes, roughy  # noqa: F401  (fixtures)
from tests.kube.test_leader import client_for
from tests.media import make_video

pytestmark = [
    pytest.mark.kubernetes,
    # `make test` (and CI) fetch helm first (tools/get_helm.py), so this runs in the default suite.
    pytest.mark.skipif(HELM is None, reason="helm not installed (python tools/get_helm.py fetches it)"),
]

NAMESPACE = "roughy"
API_TOKEN, OPERATOR_TOKEN = "api-token", "operator-token"
spec_check = SpecSchemaCheck()  # the Render CRD's schema on spec, as the API server applies it


def chart_objects(*sets: str) -> list[dict[str, Any]]:
    """`helm template` of the chart into NAMESPACE: the default values plus the smallest that
    install (tests/chart/values-test.yaml: a database, a bucket), and `sets`."""
    args = ["template", chart.RELEASE, str(chart.CHART), "--namespace", NAMESPACE, "-f", str(TEST_VALUES)]
    for item in sets:
        args += ["--set", item]
    return [doc for doc in yaml.safe_load_all(helm(*args).stdout) if doc]


def bound_rules(objects: list[dict[str, Any]], service_account: str) -> list[tuple[str | None, dict[str, Any]]]:
    """(namespace, rule) for every rule of the Roles and ClusterRoles bound to the ServiceAccount
    (a Role's rules hold in its namespace; a ClusterRole bound cluster-wide: None, everywhere)."""
    roles = {(o["kind"], o["metadata"]["name"]): o for o in objects if o["kind"] in ("Role", "ClusterRole")}
    grants: list[tuple[str | None, dict[str, Any]]] = []
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(
            s["kind"] == "ServiceAccount" and s["name"] == service_account and s.get("namespace") == NAMESPACE
            for s in binding.get("subjects") or []
        ):
            continue
        role = roles[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        grants += [(scope, rule) for rule in role.get("rules") or []]
    assert grants, f"the chart binds no role to {service_account}"
    return grants


def enforce(kube: EmulatorServer, token: str, service_account: str, grants: list[tuple[str | None, Any]]) -> None:
    user = f"system:serviceaccount:{NAMESPACE}:{service_account}"

    def apply(emulator: Any) -> None:
        for scope, rule in grants:
            emulator.grant(token, user, [rule], namespace=scope)

    kube.call(apply)


def live_renders(kube: EmulatorServer) -> set[str]:
    def read(emulator: Any) -> set[str]:
        return {key[2] for key, obj in emulator.objects.items() if key[0].plural == "renders" and not obj.deleted}

    return kube.call(read)


def until(check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


def refused(kube: EmulatorServer) -> list[Refusal]:
    return kube.call(lambda emulator: list(emulator.forbidden))


@pytest.fixture
def start(
    environment: dict[str, str],  # noqa: F811
    kube: EmulatorServer,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],  # noqa: F811
) -> Iterator[Callable[..., Any]]:
    """`start(operator_rules, api_rules)`: the RBAC, then `roughy serve` and `roughy operator`
    (leader election as the chart sets it); returns the API's URL and the operator's log."""
    migrate = subprocess.run([sys.executable, "-m", "roughy.cli", "migrate"], env=environment, capture_output=True)
    assert migrate.returncode == 0, migrate.stderr.decode()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment |= {"ROUGHY_PUBLIC_URL": url, "ROUGHY_ENCODER_API_URL": url}

    def run(operator_rules: list[Any], api_rules: list[Any]) -> tuple[str, Path]:
        spec_check.pruned.clear()
        kube.call(lambda emulator: install_render_schema(emulator, spec_check))
        enforce(kube, OPERATOR_TOKEN, "roughy-operator", operator_rules)
        enforce(kube, API_TOKEN, "roughy-api", api_rules)
        operator_env = environment | {
            "KUBECONFIG": str(kubeconfig(tmp_path / "operator.kubeconfig", kube.url, OPERATOR_TOKEN)),
            "POD_NAME": "roughy-operator-0",
            "ROUGHY_LEADER_ELECTION_LEASE": "roughy-operator",  # the chart's: fullname-operator
        }
        operator_log, api_log = tmp_path / "operator.log", tmp_path / "api.log"
        liveness = f"http://127.0.0.1:{free_port()}/healthz"
        operator = roughy(
            "operator", "--namespace", NAMESPACE, "--leader-election", "--liveness", liveness, "--metrics-port", "0",
            env=operator_env, log=operator_log,
        )  # fmt: skip
        processes.append(operator)
        api_env = environment | {"KUBECONFIG": str(kubeconfig(tmp_path / "api.kubeconfig", kube.url, API_TOKEN))}
        api = roughy("serve", "--port", str(port), env=api_env, log=api_log)
        processes.append(api)
        deadline = time.monotonic() + 30
        assert answers(f"{url}/readyz", deadline, api, api_log).status_code == 200
        assert answers(liveness, deadline, operator, operator_log).status_code == 200
        wait_for(lambda: (kube.object("leases", NAMESPACE, "roughy-operator") or {}).get("spec", {}),
                 lambda spec: spec.get("holderIdentity") == "roughy-operator-0", timeout=30)  # fmt: skip
        return url, operator_log

    yield run


def test_the_chart_rbac_is_enough_for_a_render_and_a_cancel(
    start: Callable[..., Any], kube: EmulatorServer, tmp_path: Path, clip: Path
) -> None:
    objects = chart_objects()
    url, operator_log = start(bound_rules(objects, "roughy-operator"), bound_rules(objects, "roughy-api"))
    with FakeKubelet(kube, namespaces=(NAMESPACE,), workdir=tmp_path / "kubelet") as kubelet, client_for(url) as api:
        asset = ready_asset(api, clip)
        assert asset["state"] == "ready", (asset, refused(kube), operator_log.read_text()[-3000:])
        render = api.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "mp3"}}).json()
        done = wait_for(lambda: api.get(f"/v1/renders/{render['id']}").json(),
                        lambda r: r["state"] in ("completed", "failed"), timeout=60)  # fmt: skip
        assert done["state"] == "completed", (done, refused(kube), operator_log.read_text()[-3000:])

        # An etcd compaction under the operator's watches: they resume from a resourceVersion
        # that is gone (410), list again (its Role allows it) and reconcile on.
        # A write elsewhere first moves the resourceVersion past the last Render event the operator
        # saw; should the operator write a Render in between (its own event is then the newest),
        # compact again.
        with kube.api_client() as admin:
            for attempt in range(5):
                k8s.CoreV1Api(admin).create_namespaced_secret(NAMESPACE, {"metadata": {"name": f"elsewhere-{attempt}"}})
                kube.expire_watches()
                if until(lambda: kube.call(lambda e: [w for w in e.expired if "/renders" in w]), 5):
                    break
            else:
                raise AssertionError("the operator's Render watch never resumed into 410 Gone")

        # A running render, held still (SIGSTOP) so that the cancel finds it running.
        source = make_video(tmp_path / "long.mp4", duration=30.0, width=1280, height=720, fps=25)
        long = ready_asset(api, source)
        assert long["state"] == "ready", (long, refused(kube))
        kept = live_renders(kube)
        render = api.post("/v1/renders", json={"asset_id": long["id"], "output": {"format": "mp4"}}).json()
        wait_for(lambda: api.get(f"/v1/renders/{render['id']}").json(),
                 lambda r: r["state"] == "running" and r["progress"] > 0, timeout=60)  # fmt: skip
        encoders = list(kubelet.processes().values())
        for pid in encoders:
            os.killpg(pid, signal.SIGSTOP)
        try:
            cancelled = api.delete(f"/v1/renders/{render['id']}")
            assert cancelled.status_code == 204, cancelled.text
        finally:
            for pid in encoders:
                try:
                    os.killpg(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        # The cancelled Render goes (the completed one stays for config.renderRetention).
        wait_for(lambda: live_renders(kube), lambda names: names == kept, timeout=30)
        assert kubelet.wait_idle(timeout=30)
    assert refused(kube) == [], operator_log.read_text()[-3000:]
    assert spec_check.pruned == [], "the API wrote spec fields the CRD does not name: the server drops them"

    # The rules were enforced on both processes, kopf's own requests included (not bypassed).
    def tokens(emulator: Any) -> dict[tuple[str, str], set[str]]:
        seen: dict[tuple[str, str], set[str]] = {}
        for r in emulator._requests:  # noqa: SLF001
            if r.resource is not None and r.resource.plural:
                key = (emulator._verb(r), r.resource.plural)  # noqa: SLF001
                seen.setdefault(key, set()).add(r.headers.get("Authorization", ""))
        return seen

    seen = kube.call(tokens)
    assert seen[("watch", "renders")] == {f"Bearer {OPERATOR_TOKEN}"}, seen
    assert seen[("create", "renders")] == {f"Bearer {API_TOKEN}"}, seen
    assert f"Bearer {OPERATOR_TOKEN}" in seen[("create", "secrets")], seen


def test_a_role_missing_a_rule_makes_the_render_fail_with_the_403_recorded(
    start: Callable[..., Any], kube: EmulatorServer, tmp_path: Path, clip: Path
) -> None:
    objects = chart_objects()
    operator_rules = [
        (scope, rule) for scope, rule in bound_rules(objects, "roughy-operator") if "secrets" not in rule["resources"]
    ]
    url, operator_log = start(operator_rules, bound_rules(objects, "roughy-api"))
    with FakeKubelet(kube, namespaces=(NAMESPACE,), workdir=tmp_path / "kubelet"), client_for(url) as api:
        asset = ready_asset(api, clip)
        render = api.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "mp3"}}).json()
        wait_for(lambda: refused(kube), bool, timeout=60)
        # Refused for good: the render fails at once, as one whose Job is refused does.
        later = wait_for(lambda: api.get(f"/v1/renders/{render['id']}").json(),
                         lambda r: r["state"] in ("completed", "failed"), timeout=60)  # fmt: skip
        assert later["state"] == "failed" and later["error"]["code"] == "internal_error", later
        assert later["error"]["message"] == "the render's Secret was refused (Forbidden)", later
        # The Secret comes before the Job: no encode started.
        jobs = kube.call(lambda e: [k[2] for k, o in e.objects.items() if k[0].plural == "jobs" and not o.deleted])
        assert not [name for name in jobs if name.startswith("r-")], jobs
    (refusal, *_) = refused(kube)
    assert (refusal.user, refusal.attributes.verb, refusal.attributes.resource) == (
        "system:serviceaccount:roughy:roughy-operator",
        "create",
        "secrets",
    ), refusal
    assert 'cannot create resource "secrets" in API group "" in the namespace "roughy"' in refusal.message
