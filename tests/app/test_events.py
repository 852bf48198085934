"""The event registry feeds the emitter, the OpenAPI document and the README: one list."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from roughy.core.events import (
    ASSET_TRANSITIONS,
    CUT_TRANSITIONS,
    RENDER_TRANSITIONS,
    EventType,
    NewEvent,
    asset_events,
    render_events,
)
from roughy.core.models import AssetState, Format, OutputSpec, Render, RenderState
from tests.app.conftest import World

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_event_type_is_emitted_by_exactly_one_transition() -> None:
    emitted = [*RENDER_TRANSITIONS.values(), *ASSET_TRANSITIONS.values(), *CUT_TRANSITIONS.values()]
    assert sorted(emitted) == sorted(EventType), "an event no change makes, or one made twice"
    for event in EventType:
        assert event.description and event.resource.value == event.value.split(".")[0]


def test_only_a_change_of_state_emits(world: World) -> None:
    asset = world.ready_asset()
    assert asset_events(AssetState.READY, asset) == [], "ready to ready is no event"
    [event] = asset_events(AssetState.PROCESSING, asset)
    assert event.type is EventType.ASSET_READY and event.data["id"] == asset.id
    render, _ = world.app.renders.create(world.account_id, asset.id, None, OutputSpec(Format.MP3))
    assert render_events(None, render) == [], "a new pending render is no event"
    world.scheduler.tick()
    assert render_events(RenderState.PENDING, world.app.renders.get(world.account_id, render.id)) == []


def test_the_openapi_document_describes_each_event_and_only_those(world: World, tmp_path: Path) -> None:
    from roughy.api.app import create_app
    from roughy.api.deps import Services
    from roughy.settings import Settings

    doc = create_app(Services(Settings(data_dir=tmp_path), world.app)).openapi()
    assert set(doc["webhooks"]) == {e.value for e in EventType}
    for event in EventType:
        ref = doc["webhooks"][event.value]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        body = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert body["properties"]["type"]["const"] == event.value
        data = body["properties"]["data"]["$ref"].rsplit("/", 1)[1]
        assert event.resource.value.capitalize() in data
    assert doc["components"]["schemas"]["EventType"]["enum"] == [e.value for e in EventType]


def test_the_readme_lists_every_event_type() -> None:
    listed = set(re.findall(r"^\| `([a-z]+\.[a-z]+)` \|", README.read_text(), re.MULTILINE))
    assert listed == {e.value for e in EventType}


@pytest.mark.parametrize("event", list(EventType))
def test_an_endpoint_subscribes_by_the_registrys_names(world: World, event: EventType) -> None:
    endpoint = world.app.webhooks.create(world.account_id, "https://example.test/hook", [event])
    assert endpoint.events == [event.value]


def test_every_render_transition_passes_through_the_registry(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Created, claimed, released and finished: the store hands each change to the registry's
    rule in its transaction, so an event on any of them (`render.started`, say) is one line in
    RENDER_TRANSITIONS."""
    from roughy.app import renders, scheduler
    from roughy.core.ports import Outcome

    seen: list[tuple[str | None, str]] = []

    def spy(before: RenderState | None, render: Render) -> list[NewEvent]:
        seen.append((before.value if before else None, render.state.value))
        return render_events(before, render)

    monkeypatch.setattr(renders, "render_events", spy)
    monkeypatch.setattr(scheduler, "render_events", spy)
    asset = world.ready_asset()
    render = world.render(asset, OutputSpec(Format.MP3))
    world.scheduler.tick()
    world.executor.lose(render.id)
    world.scheduler.sweep(0.0)
    world.scheduler.tick()
    world.executor.finish(render.id, Outcome.failed("encode_failed", "boom"))
    assert seen == [(None, "pending"), ("pending", "running"), ("running", "pending"), ("pending", "running"),
                    ("running", "failed")]  # fmt: skip
