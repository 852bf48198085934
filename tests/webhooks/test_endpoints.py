"""Webhook endpoints (SPEC 6): create, read, list, delete, the secret shown once, rotation, per account,
and targets that could reach inside the network refused at creation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import Service, start_service
from tests.webhooks.helpers import FAST, create_endpoint, junk_asset, new_account, wait_deliveries


def test_endpoint_crud_with_the_secret_only_in_the_creation_answer(api: httpx.Client):
    created = api.post(
        "/v1/webhook_endpoints",
        json={"url": "http://127.0.0.1:9/hook", "events": ["render.failed", "render.completed", "render.failed"]},
    )
    assert created.status_code == 201, created.text
    ep = created.json()
    assert ep["id"].startswith("whe_") and ep["object"] == "webhook_endpoint"
    assert ep["url"] == "http://127.0.0.1:9/hook"
    assert ep["events"] == ["render.completed", "render.failed"]
    assert ep["secret"].startswith("whsec_") and len(ep["secret"]) > 30
    assert ep["enabled"] is True and ep["disabled_reason"] is None

    got = api.get(f"/v1/webhook_endpoints/{ep['id']}")
    assert got.status_code == 200
    assert got.json()["secret"] is None, "the secret is shown once, at creation"
    assert {k: v for k, v in got.json().items() if k != "secret"} == {k: v for k, v in ep.items() if k != "secret"}

    second = create_endpoint(api, "http://127.0.0.1:9/other", ["asset.ready"])
    assert second["secret"] != ep["secret"], "each endpoint has its own secret"
    listed = api.get("/v1/webhook_endpoints").json()
    assert [e["id"] for e in listed["data"]] == [second["id"], ep["id"]]  # newest first
    assert all(e["secret"] is None for e in listed["data"])
    assert listed["has_more"] is False
    page = api.get("/v1/webhook_endpoints", params={"limit": 1}).json()
    assert [e["id"] for e in page["data"]] == [second["id"]] and page["has_more"] is True

    assert api.delete(f"/v1/webhook_endpoints/{ep['id']}").status_code == 204
    assert api.get(f"/v1/webhook_endpoints/{ep['id']}").status_code == 404
    assert api.delete(f"/v1/webhook_endpoints/{ep['id']}").status_code == 404
    assert [e["id"] for e in api.get("/v1/webhook_endpoints").json()["data"]] == [second["id"]]


@pytest.mark.parametrize(
    "body, param",
    [
        ({"url": "http://127.0.0.1:9/h", "events": ["render.exploded"]}, "events[0]"),
        ({"url": "http://127.0.0.1:9/h", "events": []}, "events"),
        ({"url": "http://127.0.0.1:9/h"}, "events"),
        ({"events": ["render.completed"]}, "url"),
        ({"url": "ftp://127.0.0.1/h", "events": ["render.completed"]}, "url"),
        ({"url": "http://user:pw@127.0.0.1:9/h", "events": ["render.completed"]}, "url"),
        ({"url": "http://no-such-host.invalid/h", "events": ["render.completed"]}, "url"),
        ({"url": "http://[::1/h", "events": ["render.completed"]}, "url"),
        ({"url": "http://127.0.0.1:99999/h", "events": ["render.completed"]}, "url"),
        ({"url": "http://127.0.0.1:80abc/h", "events": ["render.completed"]}, "url"),
        ({"url": "http:///h", "events": ["render.completed"]}, "url"),
    ],
)
def test_invalid_endpoints_are_422_naming_the_field(api: httpx.Client, body: dict, param: str):
    resp = api.post("/v1/webhook_endpoints", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "validation_error"
    assert resp.json()["error"]["param"] == param, resp.text
    assert api.get("/v1/webhook_endpoints").json()["data"] == []


def test_another_accounts_endpoint_is_404(hooks: Service, api: httpx.Client, tmp_path):
    ep = create_endpoint(api, "http://127.0.0.1:9/hook", ["asset.failed"])
    junk_asset(api, tmp_path)
    with new_account(hooks, "other") as other:
        base = f"/v1/webhook_endpoints/{ep['id']}"
        assert other.get(base).status_code == 404
        assert other.get(f"{base}/deliveries").status_code == 404
        assert other.post(f"{base}/rotate_secret").status_code == 404
        assert other.post(f"{base}/enable").status_code == 404
        assert other.delete(base).status_code == 404
        assert other.get("/v1/webhook_endpoints").json()["data"] == []
        # ... nor can it redeliver this account's events
        event = wait_deliveries(api, ep["id"], lambda d: len(d) == 1)[0]["event_id"]
        assert other.post(f"/v1/events/{event}/redeliver").status_code == 404
    assert api.get(f"/v1/webhook_endpoints/{ep['id']}").status_code == 200, "still there"


def test_rotation_shows_the_new_secret_once_and_both_sign_during_the_overlap(api: httpx.Client, receivers, tmp_path):
    rx = receivers()
    ep = create_endpoint(api, rx.url(), ["asset.failed"], rx)
    old = ep["secret"]
    before = datetime.now(UTC)
    rotated = api.post(f"/v1/webhook_endpoints/{ep['id']}/rotate_secret")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != old
    expires = datetime.fromisoformat(rotated.json()["previous_secret_expires_at"].replace("Z", "+00:00"))
    assert before + timedelta(hours=23) < expires < before + timedelta(hours=25), "default overlap: 24 h"
    assert api.get(f"/v1/webhook_endpoints/{ep['id']}").json()["secret"] is None

    rx.secrets = [old, new]
    junk_asset(api, tmp_path)
    [req] = rx.wait(1)
    assert req.verified == {old: True, new: True}, "a receiver with either secret accepts it"
    assert len(req.headers["webhook-signature"].split(" ")) == 2


def test_after_the_overlap_only_the_new_secret_signs(tmp_path, receivers):
    svc = start_service(tmp_path / "data", **FAST, webhook_secret_overlap=0)
    try:
        with svc.client() as api:
            rx = receivers()
            ep = create_endpoint(api, rx.url(), ["asset.failed"])
            new = api.post(f"/v1/webhook_endpoints/{ep['id']}/rotate_secret").json()["secret"]
            rx.secrets = [ep["secret"], new]
            junk_asset(api, tmp_path)
            [req] = rx.wait(1)
            assert req.verified == {ep["secret"]: False, new: True}
            assert len(req.headers["webhook-signature"].split(" ")) == 1
    finally:
        svc.stop()


# -- targets: no SSRF ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The production default: only https, only public addresses."""
    svc = start_service(tmp_path_factory.mktemp("strict") / "data")
    yield svc
    svc.stop()


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://127.8.9.10/hook",
        "https://localhost/hook",
        "https://localhost:8443/hook",
        "https://10.0.0.5/hook",
        "https://172.16.3.4/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[fe80::1]/hook",
        "https://[fd00:ec2::254]/hook",
        "https://0.0.0.0/hook",
        "https://100.64.0.1/hook",
        "http://93.184.216.34/hook",  # public, but http
    ],
)
def test_private_targets_and_http_are_refused_at_creation(strict: Service, url: str):
    with strict.client() as api:
        resp = api.post("/v1/webhook_endpoints", json={"url": url, "events": ["render.completed"]})
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["param"] == "url"
        assert api.get("/v1/webhook_endpoints").json()["data"] == []


def test_a_public_https_target_is_accepted(strict: Service):
    with strict.client() as api:
        ep = create_endpoint(api, "https://93.184.216.34/hook", ["render.completed"])
        assert api.delete(f"/v1/webhook_endpoints/{ep['id']}").status_code == 204
