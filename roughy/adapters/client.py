"""A small HTTP client of the roughy API, used by `roughy render` (and handy in scripts)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx


class ClientError(Exception):
    pass


def parse_cut(text: str) -> list[dict[str, float]]:
    """"1.5-10,20-30" -> [{"start": 1.5, "end": 10.0}, {"start": 20.0, "end": 30.0}]."""
    segments = []
    for part in text.split(","):
        start, sep, end = part.strip().partition("-")
        if not sep:
            raise ValueError(f"bad cut segment {part!r}: expected START-END")
        segments.append({"start": float(start), "end": float(end)})
    return segments


class Client:
    def __init__(self, base_url: str, api_key: str, *, timeout: float = 60.0):
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.http.request(method, path, **kwargs)
        if resp.status_code >= 400:
            try:
                err = resp.json()["error"]
                raise ClientError(f"{resp.status_code} {err['code']}: {err['message']}")
            except (ValueError, KeyError):
                raise ClientError(f"{resp.status_code}: {resp.text[:200]}") from None
        return resp.json() if resp.content else None

    def wait(
        self, path: str, done: set[str], *, on_update: Any = None, timeout: float = 24 * 3600
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            obj: dict[str, Any] = self.call("GET", path)
            if on_update:
                on_update(obj)
            if obj["state"] in done:
                return obj
            if time.monotonic() > deadline:
                raise ClientError(f"timed out waiting for {path}")
            time.sleep(0.5)

    def upload_asset(self, path: Path, kind: str) -> dict[str, Any]:
        asset = self.call("POST", "/v1/assets", json={"kind": kind, "filename": path.name})
        part = "video" if kind == "video" else "audio"
        target = asset["upload"][part]
        with open(path, "rb") as fh:
            resp = httpx.request(target["method"], target["url"], content=fh, headers=target["headers"],
                                 timeout=None)
        if resp.status_code >= 400:
            raise ClientError(f"upload failed: {resp.status_code} {resp.text[:200]}")
        self.call("POST", f"/v1/assets/{asset['id']}/parts/{part}/complete")
        asset = self.wait(f"/v1/assets/{asset['id']}", {"ready", "failed", "payment_required"})
        if asset["state"] != "ready":
            raise ClientError(f"asset {asset['id']} is {asset['state']}: {asset.get('error')}")
        return asset

    def render_file(
        self,
        path: Path,
        *,
        kind: str,
        output: dict[str, Any],
        segments: list[dict[str, float]] | None,
        out: Path | None,
        progress: bool,
    ) -> Path:
        asset = self.upload_asset(path, kind)
        body: dict[str, Any] = {"asset_id": asset["id"], "output": output}
        if segments:
            cut = self.call("POST", f"/v1/assets/{asset['id']}/cuts", json={"segments": segments})
            cut = self.wait(f"/v1/cuts/{cut['id']}", {"completed", "failed"})
            if cut["state"] != "completed":
                raise ClientError(f"cut failed: {cut['error']}")
            body["cut_id"] = cut["id"]
        render = self.call("POST", "/v1/renders", json=body)
        render = self.wait(
            f"/v1/renders/{render['id']}", {"completed", "failed"}, on_update=_bar if progress else None
        )
        if progress:
            sys.stderr.write("\n")
        if render["state"] != "completed":
            raise ClientError(f"render failed: {render['error']}")
        return self.download(render, out)

    def download(self, render: dict[str, Any], out: Path | None) -> Path:
        with httpx.stream("GET", render["download_url"], timeout=None) as resp:
            if resp.status_code != 200:
                raise ClientError(f"download failed: {resp.status_code}")
            name = out or Path(_filename(resp.headers.get("content-disposition", "")) or f"{render['id']}")
            with open(name, "wb") as fh:
                for chunk in resp.iter_bytes():
                    fh.write(chunk)
        return name


def _filename(disposition: str) -> str | None:
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "filename":
            return Path(value.strip('"')).name
    return None


def _bar(render: dict[str, Any]) -> None:
    width = 30
    done = int(render["progress"] * width)
    sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {render['progress'] * 100:5.1f}% {render['state']:9}")
    sys.stderr.flush()
