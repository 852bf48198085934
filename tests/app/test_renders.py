"""Render use cases through RenderService and the Scheduler, on the in-memory fakes."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from roughy.core.errors import AssetNotReady, ModifierNotReady, NotFound, RateLimited, ValidationFailed
from roughy.core.events import render_events
from roughy.core.ids import now
from roughy.core.models import AssetKind, Format, OutputSpec, RenderState, Resolution
from roughy.core.ports import Outcome
from roughy.testing import result_for
from tests.app.conftest import World, make_world

MP4 = OutputSpec(Format.MP4, Resolution.P720)
MP3 = OutputSpec(Format.MP3)


def run_one(world: World) -> str:
    """One scheduler tick; the id of the render it started."""
    before = len(world.executor.started)
    world.scheduler.tick()
    [started] = world.executor.started[before:]
    return started


def complete(world: World, render_id: str) -> None:
    world.executor.finish(render_id, Outcome(result=result_for(world.executor.jobs[render_id])))


# -- create: validate, gate, dedupe, cap --------------------------------------------------------


def test_the_same_request_twice_is_one_render(world: World) -> None:
    asset = world.ready_asset()
    first, created = world.app.renders.create(world.account_id, asset.id, None, MP4)
    again, created_again = world.app.renders.create(world.account_id, asset.id, None, MP4)
    assert created and not created_again and again.id == first.id
    other, created_other = world.app.renders.create(world.account_id, asset.id, None, MP3)
    assert created_other and other.id != first.id, "another output is another render"


def test_a_failed_render_is_replaced_by_the_same_request(world: World) -> None:
    asset = world.ready_asset()
    failed = world.render(asset, MP4)
    run_one(world)
    world.executor.finish(failed.id, Outcome.failed("encode_failed", "boom"))
    retry, created = world.app.renders.create(world.account_id, asset.id, None, MP4)
    assert created and retry.id != failed.id and retry.state is RenderState.PENDING
    with pytest.raises(NotFound):
        world.app.renders.get(world.account_id, failed.id)


def test_video_renders_wait_for_a_ready_asset_and_cuts_for_completion(world: World) -> None:
    asset = world.app.assets.create(world.account_id, AssetKind.VIDEO, "a.mp4", client_audio=False)
    with pytest.raises(AssetNotReady):
        world.app.renders.create(world.account_id, asset.id, None, MP4)
    ready = world.ready_asset()
    cut = world.app.cuts.create(world.account_id, ready.id, None, {"min_silence": 0.5, "threshold_db": -35.0,
                                                                     "padding": 0.1})  # fmt: skip
    with pytest.raises(ModifierNotReady):
        world.app.renders.create(world.account_id, ready.id, cut.id, MP4)
    with pytest.raises(ValidationFailed):
        world.app.renders.create(world.account_id, asset.id, cut.id, MP3)  # a cut of another asset


def test_another_accounts_asset_is_not_found(world: World) -> None:
    asset = world.ready_asset()
    other = world.app.accounts.create_account("other")
    with pytest.raises(NotFound):
        world.app.renders.create(other.id, asset.id, None, MP4)


def test_the_active_render_cap_is_per_account(tmp_path: Path) -> None:
    world = make_world(tmp_path, max_active_renders=2)
    asset = world.ready_asset()
    world.render(asset, MP4)
    world.render(asset, MP3)
    with pytest.raises(RateLimited) as refused:
        world.app.renders.create(world.account_id, asset.id, None, OutputSpec(Format.M4A))
    assert refused.value.headers["Retry-After"]
    world.app.renders.cancel(world.account_id, world.store.list_renders(world.account_id, 1, None)[0][0].id)
    assert world.app.renders.create(world.account_id, asset.id, None, OutputSpec(Format.M4A))[1]


# -- execution: the scheduler and the outcomes ------------------------------------------------------


def test_the_scheduler_hands_renders_over_up_to_the_executors_capacity(world: World) -> None:
    asset = world.ready_asset()
    renders = [world.render(asset, spec) for spec in (MP4, MP3, OutputSpec(Format.M4A))]
    world.scheduler.tick()
    assert world.executor.started == [renders[0].id, renders[1].id], "capacity 2, oldest first"
    assert world.store.get_render(renders[2].id).state is RenderState.PENDING  # type: ignore[union-attr]
    complete(world, renders[0].id)
    world.scheduler.tick()
    assert world.executor.started[-1] == renders[2].id


def test_a_completed_encode_is_recorded_once_with_its_event(world: World) -> None:
    asset = world.ready_asset()
    render = world.render(asset, MP4)
    run_one(world)
    world.executor.progress(render.id, 0.5)
    world.executor.progress(render.id, 0.25)
    assert world.app.renders.get(world.account_id, render.id).progress == 0.5, "progress only moves forward"
    job = world.executor.jobs[render.id]
    world.storage.put(job.output_key, b"output")
    complete(world, render.id)
    done = world.app.renders.get(world.account_id, render.id)
    assert done.state is RenderState.COMPLETED and done.result is not None and done.progress == 1.0
    world.executor.listener.finished(render.id, Outcome.failed("encode_failed", "late"))  # type: ignore[union-attr]
    assert world.app.renders.get(world.account_id, render.id).state is RenderState.COMPLETED
    assert world.event_types().count("render.completed") == 1 and "render.failed" not in world.event_types()
    assert world.storage.exists(job.output_key), "a late failure does not remove a completed output"
    url, _ = world.app.renders.download(done)  # type: ignore[misc]
    assert "talk-720p.mp4" in url


def test_a_failed_encode_removes_its_files_and_says_why(world: World) -> None:
    asset = world.ready_asset()
    render = world.render(asset, MP4)
    run_one(world)
    world.storage.put(f"renders/{render.id}/output.mp4", b"partial")
    world.executor.finish(render.id, Outcome.failed("invalid_media", "the source is damaged"))
    failed = world.app.renders.get(world.account_id, render.id)
    assert failed.state is RenderState.FAILED and failed.error and failed.error.code == "invalid_media"
    assert world.storage.keys(f"renders/{render.id}/") == []
    assert world.event_types().count("render.failed") == 1


def test_cancel_deletes_the_row_stops_the_encode_and_removes_the_files(world: World) -> None:
    asset = world.ready_asset()
    render = world.render(asset, MP4)
    run_one(world)
    world.storage.put(f"renders/{render.id}/output.mp4", b"partial")
    world.app.renders.cancel(world.account_id, render.id)
    assert world.executor.cancelled == [render.id]
    assert world.storage.keys(f"renders/{render.id}/") == []
    with pytest.raises(NotFound):
        world.app.renders.cancel(world.account_id, render.id)


def test_an_outcome_after_a_cancel_leaves_nothing(world: World) -> None:
    asset = world.ready_asset()
    render = world.render(asset, MP4)
    run_one(world)
    job = world.executor.jobs[render.id]
    world.store.delete_render(render.id)  # the row went first; the encode's outcome races it
    world.storage.put(job.output_key, b"output")
    world.executor.finish(render.id, Outcome(result=result_for(job)))
    assert world.storage.keys(f"renders/{render.id}/") == []
    assert world.event_types() == ["asset.ready"]


def test_an_outcome_lands_on_a_render_put_back_in_the_queue(world: World) -> None:
    asset = world.ready_asset()
    render = world.render(asset, MP3)
    run_one(world)
    assert world.store.release_render(render.id, render_events)  # a hand-over whose result the API could not know
    complete(world, render.id)
    assert world.app.renders.get(world.account_id, render.id).state is RenderState.COMPLETED


def test_an_unavailable_executor_leaves_the_render_queued(world: World) -> None:
    asset = world.ready_asset()
    render = world.render(asset, MP4)
    world.executor.unavailable = True
    world.scheduler.tick()
    assert world.store.get_render(render.id).state is RenderState.PENDING  # type: ignore[union-attr]
    world.executor.unavailable = False
    assert run_one(world) == render.id


def test_a_refused_render_fails_once_and_is_not_retried(world: World) -> None:
    asset = world.ready_asset()
    render = world.render(asset, MP4)
    world.executor.refuse = True
    world.scheduler.tick()
    failed = world.app.renders.get(world.account_id, render.id)
    assert failed.state is RenderState.FAILED and failed.error and failed.error.code == "internal_error"
    world.scheduler.tick()
    assert world.executor.started == []


def test_a_lost_execution_goes_back_to_the_queue_after_the_cutoff(world: World) -> None:
    asset = world.ready_asset()
    render = world.render(asset, MP4)
    run_one(world)
    world.storage.put(f"renders/{render.id}/output.mp4", b"partial")
    assert world.scheduler.sweep(older_than=60) == [], "claimed just now: not lost yet"
    assert world.scheduler.sweep(older_than=0) == [], "still executing: not lost"
    world.executor.lose(render.id)
    assert world.scheduler.sweep(older_than=0) == [render.id]
    assert world.store.get_render(render.id).state is RenderState.PENDING  # type: ignore[union-attr]
    assert world.storage.keys(f"renders/{render.id}/") == []
    assert run_one(world) == render.id, "and it runs again"


def test_a_removed_execution_requeues_on_a_drain_and_fails_otherwise(world: World) -> None:
    asset = world.ready_asset()
    drained, removed = world.render(asset, MP4), world.render(asset, MP3)
    world.scheduler.tick()
    world.app.renders.execution_removed(drained.id, requeue=True)
    world.app.renders.execution_removed(removed.id, requeue=False)
    assert world.store.get_render(drained.id).state is RenderState.PENDING  # type: ignore[union-attr]
    failed = world.store.get_render(removed.id)
    assert failed is not None and failed.state is RenderState.FAILED and failed.error
    assert "deleted on the cluster" in failed.error.message


def test_a_render_whose_asset_is_gone_is_not_started(world: World) -> None:
    asset = world.ready_asset()
    render = world.render(asset, MP4)
    world.app.assets.delete(world.account_id, asset.id)
    world.scheduler.tick()
    assert world.executor.started == [] and world.store.get_render(render.id) is None


def test_started_before_cutoff_uses_the_claim_time(world: World) -> None:
    asset = world.ready_asset()
    render = world.render(asset, MP4)
    run_one(world)
    world.executor.lose(render.id)
    assert world.app.renders.requeue_lost(set(), now() - timedelta(seconds=30)) == []
    assert world.app.renders.requeue_lost(set(), now() + timedelta(seconds=1)) == [render.id]


def test_a_render_cancelled_between_its_claim_and_its_hand_over_does_not_run(world: World) -> None:
    asset = world.ready_asset()
    render = world.render(asset, MP4)
    claimed = world.store.claim_next_render(render_events)
    assert claimed is not None
    world.app.renders.cancel(world.account_id, render.id)  # the executor has nothing to stop yet
    assert world.app.renders.start(claimed)
    assert world.executor.jobs == {} and world.executor.cancelled == [render.id], "stopped right after"


def test_a_render_that_cannot_be_started_fails_instead_of_looping(world: World) -> None:
    """Whatever goes wrong in the hand-over (here a bug), the render fails with internal_error;
    it must not stay running, be swept back to pending and be claimed again forever."""
    asset = world.ready_asset()
    render = world.render(asset, MP4)
    world.executor.crash = RuntimeError("a bug")
    world.scheduler.tick()
    failed = world.app.renders.get(world.account_id, render.id)
    assert failed.state is RenderState.FAILED and failed.error and failed.error.code == "internal_error"
    assert world.scheduler.sweep(0.0) == []


def test_long_renders_are_chunked_only_when_chunks_can_run_side_by_side(tmp_path: Path) -> None:
    """ROUGHY_CHUNK_PARALLELISM > 1 turns chunking on; the default encodes each render whole."""
    spec = OutputSpec(Format.MP4, resolution=Resolution.P720)  # an encode of the 1080p fake
    chunking = make_world(tmp_path / "a", chunk_parallelism=4, chunk_seconds=2.0, chunk_min_seconds=5.0)
    job = chunking.app.renders.job(chunking.render(chunking.ready_asset(), spec))
    assert job is not None and job.plan.chunks is not None and len(job.plan.chunks) == 5  # 10 s in 2 s chunks
    whole = make_world(tmp_path / "b", chunk_seconds=2.0, chunk_min_seconds=5.0)
    job = whole.app.renders.job(whole.render(whole.ready_asset(), spec))
    assert job is not None and job.plan.chunks is None


def test_hand_overs_run_side_by_side_up_to_the_scheduler_workers(tmp_path: Path) -> None:
    """On Kubernetes a hand-over is an API call: a burst must not wait for one after another.
    Four starts meet at a barrier, which only side-by-side hand-overs can pass."""
    world = make_world(tmp_path, capacity=10)
    barrier = threading.Barrier(4, timeout=10)
    start = world.executor.start

    def meeting(job: Any) -> None:
        barrier.wait()  # BrokenBarrierError (the render fails) if the four do not overlap
        start(job)

    world.executor.start = meeting  # type: ignore[method-assign]
    world.scheduler.handover_workers = 4
    asset = world.ready_asset()
    renders = [world.render(asset, spec) for spec in (MP4, MP3, OutputSpec(Format.M4A), OutputSpec(Format.MOV))]
    try:
        world.scheduler.tick()
    finally:
        world.scheduler.stop()
    assert sorted(world.executor.started) == sorted(r.id for r in renders)
    assert {world.store.get_render(r.id).state for r in renders} == {RenderState.RUNNING}  # type: ignore[union-attr]
