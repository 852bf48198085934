"""The web console: three static files (roughy/api/console/) served at /console, and `/` sends a
browser there.

The page needs no authentication to load: it holds no data. Everything it shows comes from the
public /v1 API, called from the browser with the API key the user pastes (kept in the tab's
sessionStorage). The files are an allowlist (no path from the request reaches the disk) and go
out with a Content-Security-Policy that allows scripts and styles from this origin only: a
filename or an error message can never run as script in a page that holds a key. Images and
uploads may go to another origin (S3 presigned URLs in the Kubernetes runtime).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from roughy.core.errors import NotFound

router = APIRouter(include_in_schema=False)

PATH = "/console"
FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' http: https: data:; "
    "connect-src 'self' http: https:; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # signed URLs in the page are nobody else's business
    "Cache-Control": "no-cache",  # revalidated: a new version shows at the next load
}


def _directory() -> Path:
    return Path(str(files("roughy.api") / "console"))


@router.get("/")
def root() -> RedirectResponse:
    """A browser pointed at the service lands on the console (API clients use /v1/...)."""
    return RedirectResponse(f"{PATH}/", status_code=307)


@router.get(PATH)
def console_bare() -> RedirectResponse:
    return RedirectResponse(f"{PATH}/", status_code=307)


@router.get(PATH + "/")
def console() -> FileResponse:
    return _file("index.html")


@router.get(PATH + "/{name}")
def console_file(name: str) -> FileResponse:
    return _file(name)


def _file(name: str) -> FileResponse:
    if name not in FILES:
        raise NotFound(f"no such console file: {name}")
    return FileResponse(_directory() / name, media_type=FILES[name], headers=HEADERS)
