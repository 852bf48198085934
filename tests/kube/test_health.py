"""The operator's liveness and its watches (issue 10, item 2): bounded watch streams, the Job
watch filtered by the API server, and a /healthz that fails once the API has stopped answering.

The decision is `ApiVitals` (a clock in, a verdict out); the end-to-end test runs the real kopf
operator and its liveness endpoint against the emulator."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kopf
import pytest

from roughy.operator.handlers import JOB_SELECTOR, WATCH_INACTIVITY, WATCH_SERVER_TIMEOUT, build_registry, configure
from roughy.operator.health import ApiVitals, Unhealthy
from tests.conftest import free_port
from tests.kube.harness import running_operator
from tests.kube.stack import NAMESPACE, start_kube_service
from tests.kube.test_kopf import eventually
from tests.storage.s3server import StrictS3Server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_probe_asks_the_api_only_after_a_quiet_spell_and_fails_only_after_a_long_silence() -> None:
    clock = Clock()
    vitals = ApiVitals(quiet=30, max_silence=300, clock=clock)
    pings: list[float] = []

    def down() -> None:
        pings.append(clock.now)
        raise ConnectionError("connection refused")

    clock.now += 10
    assert vitals.check(down) == {"seconds_since_api": 10.0} and pings == []  # a watch event came lately
    clock.now += 100
    assert vitals.check(down) == {"seconds_since_api": 110.0} and len(pings) == 1  # asked; not yet fatal
    clock.now += 190
    with pytest.raises(Unhealthy, match="no answer from the Kubernetes API for 300 s: connection refused"):
        vitals.check(down)
    assert vitals.check(lambda: None) == {"seconds_since_api": 0.0}  # it answers again: alive
    vitals.heard()
    clock.now += 29
    assert vitals.check(down) == {"seconds_since_api": 29.0} and len(pings) == 2


def test_watches_are_bounded_and_the_job_watch_is_filtered_by_the_server() -> None:
    settings = kopf.OperatorSettings()
    configure(settings)
    assert settings.watching.server_timeout == WATCH_SERVER_TIMEOUT
    assert settings.watching.client_timeout is not None and settings.watching.client_timeout > WATCH_SERVER_TIMEOUT
    assert settings.watching.connect_timeout and settings.watching.inactivity_timeout == WATCH_INACTIVITY
    jobs = kopf.Resource("batch", "v1", "jobs")
    assert list(settings.watching.label_selectors.collect(jobs)) == [JOB_SELECTOR]


@pytest.fixture
def service(tmp_path: Path, s3_server: StrictS3Server, s3: Any) -> Iterator[Any]:
    with start_kube_service(tmp_path, s3_server.url) as stack:
        yield stack


@pytest.mark.kubernetes
def test_healthz_reports_the_api_and_fails_when_the_api_stops_answering(service: Any) -> None:
    service.operator_stop()  # the stack's own operator: the ones started here are probed instead

    def probed(vitals: ApiVitals) -> contextlib.AbstractContextManager[None]:
        registry = build_registry(service.operator.controller, sweep_interval=60, login=False, vitals=vitals)
        return running_operator(service.kube, registry, namespaces=[NAMESPACE], liveness_endpoint=endpoint)

    # Every Job list and watch asks the API server for roughy's Jobs only; watches are bounded.
    def job_requests(emulator: Any) -> list[dict[str, str]]:
        return [dict(r.params) for r in emulator._requests if r.resource is not None and r.resource.plural == "jobs"
                and r.method == "GET" and r.name is None and "labelSelector" in str(r.url)]  # fmt: skip

    endpoint = f"http://127.0.0.1:{free_port()}/healthz"
    with probed(ApiVitals(quiet=0.01, max_silence=60)):
        alive = httpx.get(endpoint, timeout=10)
        assert alive.status_code == 200 and "seconds_since_api" in alive.json()["kubernetes_api"]
        watches = eventually(lambda: [p for p in service.kube.call(job_requests) if p.get("watch") == "true"])
    assert watches and all(w["labelSelector"] == JOB_SELECTOR for w in service.kube.call(job_requests))
    assert all(w.get("timeoutSeconds") == str(WATCH_SERVER_TIMEOUT) for w in watches)

    # The API stops answering the probe's call: after max_silence (no time at all here), 500.
    service.kube.call(lambda emulator: emulator.fail(503, times=1000, method="GET", plural="renders"))
    try:
        endpoint = f"http://127.0.0.1:{free_port()}/healthz"
        with probed(ApiVitals(quiet=0.01, max_silence=0.01)):
            dead = httpx.get(endpoint, timeout=10)
            assert dead.status_code == 500
    finally:
        service.kube.call(lambda emulator: emulator._faults.clear())
