"""API conventions (SPEC 2): auth, tenancy, error envelope, request ids, lists, limits, health.

Everything goes through the real service over real HTTP; no media processing is needed here.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Service, start_service

PROTECTED = [
    ("GET", "/v1/assets"),
    ("POST", "/v1/assets"),
    ("GET", "/v1/assets/ast_whatever"),
    ("GET", "/v1/credits"),
    ("GET", "/v1/renders"),
    ("GET", "/v1/cuts/cut_whatever"),
]


def assert_error(resp: httpx.Response, status: int, code: str, param: str | None = None) -> dict:
    """The SPEC's envelope: {"error": {"code", "message", "param"?}}, plus the request's id and
    the code's documentation (issue 11), and nothing else."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) - {"param"} == {"code", "message", "request_id", "doc_url"}, err
    assert err["request_id"] == resp.headers["x-request-id"]
    assert err["doc_url"].endswith(f"/docs/errors#{code}"), err
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"].strip(), err
    if param is not None:
        assert err.get("param") == param, err
    assert resp.headers.get("x-request-id"), "every response carries X-Request-Id"
    return err


def new_account(service: Service, name: str = "other") -> tuple[str, str, str]:
    """(account_id, key_id, key) made through the admin API."""
    with service.admin() as admin:
        acct = admin.post("/v1/admin/accounts", json={"name": name})
        assert acct.status_code == 201, acct.text
        key = admin.post(f"/v1/admin/accounts/{acct.json()['id']}/api_keys")
        assert key.status_code == 201, key.text
    return acct.json()["id"], key.json()["id"], key.json()["key"]


def new_asset(api: httpx.Client, name: str = "a.mp4") -> dict:
    resp = api.post("/v1/assets", json={"kind": "video", "filename": name})
    assert resp.status_code == 201, resp.text
    return resp.json()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory):
    """One service for the stateless checks below (requests that must not create anything)."""
    svc = start_service(tmp_path_factory.mktemp("shared") / "data")
    yield svc
    svc.stop()


@pytest.fixture
def shared_api(shared: Service):
    with shared.client() as client:
        yield client
    # whatever a test here sent, nothing was created
    with shared.client() as client:
        assert client.get("/v1/assets").json()["data"] == []


# -- auth ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_missing_key_is_401(shared, method, path):
    resp = httpx.request(method, shared.url + path, json={"kind": "video", "filename": "x.mp4"})
    assert_error(resp, 401, "unauthorized")


def test_unknown_and_malformed_keys_are_401(service):
    for header in ("Bearer rk_not_a_real_key", "Bearer", "Basic dXNlcjpwYXNz", service.key):
        resp = httpx.get(service.url + "/v1/assets", headers={"Authorization": header})
        assert_error(resp, 401, "unauthorized")


def test_revoked_key_is_401_at_once(service):
    account_id, key_id, key = new_account(service, "to revoke")
    with service.client(key) as c:
        assert c.get("/v1/assets").status_code == 200
        with service.admin() as admin:
            assert admin.delete(f"/v1/admin/api_keys/{key_id}").status_code == 204
            # revoking twice: the key is no longer an active key
            assert_error(admin.delete(f"/v1/admin/api_keys/{key_id}"), 404, "not_found")
        assert_error(c.get("/v1/assets"), 401, "unauthorized")
        assert_error(c.get("/v1/credits"), 401, "unauthorized")


def test_auth_is_checked_before_the_body(service):
    resp = httpx.post(service.url + "/v1/assets", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(resp, 401, "unauthorized")
    resp = httpx.post(
        service.url + "/v1/assets",
        content=b"{not json",
        headers={"Content-Type": "application/json", "Authorization": "Bearer nope"},
    )
    assert_error(resp, 401, "unauthorized")


# -- tenancy ---------------------------------------------------------------------------------------


def _same_shape(a: dict, b: dict, ids: tuple[str, str]) -> None:
    """Two error bodies that are identical once each mentions its own id."""
    assert a["error"]["message"].replace(ids[0], "ID") == b["error"]["message"].replace(ids[1], "ID")
    assert {k: v for k, v in a["error"].items() if k not in ("message", "request_id")} == {
        k: v for k, v in b["error"].items() if k not in ("message", "request_id")
    }


def test_another_accounts_asset_and_cut_answer_as_missing_ones(service, api):
    mine = new_asset(api)
    _, _, other_key = new_account(service)
    with service.client(other_key) as other:
        theirs = new_asset(other, "theirs.mp4")
        # their list does not show mine, mine does not show theirs
        assert [a["id"] for a in other.get("/v1/assets").json()["data"]] == [theirs["id"]]
        assert [a["id"] for a in api.get("/v1/assets").json()["data"]] == [mine["id"]]
        missing = "ast_doesnotexist0000"
        for method, suffix, body in (
            ("GET", "", None),
            ("DELETE", "", None),
            ("POST", "/parts/video/complete", None),
            ("GET", "/cuts", None),
            ("POST", "/cuts", {"segments": [{"start": 0, "end": 1}]}),
        ):
            foreign = other.request(method, f"/v1/assets/{mine['id']}{suffix}", json=body)
            absent = other.request(method, f"/v1/assets/{missing}{suffix}", json=body)
            assert_error(foreign, 404, "not_found")
            assert_error(absent, 404, "not_found")
            _same_shape(foreign.json(), absent.json(), (mine["id"], missing))
        # a render naming another account's asset: 404 with param asset_id, like a missing one
        foreign = other.post("/v1/renders", json={"asset_id": mine["id"], "output": {"format": "mp3"}})
        absent = other.post("/v1/renders", json={"asset_id": missing, "output": {"format": "mp3"}})
        assert_error(foreign, 404, "not_found", param="asset_id")
        _same_shape(foreign.json(), absent.json(), (mine["id"], missing))
    # and mine is untouched by their DELETE attempt
    assert api.get(f"/v1/assets/{mine['id']}").status_code == 200


def test_another_accounts_cut_answers_as_a_missing_one(service, api):
    # A cut row is made directly in the store (cuts need a processed asset; this test is about
    # the lookup only): the owner can read it, another account cannot tell it exists.
    from roughy.core.ids import new_id, now
    from roughy.core.models import Cut, CutMethod, CutState, Segment

    asset = new_asset(api)
    cut = Cut(
        id=new_id("cut"),
        account_id=service.account_id,
        asset_id=asset["id"],
        state=CutState.PENDING,
        method=CutMethod.SEGMENTS,
        created_at=now(),
        segments=[Segment(0.0, 1.0)],
    )
    service.store.insert_cut(cut)
    assert api.get(f"/v1/cuts/{cut.id}").json()["id"] == cut.id
    _, _, other_key = new_account(service)
    missing = "cut_doesnotexist0000"
    with service.client(other_key) as other:
        for method in ("GET", "DELETE"):
            foreign = other.request(method, f"/v1/cuts/{cut.id}")
            absent = other.request(method, f"/v1/cuts/{missing}")
            assert_error(foreign, 404, "not_found")
            _same_shape(foreign.json(), absent.json(), (cut.id, missing))
    assert api.get(f"/v1/cuts/{cut.id}").status_code == 200


# -- body, validation, envelope --------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"", b"\xff\xfe", b'{"kind": "video",'],
    ids=["garbage", "empty", "not-utf8", "truncated"],
)
def test_non_json_body_is_400(shared_api, content):
    resp = shared_api.post("/v1/assets", content=content, headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "bad_request")


@pytest.mark.parametrize("body", [[], [1, 2], "video", 3, None, True], ids=repr)
def test_non_object_json_body_is_400(shared_api, body):
    import json

    resp = shared_api.post("/v1/assets", content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "bad_request")


def test_json_body_without_json_content_type_is_still_judged_as_json(api):
    resp = api.post("/v1/assets", content=b"kind=video", headers={"Content-Type": "text/plain"})
    assert resp.status_code in (400, 415, 422), resp.text
    assert resp.json()["error"]["code"] in ("bad_request", "validation_error")
    assert api.get("/v1/assets").json()["data"] == [], "nothing was created"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"kind": "video", "filename": "a.mp4", "colour": "red"}, "colour"),
        ({"kind": "picture", "filename": "a.mp4"}, "kind"),
        ({"kind": "video", "filename": 5}, "filename"),
        ({"kind": "video", "filename": "a.mp4", "client_audio": "yes"}, "client_audio"),
        ({"kind": "video"}, "filename"),
        ({"kind": "video", "filename": ""}, "filename"),
        ({"kind": "audio", "filename": "a.mp3", "client_audio": True}, "client_audio"),
    ],
)
def test_invalid_asset_bodies_are_422_with_param(shared_api, body, param):
    resp = shared_api.post("/v1/assets", json=body)
    assert_error(resp, 422, "validation_error", param=param)


def test_unknown_route_is_404_envelope(api):
    assert_error(api.get("/v1/nothing-here"), 404, "not_found")


# -- request ids -----------------------------------------------------------------------------------


def test_every_response_carries_a_request_id_and_echoes_the_clients(service, api):
    responses = [
        api.get("/v1/assets"),
        api.post("/v1/assets", json={"kind": "video", "filename": "a.mp4"}),
        api.get("/v1/assets/ast_missing"),
        api.post("/v1/assets", json={"nope": 1}),
        api.post("/v1/assets", content=b"x", headers={"Content-Type": "application/json"}),
        httpx.get(service.url + "/v1/assets"),
        httpx.get(service.url + "/healthz"),
        httpx.get(service.url + "/metrics"),
        httpx.get(service.url + "/openapi.json"),
        httpx.put(service.url + "/v1/uploads/assets/ast_x/video?expires=1&sig=bad", content=b"x"),
    ]
    ids = [r.headers.get("x-request-id") for r in responses]
    assert all(ids), [(r.request.url, r.status_code) for r in responses if not r.headers.get("x-request-id")]
    assert len(set(ids)) == len(ids), "each request gets its own id"
    for r in responses:
        assert len(r.headers.get_list("x-request-id")) == 1, r.headers

    mine = "client-chosen-id-123"
    echoed = api.get("/v1/assets/ast_missing", headers={"X-Request-Id": mine})
    assert echoed.status_code == 404
    assert echoed.headers["x-request-id"] == mine
    unauth = httpx.get(service.url + "/v1/assets", headers={"X-Request-Id": mine})
    assert unauth.status_code == 401 and unauth.headers["x-request-id"] == mine


# -- lists -----------------------------------------------------------------------------------------


def test_lists_page_newest_first_with_limit_and_starting_after(api):
    created = [new_asset(api, f"a{i}.mp4")["id"] for i in range(25)]
    newest_first = list(reversed(created))

    page = api.get("/v1/assets").json()
    assert page["object"] == "list"
    assert [a["id"] for a in page["data"]] == newest_first[:20], "default limit is 20, newest first"
    assert page["has_more"] is True

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 7} | ({"starting_after": cursor} if cursor else {})
        resp = api.get("/v1/assets", params=params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert len(body["data"]) <= 7
        seen += [a["id"] for a in body["data"]]
        if not body["has_more"]:
            break
        cursor = body["data"][-1]["id"]
    assert seen == newest_first, "walking the pages sees every asset once, in order"

    last = api.get("/v1/assets", params={"limit": 5, "starting_after": newest_first[19]}).json()
    assert [a["id"] for a in last["data"]] == newest_first[20:]
    assert last["has_more"] is False
    exact = api.get("/v1/assets", params={"limit": 25}).json()
    assert len(exact["data"]) == 25 and exact["has_more"] is False
    assert len(api.get("/v1/assets", params={"limit": 100}).json()["data"]) == 25
    assert api.get("/v1/assets", params={"limit": 1}).json()["data"][0]["id"] == created[-1]


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5"])
def test_list_limit_out_of_range_is_422_with_param(shared_api, limit):
    for path in ("/v1/assets", "/v1/renders"):
        assert_error(shared_api.get(path, params={"limit": limit}), 422, "validation_error", param="limit")


# -- documents and operations ----------------------------------------------------------------------


def test_openapi_lists_the_v1_paths(service):
    resp = httpx.get(service.url + "/openapi.json")
    assert resp.status_code == 200
    paths = resp.json()["paths"]
    for path in (
        "/v1/assets",
        "/v1/assets/{asset_id}",
        "/v1/assets/{asset_id}/parts/{part}/complete",
        "/v1/assets/{asset_id}/cuts",
        "/v1/cuts/{cut_id}",
        "/v1/renders",
        "/v1/renders/{render_id}",
        "/v1/credits",
    ):
        assert path in paths, (path, sorted(paths))
    assert "post" in paths["/v1/assets"] and "get" in paths["/v1/assets"]
    assert "delete" in paths["/v1/assets/{asset_id}"]


def test_openapi_documents_the_error_envelope_the_service_sends(service):
    """A client generated from /openapi.json must parse the errors it gets: the document must
    describe {"error": {...}}, not FastAPI's default {"detail": [...]} validation body."""
    doc = httpx.get(service.url + "/openapi.json").json()
    assert "HTTPValidationError" not in doc.get("components", {}).get("schemas", {})
    create = doc["paths"]["/v1/assets"]["post"]["responses"]
    for status in ("401", "422"):
        assert status in create, sorted(create)
        schema = create[status]["content"]["application/json"]["schema"]
        assert list(schema["properties"]) == ["error"], schema
        assert set(schema["properties"]["error"]["required"]) == {"code", "message", "request_id", "doc_url"}
    assert "404" in doc["paths"]["/v1/assets/{asset_id}"]["get"]["responses"]


def test_health_and_readiness(service):
    for path in ("/healthz", "/readyz"):
        resp = httpx.get(service.url + path)
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "ok"


def test_metrics_expose_renders_and_queue_depth(service):
    resp = httpx.get(service.url + "/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    assert re.search(r'^roughy_renders\{state="pending"\} 0(\.0)?$', text, re.M), text
    assert re.search(r"^roughy_queue_depth 0(\.0)?$", text, re.M), text
    # labelled (format, tier, encoder): a series appears with its first encode, the family at once
    assert "# TYPE roughy_encode_seconds histogram" in text, "encode seconds are exported"
    for state in ("running", "completed", "failed"):
        assert f'roughy_renders{{state="{state}"}}' in text
    assert re.search(r'^roughy_build_info\{python="[0-9.]+",version="[0-9a-z.+-]+"\} 1(\.0)?$', text, re.M), text


def test_probes_are_logged_at_debug_and_everything_else_at_info(service, api, caplog):
    def levels() -> dict[str, int]:
        return {r.getMessage().split(" ")[1]: r.levelno for r in caplog.records if r.getMessage().startswith("GET ")}

    with caplog.at_level(logging.DEBUG, logger="roughy.api"):
        httpx.get(service.url + "/readyz")
        api.get("/v1/credits")
        # The line is written once the answer is sent: it may come just after the client has it.
        deadline = time.monotonic() + 5
        while len(levels()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert levels() == {"/readyz": logging.DEBUG, "/v1/credits": logging.INFO}, levels()


def test_a_bug_is_500_internal_error_with_the_request_id_and_no_traceback(service, api, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("secret internals at /srv/roughy/db")

    monkeypatch.setattr(service.store, "ledger_entries", broken)
    resp = api.get("/v1/credits", headers={"X-Request-Id": "req-for-support"})
    err = assert_error(resp, 500, "internal_error")
    assert "req-for-support" in err["message"], "the message carries the request id"
    assert "secret" not in resp.text and "Traceback" not in resp.text and "RuntimeError" not in resp.text
    # the service keeps serving
    monkeypatch.undo()
    assert api.get("/v1/credits").status_code == 200


# -- limits ----------------------------------------------------------------------------------------


@pytest.fixture
def small_body_service(tmp_path: Path):
    svc = start_service(tmp_path / "small", max_body_bytes=200)
    yield svc
    svc.stop()


def test_json_body_over_the_limit_is_413(small_body_service):
    svc = small_body_service
    with svc.client() as c:
        big = {"kind": "video", "filename": "x" * 250 + ".mp4"}
        assert_error(c.post("/v1/assets", json=big), 413, "payload_too_large")
        ok = c.post("/v1/assets", json={"kind": "video", "filename": "small.mp4"})
        assert ok.status_code == 201, ok.text
        assert [a["filename"] for a in c.get("/v1/assets").json()["data"]] == ["small.mp4"]
    # auth comes first: without a valid key an oversized body is still a 401
    for headers in ({}, {"Authorization": "Bearer nope"}):
        resp = httpx.post(svc.url + "/v1/assets", json=big, headers=headers)
        assert_error(resp, 401, "unauthorized")


def test_chunked_json_body_over_the_limit_is_413(small_body_service):
    """Without Content-Length (chunked transfer) the limit must still hold."""
    svc = small_body_service
    payload = b'{"kind": "video", "filename": "' + b"y" * 5000 + b'.mp4"}'

    def chunks():
        for i in range(0, len(payload), 100):
            yield payload[i : i + 100]

    with svc.client() as c:
        resp = c.post("/v1/assets", content=chunks(), headers={"Content-Type": "application/json"})
        assert_error(resp, 413, "payload_too_large")
        assert c.get("/v1/assets").json()["data"] == []
        # a small chunked body still works
        small = b'{"kind": "audio", "filename": "s.mp3"}'
        ok = c.post("/v1/assets", content=iter([small]), headers={"Content-Type": "application/json"})
        assert ok.status_code == 201, ok.text


def test_over_the_rate_is_429_with_retry_after(tmp_path):
    svc = start_service(tmp_path / "rl", rate_limit_per_second=1.0)
    try:
        _, _, other_key = new_account(svc)
        with svc.client() as c, svc.client(other_key) as other:
            statuses = []
            limited = None
            for _ in range(20):
                resp = c.get("/v1/credits")
                statuses.append(resp.status_code)
                if resp.status_code == 429:
                    limited = resp
                    break
            assert limited is not None, f"a burst of 20 at 1/s must be limited: {statuses}"
            assert statuses[0] == 200
            assert_error(limited, 429, "rate_limited")
            retry_after = limited.headers.get("retry-after")
            assert retry_after and retry_after.isdigit() and 1 <= int(retry_after) <= 5
            # the limit is per key/account: another account is not affected
            assert other.get("/v1/credits").status_code == 200
            # and after waiting as told, the client gets through again
            time.sleep(int(retry_after))
            assert c.get("/v1/credits").status_code == 200
    finally:
        svc.stop()


def test_a_long_or_odd_request_id_is_replaced_not_echoed(service):
    for sent in ("x" * 8000, "abc\u00e9def", "a b", ""):
        resp = httpx.get(service.url + "/healthz", headers={"X-Request-Id": sent.encode("utf-8")})
        got = resp.headers["x-request-id"]
        assert got != sent and got.startswith("req_") and len(got) <= 64
    kept = httpx.get(service.url + "/healthz", headers={"X-Request-Id": "trace-42.abc:1"})
    assert kept.headers["x-request-id"] == "trace-42.abc:1", "a short plain id is kept"
