"""Two operators, one reconciling (issue 10, item 3): leader election on a Lease
(roughy/operator/leader.py) against the emulator.

First the election itself, in this process with short durations: one of two leads, the other
takes over once the first stops renewing or releases; a leader that finds another holder, or
cannot renew within its deadline, gives up at once; of two standbys racing for an expired
Lease, one wins. Then the real thing: two `roughy operator` processes (each with a kubeconfig
token of its own, so the emulator tells their requests apart) beside `roughy serve`, the fake
kubelet running real encoder processes, and S3 over HTTP. The standby makes no call but reading
the Lease; SIGKILL of the leader mid-render hands over within 30 s with the default durations,
and the render completes once (one Job, one pod, one `render.completed` event); SIGTERM
releases the Lease and the standby takes over at once.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s

from roughy.adapters.kubeapi import KubeApi, KubeTemporaryError
from roughy.operator.leader import EXIT_LOST, LeaderElector, Timing
from tests.conftest import ADMIN_KEY, free_port, ready_asset, wait_for
from tests.kube.harness import EmulatorServer, kubeconfig
from tests.kube.kubelet import FakeKubelet
from tests.kube.test_cli import answers, environment, processes, roughy  # noqa: F401  (fixtures)
from tests.media import make_video

pytestmark = pytest.mark.kubernetes

NAMESPACE = "roughy"
LEASE = "roughy-operator"
LEASE_PATH = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{LEASE}"
FAST = Timing(lease_duration=2, renew_deadline=1.0, retry_period=0.1)


def lease(kube: EmulatorServer) -> dict[str, Any]:
    return (kube.object("leases", NAMESPACE, LEASE) or {}).get("spec") or {}


def holder(kube: EmulatorServer) -> str | None:
    return lease(kube).get("holderIdentity")


def until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)
    return result


def seize(kube: EmulatorServer, new_holder: str) -> None:
    """Write the Lease naming `new_holder`, as another process would (again on a conflict with
    the holder's renewal)."""
    leases = k8s.CoordinationV1Api(kube.api_client())
    while True:
        current = leases.read_namespaced_lease(LEASE, NAMESPACE)
        current.spec.holder_identity = new_holder
        try:
            leases.replace_namespaced_lease(LEASE, NAMESPACE, current)
            return
        except k8s.ApiException as exc:
            if exc.status != 409:
                raise


# --- the election, in process --------------------------------------------------------------------


@pytest.fixture
def electors(kube: EmulatorServer) -> Iterator[Callable[..., tuple[LeaderElector, list[str]]]]:
    """`make(identity)`: an elector on its own client, and the reasons it lost the Lease (its
    `on_lost`: the process would exit there)."""
    made: list[LeaderElector] = []
    clients: list[k8s.ApiClient] = []

    def make(identity: str, timing: Timing = FAST, api: KubeApi | None = None) -> tuple[LeaderElector, list[str]]:
        lost: list[str] = []
        if api is None:
            clients.append(kube.api_client())
            api = KubeApi(clients[-1], timeout=5)
        made.append(LeaderElector(api, namespace=NAMESPACE, name=LEASE, identity=identity, timing=timing,
                                  on_lost=lost.append))  # fmt: skip
        return made[-1], lost

    yield make
    for elector in made:
        elector.release()
    for api_client in clients:
        api_client.close()


def standing_by(elector: LeaderElector) -> tuple[threading.Thread, threading.Event, list[float]]:
    """`wait_for_leadership` in a thread; the list gets the monotonic time it returned True."""
    stop, won = threading.Event(), []

    def wait() -> None:
        if elector.wait_for_leadership(stop):
            won.append(time.monotonic())

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread, stop, won


class Severable(KubeApi):
    """A KubeApi that can be cut off from the API server (`severed`): the leader's node loses
    its network, or the process freezes; every Lease write then fails as no answer does."""

    severed = False

    def replace_lease(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if self.severed:
            raise KubeTemporaryError("the Kubernetes API is unreachable: severed")
        return super().replace_lease(*args, **kwargs)


def test_one_leads_and_when_it_is_cut_off_it_steps_down_before_the_other_takes_over(
    kube: EmulatorServer, electors: Any
) -> None:
    severable = Severable(kube.api_client(), timeout=5)
    a, lost = electors("a", api=severable)
    b, _ = electors("b")
    assert a.try_acquire() and a.leading
    assert lease(kube)["holderIdentity"] == "a" and lease(kube)["leaseTransitions"] == 0
    assert not b.try_acquire() and not b.leading
    a.start_renewing()
    thread, stop, won = standing_by(b)
    try:
        time.sleep(1.5 * FAST.lease_duration)  # a renews every 0.5 s: b waits past the lease duration
        assert not won and holder(kube) == "a"
        severable.severed = True
        cut = time.monotonic()
        until(lambda: lost, FAST.lease_duration, "a stepped down")
        stepped_down = time.monotonic()
        thread.join(timeout=10)
    finally:
        stop.set()
    assert lost == [f"the Lease was not renewed within {FAST.renew_deadline:g} s"] and not a.leading
    assert stepped_down - cut <= FAST.renew_deadline + 0.2
    assert won and stepped_down < won[0], "never two leaders: a stopped before b started"
    assert FAST.lease_duration - FAST.renew_interval - 0.2 <= won[0] - cut < FAST.lease_duration + 1
    assert holder(kube) == "b" and lease(kube)["leaseTransitions"] == 1


def test_release_hands_over_at_once(kube: EmulatorServer, electors: Any) -> None:
    a, _ = electors("a", Timing(15, 10.0, 0.1))
    b, _ = electors("b", Timing(15, 10.0, 0.1))
    assert a.try_acquire()
    a.start_renewing()
    thread, stop, won = standing_by(b)
    try:
        time.sleep(0.5)
        released = time.monotonic()
        a.release()
        assert not a.leading
        thread.join(timeout=5)
    finally:
        stop.set()
    assert won and won[0] - released < 1.0, "not the 15 s of an expiry"
    assert holder(kube) == "b" and lease(kube)["leaseTransitions"] == 1


def test_a_leader_that_finds_another_holder_gives_up_at_once(kube: EmulatorServer, electors: Any) -> None:
    a, lost = electors("a")
    assert a.try_acquire()
    a.start_renewing()
    seize(kube, "intruder")  # e.g. a standby that took it while a was frozen
    until(lambda: lost, FAST.renew_interval + 1, "a noticed")
    assert lost == ["intruder holds the Lease now"] and not a.leading
    assert holder(kube) == "intruder", "it does not fight back"


class Racing(KubeApi):
    """A KubeApi whose next Lease read lets `meanwhile` run before it answers: another standby
    writes between this one's read and its write."""

    meanwhile: Callable[[], object] | None = None

    def read_lease(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        obj = super().read_lease(*args, **kwargs)
        if self.meanwhile is not None:
            run, self.meanwhile = self.meanwhile, None
            run()
        return obj


def test_of_two_standbys_racing_for_a_released_lease_one_wins(kube: EmulatorServer, electors: Any) -> None:
    a, _ = electors("a")
    assert a.try_acquire()
    a.release()
    b, _ = electors("b")
    racing = Racing(kube.api_client(), timeout=5)
    c, _ = electors("c", api=racing)
    racing.meanwhile = b.try_acquire  # c reads the released Lease, b takes it, then c writes
    assert not c.try_acquire(), "c's write named a version b had replaced: 409, and c waits"
    assert b.leading and not c.leading
    assert holder(kube) == "b" and lease(kube)["leaseTransitions"] == 1
    assert not c.try_acquire(), "and on its next round c sees b holding it"


# --- two `roughy operator` processes -----------------------------------------------------------------


@dataclass
class OperatorProcess:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    liveness: str

    def said(self) -> str:
        return self.log.read_text()[-4000:]


@pytest.fixture
def stack(
    environment: dict[str, str],  # noqa: F811
    kube: EmulatorServer,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],  # noqa: F811
) -> Iterator[Callable[..., Any]]:
    """`stack(kind, ...)`: start `roughy serve` ("api") or an operator with leader election
    ("operator", name): POD_NAME and the kubeconfig token are its name."""
    migrate = subprocess.run([sys.executable, "-m", "roughy.cli", "migrate"], env=environment, capture_output=True)
    assert migrate.returncode == 0, migrate.stderr.decode()
    port = free_port()
    environment["ROUGHY_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    environment["ROUGHY_ENCODER_API_URL"] = f"http://127.0.0.1:{port}"  # where encoder pods reach the API

    def start(kind: str, name: str = "") -> Any:
        if kind == "api":
            log = tmp_path / "api.log"
            api = roughy("serve", "--port", str(port), env=environment, log=log)
            processes.append(api)
            assert answers(f"http://127.0.0.1:{port}/readyz", time.monotonic() + 30, api, log).status_code == 200
            return f"http://127.0.0.1:{port}"
        env = environment | {
            "POD_NAME": name,
            "KUBECONFIG": str(kubeconfig(tmp_path / f"{name}.kubeconfig", kube.url, name)),
            "ROUGHY_LEADER_ELECTION_LEASE": LEASE,
        }
        liveness = f"http://127.0.0.1:{free_port()}/healthz"
        log = tmp_path / f"{name}.log"
        proc = roughy("operator", "--leader-election", "--liveness", liveness, "--metrics-port", "0", env=env, log=log)
        processes.append(proc)
        return OperatorProcess(name, proc, log, liveness)

    yield start


def calls(kube: EmulatorServer, token: str, since: int = 0) -> list[tuple[str, str]]:
    """(method, path?query) of every request made with `token`, from the `since`-th request on."""

    def read(emulator: Any) -> list[tuple[str, str]]:
        return [
            (str(r.method.value).upper(), r.url.path_qs)
            for r in emulator._requests[since:]
            if r.headers.get("Authorization") == f"Bearer {token}"
        ]

    return kube.call(read)


def request_count(kube: EmulatorServer) -> int:
    return kube.call(lambda emulator: len(emulator._requests))


def history(kube: EmulatorServer, plural: str, kind: str | None = None) -> list[dict[str, Any]]:
    """Every version of `plural` objects the emulator ever stored (its event log), or those of
    one event type ("ADDED": every object ever created)."""

    def read(emulator: Any) -> list[dict[str, Any]]:
        return [
            obj
            for resource, log in emulator._log.items()
            if resource.plural == plural
            for _, (event, obj, _) in log
            if kind is None or event == kind
        ]

    return kube.call(read)


def created(kube: EmulatorServer, plural: str, match: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    return [obj for obj in history(kube, plural, "ADDED") if match(obj)]


def client_for(url: str) -> httpx.Client:
    admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
    account = admin.post("/v1/admin/accounts", json={"name": "ha"}).json()
    key = admin.post(f"/v1/admin/accounts/{account['id']}/api_keys").json()["key"]
    admin.post(f"/v1/admin/accounts/{account['id']}/credits", json={"amount": 10, "reason": "test"})
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def completed_events(database: Path, render_id: str) -> int:
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT data FROM events WHERE type = 'render.completed'").fetchall()
    return sum(1 for (data,) in rows if json.loads(data)["id"] == render_id)


def test_the_standby_waits_and_a_killed_leader_hands_over_within_30_s_with_the_render_done_once(
    stack: Any,
    kube: EmulatorServer,
    tmp_path: Path,
    environment: dict[str, str],  # noqa: F811
) -> None:
    a = stack("operator", "operator-a")
    until(lambda: holder(kube) == "operator-a", 30, "operator-a leads")
    b = stack("operator", "operator-b")
    standby = answers(b.liveness, time.monotonic() + 30, b.proc, b.log)
    assert standby.status_code == 200, "a standby is alive: the kubelet must not restart it"
    # Its probe may answer before its first read of the Lease (holder: None).
    standby = until(lambda: (r := httpx.get(b.liveness, timeout=10)).json()["holder"] and r, 30, "b read the Lease")
    assert standby.json() | {"seconds_since_api": 0} == {
        "leader": False, "identity": "operator-b", "lease": f"{NAMESPACE}/{LEASE}", "holder": "operator-a",
        "seconds_since_api": 0,
    }  # fmt: skip
    url = stack("api")

    with FakeKubelet(kube, namespaces=(NAMESPACE,), workdir=tmp_path / "kubelet") as kubelet, client_for(url) as api:
        source = make_video(tmp_path / "long.mp4", duration=30.0, width=1280, height=720, fps=25)
        asset = ready_asset(api, source)
        assert asset["state"] == "ready", (asset, a.said())
        render = api.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "mp4"}}).json()
        running = wait_for(lambda: api.get(f"/v1/renders/{render['id']}").json(),
                           lambda r: r["state"] == "running" and r["progress"] > 0, timeout=60)  # fmt: skip
        encoders = list(kubelet.processes().values())
        assert encoders, "the encode runs"

        # Until now operator-b has asked for the Lease and nothing else: no watch, no Job, no patch.
        assert calls(kube, "operator-a"), "the leader did the work"
        assert set(calls(kube, "operator-b")) == {("GET", LEASE_PATH)}
        (job,) = created(kube, "jobs", lambda obj: obj["metadata"]["name"].startswith("r-"))

        # The encode is held still across the hand-over (SIGSTOP to its process group), so that
        # the new leader finds it running whatever this machine's speed, and must finish its work.
        for pid in encoders:
            os.killpg(pid, signal.SIGSTOP)
        a.proc.send_signal(signal.SIGKILL)
        killed, seen = time.monotonic(), request_count(kube)
        until(lambda: holder(kube) == "operator-b", 30, f"operator-b took over; it said:\n{b.said()}")
        handover = time.monotonic() - killed
        print(f"\nhand-over after SIGKILL of the leader: {handover:.1f} s (lease 15 s, retry 2 s)")
        assert handover < 30
        assert a.proc.wait(timeout=5) == -signal.SIGKILL
        assert api.get(f"/v1/renders/{render['id']}").json()["state"] == "running"
        for pid in encoders:
            os.killpg(pid, signal.SIGCONT)

        done = wait_for(lambda: api.get(f"/v1/renders/{render['id']}").json(),
                        lambda r: r["state"] in ("completed", "failed"), timeout=120)  # fmt: skip
        assert done["state"] == "completed", (done, b.said())
        assert done["progress"] == 1.0 and running["progress"] < 1.0

    # operator-b reconciled it: the Render's status was written by it, after the take-over.
    name = job["metadata"]["name"]
    b_calls = calls(kube, "operator-b", since=seen)
    assert [c for c in b_calls if c[0] == "PATCH" and f"/renders/{name}" in c[1]], b_calls[-20:]
    # Nothing ran twice: one Job, one pod for it, one completion recorded (and one event to deliver).
    assert len(created(kube, "jobs", lambda obj: obj["metadata"]["name"] == name)) == 1
    pods = created(kube, "pods", lambda obj: (obj["metadata"].get("labels") or {}).get("job-name") == name)
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    database = Path(environment["ROUGHY_DATABASE_URL"].removeprefix("sqlite:///"))
    assert completed_events(database, render["id"]) == 1
    assert lease(kube)["leaseTransitions"] == 1 and lease(kube)["leaseDurationSeconds"] == 15
    assert httpx.get(b.liveness, timeout=10).status_code == 200, "operator-b's kopf serves the probe now"


def test_sigterm_releases_the_lease_and_the_standby_takes_over_at_once(stack: Any, kube: EmulatorServer) -> None:
    a = stack("operator", "operator-a")
    until(lambda: holder(kube) == "operator-a", 30, "operator-a leads")
    b = stack("operator", "operator-b")
    assert answers(b.liveness, time.monotonic() + 30, b.proc, b.log).json()["leader"] is False
    until(lambda: any(c[0] == "GET" and "/renders" in c[1] for c in calls(kube, "operator-a")), 30, "a's kopf runs")
    time.sleep(6)  # a renewed at least once: without a release, b would wait 15 s from then
    seen = request_count(kube)

    a.proc.send_signal(signal.SIGTERM)
    terminated = time.monotonic()
    until(lambda: holder(kube) == "operator-b", 15, f"operator-b took over; a said:\n{a.said()}")
    handover = time.monotonic() - terminated
    print(f"\nhand-over after SIGTERM of the leader: {handover:.1f} s")
    assert a.proc.wait(timeout=30) == 0, a.said()
    assert handover < 10, "released, not expired (15 s)"
    released = [obj["spec"] for obj in history(kube, "leases") if not obj["spec"].get("holderIdentity")]
    assert released and released[-1]["leaseDurationSeconds"] == 1, "a wrote the release"
    assert lease(kube)["leaseTransitions"] == 1
    # b now runs kopf: it lists and watches Renders and Jobs, and answers the probe through kopf.
    until(lambda: any("/renders" in c[1] and "watch" in c[1] for c in calls(kube, "operator-b", since=seen)), 30,
          "b watches Renders")  # fmt: skip
    assert httpx.get(b.liveness, timeout=10).status_code == 200
    # A standby stopped while it waits just goes: status 0, the Lease untouched.
    c = stack("operator", "operator-c")
    answers(c.liveness, time.monotonic() + 30, c.proc, c.log)  # its probe may answer before its first read
    assert until(lambda: httpx.get(c.liveness, timeout=10).json()["holder"], 30, "c read the Lease") == "operator-b"
    c.proc.send_signal(signal.SIGTERM)
    assert c.proc.wait(timeout=10) == 0, c.said()
    assert set(calls(kube, "operator-c")) == {("GET", LEASE_PATH)}
    assert holder(kube) == "operator-b"
    b.proc.send_signal(signal.SIGTERM)
    assert b.proc.wait(timeout=30) == 0, b.said()
    assert not holder(kube), "the last one out released it too"


def test_a_leader_that_loses_the_lease_exits_at_once_to_restart_as_a_standby(stack: Any, kube: EmulatorServer) -> None:
    a = stack("operator", "operator-a")
    until(lambda: holder(kube) == "operator-a", 30, "operator-a leads")
    seize(kube, "operator-z")  # another replica's (say, after a network partition)
    taken = time.monotonic()
    assert a.proc.wait(timeout=15) == EXIT_LOST, a.said()
    assert time.monotonic() - taken < 5 + 2, "within a renew interval"
    assert "lost the Lease" in a.said() and holder(kube) == "operator-z"
