"""How the console is served, over real HTTP (no browser needed: these run everywhere)."""

from __future__ import annotations

import httpx

from tests.conftest import Service


def test_the_root_sends_a_browser_to_the_console(service: Service) -> None:
    resp = httpx.get(service.url + "/", follow_redirects=False)
    assert resp.status_code == 307 and resp.headers["location"] == "/console/"
    page = httpx.get(service.url + "/", follow_redirects=True)
    assert page.status_code == 200 and str(page.url) == service.url + "/console/"
    assert page.headers["content-type"].startswith("text/html")
    assert '<script src="/console/app.js"' in page.text


def test_the_console_needs_no_key_and_allows_only_its_own_scripts(service: Service) -> None:
    for name, kind in (("", "text/html"), ("app.js", "text/javascript"), ("style.css", "text/css")):
        resp = httpx.get(f"{service.url}/console/{name}")  # no Authorization header
        assert resp.status_code == 200, (name, resp.status_code)
        assert resp.headers["content-type"].startswith(kind), name
        csp = resp.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, csp
        assert resp.headers["x-content-type-options"] == "nosniff"


def test_only_the_console_files_are_served(service: Service) -> None:
    for path in ("/console/nope.js", "/console/..%2F..%2Fapp.py", "/console/%2e%2e/routes/console.py"):
        resp = httpx.get(service.url + path)
        assert resp.status_code == 404, (path, resp.status_code)
        assert resp.json()["error"]["code"] == "not_found"
