"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from roughy import __version__
from roughy.api.deps import ServicesDep
from roughy.core.models import RenderState

router = APIRouter(tags=["health"])


@router.get("/healthz", responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}})
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_class=Response,
    responses={
        200: {"description": "Ready: the database answers.",
              "content": {"application/json": {"example": {"status": "ok"}}}},
        503: {"description": "Not ready, and why.",
              "content": {"application/json": {"example": {"status": "unavailable", "reason": "OperationalError"}}}},
    },
)  # fmt: skip
def readyz(svc: ServicesDep) -> Response:
    try:
        svc.app.ping()
    except Exception as exc:  # not ready: say why, without a traceback
        return Response(
            f'{{"status": "unavailable", "reason": "{type(exc).__name__}"}}', 503, media_type="application/json"
        )
    return Response('{"status": "ok"}', media_type="application/json")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"description": "Prometheus text format.",
                     "content": {"text/plain": {"example": 'roughy_renders{state="running"} 2.0\n'}}}},
)  # fmt: skip
def metrics(request: Request) -> Response:
    """Process-wide metrics (encode seconds, requests) plus this app's store gauges."""
    body = generate_latest(REGISTRY) + generate_latest(request.app.state.metrics_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def store_registry(counts: Callable[[], dict[str, int]]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(counts))
    return registry


class StoreCollector(Collector):
    """Renders by state and queue depth, read from the store at scrape time."""

    def __init__(self, counts: Callable[[], dict[str, int]]):
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        build = GaugeMetricFamily("roughy_build_info", "The roughy build serving (always 1)",
                                  labels=["version", "python"])  # fmt: skip
        build.add_metric([__version__, platform.python_version()], 1)
        yield build
        counts = self.counts()
        by_state = GaugeMetricFamily("roughy_renders", "Renders by state", labels=["state"])
        for state in RenderState:
            by_state.add_metric([state.value], counts.get(state.value, 0))
        yield by_state
        yield GaugeMetricFamily("roughy_queue_depth", "Renders waiting for a worker", value=counts.get("pending", 0))
