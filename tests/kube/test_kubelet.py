"""The fake Job controller + kubelet (tests/kube/kubelet.py) and the emulator's pod log, over HTTP.

Every Job runs a tiny `python -c` script ("python" resolves in the venv's bin, as
`roughy-encode` will); scripts that must wait for the test poll for a file.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from roughy.kube import jobs as roughy_jobs
from tests.kube.conftest import NAMESPACE
from tests.kube.harness import EmulatorServer
from tests.kube.kubelet import TRACKING_FINALIZER, FakeKubelet
from tests.kube.test_kopf import eventually

pytestmark = pytest.mark.kubernetes

TERMINATION_LOG = "/dev/termination-log"


@pytest.fixture
def kubelet(kube: EmulatorServer, tmp_path: Path) -> Iterator[FakeKubelet]:
    with FakeKubelet(kube, workdir=tmp_path / "kubelet", grace_cap=1.0) as fake:
        yield fake
    assert not fake.errors


@pytest.fixture
def batch(kube_api: k8s.ApiClient) -> k8s.BatchV1Api:
    return k8s.BatchV1Api(kube_api)


@pytest.fixture
def core(kube_api: k8s.ApiClient) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(kube_api)


def job_body(
    name: str,
    script: str,
    *,
    mounts: bool = False,
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A Job shaped like roughy's encoder Job, running `python -c script`."""
    variables = {"ROUGHY_TERMINATION_LOG": TERMINATION_LOG, **(env or {})}
    container: dict[str, Any] = {
        "name": roughy_jobs.CONTAINER,
        "image": "roughy-encoder:test",
        "command": command or ["python", "-c", script],
        "env": [{"name": key, "value": value} for key, value in variables.items()],
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod: dict[str, Any] = {"restartPolicy": "Never", "terminationGracePeriodSeconds": 5, "containers": [container]}
    if mounts:
        container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
        pod["volumes"] = [{"name": "tmp", "emptyDir": {}}]
    template = {"metadata": {"labels": {"app.kubernetes.io/component": "encoder"}}, "spec": pod}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "roughy"}},
        "spec": {"template": template, **spec},
    }


def stored_job(kube: EmulatorServer, name: str) -> dict[str, Any]:
    job = kube.object("jobs", NAMESPACE, name)
    assert job is not None, f"job {name} is gone"
    return job


def finished(kube: EmulatorServer, name: str) -> dict[str, Any] | None:
    """The Job once it has a Complete or Failed condition, else None."""
    job = kube.object("jobs", NAMESPACE, name)
    conditions = ((job or {}).get("status") or {}).get("conditions") or []
    return job if any(c["type"] in {"Complete", "Failed"} for c in conditions) else None


def conditions(job: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["type"], c["status"], c["reason"]) for c in job["status"].get("conditions") or []]


def pods_of(core: k8s.CoreV1Api, job: str) -> list[dict[str, Any]]:
    response = core.list_namespaced_pod(NAMESPACE, label_selector=f"job-name={job}", _preload_content=False)
    return sorted(json.loads(response.data)["items"], key=lambda pod: pod["metadata"]["creationTimestamp"])


def phase(kube: EmulatorServer, pod: str) -> str | None:
    stored = kube.object("pods", NAMESPACE, pod)
    return ((stored or {}).get("status") or {}).get("phase")


def terminated(pod: dict[str, Any]) -> dict[str, Any]:
    return dict(pod["status"]["containerStatuses"][0]["state"]["terminated"])


def pod_log(core: k8s.CoreV1Api, pod: str, **params: Any) -> str:
    """The log as served: `_preload_content=False`, since kubernetes 36 returns "b'...'" otherwise."""
    response = core.read_namespaced_pod_log(pod, NAMESPACE, _preload_content=False, **params)
    return str(response.data.decode())


def gone(pid: int) -> bool:
    """The process has ended: no such pid, or a zombie (an orphan waits for PID 1 to reap it)."""
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (ProcessLookupError, FileNotFoundError):
        return True
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] in {"Z", "X"}


def running_pid(kubelet: FakeKubelet, job: str) -> tuple[str, int]:
    """The pod of `job` whose process runs now, and its pid."""
    found: list[tuple[str, int]] = eventually(
        lambda: [(pod, pid) for pod, pid in kubelet.processes().items() if pod.startswith(f"{job}-")]
    )
    assert found, f"no process for job {job}"
    return found[0]


SUCCEEDS = """
import os, pathlib, sys, time
print("warming up", file=sys.stderr, flush=True)
print("started", flush=True)
go = pathlib.Path(os.environ["GO_FILE"])
while not go.exists():
    time.sleep(0.01)
pathlib.Path(os.environ["ROUGHY_TERMINATION_LOG"]).write_text('{"result": "ok"}')
print("done", flush=True)
"""


def test_a_succeeding_job_completes_with_its_termination_message_and_log(
    kube: EmulatorServer, kubelet: FakeKubelet, batch: k8s.BatchV1Api, core: k8s.CoreV1Api, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    assert not str(go).startswith("/dev/")
    batch.create_namespaced_job(NAMESPACE, job_body("ok", SUCCEEDS, env={"GO_FILE": str(go)}))
    name, pid = running_pid(kubelet, "ok")

    # While it runs: the pod is Running (its log is served from then on), the Job active, the
    # log readable (both streams).
    running = eventually(lambda: phase(kube, name) == "Running" and kube.object("pods", NAMESPACE, name))
    assert running, "the pod never got to Running"
    assert running["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
    assert eventually(lambda: set(pod_log(core, name, tail_lines=2).splitlines()) == {"warming up", "started"})
    assert eventually(lambda: stored_job(kube, "ok")["status"].get("active") == 1)
    assert stored_job(kube, "ok")["status"]["startTime"]

    go.touch()
    job = eventually(lambda: finished(kube, "ok"))
    assert job is not None
    reached = "CompletionsReached"
    assert conditions(job) == [("SuccessCriteriaMet", "True", reached), ("Complete", "True", reached)]
    status = job["status"]
    assert status["succeeded"] == 1 and "failed" not in status and "active" not in status
    assert status["completionTime"] and status["startTime"]
    assert all(c["lastTransitionTime"] and c["lastProbeTime"] and c["message"] for c in status["conditions"])

    [pod] = pods_of(core, "ok")
    assert pod["metadata"]["name"] == name and len(name) == len("ok-") + 5
    state = terminated(pod)
    assert pod["status"]["phase"] == "Succeeded"
    assert (state["exitCode"], state["reason"], state["message"]) == (0, "Completed", '{"result": "ok"}')
    assert state["startedAt"] and state["finishedAt"]
    labels, owner = pod["metadata"]["labels"], pod["metadata"]["ownerReferences"][0]
    assert labels["app.kubernetes.io/component"] == "encoder"  # the template's
    uid = job["metadata"]["uid"]
    assert labels["job-name"] == labels["batch.kubernetes.io/job-name"] == "ok"
    assert labels["controller-uid"] == labels["batch.kubernetes.io/controller-uid"] == uid
    assert (owner["kind"], owner["uid"], owner["controller"], owner["blockOwnerDeletion"]) == ("Job", uid, True, True)
    assert pod["spec"]["nodeName"] and not pod["metadata"].get("finalizers")  # counted: tracking finalizer gone
    assert pod_log(core, name, tail_lines=1) == "done\n"
    assert pod_log(core, name).count("\n") == 3
    assert gone(pid) and kubelet.wait_idle(2)


def test_an_exit_code_matching_a_failjob_rule_fails_the_job_at_once(
    kube: EmulatorServer, kubelet: FakeKubelet, batch: k8s.BatchV1Api, core: k8s.CoreV1Api
) -> None:
    policy = roughy_jobs.pod_failure_policy()  # FailJob on exit codes 2 and 3
    body = job_body("bad-input", "raise SystemExit(3)", backoffLimit=6, podFailurePolicy=policy)
    batch.create_namespaced_job(NAMESPACE, body)

    job = eventually(lambda: finished(kube, "bad-input"))
    assert job is not None
    assert conditions(job) == [("FailureTarget", "True", "PodFailurePolicy"), ("Failed", "True", "PodFailurePolicy")]
    assert "exit code 3 matching FailJob rule at index 0" in job["status"]["conditions"][-1]["message"]
    assert job["status"]["failed"] == 1 and "completionTime" not in job["status"]
    [pod] = pods_of(core, "bad-input")
    assert pod["status"]["phase"] == "Failed" and terminated(pod)["exitCode"] == 3
    assert kubelet.wait_idle(2) and len(pods_of(core, "bad-input")) == 1  # no retry


def test_failures_under_the_backoff_limit_are_retried_then_fail_the_job(
    kube: EmulatorServer, kubelet: FakeKubelet, batch: k8s.BatchV1Api, core: k8s.CoreV1Api
) -> None:
    script = "import sys; print('boom', file=sys.stderr); sys.exit(1)"
    body = job_body("flaky", script, backoffLimit=1, podFailurePolicy=roughy_jobs.pod_failure_policy())
    batch.create_namespaced_job(NAMESPACE, body)

    job = eventually(lambda: finished(kube, "flaky"))
    assert job is not None
    exceeded = "BackoffLimitExceeded"
    assert conditions(job) == [("FailureTarget", "True", exceeded), ("Failed", "True", exceeded)]
    assert job["status"]["failed"] == 2
    pods = pods_of(core, "flaky")
    assert len(pods) == 2 and pods[0]["metadata"]["name"] != pods[1]["metadata"]["name"]
    for pod in pods:  # no termination file written: FallbackToLogsOnError takes the log's tail
        state = terminated(pod)
        assert (state["exitCode"], state["reason"], state["message"]) == (1, "Error", "boom\n")


INDEXED = """
import os, pathlib, sys, time
index = os.environ["JOB_COMPLETION_INDEX"]
marks = pathlib.Path(os.environ["MARKS"])
(marks / f"start-{index}").touch()
while not (marks / "go").exists():
    time.sleep(0.01)
(marks / f"end-{index}").touch()
sys.exit(int(os.environ.get("FAIL_" + index, "0")))
"""


def test_an_indexed_job_runs_each_index_once_at_most_parallelism_at_a_time(
    kube: EmulatorServer, kubelet: FakeKubelet, batch: k8s.BatchV1Api, core: k8s.CoreV1Api, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    body = job_body("chunks", INDEXED, env={"MARKS": str(marks)}, completionMode="Indexed", completions=4,
                    parallelism=2, backoffLimitPerIndex=1, maxFailedIndexes=0)  # fmt: skip
    batch.create_namespaced_job(NAMESPACE, body)
    assert eventually(lambda: len(kubelet.processes()) == 2)
    time.sleep(0.3)  # a kubelet that ignored parallelism would have started more by now
    assert sorted(kubelet.processes()) == sorted(p["metadata"]["name"] for p in pods_of(core, "chunks"))
    assert len(kubelet.processes()) == 2
    (marks / "go").touch()
    job = eventually(lambda: finished(kube, "chunks"))
    assert job is not None and conditions(job)[-1] == ("Complete", "True", "CompletionsReached")
    assert job["status"]["completedIndexes"] == "0-3" and job["status"]["succeeded"] == 4
    assert job["status"]["failedIndexes"] == ""
    pods = pods_of(core, "chunks")
    indexes = sorted(int(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]) for p in pods)
    assert indexes == [0, 1, 2, 3]  # each index once
    for pod in pods:
        index = pod["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"]
        assert pod["metadata"]["name"].startswith(f"chunks-{index}-")
    assert sorted(p.name for p in marks.glob("end-*")) == [f"end-{i}" for i in range(4)]


def test_an_index_past_its_backoff_limit_fails_the_indexed_job_and_stops_the_rest(
    kube: EmulatorServer, kubelet: FakeKubelet, batch: k8s.BatchV1Api, core: k8s.CoreV1Api, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    fails_at_once = "import os, sys\nif os.environ['JOB_COMPLETION_INDEX'] == '1': sys.exit(1)\n" + INDEXED
    body = job_body("chunks", fails_at_once, env={"MARKS": str(marks)}, completionMode="Indexed", completions=3,
                    parallelism=3, backoffLimitPerIndex=1, maxFailedIndexes=0)  # fmt: skip
    batch.create_namespaced_job(NAMESPACE, body)
    job = eventually(lambda: finished(kube, "chunks"))
    assert job is not None
    reason = "MaxFailedIndexesExceeded"
    assert conditions(job) == [("FailureTarget", "True", reason), ("Failed", "True", reason)]
    assert job["status"]["failedIndexes"] == "1" and job["status"]["failed"] >= 2  # index 1 tried twice
    assert "completedIndexes" not in job["status"]
    assert not list(marks.glob("end-*"))  # the others never finished: they were stopped
    assert kubelet.wait_idle(5) and not kubelet.processes()


def test_a_command_that_cannot_start_fails_its_pod(
    kube: EmulatorServer, kubelet: FakeKubelet, batch: k8s.BatchV1Api, core: k8s.CoreV1Api
) -> None:
    missing = f"no-such-command-{secrets.token_hex(4)}"
    batch.create_namespaced_job(NAMESPACE, job_body("missing", "", command=[missing], backoffLimit=0))

    job = eventually(lambda: finished(kube, "missing"))
    assert job is not None and conditions(job)[-1] == ("Failed", "True", "BackoffLimitExceeded")
    [pod] = pods_of(core, "missing")
    state = terminated(pod)
    assert (state["exitCode"], state["reason"]) == (128, "StartError") and missing in state["message"]


SLEEPS = "import time; print('sleeping', flush=True); time.sleep(60)"


def test_the_active_deadline_kills_the_process_and_fails_the_job(
    kube: EmulatorServer, kubelet: FakeKubelet, batch: k8s.BatchV1Api, core: k8s.CoreV1Api
) -> None:
    batch.create_namespaced_job(NAMESPACE, job_body("slow", SLEEPS, activeDeadlineSeconds=1))
    _, pid = running_pid(kubelet, "slow")

    job = eventually(lambda: finished(kube, "slow"))
    assert job is not None
    assert conditions(job) == [("FailureTarget", "True", "DeadlineExceeded"), ("Failed", "True", "DeadlineExceeded")]
    assert job["status"]["failed"] == 1 and "active" not in job["status"]
    assert gone(pid) and kubelet.processes() == {}
    assert eventually(lambda: pods_of(core, "slow") == [])  # the controller deleted the active pod


def test_deleting_the_job_in_the_foreground_stops_its_process(
    kube: EmulatorServer, kubelet: FakeKubelet, batch: k8s.BatchV1Api, core: k8s.CoreV1Api
) -> None:
    batch.create_namespaced_job(NAMESPACE, job_body("cancelled", SLEEPS))
    name, pid = running_pid(kubelet, "cancelled")
    assert not gone(pid)
    assert kube.object("pods", NAMESPACE, name)["metadata"]["finalizers"] == [TRACKING_FINALIZER]  # type: ignore[index]

    batch.delete_namespaced_job("cancelled", NAMESPACE, propagation_policy="Foreground")
    assert eventually(lambda: gone(pid))
    assert eventually(lambda: kube.object("pods", NAMESPACE, name) is None)
    assert eventually(lambda: kube.object("jobs", NAMESPACE, "cancelled") is None)
    assert kubelet.processes() == {}


SPAWNS = """
import signal, subprocess, sys, time
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60 if sys.argv[1] == "stubborn" else 0)
"""


def test_a_process_ignoring_sigterm_is_killed_with_its_group_after_the_grace_period(
    kube: EmulatorServer, kubelet: FakeKubelet, batch: k8s.BatchV1Api, core: k8s.CoreV1Api
) -> None:
    body = job_body("stubborn", SPAWNS, backoffLimit=0)
    body["spec"]["template"]["spec"]["containers"][0]["args"] = ["stubborn"]
    body["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 1  # kubelet.grace_cap is 1.0 too
    batch.create_namespaced_job(NAMESPACE, body)
    name, pid = running_pid(kubelet, "stubborn")
    child = int(eventually(lambda: kube.pod_log(NAMESPACE, name).strip()))
    assert not gone(child)

    core.delete_namespaced_pod(name, NAMESPACE)
    deleted = time.monotonic()
    assert eventually(lambda: gone(pid))
    assert time.monotonic() - deleted >= 0.9  # SIGTERM went to the main process only, which ignored it
    assert eventually(lambda: gone(child))  # then SIGKILL to the whole group
    job = eventually(lambda: finished(kube, "stubborn"))
    assert job is not None and conditions(job)[-1] == ("Failed", "True", "BackoffLimitExceeded")


def test_what_is_left_of_the_process_group_dies_with_the_main_process(
    kube: EmulatorServer, kubelet: FakeKubelet, batch: k8s.BatchV1Api
) -> None:
    body = job_body("leaves-a-child", SPAWNS)
    body["spec"]["template"]["spec"]["containers"][0]["args"] = ["leaves"]
    batch.create_namespaced_job(NAMESPACE, body)

    job = eventually(lambda: finished(kube, "leaves-a-child"))
    assert job is not None and conditions(job)[-1][0] == "Complete"
    [name] = [pod for pod in os.listdir(kubelet.workdir / NAMESPACE) if pod.startswith("leaves-a-child-")]
    assert eventually(lambda: gone(int(kube.pod_log(NAMESPACE, name).strip())))


def test_a_disrupted_pod_matching_an_ignore_rule_is_replaced_without_counting(
    kube: EmulatorServer, kubelet: FakeKubelet, batch: k8s.BatchV1Api, core: k8s.CoreV1Api
) -> None:
    body = job_body("evicted", SLEEPS, backoffLimit=0, podFailurePolicy=roughy_jobs.pod_failure_policy())
    batch.create_namespaced_job(NAMESPACE, body)
    first, pid = running_pid(kubelet, "evicted")

    # What an eviction does: the DisruptionTarget condition, then the delete.
    disruption = {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}
    core.patch_namespaced_pod_status(first, NAMESPACE, {"status": {"conditions": [disruption]}})
    core.delete_namespaced_pod(first, NAMESPACE)

    assert eventually(lambda: gone(pid))
    second, _ = eventually(lambda: [(pod, p) for pod, p in kubelet.processes().items() if pod != first] or None)[0]
    assert second.startswith("evicted-")
    status = stored_job(kube, "evicted")["status"]
    assert "failed" not in status and not status.get("conditions")  # backoffLimit 0, yet not failed
    assert eventually(lambda: kube.object("pods", NAMESPACE, first) is None)


def test_mount_paths_map_to_a_directory_per_pod_and_the_environment_is_minimal(
    kube: EmulatorServer, kubelet: FakeKubelet, batch: k8s.BatchV1Api, core: k8s.CoreV1Api,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("ROUGHY_FFMPEG", "/opt/ffmpeg/bin/ffmpeg")
    monkeypatch.setenv("ROUGHY_SECRET_FROM_THE_TEST", "leak")
    output = f"/tmp/roughy-kubelet-{secrets.token_hex(4)}/x"
    script = """
import json, os, pathlib, sys
out = pathlib.Path(sys.argv[1])
out.parent.mkdir()
out.write_text(json.dumps({"home": os.environ["HOME"], "env": sorted(os.environ), "cwd": os.getcwd()}))
"""
    body = job_body("scratch", script, mounts=True, env={"HOME": "/tmp"})
    body["spec"]["template"]["spec"]["containers"][0]["args"] = [output]
    batch.create_namespaced_job(NAMESPACE, body)

    job = eventually(lambda: finished(kube, "scratch"))
    assert job is not None and conditions(job)[-1][0] == "Complete"
    [pod] = pods_of(core, "scratch")
    volume = kubelet.workdir / NAMESPACE / pod["metadata"]["name"] / "volumes" / "tmp"
    written = volume / output.removeprefix("/tmp/")
    assert written.is_file() and not Path(output).exists()
    seen = json.loads(written.read_text())
    assert seen["home"] == str(volume)
    assert set(seen["env"]) <= {"PATH", "LANG", "HOSTNAME", "HOME", "ROUGHY_FFMPEG", "ROUGHY_TERMINATION_LOG"}
    assert {"ROUGHY_FFMPEG", "HOSTNAME", "PATH"} <= set(seen["env"])
    assert Path(seen["cwd"]).is_relative_to(kubelet.workdir)


def test_a_finished_job_is_deleted_after_its_ttl_with_its_pods(
    kube: EmulatorServer, kubelet: FakeKubelet, batch: k8s.BatchV1Api, core: k8s.CoreV1Api
) -> None:
    batch.create_namespaced_job(NAMESPACE, job_body("short-lived", "pass", ttlSecondsAfterFinished=0))
    assert eventually(lambda: pods_of(core, "short-lived"))
    assert eventually(lambda: kube.object("jobs", NAMESPACE, "short-lived") is None)
    assert eventually(lambda: pods_of(core, "short-lived") == [])


# --- the emulator's pod log endpoint ----------------------------------------------------------------


def test_the_pod_log_endpoint_serves_what_was_appended(kube: EmulatorServer, core: k8s.CoreV1Api) -> None:
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod_log("nobody", NAMESPACE)
    assert missing.value.status == 404 and json.loads(missing.value.body)["kind"] == "Status"

    spec = {"nodeName": "node", "containers": [{"name": "encoder", "image": "x"}]}
    core.create_namespaced_pod(NAMESPACE, {"metadata": {"name": "p"}, "spec": spec})
    kube.append_log(NAMESPACE, "p", "one\ntwo\n")
    with pytest.raises(ApiException) as waiting:  # as on a cluster: no log before the container starts
        pod_log(core, "p")
    assert waiting.value.status == 400 and "waiting to start" in json.loads(waiting.value.body)["message"]

    running = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    started = {"name": "encoder", "image": "x", "imageID": "", "ready": True, "restartCount": 0, "state": running}
    core.patch_namespaced_pod_status("p", NAMESPACE, {"status": {"containerStatuses": [started]}})
    kube.append_log(NAMESPACE, "p", "three\n")
    response = core.read_namespaced_pod_log("p", NAMESPACE, _preload_content=False)
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.data == b"one\ntwo\nthree\n"
    assert pod_log(core, "p", tail_lines=2) == "two\nthree\n"
    assert pod_log(core, "p", tail_lines=2, limit_bytes=5, container="encoder", follow=True) == "two\nt"
    with pytest.raises(ApiException) as wrong:
        pod_log(core, "p", container="other")
    assert wrong.value.status == 400

    core.delete_namespaced_pod("p", NAMESPACE)  # the log goes with the pod
    assert kube.pod_log(NAMESPACE, "p") == ""
