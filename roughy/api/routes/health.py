"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from roughy.api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(svc: ServicesDep) -> Response:
    try:
        svc.store.ping()
    except Exception as exc:  # not ready: say why, without a traceback
        return Response(f'{{"status": "unavailable", "reason": "{type(exc).__name__}"}}', 503,
                        media_type="application/json")
    return Response('{"status": "ok"}', media_type="application/json")


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Process-wide metrics (encode seconds, requests) plus this app's store gauges."""
    body = generate_latest(REGISTRY) + generate_latest(request.app.state.metrics_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def store_registry(store) -> CollectorRegistry:  # type: ignore[no-untyped-def]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))  # type: ignore[no-untyped-call]
    return registry


class StoreCollector:
    """Renders by state and queue depth, read from the store at scrape time."""

    def __init__(self, store):  # type: ignore[no-untyped-def]
        self.store = store

    def collect(self):  # type: ignore[no-untyped-def]
        counts = self.store.render_counts()
        by_state = GaugeMetricFamily("roughy_renders", "Renders by state", labels=["state"])
        for state in ("pending", "running", "completed", "failed"):
            by_state.add_metric([state], counts.get(state, 0))
        yield by_state
        yield GaugeMetricFamily("roughy_queue_depth", "Renders waiting for a worker", value=counts.get("pending", 0))
