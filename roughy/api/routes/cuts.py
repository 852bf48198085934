"""Cuts (SPEC 4): explicit segments or silence removal, checked against the source once cuttable."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from roughy.api import schemas as s
from roughy.api.deps import AccountDep, Limit, ServicesDep, StartingAfter
from roughy.api.routes.assets import load_asset
from roughy.api.views import cut_out
from roughy.core.errors import NotFound, ValidationFailed
from roughy.core.gates import require_cuttable
from roughy.core.ids import new_id, now
from roughy.core.models import Cut, CutMethod, CutState, Segment
from roughy.core.segments import check_structure

router = APIRouter(tags=["cuts"])


@router.post("/v1/assets/{asset_id}/cuts", status_code=status.HTTP_201_CREATED, response_model=s.CutOut)
def create_cut(asset_id: str, body: s.CutCreate, svc: ServicesDep, account: AccountDep) -> s.CutOut:
    if (body.segments is None) == (body.method is None):
        raise ValidationFailed('give either "segments" or "method": "silence"', param="segments")
    segments: list[Segment] = []
    if body.segments is not None:
        segments = check_structure([Segment(x.start, x.end) for x in body.segments])
    asset = load_asset(svc, account, asset_id)
    require_cuttable(asset)  # 409 asset_processing / asset_payment_required / asset_failed (SPEC 2)
    cut = Cut(
        id=new_id("cut"),
        account_id=account.id,
        asset_id=asset.id,
        state=CutState.PENDING,
        method=CutMethod.SILENCE if body.method else CutMethod.SEGMENTS,
        created_at=now(),
        segments=segments,
        silence={"min_silence": body.min_silence, "threshold_db": body.threshold_db, "padding": body.padding}
        if body.method
        else None,
    )
    svc.store.insert_cut(cut)
    svc.runtime.wake()
    return cut_out(cut)


@router.get("/v1/assets/{asset_id}/cuts", response_model=s.ListOf[s.CutOut])
def list_cuts(
    asset_id: str, svc: ServicesDep, account: AccountDep, limit: Limit = 20, starting_after: StartingAfter = None
) -> s.ListOf[s.CutOut]:
    asset = load_asset(svc, account, asset_id)
    items, more = svc.store.list_cuts(asset.id, limit, starting_after)
    return s.ListOf[s.CutOut](data=[cut_out(c) for c in items], has_more=more)


def load_cut(svc: ServicesDep, account: AccountDep, cut_id: str) -> Cut:
    cut = svc.store.get_cut(cut_id, account.id)
    if cut is None:
        raise NotFound(f"no such cut: {cut_id}")
    return cut


@router.get("/v1/cuts/{cut_id}", response_model=s.CutOut)
def get_cut(cut_id: str, svc: ServicesDep, account: AccountDep) -> s.CutOut:
    return cut_out(load_cut(svc, account, cut_id))


@router.delete("/v1/cuts/{cut_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_cut(cut_id: str, svc: ServicesDep, account: AccountDep) -> Response:
    """Deletes the cut and the renders made from it (running ones are stopped)."""
    cut = load_cut(svc, account, cut_id)
    for render_id in svc.store.delete_cut(cut.id):
        svc.runtime.cancel(render_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
