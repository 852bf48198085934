"""Events (SPEC 6): each state change a client could poll for is also delivered, signed, with the
resource exactly as the API shows it; an endpoint gets only the types it asked for."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from tests.conftest import Service, finished_render, ready_asset, wait_for
from tests.webhooks.helpers import create_endpoint, deliveries, junk_asset, new_account, wait_deliveries
from tests.webhooks.receiver import Receiver

NO_URLS = ("download_url", "download_expires_at", "upload", "poster")  # signed links are not in events


@pytest.fixture(scope="module")
def media(hooks: Service) -> Iterator[httpx.Client]:
    """An account of its own for the media tests."""
    with new_account(hooks, "media", credits=10) as client:
        yield client


@pytest.fixture(scope="module")
def asset(media: httpx.Client, clip: Path) -> dict:
    a = ready_asset(media, clip)
    assert a["state"] == "ready", a
    return a


@pytest.fixture
def endpoints(media: httpx.Client) -> Iterator[list[str]]:
    """Ids of endpoints a test creates on the shared media account: deleted afterwards."""
    made: list[str] = []
    yield made
    for endpoint_id in made:
        media.delete(f"/v1/webhook_endpoints/{endpoint_id}")


def subscribe(api: httpx.Client, rx: Receiver, events: list[str], made: list[str], path: str = "/hook") -> dict:
    ep = create_endpoint(api, rx.url(path), events, rx)
    made.append(ep["id"])
    return ep


def without_urls(resource: dict) -> dict:
    return {k: v for k, v in resource.items() if k not in NO_URLS}


def stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def check_signed(req, secret: str, type_: str) -> dict:
    """The delivery verifies with the standardwebhooks library and is the SPEC 6 envelope."""
    payload = Webhook(secret).verify(req.body, req.headers)
    assert set(payload) == {"id", "type", "created_at", "data"}
    assert payload["id"].startswith("evt_") and payload["id"] == req.headers["webhook-id"]
    assert payload["type"] == type_
    assert req.headers["content-type"] == "application/json"
    assert abs(int(req.headers["webhook-timestamp"]) - datetime.now().timestamp()) < 60
    return payload


def test_render_completed_carries_the_render_as_get_shows_it(media, asset, receivers, endpoints):
    rx = receivers()
    ep = subscribe(media, rx, ["render.completed"], endpoints)
    failed_only = subscribe(media, rx, ["render.failed"], endpoints, path="/failed-only")
    render = finished_render(media, {"asset_id": asset["id"], "output": {"format": "mp4"}})
    assert render["state"] == "completed", render
    [req] = rx.wait(1, "/hook")
    payload = check_signed(req, ep["secret"], "render.completed")
    shown = media.get(f"/v1/renders/{render['id']}").json()
    assert payload["data"] == without_urls(shown)
    # written with the state change, not some time after it
    assert 0 <= (stamp(payload["created_at"]) - stamp(shown["completed_at"])).total_seconds() < 1

    [d] = wait_deliveries(media, ep["id"], lambda d: d and d[0]["state"] == "succeeded")
    assert d["event_id"] == payload["id"] and d["event_type"] == "render.completed"
    assert d["next_retry_at"] is None and d["completed_at"]
    [attempt] = d["attempts"]
    assert attempt["status_code"] == 200 and attempt["error"] is None and attempt["latency_ms"] > 0
    assert rx.on("/failed-only") == [] and deliveries(media, failed_only["id"]) == [], "filtered out"


def test_render_failed_is_delivered_when_the_render_fails(hooks, media, asset, receivers, endpoints):
    rx = receivers()
    ep = subscribe(media, rx, ["render.failed", "render.completed"], endpoints)
    source = hooks.embedded.storage.path(f"assets/{asset['id']}/video")
    good = source.read_bytes()
    source.write_bytes(b"\0" * 4096)  # the source went bad on disk after it was probed
    try:
        render = finished_render(media, {"asset_id": asset["id"], "output": {"format": "mov"}})
    finally:
        source.write_bytes(good)
    assert render["state"] == "failed", render
    [req] = rx.wait(1)
    payload = check_signed(req, ep["secret"], "render.failed")
    shown = media.get(f"/v1/renders/{render['id']}").json()
    assert payload["data"] == without_urls(shown)
    assert payload["data"]["error"]["code"] == "invalid_media"
    time.sleep(0.5)
    assert len(rx.requests) == 1, "one event for one failure, and no render.completed"


def test_asset_ready_and_asset_failed(media, receivers, endpoints, song, tmp_path):
    rx = receivers()
    ep = subscribe(media, rx, ["asset.ready", "asset.failed"], endpoints)
    good = ready_asset(media, song, kind="audio")
    bad = junk_asset(media, tmp_path)
    reqs = rx.wait(2)
    by_type = {r.json["type"]: r for r in reqs}
    assert set(by_type) == {"asset.ready", "asset.failed"}
    ready = check_signed(by_type["asset.ready"], ep["secret"], "asset.ready")
    failed = check_signed(by_type["asset.failed"], ep["secret"], "asset.failed")
    assert ready["data"] == without_urls(media.get(f"/v1/assets/{good['id']}").json())
    shown_bad = wait_for(lambda: media.get(f"/v1/assets/{bad['id']}").json(), lambda a: a["state"] == "failed")
    assert failed["data"] == without_urls(shown_bad) and failed["data"]["error"]["code"] == "invalid_media"
    assert ready["id"] != failed["id"]


def test_cut_completed_and_cut_failed(media, asset, receivers, endpoints):
    rx = receivers()
    ep = subscribe(media, rx, ["cut.completed", "cut.failed"], endpoints)
    ok = media.post(f"/v1/assets/{asset['id']}/cuts", json={"segments": [{"start": 0.5, "end": 1.5}]})
    bad = media.post(f"/v1/assets/{asset['id']}/cuts", json={"segments": [{"start": 50, "end": 60}]})
    assert ok.status_code == 201 and bad.status_code == 201, (ok.text, bad.text)
    reqs = rx.wait(2)
    by_type = {r.json["type"]: r for r in reqs}
    assert set(by_type) == {"cut.completed", "cut.failed"}
    done = check_signed(by_type["cut.completed"], ep["secret"], "cut.completed")
    failed = check_signed(by_type["cut.failed"], ep["secret"], "cut.failed")
    assert done["data"] == media.get(f"/v1/cuts/{ok.json()['id']}").json()
    assert failed["data"] == media.get(f"/v1/cuts/{bad.json()['id']}").json()
    assert failed["data"]["error"]["code"] == "segments_out_of_range"
