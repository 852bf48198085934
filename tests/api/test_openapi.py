"""The OpenAPI document is one a client can be generated from, and it tells the truth: valid,
named operations, examples, the error codes each operation really answers with, headers,
security, the signed-URL routes' binary bodies, documentation pages that need no CDN, and a
client generated from it (openapi-python-client) that uploads, renders and downloads."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from openapi_spec_validator import validate

from roughy.api import examples, schemas
from roughy.api.openapi import TAGS
from roughy.core.errors import ErrorCode
from tests.conftest import Service, start_service, wait_for

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = start_service(tmp_path_factory.mktemp("openapi") / "data")
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def doc(running: Service) -> dict[str, Any]:
    resp = httpx.get(running.url + "/openapi.json")
    assert resp.status_code == 200
    return resp.json()  # type: ignore[no-any-return]


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return doc["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else schema


def test_the_document_is_valid_openapi(doc: dict[str, Any]) -> None:
    validate(doc)
    assert doc["openapi"].startswith("3.1")


def test_operations_are_named_after_their_function_and_tagged_with_described_tags(doc: dict[str, Any]) -> None:
    described = {t["name"] for t in doc["tags"] if t.get("description")}
    assert described == {t["name"] for t in TAGS}
    ids = []
    for path, method, operation in operations(doc):
        ids.append(operation["operationId"])
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", operation["operationId"]), (path, method, operation["operationId"])
        assert set(operation["tags"]) <= described, (path, method)
    assert len(ids) == len(set(ids))
    assert {"create_render", "get_render", "cancel_render", "create_asset", "upload_part", "download_file"} <= set(ids)
    assert "/internal/" not in str(doc["paths"]), "the encoder pods' channel is not public"


def test_every_request_and_answer_has_an_example(doc: dict[str, Any]) -> None:
    for path, method, operation in operations(doc):
        where = f"{method.upper()} {path}"
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            assert resolve(doc, body["schema"]).get("examples"), f"{where}: request body"
        for status, response in operation["responses"].items():
            content = response.get("content", {}).get("application/json")
            if content is None:
                continue
            if status.startswith("2") or "schema" not in content:  # a probe's answer
                assert content.get("example") or resolve(doc, content["schema"]).get("examples"), f"{where} {status}"
            else:
                codes = content["schema"]["properties"]["error"]["properties"]["code"]["enum"]
                assert sorted(content["examples"]) == sorted(codes), f"{where} {status}"
                for code, example in content["examples"].items():
                    assert example["value"]["error"]["code"] == code


@pytest.mark.parametrize("name", sorted(examples.EXAMPLES))
def test_each_example_is_what_the_service_accepts_or_answers(name: str) -> None:
    model = getattr(schemas, name)
    for example in examples.EXAMPLES[name]:
        parsed = model.model_validate(example)
        assert parsed.model_dump(mode="json", exclude_unset=True).keys() == example.keys()


def test_each_operation_lists_its_error_codes_with_their_statuses(doc: dict[str, Any]) -> None:
    def codes(path: str, method: str) -> dict[str, list[str]]:
        responses = doc["paths"][path][method]["responses"]
        return {
            status: r["content"]["application/json"]["schema"]["properties"]["error"]["properties"]["code"]["enum"]
            for status, r in responses.items()
            if status[0] in "45" and "schema" in r["content"].get("application/json", {})
        }

    create = codes("/v1/renders", "post")
    assert set(create["409"]) == {"asset_not_ready", "asset_processing", "asset_payment_required", "asset_failed",
                                  "modifier_not_ready"}  # fmt: skip
    assert (
        create["404"] == ["not_found"] and create["422"] == ["validation_error"] and create["401"] == ["unauthorized"]
    )
    assert create["429"] == ["rate_limited"] and create["503"] == ["executor_unavailable"]
    assert "409" not in codes("/v1/renders/{render_id}", "get")
    assert codes("/v1/assets/{asset_id}/cuts", "post")["409"] == [
        "asset_processing", "asset_payment_required", "asset_failed", "idempotency_key_in_use"
    ]  # fmt: skip
    for path, method, _ in operations(doc):
        for status, listed in codes(path, method).items():
            assert all(ErrorCode(c).status == int(status) for c in listed), (path, method, status)


def test_headers_and_security_are_documented(doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert schemes["ApiKey"]["scheme"] == schemes["AdminKey"]["scheme"] == "bearer"
    for path, method, operation in operations(doc):
        where = f"{method.upper()} {path}"
        for status, response in operation["responses"].items():
            assert "X-Request-Id" in response.get("headers", {}), f"{where} {status}"
            if status in ("429", "503") and path.startswith("/v1/"):
                assert "Retry-After" in response["headers"], f"{where} {status}"
        if path.startswith("/v1/admin/"):
            assert operation["security"] == [{"AdminKey": []}], where
        elif path.startswith(("/v1/uploads/", "/v1/files/")):
            assert operation["security"] == [], f"{where}: authorised by its signature"
        elif path.startswith("/v1/"):
            assert operation["security"] == [{"ApiKey": []}], where
    for path in ("/v1/assets", "/v1/assets/{asset_id}/cuts"):
        headers = [p for p in doc["paths"][path]["post"]["parameters"] if p["in"] == "header"]
        assert [h["name"] for h in headers] == ["Idempotency-Key"], path


def test_the_signed_url_routes_take_and_give_binary_bodies(doc: dict[str, Any]) -> None:
    upload = doc["paths"]["/v1/uploads/assets/{asset_id}/uploads/{part}"]["put"]
    binary = {"schema": {"type": "string", "format": "binary"}}
    assert upload["requestBody"]["content"] == {"application/octet-stream": binary}
    assert {p["name"] for p in upload["parameters"]} >= {"expires", "sig"}
    download = doc["paths"]["/v1/files/{key}"]["get"]
    for status in ("200", "206"):
        content = download["responses"][status]["content"]
        assert "application/json" not in content
        assert {"video/mp4", "audio/mpeg", "image/jpeg"} <= set(content)
        assert all(c == binary for c in content.values())


def test_the_documentation_pages_load_everything_from_the_service(running: Service) -> None:
    for page in ("/docs", "/redoc"):
        resp = httpx.get(running.url + page)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
        urls = re.findall(r"""(?:src|href|spec-url)=["']([^"']+)["']|url: ?["']([^"']+)["']""", resp.text)
        urls = [a or b for a, b in urls]
        assert "/openapi.json" in urls, (page, urls)
        assert not [u for u in urls if "//" in u], f"{page} reaches outside the service: {urls}"
        for url in urls:
            asset = httpx.get(running.url + url)
            assert asset.status_code == 200 and len(asset.content) > 1000, url
    assert httpx.get(running.url + "/docs/static/..%2Froughy.db").status_code == 404


def test_errors_carry_the_request_id_and_a_link_to_their_code(service: Any) -> None:
    """Every error body, from the edge (401) and from the routes (404, 422, 400, 409), has the
    request id of its X-Request-Id header and a doc_url whose page explains the code."""
    client = service.client()
    asset = client.post("/v1/assets", json={"kind": "video", "filename": "a.mp4"}).json()
    answers = [
        (httpx.get(service.url + "/v1/assets"), 401, "unauthorized"),
        (client.get("/v1/assets/ast_nope"), 404, "not_found"),
        (client.get("/v1/renders", params={"limit": 0}), 422, "validation_error"),
        (client.post("/v1/renders", content=b"{", headers={"Content-Type": "application/json"}), 400, "bad_request"),
        (client.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "mp4"}}), 409,
         "asset_not_ready"),
        (client.get("/v1/renders", headers={"X-Request-Id": "my-trace-1"}, params={"state": "x"}), 422,
         "validation_error"),
    ]  # fmt: skip
    page = httpx.get(service.url + "/docs/errors")
    assert page.status_code == 200
    for resp, status, code in answers:
        assert resp.status_code == status, resp.text
        error = resp.json()["error"]
        assert error["code"] == code
        assert error["request_id"] == resp.headers["X-Request-Id"]
        assert error["doc_url"] == f"{service.url}/docs/errors#{code}"
        assert f'id="{code}"' in page.text
    assert answers[-1][0].json()["error"]["request_id"] == "my-trace-1"
    assert set(re.findall(r'<tr id="([a-z_]+)"', page.text)) == {c.value for c in ErrorCode}


# -- a generated client -----------------------------------------------------------------------

#: The generator wants one binary type per response: the download's media types are bytes.
GENERATOR_CONFIG = """\
project_name_override: roughy_generated
package_name_override: roughy_generated
content_type_overrides:
  video/mp4: application/octet-stream
  video/quicktime: application/octet-stream
  audio/mp4: application/octet-stream
  audio/mpeg: application/octet-stream
  image/jpeg: application/octet-stream
"""


@pytest.fixture(scope="module")
def generated(running: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """openapi-python-client's package for /openapi.json, imported."""
    generator = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent))
    assert generator, "openapi-python-client is in the dev extra"
    root = tmp_path_factory.mktemp("generated")
    (root / "config.yaml").write_text(GENERATOR_CONFIG)
    (root / "openapi.json").write_bytes(httpx.get(running.url + "/openapi.json").content)
    out = subprocess.run(
        [generator, "generate", "--path", "openapi.json", "--config", "config.yaml", "--meta", "none",
         "--output-path", "roughy_generated"],
        cwd=root, capture_output=True, text=True, timeout=120,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "WARNING" not in out.stdout + out.stderr, out.stdout + out.stderr
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("roughy_generated")
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.startswith("roughy_generated")]:
            del sys.modules[name]


def test_a_generated_client_uploads_renders_and_downloads(running: Service, generated: Any, clip: Path) -> None:
    api = importlib.import_module("roughy_generated.api")
    models = importlib.import_module("roughy_generated.models")
    types = importlib.import_module("roughy_generated.types")
    ops = {name: importlib.import_module(f"roughy_generated.api.{tag}.{name}")
           for tag in ("assets", "renders", "files") for name in _modules(api, tag)}  # fmt: skip
    client = generated.AuthenticatedClient(base_url=running.url, token=running.key)

    missing = ops["get_asset"].sync(client=client, asset_id="ast_missing")
    assert type(missing).__name__ == "GetAssetNotFoundError"
    assert missing.error.code.value == "not_found" and missing.error.request_id.startswith("req_")

    body = models.AssetCreate(kind=models.AssetKind.VIDEO, filename=clip.name)
    asset = ops["create_asset"].sync(client=client, body=body, idempotency_key="generated-1")
    assert isinstance(asset, models.AssetOut) and asset.state.value == "uploading"
    target = urlsplit(asset.upload["video"].url)
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    with clip.open("rb") as f:
        put = ops["upload_part"].sync_detailed(
            client=generated.Client(base_url=running.url), asset_id=asset.id, part=models.PartName.VIDEO,
            body=types.File(payload=f), expires=int(query["expires"]), sig=query["sig"],
        )  # fmt: skip
    assert put.status_code == 200, put.content
    ops["complete_part"].sync(client=client, asset_id=asset.id, part=models.PartName.VIDEO)
    wait_for(lambda: ops["get_asset"].sync(client=client, asset_id=asset.id).to_dict(), lambda a: a["state"] == "ready")

    output = models.OutputIn(format_=models.Format.MP3)
    render = ops["create_render"].sync(client=client, body=models.RenderCreate(asset_id=asset.id, output=output))
    assert isinstance(render, models.RenderOut), render
    deadline = time.monotonic() + 60
    while (render := ops["get_render"].sync(client=client, render_id=render.id)).state.value != "completed":
        assert render.state.value != "failed" and time.monotonic() < deadline, render
        time.sleep(0.1)
    url = urlsplit(render.download_url)
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    got = ops["download_file"].sync_detailed(
        client=generated.Client(base_url=running.url), key=url.path.removeprefix("/v1/files/"),
        expires=int(query["expires"]), sig=query["sig"], filename=query.get("filename", types.UNSET),
    )  # fmt: skip
    assert got.status_code == 200 and len(got.content) == render.result.size_bytes
    assert got.content[:3] == b"ID3" or got.content[0] == 0xFF, "an MP3"


def _modules(api: Any, tag: str) -> list[str]:
    folder = Path(api.__file__).parent / tag
    return [p.stem for p in folder.glob("*.py") if p.stem != "__init__"]
