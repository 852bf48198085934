"""API documentation served by the service itself: Swagger UI at /docs, ReDoc at /redoc (their
scripts come from the installed `fastapi-offline` package, never from a CDN: they work on an
air-gapped cluster), and /docs/errors, the page each error body's `doc_url` points into."""

from __future__ import annotations

import html
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from roughy.api.errors import ERRORS_PAGE
from roughy.core.errors import ErrorCode

router = APIRouter(include_in_schema=False)

STATIC = "/docs/static"
ASSETS = {"swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"}


def _assets() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="roughy API",
        swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
        swagger_css_url=f"{STATIC}/swagger-ui.css",
        swagger_favicon_url=f"{STATIC}/favicon.png",
    )


@router.get("/redoc")
def redoc() -> HTMLResponse:
    return get_redoc_html(
        openapi_url="/openapi.json",
        title="roughy API",
        redoc_js_url=f"{STATIC}/redoc.standalone.js",
        redoc_favicon_url=f"{STATIC}/favicon.png",
        with_google_fonts=False,
    )


@router.get(STATIC + "/{name}")
def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(404, "no such file")
    return FileResponse(_assets() / name, headers={"Cache-Control": "public, max-age=86400"})


@router.get(ERRORS_PAGE)
def error_codes() -> HTMLResponse:
    """Every error code, its status and what to do about it; each has its own anchor."""
    rows = "\n".join(
        f'<tr id="{c.value}"><td><a href="#{c.value}"><code>{c.value}</code></a></td><td>{c.status}</td>'
        f"<td>{html.escape(c.description).replace('`', '')}</td></tr>"
        for c in ErrorCode
    )
    return HTMLResponse(_PAGE.format(rows=rows))


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>roughy API errors</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .4rem .6rem; text-align: left; vertical-align: top; }}
tr:target {{ background: #fff6d6; }}
</style></head><body>
<h1>Error codes</h1>
<p>Every error answers <code>{{"error": {{"code", "message", "param", "request_id", "doc_url"}}}}</code>.
Programs branch on <code>code</code>; people read <code>message</code>; <code>param</code> names the field
at fault; quote <code>request_id</code> in a report. The API reference is at <a href="/docs">/docs</a>.</p>
<table><thead><tr><th>code</th><th>status</th><th>meaning and what to do</th></tr></thead>
<tbody>
{rows}
</tbody></table></body></html>
"""
