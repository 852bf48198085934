"""The encoder's channel (`roughy.app.encoding`): a render's token opens that render's URLs,
while it is unfinished; progress goes forward into the database, and to the Render's status
only when its shown step changes. Over HTTP, with a real cluster stand-in: tests/kube."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from roughy.app.encoding import EncoderGateway, Report, shown_step
from roughy.core.errors import InvalidState, Unauthorized, ValidationFailed
from roughy.core.models import Format, OutputSpec, Render, Resolution
from roughy.core.plan import max_output_bytes
from roughy.core.ports import Outcome
from roughy.testing import MemoryStorage, result_for
from tests.app.conftest import World, make_world


class Presigning(MemoryStorage):
    """MemoryStorage with the presigned side of S3Storage: what was signed, and when."""

    signed: list[tuple[str, str, int | None]]
    opened: list[tuple[str, int]]

    def source_url(self, key: str, ttl: int | None = None) -> str:  # type: ignore[override]
        if ttl is None:  # the asset processing's own read (the fake probe finds the bytes by it)
            return super().source_url(key)
        self.signed.append(("GET", key, ttl))
        return f"https://s3.example/{key}?sig=get"

    def output_target(self, key: str, ttl: int | None = None) -> str:  # type: ignore[override]
        if ttl is None:  # the asset processing's (audio extraction)
            return super().output_target(key)
        self.signed.append(("PUT", key, ttl))
        return f"https://s3.example/{key}?sig=put"

    def output_upload(self, key: str, max_size: int, *, part_size: int | None = None, ttl: int | None = None) -> Any:
        self.opened.append((key, max_size))
        return {"method": "PUT", "url": f"https://s3.example/{key}?sig=put", "headers": {}}

    def abort_multipart(self, key: str, upload_id: str) -> None:
        pass


@pytest.fixture
def world(tmp_path: Path) -> World:
    world = make_world(tmp_path)
    world.storage.__class__ = Presigning  # the same objects, presigned: every service keeps its storage
    world.storage.signed, world.storage.opened = [], []  # type: ignore[attr-defined]
    return world


def running(world: World, spec: OutputSpec, token: str = "tok") -> Render:
    asset = world.ready_asset()
    render = world.render(asset, spec)
    world.scheduler.tick()
    world.app.renders.set_encoder_token(render.id, token)
    return render


def gateway(world: World, shown: list[tuple[str, float, str | None]] | None = None) -> EncoderGateway:
    def show(render: Render, progress: float, encoder: str | None) -> None:
        assert shown is not None
        shown.append((render.id, progress, encoder))

    storage = world.storage
    assert isinstance(storage, Presigning)
    return EncoderGateway(world.app.renders, storage, url_ttl=900, show_progress=show if shown is not None else None)


MP4_720 = OutputSpec(format=Format.MP4, resolution=Resolution.P720)


def test_a_token_opens_its_own_render_only(world: World) -> None:
    first = running(world, MP4_720, "one")
    second = running(world, OutputSpec(format=Format.MP3), "two")
    channel = gateway(world)
    assert channel.inputs(first.id, "one")["video"].endswith("?sig=get")
    for render_id, token in ((first.id, "two"), (second.id, "one"), (first.id, None), ("rnd_nobody", "one")):
        with pytest.raises(Unauthorized):
            channel.inputs(render_id, token)


def test_urls_are_signed_when_asked_with_the_channel_lifetime(world: World) -> None:
    render = running(world, MP4_720)
    storage = world.storage
    assert isinstance(storage, Presigning)
    channel = gateway(world)
    inputs = channel.inputs(render.id, "tok")
    assert inputs["audio"] is None and "chunks" not in inputs  # the video's own audio track
    assert storage.signed == [("GET", f"assets/{render.asset_id}/video", 900)]
    target = channel.output(render.id, "tok")
    job = world.executor.jobs[render.id]
    assert target["method"] == "PUT" and storage.opened == [(job.output_key, max_output_bytes(job.plan))]


def test_a_chunk_is_asked_by_its_index_within_the_plan(world: World) -> None:
    render = running(world, MP4_720)  # not chunked: no chunk 0
    with pytest.raises(ValidationFailed, match="has 0 chunks"):
        gateway(world).output(render.id, "tok", chunk=0)


def test_a_finished_render_refuses_its_token(world: World) -> None:
    render = running(world, MP4_720)
    world.executor.finish(render.id, Outcome(result=result_for(world.executor.jobs[render.id])))
    with pytest.raises(InvalidState):
        gateway(world).output(render.id, "tok")
    with pytest.raises(InvalidState):
        gateway(world).report(render.id, "tok", Report(0.5))


def test_progress_goes_forward_and_the_status_moves_in_steps(world: World) -> None:
    render = running(world, MP4_720)
    shown: list[tuple[str, float, str | None]] = []
    channel = gateway(world, shown)
    reports = [Report(0.0, "libx264"), Report(0.04), Report(0.09), Report(0.12), Report(0.1), Report(0.55),
               Report(0.57), Report(0.999)]  # fmt: skip
    seen = []
    for report in reports:
        channel.report(render.id, "tok", report)
        seen.append(world.store.get_render(render.id).progress)  # type: ignore[union-attr]
    assert seen == [0.0, 0.04, 0.09, 0.12, 0.12, 0.55, 0.57, 0.999]  # every value, never back
    assert shown == [(render.id, 0.0, "libx264"), (render.id, 0.1, None), (render.id, 0.5, None),
                     (render.id, 0.9, None)]  # fmt: skip


def test_shown_steps() -> None:
    assert [shown_step(p) for p in (0.0, 0.0999, 0.1, 0.3, 0.999, 1.0)] == [0.0, 0.0, 0.1, 0.3, 0.9, 1.0]
