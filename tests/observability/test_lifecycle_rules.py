"""The lifecycle lines on the paths a real encode rarely takes, on the in-memory fakes: a render
the executor refuses, one it cannot take now, a Render resource deleted by hand (Kubernetes), a
duplicate outcome, and the GPU encoder's label. One line per transition, never two."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from roughy.core.models import Format, OutputSpec, Render, RenderState, Resolution
from roughy.core.ports import Outcome
from roughy.testing import result_for
from tests.app.conftest import World, make_world

LOGGER = "roughy.app.renders"
MP4 = OutputSpec(Format.MP4, Resolution.P720)


@pytest.fixture
def world(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> World:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return make_world(tmp_path)


def said(caplog: pytest.LogCaptureFixture, render: Render, level: int = logging.INFO) -> list[str]:
    """The transitions logged for `render` at `level`: the word after its id."""
    return [
        r.getMessage().split(" ")[2].rstrip(":")
        for r in caplog.records
        if r.name == LOGGER and r.levelno == level and render.id in r.getMessage()
    ]


def claimed(world: World) -> Render:
    render = world.render(world.ready_asset(), MP4)
    world.scheduler.tick()
    return render


def test_a_render_the_executor_refuses_is_failed_once_and_never_started(world, caplog):
    world.executor.refuse = True
    render = claimed(world)
    assert world.store.get_render(render.id).state is RenderState.FAILED
    assert said(caplog, render) == ["created", "failed"]
    failed = [r for r in caplog.records if getattr(r, "render_id", None) == render.id][-1]
    assert failed.error_code == "internal_error"  # type: ignore[attr-defined]


def test_a_render_the_executor_cannot_take_now_is_not_started(world, caplog):
    world.executor.unavailable = True
    render = claimed(world)
    assert world.store.get_render(render.id).state is RenderState.PENDING
    assert said(caplog, render) == ["created"], "back in the queue: its start comes later"
    world.executor.unavailable = False
    world.scheduler.tick()
    assert said(caplog, render) == ["created", "started"]


def test_a_render_resource_deleted_by_hand_fails_the_render_once(world, caplog):
    render = claimed(world)
    world.app.renders.execution_removed(render.id, requeue=False)
    world.app.renders.execution_removed(render.id, requeue=False)
    assert said(caplog, render) == ["created", "started", "failed"]
    assert "encode_failed" in [r for r in caplog.records if getattr(r, "render_id", None) == render.id][-1].getMessage()


def test_a_drained_render_goes_back_to_the_queue_without_a_failure(world, caplog):
    render = claimed(world)
    world.app.renders.execution_removed(render.id, requeue=True)
    assert said(caplog, render) == ["created", "started"]


def test_a_duplicate_outcome_is_not_a_second_completion(world, caplog):
    render = claimed(world)
    outcome = Outcome(result_for(world.executor.jobs[render.id]))
    world.executor.finish(render.id, outcome)
    world.app.renders.finished(render.id, outcome)
    assert said(caplog, render) == ["created", "started", "completed"]
    ignored = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG and render.id in r.getMessage()]
    assert len(ignored) == 1 and "already settled" in ignored[0], "the second outcome: one DEBUG line"


def test_the_gpu_encoder_is_its_own_label(world, caplog):
    render = claimed(world)
    labels = {"format": "mp4", "tier": "720p", "encoder": "h264_nvenc+cuda"}
    count = _count(labels)
    result = dataclasses.replace(result_for(world.executor.jobs[render.id]), encoder="h264_nvenc+cuda", copied=[])
    world.executor.finish(render.id, Outcome(result))
    assert _count(labels) == count + 1
    completed = [r for r in caplog.records if getattr(r, "render_id", None) == render.id][-1]
    assert completed.encoder == "h264_nvenc+cuda" and "h264_nvenc+cuda" in completed.getMessage()  # type: ignore[attr-defined]


def _count(labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value("roughy_encode_seconds_count", labels) or 0.0
