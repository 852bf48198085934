"""Signed URLs served by the API itself (embedded runtime): part uploads and render downloads.

On Kubernetes the same URLs are S3 presigned URLs and these routes are not used.
"""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse

from roughy.api.deps import ServicesDep
from roughy.core.errors import InvalidState, NotFound, PayloadTooLarge
from roughy.core.formats import format_of
from roughy.core.models import PartName, PartState

router = APIRouter(tags=["files"])


@router.put("/v1/uploads/assets/{asset_id}/{part}", status_code=200, include_in_schema=True)
async def upload_part(asset_id: str, part: PartName, request: Request, svc: ServicesDep) -> Response:
    """Target of an asset's signed upload URL: the body is the file, streamed to disk."""
    _served_here(svc)
    q = request.query_params
    svc.storage.verify("PUT", request.url.path, q.get("expires"), q.get("sig"))
    asset = await anyio.to_thread.run_sync(svc.store.get_asset, asset_id)
    if asset is None:
        raise NotFound("no such asset")
    if asset.part_state(part) is not PartState.AWAITING_UPLOAD:
        raise InvalidState(f"the {part.value} part is not awaiting an upload")
    limit = svc.settings.max_upload_bytes
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"upload is over the limit of {limit} bytes")
    size = await svc.storage.write_stream(f"assets/{asset_id}/{part.value}", request.stream(), limit=limit)
    return Response(status_code=200, headers={"X-Uploaded-Bytes": str(size)})


@router.head("/v1/files/{key:path}", include_in_schema=False)
@router.get("/v1/files/{key:path}")
def download(key: str, request: Request, svc: ServicesDep) -> FileResponse:
    """Target of a render's signed download URL: the file, with byte ranges and a filename."""
    _served_here(svc)
    q = request.query_params
    filename = q.get("filename", "")
    svc.storage.verify("GET", request.url.path, q.get("expires"), q.get("sig"), filename)
    if not key.startswith("renders/") or not svc.storage.exists(key):
        raise NotFound("no such file (the render may have been deleted)")
    fmt = format_of(key)
    media_type = fmt.mime_type if fmt is not None else None
    return FileResponse(svc.storage.path(key), media_type=media_type, filename=filename or None)


def _served_here(svc: ServicesDep) -> None:
    """Only local storage signs URLs that point back at the API; S3 URLs point at S3."""
    if not hasattr(svc.storage, "verify"):
        raise NotFound("files are served by object storage in this runtime")
