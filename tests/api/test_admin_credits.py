"""Credits and the admin API (SPEC 3, 7): the ledger as clients read it, operator-only grants."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import uvicorn

from roughy.bootstrap import build_embedded, first_start
from roughy.settings import Settings
from tests.conftest import ADMIN_KEY, Service, free_port, ready_asset, start_service


def start_without_admin(data_dir: Path) -> Service:
    """Like conftest.start_service, but with no admin key configured (the admin API is off)."""
    port = free_port()
    settings = Settings(data_dir=data_dir, host="127.0.0.1", port=port, admin_key=None, starter_credits=3)
    embedded = build_embedded(settings)
    created = first_start(embedded.store, settings)
    assert created is not None
    config = uvicorn.Config(embedded.app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the service did not start"
        time.sleep(0.02)
    return Service(embedded, f"http://127.0.0.1:{port}", created[0], created[1], server, thread)


def check_entry(entry: dict) -> None:
    assert set(entry) == {"id", "type", "amount", "asset_id", "reason", "created_at"}, entry
    assert entry["type"] in ("grant", "charge")
    assert isinstance(entry["amount"], int)
    stamp = datetime.fromisoformat(entry["created_at"].replace("Z", "+00:00"))
    assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0, "RFC 3339 UTC"


def make_account(admin: httpx.Client, name: str) -> tuple[str, str, str]:
    acct = admin.post("/v1/admin/accounts", json={"name": name})
    assert acct.status_code == 201, acct.text
    assert acct.json()["name"] == name and set(acct.json()) == {"id", "name"}
    key = admin.post(f"/v1/admin/accounts/{acct.json()['id']}/api_keys")
    assert key.status_code == 201, key.text
    assert set(key.json()) == {"id", "key"} and key.json()["key"]
    return acct.json()["id"], key.json()["id"], key.json()["key"]


# -- credits ---------------------------------------------------------------------------------------


def test_credits_show_the_starter_grant_then_one_charge_per_asset(api, clip, song):
    credits = api.get("/v1/credits")
    assert credits.status_code == 200
    body = credits.json()
    assert set(body) == {"balance", "entries"}
    assert body["balance"] == 10
    assert len(body["entries"]) == 1
    grant = body["entries"][0]
    check_entry(grant)
    assert (grant["type"], grant["amount"], grant["asset_id"]) == ("grant", 10, None)
    assert grant["reason"]

    video = ready_asset(api, clip)
    audio = ready_asset(api, song, kind="audio")
    assert video["state"] == audio["state"] == "ready"
    body = api.get("/v1/credits").json()
    assert body["balance"] == 8
    for entry in body["entries"]:
        check_entry(entry)
    charged = sorted((e["asset_id"], e["amount"]) for e in body["entries"] if e["type"] == "charge")
    assert charged == sorted([(video["id"], -1), (audio["id"], -1)])
    assert body["balance"] == sum(e["amount"] for e in body["entries"]), "the balance is the ledger's sum"
    assert len({e["id"] for e in body["entries"]}) == len(body["entries"])

    # reading, listing and deleting the assets never charges again
    api.get(f"/v1/assets/{video['id']}")
    api.post(f"/v1/assets/{video['id']}/parts/video/complete")
    api.delete(f"/v1/assets/{audio['id']}")
    assert api.get("/v1/credits").json()["balance"] == 8


def test_accounts_cannot_grant_themselves_credit(service, api):
    assert api.post("/v1/credits", json={"amount": 100}).status_code in (404, 405)
    own = api.post(f"/v1/admin/accounts/{service.account_id}/credits", json={"amount": 100, "reason": "me"})
    assert own.status_code == 401 and own.json()["error"]["code"] == "unauthorized"
    assert api.get("/v1/credits").json()["balance"] == 10


# -- admin API -------------------------------------------------------------------------------------


def test_admin_creates_accounts_with_no_credit_and_keys_that_work(service):
    with service.admin() as admin:
        account_id, key_id, key = make_account(admin, "Acme")
        assert key_id.startswith("key_") or key_id
        second = admin.post(f"/v1/admin/accounts/{account_id}/api_keys").json()
        assert second["key"] != key and second["id"] != key_id
    with service.client(key) as c, service.client(second["key"]) as c2:
        assert c.get("/v1/credits").json() == {"balance": 0, "entries": []}, "a new account starts with none"
        asset = c.post("/v1/assets", json={"kind": "audio", "filename": "a.mp3"}).json()
        # both keys are the same account; the first account cannot see it
        assert c2.get(f"/v1/assets/{asset['id']}").status_code == 200
        with service.client() as first:
            assert first.get(f"/v1/assets/{asset['id']}").status_code == 404
            assert first.get("/v1/credits").json()["balance"] == 10


def test_admin_grant_is_a_ledger_entry_the_account_sees(service):
    with service.admin() as admin:
        account_id, _, key = make_account(admin, "grantee")
        resp = admin.post(f"/v1/admin/accounts/{account_id}/credits", json={"amount": 5, "reason": "trial"})
        assert resp.status_code == 201, resp.text
        entry = resp.json()
        check_entry(entry)
        assert (entry["type"], entry["amount"], entry["reason"], entry["asset_id"]) == ("grant", 5, "trial", None)
        no_reason = admin.post(f"/v1/admin/accounts/{account_id}/credits", json={"amount": 2})
        assert no_reason.status_code == 201 and no_reason.json()["reason"], "a default reason is recorded"
    with service.client(key) as c:
        body = c.get("/v1/credits").json()
        assert body["balance"] == 7
        assert {e["id"] for e in body["entries"]} == {entry["id"], no_reason.json()["id"]}
    with service.client() as first:
        assert first.get("/v1/credits").json()["balance"] == 10, "another account's grant is not mine"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": -5}, "amount"),
        ({"amount": "5"}, "amount"),
        ({"amount": 1.5}, "amount"),
        ({}, "amount"),
        ({"amount": 1, "note": "x"}, "note"),
    ],
)
def test_invalid_grants_are_422(service, body, param):
    with service.admin() as admin:
        resp = admin.post(f"/v1/admin/accounts/{service.account_id}/credits", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == resp.json()["error"] | {"code": "validation_error", "param": param}
    with service.client() as c:
        assert c.get("/v1/credits").json()["balance"] == 10


def test_admin_on_unknown_accounts_and_keys_is_404(service):
    with service.admin() as admin:
        for resp in (
            admin.post("/v1/admin/accounts/acct_missing/api_keys"),
            admin.post("/v1/admin/accounts/acct_missing/credits", json={"amount": 1}),
            admin.delete("/v1/admin/api_keys/key_missing"),
        ):
            assert resp.status_code == 404, resp.text
            assert resp.json()["error"]["code"] == "not_found"
        bad = admin.post("/v1/admin/accounts", json={"name": ""})
        assert bad.status_code == 422 and bad.json()["error"]["param"] == "name"
        assert admin.post("/v1/admin/accounts", json={}).json()["error"]["param"] == "name"


def test_admin_requires_the_admin_key(service):
    paths = [
        ("POST", "/v1/admin/accounts", {"name": "x"}),
        ("POST", f"/v1/admin/accounts/{service.account_id}/api_keys", None),
        ("POST", f"/v1/admin/accounts/{service.account_id}/credits", {"amount": 1}),
        ("DELETE", "/v1/admin/api_keys/key_x", None),
    ]
    with httpx.Client(base_url=service.url) as h:
        for auth in (None, f"Bearer {service.key}", "Bearer not-the-admin-key", f"Bearer {ADMIN_KEY}x"):
            headers = {"Authorization": auth} if auth else {}
            for method, path, body in paths:
                resp = h.request(method, path, json=body, headers=headers)
                # refused: 401, or 429 once this address has guessed too often (the next test)
                assert resp.status_code in (401, 429), (auth, path, resp.text)
                assert resp.json()["error"]["code"] in ("unauthorized", "rate_limited")
    # nothing happened: no grant, and the admin key is not an account key either
    with service.client() as c:
        assert c.get("/v1/credits").json()["balance"] == 10
    resp = httpx.get(service.url + "/v1/credits", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert resp.status_code in (401, 429), "refused (429: this address has failed too often just now)"


def test_guessing_the_admin_key_is_slowed_down(service):
    """While an address is slowed down it is refused before its key is compared: a right guess
    among wrong ones is not told apart. After the wait the right key works again."""
    with httpx.Client(base_url=service.url, headers={"Authorization": "Bearer guess"}) as h:
        answers = [h.post("/v1/admin/accounts", json={"name": "x"}) for _ in range(10)]
    assert [r.status_code for r in answers[:2]] == [401, 401], "a typo or two is only a 401"
    limited = [r for r in answers if r.status_code == 429]
    assert len(limited) >= 7 and all(int(r.headers["Retry-After"]) >= 1 for r in limited)
    with service.admin() as admin:
        slowed = admin.post("/v1/admin/accounts", json={"name": "ok"})
        assert slowed.status_code == 429, "even the right key waits its turn"
        time.sleep(int(slowed.headers["Retry-After"]) + 0.2)
        assert admin.post("/v1/admin/accounts", json={"name": "ok"}).status_code == 201
    with httpx.Client(base_url=service.url, headers={"Authorization": "Bearer rk_guess"}) as h:
        assert {h.get("/v1/assets").status_code for _ in range(10)} == {401}, "API keys are random: no limit"


def test_revoking_one_key_leaves_the_others(service):
    with service.admin() as admin:
        account_id, key_id, key = make_account(admin, "two keys")
        other = admin.post(f"/v1/admin/accounts/{account_id}/api_keys").json()
        assert admin.delete(f"/v1/admin/api_keys/{key_id}").status_code == 204
    assert httpx.get(service.url + "/v1/credits", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    ok = httpx.get(service.url + "/v1/credits", headers={"Authorization": f"Bearer {other['key']}"})
    assert ok.status_code == 200


@pytest.mark.embedded_only("reads the SQLite file for plaintext keys")
def test_keys_are_stored_hashed(service):
    with service.admin() as admin:
        _, _, key = make_account(admin, "hashed")
    data_dir = Path(service.embedded.settings.data_dir)
    for path in data_dir.glob("roughy.db*"):
        assert key.encode() not in path.read_bytes(), f"the plaintext key is in {path.name}"
    assert service.key.encode() not in (data_dir / "roughy.db").read_bytes()


def test_admin_api_is_off_without_an_admin_key(tmp_path):
    svc = start_without_admin(tmp_path / "noadmin")
    try:
        with httpx.Client(base_url=svc.url) as h:
            for auth in (None, f"Bearer {ADMIN_KEY}", f"Bearer {svc.key}"):
                headers = {"Authorization": auth} if auth else {}
                resp = h.post("/v1/admin/accounts", json={"name": "x"}, headers=headers)
                assert resp.status_code == 404, resp.text
                assert resp.json()["error"]["code"] == "not_found"
                resp = h.post(f"/v1/admin/accounts/{svc.account_id}/credits", json={"amount": 5}, headers=headers)
                assert resp.status_code == 404
        with svc.client() as c:
            assert c.get("/v1/credits").json()["balance"] == 3, "no grant went through; the API still works"
    finally:
        svc.stop()


def test_admin_api_answers_when_enabled_on_a_fresh_service(tmp_path):
    svc = start_service(tmp_path / "fresh", starter_credits=0)
    try:
        with svc.client() as c:
            assert c.get("/v1/credits").json() == {"balance": 0, "entries": []}, "0 starter credits: no grant"
        with svc.admin() as admin:
            resp = admin.post(f"/v1/admin/accounts/{svc.account_id}/credits", json={"amount": 1, "reason": "r"})
            assert resp.status_code == 201
        with svc.client() as c:
            assert c.get("/v1/credits").json()["balance"] == 1
    finally:
        svc.stop()
