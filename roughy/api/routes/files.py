"""Signed URLs served by the API itself (embedded runtime): part uploads and render downloads.

On Kubernetes the same URLs are S3 presigned URLs and these routes are not used.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse

from roughy.api.deps import ServicesDep
from roughy.api.openapi import errors
from roughy.core.errors import ErrorCode as E
from roughy.core.errors import NotFound
from roughy.core.formats import format_of
from roughy.core.keys import is_poster_key, upload_key
from roughy.core.models import Format, PartName
from roughy.core.ports import ServedFiles

router = APIRouter(tags=["files"])


SIGNATURE = [
    {"name": "expires", "in": "query", "required": True, "schema": {"type": "integer"},
     "description": "When the URL stops working (Unix seconds): part of the signed URL as handed out."},
    {"name": "sig", "in": "query", "required": True, "schema": {"type": "string"},
     "description": "The URL's signature: part of the signed URL as handed out."},
]  # fmt: skip
BINARY = {"schema": {"type": "string", "format": "binary"}}
MEDIA_TYPES = sorted({f.mime_type for f in Format} | {"image/jpeg"})  # renders, and asset posters


@router.put(
    "/v1/uploads/assets/{asset_id}/uploads/{part}",
    status_code=200,
    response_class=Response,
    openapi_extra={
        "parameters": SIGNATURE,
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": BINARY},
            "description": "The part's bytes (any media type is accepted).",
        },
        "security": [],
    },  # fmt: skip
    responses={
        200: {
            "description": "Stored. Now call `POST /v1/assets/{asset_id}/parts/{part}/complete`.",
            "headers": {"X-Uploaded-Bytes": {"schema": {"type": "integer"}, "description": "Bytes stored."}},
        },
        **errors(E.FORBIDDEN, E.NOT_FOUND, E.INVALID_STATE, E.PAYLOAD_TOO_LARGE),
    },  # fmt: skip
)
async def upload_part(asset_id: str, part: PartName, request: Request, svc: ServicesDep) -> Response:
    """Target of an asset's signed upload URL: the body is the file, streamed to disk."""
    files = _served_here(svc)
    q = request.query_params
    files.verify("PUT", upload_key(asset_id, part), q.get("expires"), q.get("sig"))  # what it writes
    length = request.headers.get("content-length")
    size = await svc.app.assets.receive_part(
        files, asset_id, part, request.stream(), int(length) if length and length.isdigit() else None
    )
    return Response(status_code=200, headers={"X-Uploaded-Bytes": str(size)})


@router.head("/v1/files/{key:path}", include_in_schema=False)
@router.get(
    "/v1/files/{key:path}",
    response_class=FileResponse,
    openapi_extra={
        "parameters": [
            *SIGNATURE,
            {
                "name": "filename",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "The `Content-Disposition` filename: part of the signed URL as handed out.",
            },
            {
                "name": "Range",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "A byte range (`bytes=0-1023`): answered with 206.",
            },
        ],
        "security": [],
    },  # fmt: skip
    responses={
        200: {"description": "The file.", "content": {t: BINARY for t in MEDIA_TYPES}},
        206: {"description": "The requested byte range.", "content": {t: BINARY for t in MEDIA_TYPES}},
        **errors(E.FORBIDDEN, E.NOT_FOUND),
    },
)
def download_file(key: str, request: Request, svc: ServicesDep) -> FileResponse:
    """Target of a render's signed download URL (and an asset's poster): the file, with byte ranges."""
    files = _served_here(svc)
    q = request.query_params
    filename = q.get("filename", "")
    files.verify("GET", key, q.get("expires"), q.get("sig"), filename)  # the key it serves
    if not (key.startswith("renders/") or is_poster_key(key)) or not svc.app.storage.exists(key):
        raise NotFound("no such file (the render may have been deleted)")
    fmt = format_of(key)
    media_type = fmt.mime_type if fmt is not None else None
    return FileResponse(files.path(key), media_type=media_type, filename=filename or None)


def _served_here(svc: ServicesDep) -> ServedFiles:
    """Only local storage signs URLs that point back at the API; S3 URLs point at S3."""
    if svc.files is None:
        raise NotFound("files are served by object storage in this runtime")
    return svc.files
