"""The encoder pods' channel on Kubernetes (`roughy.app.encoding`): not part of the public API.

`Authorization: Bearer <the render's encoder token>` on every call; a token opens its own
render's URLs only, while it runs. Left out of the OpenAPI document: clients never call these.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from roughy.api.deps import ServicesDep
from roughy.app.encoding import EncoderGateway, Report
from roughy.core.errors import NotFound

router = APIRouter(prefix="/internal/v1/renders/{render_id}", include_in_schema=False)


class OutputAsk(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chunk: int | None = Field(None, ge=0, description="A chunk of a chunked render, instead of the output.")


class ProgressIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    progress: float = Field(ge=0.0, le=1.0)
    encoder: Literal["libx264", "h264_nvenc"] | None = Field(
        None, description="The video encoder the encode runs with (what a Render's status.encoder accepts)."
    )


@router.post("/inputs")
def inputs(render_id: str, request: Request, svc: ServicesDep) -> dict[str, Any]:
    return _gateway(svc).inputs(render_id, _token(request))


@router.post("/output")
def output(render_id: str, body: OutputAsk, request: Request, svc: ServicesDep) -> dict[str, Any]:
    return _gateway(svc).output(render_id, _token(request), body.chunk)


@router.post("/progress", status_code=204)
def progress(render_id: str, body: ProgressIn, request: Request, svc: ServicesDep) -> Response:
    _gateway(svc).report(render_id, _token(request), Report(body.progress, body.encoder))
    return Response(status_code=204)


def _gateway(svc: ServicesDep) -> EncoderGateway:
    if svc.encoder is None:
        raise NotFound("the encoder's channel exists only in the Kubernetes runtime")
    return svc.encoder


def _token(request: Request) -> str | None:
    scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
