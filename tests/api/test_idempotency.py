"""`Idempotency-Key` on POST /v1/assets and POST /v1/assets/{id}/cuts (both runtimes): a retry
of one logical request answers the first try's resource, so an SDK or proxy retry never makes a
second asset (nor pays for one twice)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ready_asset, wait_for


def post(client: httpx.Client, path: str, body: dict[str, Any], key: str | None) -> httpx.Response:
    return client.post(path, json=body, headers={"Idempotency-Key": key} if key else {})


def test_a_retried_asset_creation_answers_the_first_asset(service: Any) -> None:
    client = service.client()
    body = {"kind": "video", "filename": "talk.mp4"}
    first = post(client, "/v1/assets", body, "upload-talk-1")
    again = post(client, "/v1/assets", body, "upload-talk-1")
    assert first.status_code == again.status_code == 201, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["upload"]["video"]["url"], "the retry gets upload targets too"
    other = post(client, "/v1/assets", body, "upload-talk-2")
    unkeyed = post(client, "/v1/assets", body, None)
    assert len({first.json()["id"], other.json()["id"], unkeyed.json()["id"]}) == 3
    assert len(client.get("/v1/assets").json()["data"]) == 3


def test_a_key_belongs_to_one_request_and_one_account(service: Any) -> None:
    client = service.client()
    first = post(client, "/v1/assets", {"kind": "video", "filename": "a.mp4"}, "k-1")
    reused = post(client, "/v1/assets", {"kind": "video", "filename": "b.mp4"}, "k-1")
    assert reused.status_code == 422, reused.text
    assert reused.json()["error"]["code"] == "validation_error"
    assert reused.json()["error"]["param"] == "Idempotency-Key"
    # Another account's same key is its own.
    admin = service.admin()
    account = admin.post("/v1/admin/accounts", json={"name": "other"}).json()
    key = admin.post(f"/v1/admin/accounts/{account['id']}/api_keys").json()["key"]
    theirs = post(service.client(key), "/v1/assets", {"kind": "video", "filename": "a.mp4"}, "k-1")
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]
    bad = post(client, "/v1/assets", {"kind": "video", "filename": "a.mp4"}, "x" * 256)
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "Idempotency-Key"


def test_concurrent_tries_with_one_key_make_one_asset(service: Any) -> None:
    client = service.client()
    body = {"kind": "audio", "filename": "episode.wav"}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(client, "/v1/assets", body, "burst"), range(8)))
    ids = {r.json()["id"] for r in answers if r.status_code == 201}
    assert len(ids) == 1, [r.text for r in answers]
    # A try that met the first one still creating is told to retry, and its retry gets the asset.
    assert all(r.status_code == 201 or r.json()["error"]["code"] == "idempotency_key_in_use" for r in answers)
    assert post(client, "/v1/assets", body, "burst").json()["id"] in ids
    assert len(client.get("/v1/assets").json()["data"]) == 1


def test_a_retried_cut_answers_the_first_cut_and_a_failed_try_can_be_retried(service: Any, clip: Path) -> None:
    client = service.client()
    pending = client.post("/v1/assets", json={"kind": "video", "filename": "x.mp4"}).json()
    body = {"segments": [{"start": 0.2, "end": 1.0}]}
    early = post(client, f"/v1/assets/{pending['id']}/cuts", body, "cut-1")
    assert early.status_code == 409 and early.json()["error"]["code"] == "asset_processing"

    asset = ready_asset(client, clip)
    first = post(client, f"/v1/assets/{asset['id']}/cuts", body, "cut-1")
    assert first.status_code == 201, "the failed try did not keep the key"
    again = post(client, f"/v1/assets/{asset['id']}/cuts", body, "cut-1")
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert len(client.get(f"/v1/assets/{asset['id']}/cuts").json()["data"]) == 1
    elsewhere = post(client, f"/v1/assets/{pending['id']}/cuts", body, "cut-1")
    assert elsewhere.status_code == 422 and elsewhere.json()["error"]["param"] == "Idempotency-Key"
    wait_for(lambda: client.get(f"/v1/cuts/{first.json()['id']}").json(), lambda c: c["state"] == "completed")
    # Its resource deleted, the key answers 404 (a new cut needs a new key), not a second cut.
    assert client.delete(f"/v1/cuts/{first.json()['id']}").status_code == 204
    gone = post(client, f"/v1/assets/{asset['id']}/cuts", body, "cut-1")
    assert gone.status_code == 404, gone.text
