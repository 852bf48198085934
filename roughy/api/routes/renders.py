"""Renders (SPEC 5): create (validate, gate, idempotent on the signature), read, list, cancel."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import JSONResponse

from roughy.api import schemas as s
from roughy.api.deps import AccountDep, Limit, ServicesDep, StartingAfter
from roughy.api.views import download_filename, render_out
from roughy.core.errors import NotFound, RateLimited, ValidationFailed
from roughy.core.gates import check_render_gates
from roughy.core.ids import new_id, now
from roughy.core.models import AssetState, Cut, OutputSpec, Render, RenderState
from roughy.core.planning import validate_output
from roughy.core.signature import render_signature

router = APIRouter(prefix="/v1/renders", tags=["renders"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=s.RenderOut,
    responses={200: {"model": s.RenderOut, "description": "An identical live render already exists."}},
)
def create_render(body: s.RenderCreate, svc: ServicesDep, account: AccountDep) -> JSONResponse:
    asset = svc.store.get_asset(body.asset_id, account.id)
    if asset is None:
        raise NotFound(f"no such asset: {body.asset_id}", param="asset_id")
    spec = OutputSpec(
        format=body.output.format,
        resolution=body.output.resolution,
        video_bitrate=body.output.video_bitrate,
        audio_bitrate=body.output.audio_bitrate,
    )
    validate_output(spec, asset.kind, asset.video, asset.audio, probed=_probed(asset, spec))
    cut = _cut_of_asset(svc, account.id, body.cut_id, asset.id)
    check_render_gates(asset, spec.format, cut)
    signature = render_signature(asset.id, cut.id if cut else None, spec)
    existing = svc.store.live_render_by_signature(signature)
    if existing is not None:
        return _json(existing, 200)
    if svc.store.count_active_renders(account.id) >= svc.settings.max_active_renders:
        raise RateLimited("too many pending or running renders; retry when some finish", retry_after=30)
    render = Render(
        id=new_id("rnd"),
        account_id=account.id,
        asset_id=asset.id,
        cut_id=cut.id if cut else None,
        output=spec,
        signature=signature,
        state=RenderState.PENDING,
        created_at=now(),
    )
    stored, created = svc.store.create_render(render)
    if created:
        svc.runtime.wake()
    return _json(stored, 201 if created else 200)


def _probed(asset, spec: OutputSpec) -> bool:  # type: ignore[no-untyped-def]
    """Whether the values the checks need are known: video ones once ready, audio once cuttable."""
    return asset.state is AssetState.READY if spec.format.is_video else asset.cuttable


def _cut_of_asset(svc: ServicesDep, account_id: str, cut_id: str | None, asset_id: str) -> Cut | None:
    if cut_id is None:
        return None
    cut = svc.store.get_cut(cut_id, account_id)
    if cut is None or cut.asset_id != asset_id:
        raise ValidationFailed("cut_id is not a cut of this asset", param="cut_id")
    return cut


def _json(render: Render, status_code: int) -> JSONResponse:
    body = render_out(render).model_dump(mode="json", exclude={"download_url", "download_expires_at"})
    return JSONResponse(body, status_code=status_code)


NO_URLS = {"data": {"__all__": {"download_url", "download_expires_at"}}}


@router.get("", response_model=s.ListOf[s.RenderOut], response_model_exclude=NO_URLS)
def list_renders(
    svc: ServicesDep,
    account: AccountDep,
    limit: Limit = 20,
    starting_after: StartingAfter = None,
    asset_id: str | None = Query(None, description="Only renders of this asset."),
    state: RenderState | None = Query(None, description="Only renders in this state."),
) -> s.ListOf[s.RenderOut]:
    """Lists never carry download URLs: fetch one render for a fresh URL."""
    items, more = svc.store.list_renders(account.id, limit, starting_after, asset_id, state)
    return s.ListOf[s.RenderOut](data=[render_out(r) for r in items], has_more=more)


@router.get("/{render_id}", response_model=s.RenderOut)
def get_render(render_id: str, svc: ServicesDep, account: AccountDep) -> s.RenderOut:
    render = svc.store.get_render(render_id, account.id)
    if render is None:
        raise NotFound(f"no such render: {render_id}")
    asset = svc.store.get_asset(render.asset_id)
    filename = download_filename(asset.filename if asset else "render", render)
    return render_out(render, svc, filename)


@router.delete("/{render_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def cancel_render(render_id: str, svc: ServicesDep, account: AccountDep) -> Response:
    """Hard delete: the row goes first (so nothing can complete it), then the encode and the files."""
    render = svc.store.get_render(render_id, account.id)
    if render is None or not svc.store.delete_render(render.id):
        raise NotFound(f"no such render: {render_id}")
    svc.runtime.cancel(render.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
