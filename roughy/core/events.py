"""The webhook event registry: every event type, the resource it carries, and when it happens.

One table feeds the API's schema (the `events` a webhook endpoint may subscribe to and the
OpenAPI `webhooks` section, one payload model per type), the emitter (the application layer
asks `*_events` which events a state change makes, and the store writes them in the change's
own transaction) and the README's list of events (a test holds it to this table).

Adding an event type: a member here, a line in its resource's `*_TRANSITIONS` table, and
its line in the README.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from roughy.core.models import Asset, AssetState, Cut, CutState, Render, RenderState
from roughy.core.resources import asset_resource, cut_resource, render_resource


class Resource(enum.StrEnum):
    """What an event's `data` is: the resource as `GET` returns it (less any signed URL)."""

    ASSET = "asset"
    CUT = "cut"
    RENDER = "render"


class EventType(enum.StrEnum):
    RENDER_COMPLETED = "render.completed"
    RENDER_FAILED = "render.failed"
    ASSET_READY = "asset.ready"
    ASSET_FAILED = "asset.failed"
    CUT_COMPLETED = "cut.completed"
    CUT_FAILED = "cut.failed"

    @property
    def resource(self) -> Resource:
        return Resource(self.value.split(".", 1)[0])

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self]


DESCRIPTIONS: dict[EventType, str] = {
    EventType.RENDER_COMPLETED: "A render finished; its output can be downloaded (GET the render for a URL).",
    EventType.RENDER_FAILED: "A render failed; `error` says why. Its outputs are gone.",
    EventType.ASSET_READY: "Every part of an asset is processed and paid for: video renders may start.",
    EventType.ASSET_FAILED: "Processing a part of an asset failed; `error` says why.",
    EventType.CUT_COMPLETED: "A cut's segments are final (snapped to frames, or derived from silences).",
    EventType.CUT_FAILED: "A cut could not be completed; `error` says why.",
}

# The state a resource enters -> the event it makes; only a change of state emits. One table per
# resource: the states are string enums, and "completed" of a cut equals "completed" of a render.
RENDER_TRANSITIONS: dict[RenderState, EventType] = {
    RenderState.COMPLETED: EventType.RENDER_COMPLETED,
    RenderState.FAILED: EventType.RENDER_FAILED,
}
ASSET_TRANSITIONS: dict[AssetState, EventType] = {
    AssetState.READY: EventType.ASSET_READY,
    AssetState.FAILED: EventType.ASSET_FAILED,
}
CUT_TRANSITIONS: dict[CutState, EventType] = {
    CutState.COMPLETED: EventType.CUT_COMPLETED,
    CutState.FAILED: EventType.CUT_FAILED,
}


@dataclass(frozen=True)
class NewEvent:
    """An event to write to the outbox together with the change that made it."""

    type: EventType
    account_id: str
    data: dict[str, Any]


def asset_events(before: AssetState | None, asset: Asset) -> list[NewEvent]:
    event = ASSET_TRANSITIONS.get(asset.state) if asset.state is not before else None
    return [NewEvent(event, asset.account_id, asset_resource(asset))] if event else []


def cut_events(before: CutState | None, cut: Cut) -> list[NewEvent]:
    event = CUT_TRANSITIONS.get(cut.state) if cut.state is not before else None
    return [NewEvent(event, cut.account_id, cut_resource(cut))] if event else []


def render_events(before: RenderState | None, render: Render) -> list[NewEvent]:
    event = RENDER_TRANSITIONS.get(render.state) if render.state is not before else None
    return [NewEvent(event, render.account_id, render_resource(render))] if event else []
