"""Cuts (SPEC 4): explicit segments or silence removal, checked against the source once cuttable."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from roughy.api import schemas as s
from roughy.api.deps import AccountDep, IdempotencyKey, Limit, ServicesDep, StartingAfter
from roughy.api.openapi import WITH_BODY, errors
from roughy.api.views import cut_out
from roughy.core.errors import ErrorCode as E
from roughy.core.models import Segment

router = APIRouter(tags=["cuts"])


@router.post(
    "/v1/assets/{asset_id}/cuts",
    status_code=status.HTTP_201_CREATED,
    response_model=s.CutOut,
    responses=errors(
        *WITH_BODY, E.NOT_FOUND, E.ASSET_PROCESSING, E.ASSET_PAYMENT_REQUIRED, E.ASSET_FAILED, E.IDEMPOTENCY_KEY_IN_USE
    ),
)
def create_cut(
    asset_id: str, body: s.CutCreate, svc: ServicesDep, account: AccountDep, idempotency_key: IdempotencyKey = None
) -> s.CutOut:
    """Explicit segments, or `method: silence`. Send an `Idempotency-Key` to retry safely."""
    segments = [Segment(x.start, x.end) for x in body.segments] if body.segments is not None else None
    silence = None
    if body.method is not None:
        silence = {"min_silence": body.min_silence, "threshold_db": body.threshold_db, "padding": body.padding}
    return cut_out(svc.app.cuts.create(account.id, asset_id, segments, silence, idempotency_key=idempotency_key))


@router.get(
    "/v1/assets/{asset_id}/cuts", response_model=s.ListOf[s.CutOut], responses=errors(E.NOT_FOUND, E.VALIDATION_ERROR)
)
def list_cuts(
    asset_id: str, svc: ServicesDep, account: AccountDep, limit: Limit = 20, starting_after: StartingAfter = None
) -> s.ListOf[s.CutOut]:
    items, more = svc.app.cuts.page(account.id, asset_id, limit, starting_after)
    return s.ListOf[s.CutOut](data=[cut_out(c) for c in items], has_more=more)


@router.get("/v1/cuts/{cut_id}", response_model=s.CutOut, responses=errors(E.NOT_FOUND))
def get_cut(cut_id: str, svc: ServicesDep, account: AccountDep) -> s.CutOut:
    return cut_out(svc.app.cuts.get(account.id, cut_id))


@router.delete(
    "/v1/cuts/{cut_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=errors(E.NOT_FOUND)
)
def delete_cut(cut_id: str, svc: ServicesDep, account: AccountDep) -> Response:
    """Deletes the cut and the renders made from it (running ones are stopped)."""
    svc.app.cuts.delete(account.id, cut_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
