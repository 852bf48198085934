"""Domain objects to response models. Upload targets and download URLs are signed here, fresh."""

from __future__ import annotations

import re
from pathlib import PurePath

from roughy.api import schemas as s
from roughy.api.deps import Services
from roughy.core.keys import output_key
from roughy.core.models import Asset, Cut, LedgerEntry, PartState, Render, RenderState
from roughy.core.resources import asset_resource, cut_resource, render_resource


def asset_out(asset: Asset, svc: Services) -> s.AssetOut:
    upload = {
        part.value: s.UploadTarget(
            **svc.storage.upload_target(f"assets/{asset.id}/{part.value}", svc.settings.upload_url_ttl)
        )
        for part in asset.parts
        if asset.part_state(part) is PartState.AWAITING_UPLOAD
    }
    return s.AssetOut(**asset_resource(asset), upload=upload or None)


def cut_out(cut: Cut) -> s.CutOut:
    return s.CutOut(**cut_resource(cut))


def render_out(render: Render, svc: Services | None = None, filename: str | None = None) -> s.RenderOut:
    """The render; with `svc` and `filename`, a completed one carries a fresh download URL."""
    out = s.RenderOut(**render_resource(render))
    if svc is not None and filename and render.state is RenderState.COMPLETED:
        key = output_key(render)
        out.download_url, out.download_expires_at = svc.storage.download_url(
            key, filename, svc.settings.download_url_ttl
        )
    return out


def download_filename(asset_filename: str, render: Render) -> str:
    """`talk.mov` rendered to 720p mp4 -> `talk-720p.mp4`; only safe characters survive."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", PurePath(asset_filename).stem).strip("._") or "render"
    tier = f"-{render.output.resolution.value}" if render.output.resolution else ""
    cut = "-cut" if render.cut_id else ""
    return f"{stem[:80]}{cut}{tier}.{render.output.format.extension}"


def ledger_out(entry: LedgerEntry) -> s.LedgerEntryOut:
    return s.LedgerEntryOut(
        id=entry.id,
        type=entry.type.value,  # type: ignore[arg-type]
        amount=entry.amount,
        asset_id=entry.asset_id,
        reason=entry.reason,
        created_at=entry.created_at,
    )
