"""Renders (SPEC 5): create (validate, gate, idempotent on the signature), read, list, cancel."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import JSONResponse

from roughy.api import schemas as s
from roughy.api.deps import AccountDep, Limit, ServicesDep, StartingAfter
from roughy.api.openapi import WITH_BODY, errors
from roughy.api.views import render_out
from roughy.core.errors import ErrorCode as E
from roughy.core.models import OutputSpec, Render, RenderState

router = APIRouter(prefix="/v1/renders", tags=["renders"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=s.RenderOut,
    responses={
        200: {
            "model": s.RenderOut,
            "description": "An identical live render already exists: no second job, no charge.",
        },
        **errors(
            *WITH_BODY,
            E.NOT_FOUND,
            E.ASSET_NOT_READY,
            E.ASSET_PROCESSING,
            E.ASSET_PAYMENT_REQUIRED,
            E.ASSET_FAILED,
            E.MODIFIER_NOT_READY,
            E.EXECUTOR_UNAVAILABLE,
        ),
    },
)
def create_render(body: s.RenderCreate, svc: ServicesDep, account: AccountDep) -> JSONResponse:
    spec = OutputSpec(
        format=body.output.format,
        resolution=body.output.resolution,
        video_bitrate=body.output.video_bitrate,
        audio_bitrate=body.output.audio_bitrate,
    )
    render, created = svc.app.renders.create(account.id, body.asset_id, body.cut_id, spec)
    return _json(render, 201 if created else 200)


def _json(render: Render, status_code: int) -> JSONResponse:
    body = render_out(render).model_dump(mode="json", exclude={"download_url", "download_expires_at"})
    return JSONResponse(body, status_code=status_code)


NO_URLS = {"data": {"__all__": {"download_url", "download_expires_at"}}}


@router.get(
    "", response_model=s.ListOf[s.RenderOut], response_model_exclude=NO_URLS, responses=errors(E.VALIDATION_ERROR)
)
def list_renders(
    svc: ServicesDep,
    account: AccountDep,
    limit: Limit = 20,
    starting_after: StartingAfter = None,
    asset_id: str | None = Query(None, description="Only renders of this asset."),
    state: RenderState | None = Query(None, description="Only renders in this state."),
) -> s.ListOf[s.RenderOut]:
    """Lists never carry download URLs: fetch one render for a fresh URL."""
    items, more = svc.app.renders.page(account.id, limit, starting_after, asset_id, state)
    return s.ListOf[s.RenderOut](data=[render_out(r) for r in items], has_more=more)


@router.get("/{render_id}", response_model=s.RenderOut, responses=errors(E.NOT_FOUND, E.STORAGE_UNAVAILABLE))
def get_render(render_id: str, svc: ServicesDep, account: AccountDep) -> s.RenderOut:
    render = svc.app.renders.get(account.id, render_id)
    return render_out(render, svc.app.renders.download(render))


@router.delete(
    "/{render_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(E.NOT_FOUND, E.EXECUTOR_UNAVAILABLE),
)
def cancel_render(render_id: str, svc: ServicesDep, account: AccountDep) -> Response:
    """Hard delete: the row goes first (so nothing can complete it), then the encode and the files."""
    svc.app.renders.cancel(account.id, render_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
