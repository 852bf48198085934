"""The operator's one periodic look (`Controller.due`): which unfinished Renders a sweep
reconciles, from one list. Everything else about a running render moves on Job events."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from roughy.app.renders import RenderService
from roughy.kube.jobs import JobSettings
from roughy.operator.controller import Controller, ControllerConfig
from roughy.testing import MemoryExecutor, MemoryStorage, MemoryStore

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class ListingApi:
    """The one call a sweep makes: the unfinished Renders, by label."""

    def __init__(self, renders: list[dict[str, Any]]):
        self.renders = renders
        self.selectors: list[str] = []

    def list_renders(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        self.selectors.append(label_selector)
        return self.renders


def render(name: str, state: str, age: float, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "creationTimestamp": (NOW - timedelta(seconds=age)).isoformat()}
    if deleting:
        meta["deletionTimestamp"] = NOW.isoformat()
    return {"metadata": meta, "status": {"state": state}}


def controller(api: ListingApi, queue_seconds: int = 3600) -> Controller:
    config = ControllerConfig(namespace="roughy", jobs=JobSettings(image="img", queue_seconds=queue_seconds))
    renders = RenderService(MemoryStore(), MemoryStorage(), MemoryExecutor())
    return Controller(renders, MemoryStorage(), api, config, clock=lambda: NOW)  # type: ignore[arg-type]


def test_a_sweep_lists_the_unfinished_renders_once_and_reconciles_only_what_needs_it() -> None:
    api = ListingApi([
        render("r-running", "running", age=7200),
        render("r-waiting", "pending", age=60),
        render("r-late", "pending", age=4000),  # past the queue budget: no_capacity is due
        render("r-going", "pending", age=9000, deleting=True),  # the finalizer has it
    ])  # fmt: skip
    sweeper = controller(api)
    t = time.monotonic()
    # A restart: kopf resumes every unfinished Render (minutes for thousands); the sweep does
    # not reconcile them a second time, only enforces the queue budget.
    assert sweeper.due(now=t) == ["r-late"]
    assert api.selectors == ["app.kubernetes.io/managed-by=roughy,roughy.ai/finished!=true"]
    for name in ("r-running", "r-waiting", "r-late"):
        sweeper._synced[name] = t  # what sync() records
    assert sweeper.due(now=t + 1) == ["r-late"]  # a running render costs nothing between events
    assert sweeper.due(now=t + 299) == ["r-late"]
    assert sweeper.due(now=t + 300) == ["r-running", "r-waiting", "r-late"]  # a lost event's repair


def test_no_queue_budget_no_sweep_for_waiting_renders_and_gone_ones_are_forgotten() -> None:
    api = ListingApi([render("r-late", "pending", age=90000)])
    sweeper = controller(api, queue_seconds=0)
    t = time.monotonic()
    sweeper._synced.update({"r-late": t, "r-finished": t})
    assert sweeper.due(now=t + 10) == []
    assert set(sweeper._synced) == {"r-late"}
