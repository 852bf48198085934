"""Domain objects to response models (signed URLs come from the services, fresh)."""

from __future__ import annotations

from datetime import datetime

from roughy.api import schemas as s
from roughy.core.models import Asset, Cut, LedgerEntry, Render
from roughy.core.resources import asset_resource, cut_resource, render_resource


def asset_out(
    asset: Asset, uploads: dict[str, dict[str, object]], poster: tuple[str, datetime] | None = None
) -> s.AssetOut:
    """The asset, with fresh upload targets and, once there is one, a signed URL of its poster."""
    upload = {part: s.UploadTarget.model_validate(target) for part, target in uploads.items()}
    image = s.PosterOut(url=poster[0], expires_at=poster[1]) if poster is not None else None
    return s.AssetOut(**asset_resource(asset), upload=upload or None, poster=image)


def cut_out(cut: Cut) -> s.CutOut:
    return s.CutOut(**cut_resource(cut))


def render_out(render: Render, download: tuple[str, datetime] | None = None) -> s.RenderOut:
    """The render; a completed one fetched alone carries a fresh download URL."""
    out = s.RenderOut(**render_resource(render))
    if download is not None:
        out.download_url, out.download_expires_at = download
    return out


def ledger_out(entry: LedgerEntry) -> s.LedgerEntryOut:
    return s.LedgerEntryOut(
        id=entry.id,
        type=entry.type.value,
        amount=entry.amount,
        asset_id=entry.asset_id,
        reason=entry.reason,
        created_at=entry.created_at,
    )
