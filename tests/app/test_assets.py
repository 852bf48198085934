"""Assets, their parts and processing, through AssetService and AssetProcessor on the fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from roughy.core.errors import InvalidState, NotFound, PayloadTooLarge, RateLimited, ValidationFailed
from roughy.core.ids import now
from roughy.core.models import AssetKind, AssetState, Format, LedgerType, OutputSpec, PartName, PartState
from tests.app.conftest import World, make_world


def charges(world: World) -> list[str | None]:
    _, entries = world.app.accounts.credits(world.account_id)
    return [e.asset_id for e in entries if e.type is LedgerType.CHARGE]


def test_a_part_completed_before_its_upload_is_invalid_state(world: World) -> None:
    asset = world.app.assets.create(world.account_id, AssetKind.VIDEO, "a.mp4", client_audio=False)
    with pytest.raises(InvalidState):
        world.app.assets.complete_part(world.account_id, asset.id, PartName.VIDEO)
    with pytest.raises(NotFound):
        world.app.assets.complete_part(world.account_id, asset.id, PartName.AUDIO)  # it has no audio part


def test_completing_twice_is_harmless_and_processing_charges_once(world: World) -> None:
    asset = world.ready_asset()
    assert asset.state is AssetState.READY and asset.cuttable
    again = world.app.assets.complete_part(world.account_id, asset.id, PartName.VIDEO)
    assert again.state is AssetState.READY
    world.processor.process_asset(asset.id)
    assert charges(world) == [asset.id], "one credit per asset"
    assert world.app.accounts.credits(world.account_id)[0] == 9
    assert world.event_types() == ["asset.ready"]


def test_an_upload_over_the_limit_is_refused_at_complete_on_every_runtime(tmp_path: Path) -> None:
    """The embedded upload route stops a stream at the limit, but an S3 presigned PUT cannot:
    the size is checked where both runtimes pass, and the part is removed."""
    world = make_world(tmp_path, max_upload_bytes=10)
    asset = world.app.assets.create(world.account_id, AssetKind.VIDEO, "a.mp4", client_audio=False)
    world.storage.put(f"assets/{asset.id}/uploads/video", b"x" * 11)
    with pytest.raises(PayloadTooLarge):
        world.app.assets.complete_part(world.account_id, asset.id, PartName.VIDEO)
    assert world.storage.keys(f"assets/{asset.id}/") == []
    assert world.app.assets.get(world.account_id, asset.id).video_part is PartState.AWAITING_UPLOAD
    world.storage.put(f"assets/{asset.id}/uploads/video", b"x" * 10)
    assert world.app.assets.complete_part(world.account_id, asset.id, PartName.VIDEO).state is AssetState.PROCESSING


def test_without_credit_an_asset_waits_and_resumes_after_a_grant(tmp_path: Path) -> None:
    world = make_world(tmp_path, credits=0)
    waiting = world.ready_asset()
    assert waiting.state is AssetState.PAYMENT_REQUIRED and not waiting.cuttable
    assert charges(world) == [] and world.event_types() == []
    world.app.accounts.grant(world.account_id, 1, "top up")
    world.processor.process_asset(waiting.id)
    assert world.app.assets.get(world.account_id, waiting.id).state is AssetState.READY
    assert charges(world) == [waiting.id] and world.event_types() == ["asset.ready"]


def test_a_part_that_is_not_media_fails_the_asset_with_invalid_media(world: World) -> None:
    failed = world.ready_asset(b"junk")
    assert failed.state is AssetState.FAILED and failed.error and failed.error.code == "invalid_media"
    assert failed.video_part is PartState.FAILED
    assert world.event_types() == ["asset.failed"]
    assert charges(world) == [] and world.app.accounts.credits(world.account_id)[0] == 10, "junk is free"


def test_an_asset_that_cannot_be_paid_is_not_probed_until_it_can(tmp_path: Path) -> None:
    world = make_world(tmp_path, credits=0)
    probed: list[str] = []
    real = world.processor.probe
    world.processor.probe = lambda src: probed.append(src) or real(src)  # type: ignore[misc, func-returns-value]
    waiting = world.ready_asset()
    world.processor.process_asset(waiting.id)
    assert probed == [] and world.store.get_asset(waiting.id).state is AssetState.PAYMENT_REQUIRED  # type: ignore[union-attr]
    world.app.accounts.grant(world.account_id, 1, "top up")
    world.processor.process_asset(waiting.id)
    assert len(probed) == 1 and charges(world) == [waiting.id]


def test_a_video_without_audio_is_ready_but_has_no_audio_to_render(world: World) -> None:
    silent = world.ready_asset(b"video")
    assert silent.state is AssetState.READY and silent.audio is None and world.tasks.extracted == []
    with pytest.raises(ValidationFailed):
        world.app.renders.create(world.account_id, silent.id, None, OutputSpec(Format.MP3))


def test_client_audio_asset_is_cuttable_once_its_audio_part_is_in(world: World) -> None:
    asset = world.app.assets.create(world.account_id, AssetKind.VIDEO, "phone.mp4", client_audio=True)
    world.storage.put(f"assets/{asset.id}/uploads/audio", b"audio")
    world.app.assets.complete_part(world.account_id, asset.id, PartName.AUDIO)
    world.processor.process_asset(asset.id)
    partial = world.app.assets.get(world.account_id, asset.id)
    assert partial.state is AssetState.UPLOADING and partial.cuttable, "the video part is still awaited"
    world.storage.put(f"assets/{asset.id}/uploads/video", b"video")
    world.app.assets.complete_part(world.account_id, asset.id, PartName.VIDEO)
    world.processor.process_asset(asset.id)
    assert world.app.assets.get(world.account_id, asset.id).state is AssetState.READY
    assert world.event_types() == ["asset.ready"]


def test_deleting_an_asset_stops_its_renders_and_removes_its_media(world: World) -> None:
    asset = world.ready_asset()
    render = world.render(asset, OutputSpec(Format.MP3))
    world.scheduler.tick()
    world.app.assets.delete(world.account_id, asset.id)
    assert world.executor.cancelled == [render.id]
    assert world.storage.keys(f"assets/{asset.id}/") == [] and world.store.get_render(render.id) is None
    with pytest.raises(NotFound):
        world.app.assets.get(world.account_id, asset.id)


def test_processing_an_asset_deleted_meanwhile_leaves_nothing(world: World) -> None:
    asset = world.app.assets.create(world.account_id, AssetKind.VIDEO, "a.mp4", client_audio=False)
    world.storage.put(f"assets/{asset.id}/uploads/video", b"video+audio")
    world.app.assets.complete_part(world.account_id, asset.id, PartName.VIDEO)
    world.tasks.while_extracting = lambda: world.app.assets.delete(world.account_id, asset.id)
    world.processor.process_asset(asset.id)  # its audio is written after the delete removed the rest
    assert world.tasks.extracted == [asset.id]
    assert world.storage.keys(f"assets/{asset.id}/") == [], "the worker removes what it wrote for a deleted asset"
    assert world.store.get_asset(asset.id) is None, "and does not resurrect it"


def test_a_part_is_sealed_when_completed_and_an_upload_still_streaming_is_refused(world: World) -> None:
    """A client uploads, starts a second PUT, completes the part (which probes the first
    bytes) while the second still streams: it must not replace what was probed."""
    asset = world.app.assets.create(world.account_id, AssetKind.VIDEO, "a.mp4", client_audio=False)

    async def body(data: bytes, during: Callable[[], object] = lambda: None) -> AsyncIterator[bytes]:
        yield data[:3]
        during()
        yield data[3:]

    async def upload(data: bytes, during: Callable[[], object] = lambda: None) -> int:
        return await world.app.assets.receive_part(world.storage, asset.id, PartName.VIDEO, body(data, during), None)

    assert anyio.run(upload, b"video+audio") == len(b"video+audio")
    complete = lambda: world.app.assets.complete_part(world.account_id, asset.id, PartName.VIDEO)  # noqa: E731
    with pytest.raises(InvalidState):
        anyio.run(upload, b"something else entirely", complete)
    assert world.storage.objects[f"assets/{asset.id}/video"] == b"video+audio", "the probed bytes stay"
    assert world.storage.staged == {}, "the refused upload left nothing"
    world.processor.process_asset(asset.id)
    assert world.app.assets.get(world.account_id, asset.id).state is AssetState.READY


def test_an_account_has_a_cap_on_assets_waiting_for_uploads(tmp_path: Path) -> None:
    world = make_world(tmp_path, max_uploading_assets=2)
    first = world.app.assets.create(world.account_id, AssetKind.VIDEO, "a.mp4", client_audio=False)
    world.app.assets.create(world.account_id, AssetKind.VIDEO, "b.mp4", client_audio=False)
    with pytest.raises(RateLimited) as refused:
        world.app.assets.create(world.account_id, AssetKind.VIDEO, "c.mp4", client_audio=False)
    assert "2 assets" in refused.value.message and refused.value.headers["Retry-After"]
    other = world.app.accounts.create_account("other")
    world.app.assets.create(other.id, AssetKind.VIDEO, "x.mp4", client_audio=False)  # per account
    world.storage.put(f"assets/{first.id}/uploads/video", b"video+audio")
    world.app.assets.complete_part(world.account_id, first.id, PartName.VIDEO)
    world.app.assets.create(world.account_id, AssetKind.VIDEO, "c.mp4", client_audio=False)


def test_an_abandoned_upload_expires_and_frees_its_storage(world: World) -> None:
    stale = world.app.assets.create(world.account_id, AssetKind.VIDEO, "old.mp4", client_audio=False)
    world.storage.put(f"assets/{stale.id}/uploads/video", b"half")  # uploaded, never completed
    fresh = world.app.assets.create(world.account_id, AssetKind.VIDEO, "new.mp4", client_audio=False)
    world.store.t.assets[stale.id].created_at = now() - timedelta(days=2)
    assert world.processor.expire_uploads() == [stale.id]
    expired = world.app.assets.get(world.account_id, stale.id)
    assert expired.state is AssetState.FAILED and expired.error and expired.error.code == "upload_expired"
    assert expired.video_part is PartState.FAILED and world.storage.keys(f"assets/{stale.id}/") == []
    assert world.event_types() == ["asset.failed"]
    assert world.app.assets.get(world.account_id, fresh.id).state is AssetState.UPLOADING
    assert world.processor.expire_uploads() == []


def test_a_failed_asset_is_not_charged_for_its_other_part(world: World) -> None:
    """Client audio: junk video, good audio, both uploaded. The asset fails on the video and
    is not charged for the audio found after it."""
    asset = world.app.assets.create(world.account_id, AssetKind.VIDEO, "phone.mp4", client_audio=True)
    world.storage.put(f"assets/{asset.id}/uploads/video", b"junk")
    world.storage.put(f"assets/{asset.id}/uploads/audio", b"audio")
    world.app.assets.complete_part(world.account_id, asset.id, PartName.VIDEO)
    world.app.assets.complete_part(world.account_id, asset.id, PartName.AUDIO)
    world.processor.process_asset(asset.id)
    failed = world.app.assets.get(world.account_id, asset.id)
    assert failed.state is AssetState.FAILED and failed.error and failed.error.code == "invalid_media"
    assert charges(world) == []


def test_an_asset_left_waiting_for_credit_expires_too(tmp_path: Path) -> None:
    world = make_world(tmp_path, credits=0)
    waiting = world.ready_asset()
    assert waiting.state is AssetState.PAYMENT_REQUIRED
    world.store.t.assets[waiting.id].created_at = now() - timedelta(days=2)
    assert world.processor.expire_uploads() == [waiting.id]
    expired = world.app.assets.get(world.account_id, waiting.id)
    assert expired.state is AssetState.FAILED and expired.error and expired.error.code == "payment_expired"
    assert world.storage.keys(f"assets/{waiting.id}/") == [] and charges(world) == []


def test_a_put_after_complete_lands_where_nothing_reads_it(world: World) -> None:
    """What an S3 presigned PUT can still do after complete (it stays valid until it
    expires): its bytes land at the upload's key, and the part read from is what was probed."""
    asset = world.app.assets.create(world.account_id, AssetKind.VIDEO, "a.mp4", client_audio=False)
    world.storage.put(f"assets/{asset.id}/uploads/video", b"video+audio")
    world.app.assets.complete_part(world.account_id, asset.id, PartName.VIDEO)
    world.storage.put(f"assets/{asset.id}/uploads/video", b"junk that would be read instead")
    world.processor.process_asset(asset.id)
    assert world.app.assets.get(world.account_id, asset.id).state is AssetState.READY
    assert world.storage.objects[f"assets/{asset.id}/video"] == b"video+audio"
    job = world.app.renders.job(world.render(world.app.assets.get(world.account_id, asset.id),
                                             OutputSpec(Format.MP4)))  # fmt: skip
    assert job is not None and job.video_key == f"assets/{asset.id}/video", "encodes read the sealed part"
    world.app.assets.delete(world.account_id, asset.id)
    assert world.storage.keys(f"assets/{asset.id}/") == [], "the late upload goes with the asset"
