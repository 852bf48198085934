"""The API flow of the README over real HTTP: create an asset, PUT it to its presigned URL,
complete the part, wait until it is ready; ask for a render and wait for it. Also a render's
Render resource (found by the API's render id) and whether a key is in the bucket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from botocore.exceptions import ClientError

from tests.e2e import cluster
from tests.e2e.cluster import items, wait_until

ASSET_TIMEOUT = 300  # processing runs in the operator: the first one also waits for it to settle
RENDER_TIMEOUT = 600  # includes scheduling the encoder pod


def ready_asset(api: httpx.Client, path: Path) -> dict[str, Any]:
    created = api.post("/v1/assets", json={"kind": "video", "filename": path.name})
    assert created.status_code == 201, created.text
    asset = created.json()
    target = asset["upload"]["video"]
    put = httpx.put(target["url"], content=path.read_bytes(), headers=target["headers"], timeout=300)
    assert put.status_code == 200, put.text
    done = api.post(f"/v1/assets/{asset['id']}/parts/video/complete")
    assert done.status_code == 200, done.text

    def settled() -> dict[str, Any] | None:
        current: dict[str, Any] = api.get(f"/v1/assets/{asset['id']}").json()
        return current if current["state"] in ("ready", "failed", "payment_required") else None

    asset = wait_until(settled, ASSET_TIMEOUT, f"asset {asset['id']} to be processed")
    assert asset["state"] == "ready", asset
    return asset


def start_render(api: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    resp = api.post("/v1/renders", json=body)
    assert resp.status_code in (200, 201), resp.text
    render: dict[str, Any] = resp.json()
    return render


def wait_render(api: httpx.Client, render_id: str, states: tuple[str, ...], timeout: float = RENDER_TIMEOUT) -> Any:
    def reached() -> dict[str, Any] | None:
        current: dict[str, Any] = api.get(f"/v1/renders/{render_id}").json()
        return current if current["state"] in states else None

    return wait_until(reached, timeout, f"render {render_id} to be {' or '.join(states)}")


BUCKET = cluster.VALUES["s3"]["bucket"]


def render_resource(render_id: str) -> dict[str, Any] | None:
    found = items("renders", "--selector", f"roughy.ai/render={render_id}")
    assert len(found) <= 1, found
    return found[0] if found else None


def stored(s3: Any, key: str) -> bool:
    try:
        s3.head_object(Bucket=BUCKET, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True
