"""Assets (SPEC 3): create with upload targets, complete parts, read, list, delete."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from roughy.api import schemas as s
from roughy.api.deps import AccountDep, IdempotencyKey, Limit, ServicesDep, StartingAfter
from roughy.api.openapi import WITH_BODY, errors
from roughy.api.views import asset_out
from roughy.core.errors import ErrorCode as E
from roughy.core.models import PartName

router = APIRouter(prefix="/v1/assets", tags=["assets"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=s.AssetOut,
    responses=errors(*WITH_BODY, E.NOT_FOUND, E.IDEMPOTENCY_KEY_IN_USE),
)
def create_asset(
    body: s.AssetCreate, svc: ServicesDep, account: AccountDep, idempotency_key: IdempotencyKey = None
) -> s.AssetOut:
    """Then PUT each part to its `upload` target and complete it. Send an `Idempotency-Key` to retry safely."""
    asset = svc.app.assets.create(
        account.id, body.kind, body.filename, body.client_audio, idempotency_key=idempotency_key
    )
    return asset_out(asset, svc.app.assets.upload_targets(asset))


@router.get("", response_model=s.ListOf[s.AssetOut], responses=errors(E.VALIDATION_ERROR))
def list_assets(
    svc: ServicesDep, account: AccountDep, limit: Limit = 20, starting_after: StartingAfter = None
) -> s.ListOf[s.AssetOut]:
    items, more = svc.app.assets.page(account.id, limit, starting_after)
    data = [asset_out(a, svc.app.assets.upload_targets(a), svc.app.assets.poster(a)) for a in items]
    return s.ListOf[s.AssetOut](data=data, has_more=more)


@router.get("/{asset_id}", response_model=s.AssetOut, responses=errors(E.NOT_FOUND))
def get_asset(asset_id: str, svc: ServicesDep, account: AccountDep) -> s.AssetOut:
    asset = svc.app.assets.get(account.id, asset_id)
    return asset_out(asset, svc.app.assets.upload_targets(asset), svc.app.assets.poster(asset))


@router.post(
    "/{asset_id}/parts/{part}/complete",
    response_model=s.AssetOut,
    responses=errors(E.NOT_FOUND, E.INVALID_STATE, E.VALIDATION_ERROR, E.PAYLOAD_TOO_LARGE),
)
def complete_part(asset_id: str, part: PartName, svc: ServicesDep, account: AccountDep) -> s.AssetOut:
    """The client finished uploading a part: processing starts (and the credit is charged)."""
    asset = svc.app.assets.complete_part(account.id, asset_id, part)
    return asset_out(asset, svc.app.assets.upload_targets(asset), svc.app.assets.poster(asset))


@router.delete(
    "/{asset_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=errors(E.NOT_FOUND)
)
def delete_asset(asset_id: str, svc: ServicesDep, account: AccountDep) -> Response:
    """Removes the asset, its cuts, its renders (stopping running encodes) and all their media."""
    svc.app.assets.delete(account.id, asset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
