"""The Render CRD: current on disk, structural, and accepting what the code writes.

No cluster here: the structural rules are checked by walking the schema (the rules of the
apiextensions.k8s.io/v1 docs, "Specifying a structural schema"), the field names against the
Kubernetes client's own models, and example objects with jsonschema after turning OpenAPI's
`nullable` into JSON Schema's null type.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from pydantic.alias_generators import to_camel

from roughy.core.models import Format, RenderResult, Resolution, Segment
from roughy.core.plan import EncodePlan
from roughy.core.signature import resource_name
from roughy.kube import crd
from roughy.kube.crd import PlanSpec, RenderSpec, RenderStatus, ResultStatus, dump_resource, render_crd, tier_of
from tests.kube_pure import examples
from tests.kube_pure.k8s_models import unknown_fields
from tests.strategies import plans

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "render.yaml"

#: Kubernetes refuses these in a CRD schema, or they are JSON Schema that OpenAPI 3.0 lacks.
FORBIDDEN = {
    "$ref", "$defs", "definitions", "$schema", "id", "allOf", "anyOf", "oneOf", "not", "const",
    "prefixItems", "patternProperties", "dependencies", "additionalItems", "discriminator", "examples", "title",
}  # fmt: skip
COLUMN_TYPES = {"integer", "number", "string", "boolean", "date"}
EXPECTED_COLUMNS = ["Render", "State", "Progress", "Reason", "Age"]  # then, with -o wide:
WIDE_COLUMNS = ["Message", "Asset", "Format", "Resolution", "Encoder"]


def openapi_schema() -> dict[str, Any]:
    schema: dict[str, Any] = render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path or ".", node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[*]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}.*")


# --- the file on disk -------------------------------------------------------------------------


def test_checked_in_crd_is_current() -> None:
    assert CRD_FILE.exists(), f"crds/render.yaml is missing: run `{crd.REGENERATE}`"
    on_disk = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    assert on_disk == render_crd(), f"crds/render.yaml is stale: run `{crd.REGENERATE}`"


def test_generator_prints_the_crd_as_yaml() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "roughy.kube.crd"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.startswith("# Generated")
    assert yaml.safe_load(out) == render_crd()


def test_builders_import_neither_kopf_nor_the_kubernetes_client() -> None:
    """They are pure: the API image and unit tests use them without a cluster library."""
    code = "import sys, roughy.kube.crd, roughy.kube.jobs; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for library in ("kopf", "kubernetes", "yaml", "boto3", "av"):
        assert f"'{library}'" not in loaded, library


# --- identity -------------------------------------------------------------------------------


def test_names_scope_and_version() -> None:
    doc = render_crd()
    assert doc["apiVersion"] == "apiextensions.k8s.io/v1"
    assert doc["kind"] == "CustomResourceDefinition"
    spec = doc["spec"]
    assert doc["metadata"]["name"] == f"{spec['names']['plural']}.{spec['group']}" == "renders.roughy.ai"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "Render"
    assert spec["names"]["shortNames"] and spec["names"]["categories"] == ["roughy"]
    [version] = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}


def test_crd_has_only_fields_the_kubernetes_api_knows() -> None:
    """Every key, schema keywords included, is a field of the client's v1 models: a typo or a
    JSON-Schema-only keyword would be dropped (or refused) by the API server."""
    assert unknown_fields(render_crd(), "V1CustomResourceDefinition") == []


# --- structural schema ----------------------------------------------------------------------


def test_every_node_has_a_type_and_no_forbidden_keyword() -> None:
    for path, node in walk(openapi_schema()):
        typed = (
            node.get("type")
            or node.get("x-kubernetes-preserve-unknown-fields")
            or node.get("x-kubernetes-int-or-string")
        )
        assert typed, f"{path} has no type"
        assert not FORBIDDEN & node.keys(), f"{path} uses {FORBIDDEN & node.keys()}"
        assert node.get("uniqueItems") is not True, path
        assert not ("properties" in node and "additionalProperties" in node), path
        assert isinstance(node.get("nullable", False), bool), path
        assert isinstance(node.get("exclusiveMinimum", False), bool), f"{path}: OpenAPI 3.0 wants a boolean"


def test_objects_name_their_fields() -> None:
    """An object with no properties prunes everything written into it; only metadata may."""
    for path, node in walk(openapi_schema()):
        if node.get("type") == "object" and path != ".metadata":
            assert node.get("properties") or node.get("x-kubernetes-preserve-unknown-fields"), path


def test_metadata_is_left_to_kubernetes_and_root_is_an_object() -> None:
    schema = openapi_schema()
    assert schema["type"] == "object"
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert "spec" in schema["required"]
    assert not any(node.get("x-kubernetes-preserve-unknown-fields") for _, node in walk(schema))


def test_required_fields_exist_and_defaults_fit_their_schema() -> None:
    for path, node in walk(openapi_schema()):
        assert set(node.get("required", [])) <= set(node.get("properties", {})), path
        if "default" in node:
            jsonschema.Draft4Validator(to_json_schema(node)).validate(node["default"])


def test_conditions_are_a_map_list_keyed_by_a_required_type() -> None:
    conditions = openapi_schema()["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert {"type", "status", "lastTransitionTime"} <= set(item["required"])
    assert {"type", "status", "reason", "message", "lastTransitionTime"} <= set(item["properties"])
    assert item["properties"]["lastTransitionTime"]["format"] == "date-time"


def test_spec_and_status_fields() -> None:
    props = openapi_schema()["properties"]
    spec, status = props["spec"]["properties"], props["status"]["properties"]
    assert {"renderId", "accountId", "assetId", "plan", "sources", "outputKey", "encoder"} <= set(spec)
    plan_fields = {"format", "duration", "video", "audio", "segments", "separateAudio", "videoDemuxer", "audioDemuxer"}
    assert plan_fields | {"chunks"} == set(spec["plan"]["properties"])
    assert set(spec["sources"]["properties"]) == {"video", "audio"}
    assert {"observedGeneration", "conditions", "state", "progress", "encoder", "startedAt", "completedAt"} <= set(
        status
    )
    assert {"error", "result"} <= set(status)
    assert status["observedGeneration"]["type"] == "integer"


@pytest.mark.parametrize(
    "result",
    [
        RenderResult(Format.MOV, 720, 1280, 4.0, 900_000, 5000, 128),
        RenderResult(Format.M4A, None, None, 2.5, 40_000, None, 96),
    ],
)
def test_result_status_mirrors_render_result(result: RenderResult) -> None:
    """The status carries the API's result camelCased, and gives the same result back."""
    wire = dump_resource(ResultStatus.from_result(result))
    assert set(wire) <= {to_camel(name) for name in result.to_json()}
    assert ResultStatus.model_validate(wire).to_result() == result
    assert set(ResultStatus.model_fields) == set(result.to_json()), "a new result field is added to both"


def test_optional_fields_are_nullable_and_not_required() -> None:
    spec = openapi_schema()["properties"]["spec"]
    assert spec["properties"]["cutId"]["nullable"] is True
    assert "cutId" not in spec["required"]
    assert spec["properties"]["plan"]["properties"]["video"]["nullable"] is True


def test_a_union_that_is_not_optional_is_refused() -> None:
    from pydantic import BaseModel

    class Bad(BaseModel):
        value: int | str

    with pytest.raises(crd.SchemaError):
        crd.structural_schema(Bad)


# --- printer columns ------------------------------------------------------------------------


def test_printer_columns() -> None:
    """`kubectl get renders`: the API's id, state, percent done, why; `-o wide` adds the rest."""
    columns = render_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"] for c in columns if not c.get("priority")] == EXPECTED_COLUMNS
    assert [c["name"] for c in columns if c.get("priority") == 1] == WIDE_COLUMNS
    schema = openapi_schema()
    for column in columns:
        assert column["type"] in COLUMN_TYPES, column
        path = column["jsonPath"]
        if path.startswith(".metadata.labels."):
            assert path == ".metadata.labels." + crd.LABEL_RENDER.replace(".", "\\."), column  # escaped dots
            continue
        condition = re.fullmatch(r'\.status\.conditions\[\?\(@\.type=="(\w+)"\)\]\.(reason|message)', path)
        if condition:
            assert condition.group(1) == "Running", column  # a condition every Render has
            continue
        assert re.fullmatch(r"(\.[A-Za-z][A-Za-z0-9]*)+", path), column
        node = resolve(schema, path)
        if column["type"] in {"number", "integer"}:
            assert node.get("type") == column["type"], column
    age = next(c for c in columns if c["name"] == "Age")
    assert age == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def test_the_spec_is_immutable_and_every_string_and_list_in_it_is_bounded() -> None:
    """The API server keeps the spec as the API wrote it (CEL `self == oldSelf`), and can only
    accept that rule when it can bound its cost: every string and list has a maximum."""
    spec = openapi_schema()["properties"]["spec"]
    assert spec["x-kubernetes-validations"] == [crd.IMMUTABLE_SPEC]

    def unbounded(node: dict[str, Any], where: str) -> list[str]:
        found = []
        if node.get("type") == "string" and "maxLength" not in node and "enum" not in node and "format" not in node:
            found.append(where)
        if node.get("type") == "array":
            if "maxItems" not in node:
                found.append(where)
            found += unbounded(node["items"], f"{where}[]")
        for name, sub in (node.get("properties") or {}).items():
            found += unbounded(sub, f"{where}.{name}")
        return found

    assert unbounded(spec, "spec") == []


def resolve(schema: dict[str, Any], json_path: str) -> dict[str, Any]:
    node = schema
    parts = json_path.strip(".").split(".")
    for index, part in enumerate(parts):
        if node is schema["properties"]["metadata"]:
            assert parts[index:] in (["creationTimestamp"], ["name"], ["namespace"]), json_path
            return {}
        assert part in node.get("properties", {}), f"{json_path}: no {part!r} in the schema"
        node = node["properties"][part]
    return node


# --- examples validate ----------------------------------------------------------------------


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 -> JSON Schema draft 4: `nullable: true` becomes a null type (and enum value)."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: to_json_schema(value) for key, value in node.items()}
    if out.pop("nullable", False):
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def validator() -> jsonschema.Draft4Validator:
    schema = to_json_schema(openapi_schema())
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


@pytest.mark.parametrize(
    "plan", [examples.video_plan(3840, 2160, segments=3), examples.video_plan(), examples.audio_plan()]
)
def test_example_renders_validate(plan: EncodePlan) -> None:
    body = examples.render_object(examples.spec_for(plan), status=examples.completed_status())
    validator().validate(json.loads(json.dumps(body)))


def test_a_hand_written_render_validates() -> None:
    body = yaml.safe_load(
        """
        apiVersion: roughy.ai/v1alpha1
        kind: Render
        metadata: {name: r-0123456789abcdef0123456789abcdef01234567}
        spec:
          renderId: rnd_1
          accountId: acct_1
          assetId: ast_1
          tier: 1080p
          plan:
            format: mp4
            duration: 10
            video: {width: 1920, height: 1080, fps: 25, bitrateKbps: 10000}
            audio: {bitrateKbps: 192, channels: 2, sampleRate: 48000}
            segments: [{start: 0, end: 4}, {start: 6, end: 12}]
          sources: {video: assets/ast_1/video}
          outputKey: renders/rnd_1/output.mp4
        status: {state: running, progress: 0.25, encoder: libx264, observedGeneration: 1}
        """
    )
    validator().validate(body)
    assert RenderSpec.model_validate(body["spec"]).plan.to_plan().segments == (Segment(0, 4), Segment(6, 12))


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("spec.plan.format", "avi"),
        ("spec.tier", "8k"),
        ("spec.plan.video.width", 1),
        ("spec.plan.video.fps", 0),
        ("spec.plan.segments", []),
        ("spec.outputKey", ""),
        ("spec.encoder", "libx265"),
        ("status.progress", 1.5),
        ("status.state", "done"),
        ("status.conditions", [{"type": "Completed", "status": "yes", "lastTransitionTime": "2025-01-01T00:00:00Z"}]),
    ],
)
def test_invalid_renders_are_refused(where: str, value: Any) -> None:
    body = examples.render_object(
        examples.spec_for(examples.video_plan(segments=2)), status=examples.completed_status()
    )
    *parents, last = where.split(".")
    node = body
    for key in parents:
        node = node[key]
    node[last] = value
    with pytest.raises(jsonschema.ValidationError):
        validator().validate(body)


def test_a_spec_without_its_output_key_is_refused() -> None:
    body = examples.render_object(examples.spec_for(examples.video_plan()))
    del body["spec"]["outputKey"]
    with pytest.raises(jsonschema.ValidationError):
        validator().validate(body)


# --- models ---------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(plans)
def test_plan_survives_the_resource(plan: EncodePlan) -> None:
    """Plan -> spec -> JSON -> spec -> plan is the identity, and the JSON fits the schema."""
    wire = json.loads(json.dumps(dump_resource(PlanSpec.from_plan(plan))))
    plan_schema = to_json_schema(openapi_schema()["properties"]["spec"]["properties"]["plan"])
    jsonschema.Draft4Validator(plan_schema).validate(wire)
    assert PlanSpec.model_validate(wire).to_plan() == plan


def test_status_round_trips_through_its_wire_form() -> None:
    status = examples.completed_status()
    assert RenderStatus.model_validate(json.loads(json.dumps(dump_resource(status)))) == status


def test_wire_form_is_camel_case_and_omits_empty_fields() -> None:
    wire = dump_resource(examples.spec_for(examples.audio_plan()))
    assert {"renderId", "accountId", "assetId", "outputKey"} <= set(wire)
    assert "cutId" not in wire and "tier" not in wire and "encoder" not in wire
    assert "video" not in wire["plan"] and "video" not in wire["sources"]


@pytest.mark.parametrize(
    ("size", "tier"),
    [((1280, 720), Resolution.P720), ((640, 360), Resolution.P720), ((1920, 1080), Resolution.P1080),
     ((1080, 1920), Resolution.P1080), ((2560, 1440), Resolution.UHD4K), ((3840, 2160), Resolution.UHD4K)],
)  # fmt: skip
def test_tier_of_buckets_the_short_edge(size: tuple[int, int], tier: Resolution) -> None:
    assert tier_of(examples.video_plan(*size)) is tier


def test_tier_of_audio_is_none() -> None:
    assert tier_of(examples.audio_plan()) is None


def test_render_body_is_named_by_signature_and_labelled() -> None:
    spec = examples.spec_for(examples.video_plan())
    body = crd.render_body(resource_name(examples.SIGNATURE), spec)
    name = body["metadata"]["name"]
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63
    assert body["apiVersion"] == "roughy.ai/v1alpha1" and body["kind"] == "Render"
    assert body["metadata"]["labels"] == {
        "roughy.ai/render": "rnd_abc",
        "roughy.ai/account": "acct_1",
        "roughy.ai/asset": "ast_1",
    }
    assert "namespace" not in body["metadata"]


def test_converting_the_schema_does_not_mutate_it() -> None:
    schema = openapi_schema()
    before = copy.deepcopy(schema)
    to_json_schema(schema)
    assert schema == before
