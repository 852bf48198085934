"""Helpers of the webhook tests: accounts, endpoints, deliveries, events that are quick to cause."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Service, upload_part, wait_for
from tests.webhooks.receiver import Receiver

# Fast retries and a short timeout so the retry paths run in a test's time.
FAST: dict[str, Any] = {
    "webhook_allow_private": True,
    "webhook_retry_base": 0.1,
    "webhook_retry_cap": 0.4,
    "webhook_timeout": 0.5,
}


def new_account(svc: Service, name: str, credits: int = 20) -> httpx.Client:
    """A fresh account (so no other test's events reach its endpoints), with credits, as a client."""
    with svc.admin() as admin:
        acct = admin.post("/v1/admin/accounts", json={"name": name})
        assert acct.status_code == 201, acct.text
        account_id = acct.json()["id"]
        key = admin.post(f"/v1/admin/accounts/{account_id}/api_keys").json()["key"]
        if credits:
            grant = admin.post(f"/v1/admin/accounts/{account_id}/credits", json={"amount": credits, "reason": "t"})
            assert grant.status_code in (200, 201), grant.text
    return svc.client(key)


def create_endpoint(api: httpx.Client, url: str, events: list[str], receiver: Receiver | None = None) -> dict:
    resp = api.post("/v1/webhook_endpoints", json={"url": url, "events": events})
    assert resp.status_code == 201, resp.text
    endpoint = resp.json()
    assert endpoint["secret"].startswith("whsec_")
    if receiver is not None:
        receiver.secrets.append(endpoint["secret"])
    return endpoint


def deliveries(api: httpx.Client, endpoint_id: str) -> list[dict]:
    resp = api.get(f"/v1/webhook_endpoints/{endpoint_id}/deliveries")
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def wait_deliveries(
    api: httpx.Client, endpoint_id: str, done: Callable[[list[dict]], bool], timeout: float = 20
) -> list[dict]:
    return wait_for(lambda: {"d": deliveries(api, endpoint_id)}, lambda r: done(r["d"]), timeout)["d"]


def junk_asset(api: httpx.Client, tmp_path: Path, name: str = "junk.mp4") -> dict[str, Any]:
    """An upload that is not media: the asset fails (`asset.failed`) within a moment."""
    junk = tmp_path / name
    junk.write_bytes(b"this is not a video at all " * 200)
    asset = api.post("/v1/assets", json={"kind": "video", "filename": name}).json()
    upload_part(api, asset, "video", junk)
    return asset
