"""Assets (SPEC 3): create with upload targets, complete parts, read, list, delete."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from roughy.api import schemas as s
from roughy.api.deps import AccountDep, Limit, ServicesDep, StartingAfter
from roughy.api.views import asset_out
from roughy.core.errors import InvalidState, NotFound, ValidationFailed
from roughy.core.ids import new_id, now
from roughy.core.models import Asset, AssetKind, AssetState, PartName, PartState

router = APIRouter(prefix="/v1/assets", tags=["assets"])


def load_asset(svc: ServicesDep, account: AccountDep, asset_id: str) -> Asset:
    asset = svc.store.get_asset(asset_id, account.id)
    if asset is None:
        raise NotFound(f"no such asset: {asset_id}")
    return asset


@router.post("", status_code=status.HTTP_201_CREATED, response_model=s.AssetOut)
def create_asset(body: s.AssetCreate, svc: ServicesDep, account: AccountDep) -> s.AssetOut:
    if body.client_audio and body.kind is AssetKind.AUDIO:
        raise ValidationFailed("client_audio applies to video assets only", param="client_audio")
    video = body.kind is AssetKind.VIDEO
    asset = Asset(
        id=new_id("ast"),
        account_id=account.id,
        kind=body.kind,
        filename=body.filename,
        client_audio=body.client_audio,
        state=AssetState.UPLOADING,
        video_part=PartState.AWAITING_UPLOAD if video else None,
        audio_part=PartState.AWAITING_UPLOAD if (not video or body.client_audio) else None,
        created_at=now(),
    )
    svc.store.insert_asset(asset)
    return asset_out(asset, svc)


@router.get("", response_model=s.ListOf[s.AssetOut])
def list_assets(
    svc: ServicesDep, account: AccountDep, limit: Limit = 20, starting_after: StartingAfter = None
) -> s.ListOf[s.AssetOut]:
    items, more = svc.store.list_assets(account.id, limit, starting_after)
    return s.ListOf[s.AssetOut](data=[asset_out(a, svc) for a in items], has_more=more)


@router.get("/{asset_id}", response_model=s.AssetOut)
def get_asset(asset_id: str, svc: ServicesDep, account: AccountDep) -> s.AssetOut:
    return asset_out(load_asset(svc, account, asset_id), svc)


@router.post("/{asset_id}/parts/{part}/complete", response_model=s.AssetOut)
def complete_part(asset_id: str, part: PartName, svc: ServicesDep, account: AccountDep) -> s.AssetOut:
    """The client finished uploading a part: processing starts (and the credit is charged)."""
    asset = load_asset(svc, account, asset_id)
    current = asset.part_state(part)
    if current is None:
        raise NotFound(f"this asset has no {part.value} part", param="part")
    if current is not PartState.AWAITING_UPLOAD:
        return asset_out(asset, svc)  # completing twice is harmless
    if not svc.storage.exists(f"assets/{asset.id}/{part.value}"):
        raise InvalidState(f"nothing was uploaded for the {part.value} part; PUT it to its upload URL first")

    def mark_uploaded(a: Asset) -> None:
        if a.part_state(part) is not PartState.AWAITING_UPLOAD:
            return  # completed concurrently: harmless
        if part is PartName.VIDEO:
            a.video_part = PartState.UPLOADED
        else:
            a.audio_part = PartState.UPLOADED
        awaiting = any(a.part_state(p) is PartState.AWAITING_UPLOAD for p in a.parts)
        if a.state is AssetState.UPLOADING and not awaiting:
            # A client-audio asset stays `uploading` until its last part is in (never backwards).
            a.state = AssetState.PROCESSING

    updated = svc.store.modify_asset(asset.id, mark_uploaded)
    if updated is None:
        raise NotFound(f"no such asset: {asset_id}")
    asset = updated
    svc.runtime.wake()
    return asset_out(asset, svc)


@router.delete("/{asset_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_asset(asset_id: str, svc: ServicesDep, account: AccountDep) -> Response:
    """Removes the asset, its cuts, its renders (stopping running encodes) and all their media."""
    asset = load_asset(svc, account, asset_id)
    render_ids = svc.store.renders_of_asset(asset.id)
    svc.store.delete_asset(asset.id)
    for render_id in render_ids:
        svc.runtime.cancel(render_id)
    svc.storage.delete_prefix(f"assets/{asset.id}/")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
