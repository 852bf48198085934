"""Resources as clients see them (SPEC 3-5), as plain JSON-ready dicts.

One mapping serves the API's responses and the webhook events' `data`, so a render in a
`render.completed` event reads exactly as `GET /v1/renders/{id}` does (less the download URL).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from roughy.core.models import Asset, Cut, Render


def _time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


#: The probe's fields a client sees (SPEC 3); the rest (HDR, demuxer, pixel format, ...) are
#: the service's own, for planning.
VIDEO_FIELDS = ("width", "height", "fps", "codec", "bitrate_kbps", "rotation")
AUDIO_FIELDS = ("codec", "bitrate_kbps", "sample_rate", "channels")
#: A render result's fields a client sees (SPEC 5.6, with `copied` and `encoder`): the API's
#: `ResultOut`, and a webhook's `data` (the same, so a webhook shows what GET does).
RESULT_FIELDS = (
    "format", "width", "height", "duration", "size_bytes", "video_bitrate_kbps", "audio_bitrate_kbps", "copied",
    "encoder",
)  # fmt: skip


def asset_resource(asset: Asset) -> dict[str, Any]:
    video = {k: getattr(asset.video, k) for k in VIDEO_FIELDS} if asset.video else None
    audio = {k: getattr(asset.audio, k) for k in AUDIO_FIELDS} if asset.audio else None
    return {
        "id": asset.id,
        "object": "asset",
        "kind": asset.kind.value,
        "filename": asset.filename,
        "state": asset.state.value,
        "cuttable": asset.cuttable,
        "duration": round(asset.duration, 6) if asset.duration is not None else None,
        "video": video,
        "audio": audio,
        "error": asdict(asset.error) if asset.error else None,
        "created_at": _time(asset.created_at),
    }


def cut_resource(cut: Cut) -> dict[str, Any]:
    return {
        "id": cut.id,
        "object": "cut",
        "asset_id": cut.asset_id,
        "state": cut.state.value,
        "method": cut.method.value,
        "segments": [{"start": s.start, "end": s.end} for s in cut.segments],
        "error": asdict(cut.error) if cut.error else None,
        "created_at": _time(cut.created_at),
    }


def render_resource(render: Render) -> dict[str, Any]:
    return {
        "id": render.id,
        "object": "render",
        "asset_id": render.asset_id,
        "cut_id": render.cut_id,
        "output": render.output.as_dict(),
        "state": render.state.value,
        "progress": round(render.progress, 4),
        "error": asdict(render.error) if render.error else None,
        "result": {k: v for k, v in render.result.to_json().items() if k in RESULT_FIELDS} if render.result else None,
        "created_at": _time(render.created_at),
        "started_at": _time(render.started_at),
        "completed_at": _time(render.completed_at),
    }
