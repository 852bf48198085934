"""Cuts through CutService and the processor on the fakes."""

from __future__ import annotations

import pytest

from roughy.core.errors import AssetProcessing, NotFound, ValidationFailed
from roughy.core.models import AssetKind, CutState, Format, OutputSpec, Segment
from tests.app.conftest import World

SILENCE = {"min_silence": 0.5, "threshold_db": -35.0, "padding": 0.1}


def test_a_cut_needs_exactly_one_method_and_a_cuttable_asset(world: World) -> None:
    asset = world.app.assets.create(world.account_id, AssetKind.VIDEO, "a.mp4", client_audio=False)
    with pytest.raises(ValidationFailed):
        world.app.cuts.create(world.account_id, asset.id, None, None)
    with pytest.raises(ValidationFailed):
        world.app.cuts.create(world.account_id, asset.id, [Segment(0, 1)], SILENCE)
    with pytest.raises(AssetProcessing):
        world.app.cuts.create(world.account_id, asset.id, [Segment(0, 1)], None)


def test_segments_are_checked_against_the_source_when_the_cut_is_processed(world: World) -> None:
    asset = world.ready_asset()
    inside = world.app.cuts.create(world.account_id, asset.id, [Segment(1.0, 2.0)], None)
    outside = world.app.cuts.create(world.account_id, asset.id, [Segment(5.0, 12.0)], None)
    world.processor.process_cut(inside.id)
    world.processor.process_cut(outside.id)
    done, failed = world.app.cuts.get(world.account_id, inside.id), world.app.cuts.get(world.account_id, outside.id)
    assert done.state is CutState.COMPLETED and done.segments == [Segment(1.0, 2.0)]
    assert failed.state is CutState.FAILED and failed.error and failed.error.code == "segments_out_of_range"
    assert world.event_types() == ["asset.ready", "cut.completed", "cut.failed"]
    world.processor.process_cut(inside.id)
    assert world.event_types().count("cut.completed") == 1, "a settled cut is not processed again"


def test_a_silence_cut_keeps_what_is_between_the_silences(world: World) -> None:
    world.tasks.silences = [(0.0, 1.0), (4.0, 6.0)]
    asset = world.ready_asset()
    cut = world.app.cuts.create(world.account_id, asset.id, None, SILENCE)
    world.processor.process_cut(cut.id)
    done = world.app.cuts.get(world.account_id, cut.id)
    assert done.state is CutState.COMPLETED
    # The sound (1-4 s, 6-10 s) with 0.1 s of padding into each inner silence, on the 25 fps grid.
    frame = 1 / 25
    expected = [(0.9, 4.1), (5.9, 10.0)]
    assert len(done.segments) == 2
    for segment, (start, end) in zip(done.segments, expected, strict=True):
        assert abs(segment.start - start) <= frame and abs(segment.end - end) <= frame, done.segments


def test_deleting_a_cut_deletes_its_renders(world: World) -> None:
    asset = world.ready_asset()
    cut = world.app.cuts.create(world.account_id, asset.id, [Segment(1.0, 2.0)], None)
    world.processor.process_cut(cut.id)
    render = world.render(asset, OutputSpec(Format.MP3), cut.id)
    world.app.cuts.delete(world.account_id, cut.id)
    assert world.store.get_render(render.id) is None
    with pytest.raises(NotFound):
        world.app.cuts.get(world.account_id, cut.id)
