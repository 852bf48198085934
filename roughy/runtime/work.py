"""What one render needs executed, whichever runtime executes it: the plan and the storage keys.

The embedded runtime turns the keys into local paths for a subprocess; the Kubernetes runtime
puts them in a Render resource, and the operator presigns them for the encoder Job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from roughy.core.keys import output_key
from roughy.core.models import AssetKind, PartName, Render
from roughy.core.plan import EncodePlan
from roughy.core.planning import plan_render
from roughy.runtime.processing import audio_key, part_key


@dataclass(frozen=True)
class RenderWork:
    plan: EncodePlan
    video_key: str | None
    audio_key: str | None
    output_key: str


def render_work(store: Any, render: Render) -> RenderWork | None:
    """The encode of `render` as planned from its asset (and cut); None when either is gone
    (deleted meanwhile: the render goes with them)."""
    asset = store.get_asset(render.asset_id)
    if asset is None:
        return None
    segments = None
    if render.cut_id:
        cut = store.get_cut(render.cut_id)
        if cut is None:
            return None
        segments = cut.segments
    separate_audio = asset.kind is AssetKind.VIDEO and asset.client_audio and asset.audio is not None
    plan = plan_render(
        render.output,
        duration=asset.duration or 0.0,
        video=asset.video,
        audio=asset.audio,
        segments=segments,
        separate_audio=separate_audio,
    )
    audio = audio_key(asset) if asset.audio is not None else None
    if not render.output.format.is_video:
        return RenderWork(plan, None, audio, output_key(render))
    video = part_key(asset.id, PartName.VIDEO)
    return RenderWork(plan, video, audio if separate_audio else None, output_key(render))
