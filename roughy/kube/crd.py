"""The `Render` custom resource: its spec and status as pydantic models, and the CRD made from them.

Why generate: the CRD's schema and the code that reads and writes Renders must not drift apart.
The models here are the one source; `render_crd()` derives a *structural* OpenAPI v3 schema from
their JSON schema, and a test fails when `crds/render.yaml` differs from what
`python -m roughy.kube.crd` prints.

Kubernetes accepts only a subset of JSON Schema, so the conversion rewrites what pydantic emits:
`$ref`s are inlined (no `$defs`), `X | None` unions become `X` with `nullable: true`, `const`
becomes a one-value `enum`, JSON-Schema-2020 numeric `exclusiveMinimum` becomes OpenAPI 3.0's
boolean form, and `title`s, null defaults and container defaults are dropped. Any other union
is refused at generation time rather than rejected by an API server later.

Conventions of the resource:

- camelCase field names (Kubernetes style); the plan mirrors `EncodePlan` field for field and
  converts back through `EncodePlan.from_json`, so the Job needs nothing but the spec.
- Empty optional fields are omitted (`dump_resource` drops None) rather than sent as null: a
  null fights server-side apply and re-triggers API-server defaulting.
- The status schema is strict and names no `x-kubernetes-preserve-unknown-fields`: kopf must
  keep its own progress in annotations, since anything it wrote under `status` would be pruned.
"""

from __future__ import annotations

import enum
import sys
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from roughy.core.chunks import MAX_CHUNKS
from roughy.core.models import Format, RenderResult, RenderState, Resolution
from roughy.core.plan import EncodePlan
from roughy.core.segments import MAX_SEGMENTS

GROUP = "roughy.ai"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Render"
PLURAL = "renders"
SINGULAR = "render"
SHORT_NAMES = ["rnd"]
CATEGORIES = ["roughy"]
CRD_NAME = f"{PLURAL}.{GROUP}"

LABEL_RENDER = "roughy.ai/render"  # the render's database id: find its Render and Job by it
LABEL_ACCOUNT = "roughy.ai/account"
LABEL_ASSET = "roughy.ai/asset"
#: Set ("true") by the operator once the render completed or failed: lists of what still runs
#: (`!=true`) and of what may be pruned (`=true`) are filtered by the API server.
LABEL_FINISHED = "roughy.ai/finished"

REGENERATE = "python -m roughy.kube.crd > crds/render.yaml"


class ResourceModel(BaseModel):
    """Base of every part of the resource: camelCase on the wire, snake_case in Python.

    Unknown fields are ignored, not refused: the API server has already pruned what the CRD
    does not name, and an operator one release behind must still read a newer object.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


# --- spec -----------------------------------------------------------------------------------


class VideoEncoder(enum.StrEnum):
    """An H.264 encoder. NVENC needs an NVIDIA GPU with an encode unit (A100/H100 have none)."""

    LIBX264 = "libx264"
    H264_NVENC = "h264_nvenc"


class SegmentSpec(ResourceModel):
    """One kept stretch of the source, in seconds."""

    start: float = Field(ge=0, description="Seconds into the source where the segment starts.")
    end: float = Field(ge=0, description="Seconds into the source where the segment ends.")


class VideoPlanSpec(ResourceModel):
    """The output video stream (mirrors `roughy.core.plan.VideoPlan`)."""

    width: int = Field(ge=2, description="Output display width in pixels (even).")
    height: int = Field(ge=2, description="Output display height in pixels (even).")
    fps: float = Field(gt=0, description="Constant output frame rate.")
    bitrate_kbps: int = Field(ge=1, description="Average video bitrate in kbit/s.")
    hdr: bool = Field(default=False, description="The source is PQ/HLG: tone-map to SDR BT.709.")
    stream_copy: bool = Field(default=False, description="Copy the source's video stream instead of encoding it.")
    cut_copy: bool = Field(
        default=False, description="A cut: copy the video when every segment starts and ends on a keyframe."
    )


class AudioPlanSpec(ResourceModel):
    """The output audio stream (mirrors `roughy.core.plan.AudioPlan`)."""

    bitrate_kbps: int = Field(ge=1, description="Audio bitrate in kbit/s.")
    channels: int = Field(ge=1, le=2, description="1 (mono) or 2 (stereo).")
    sample_rate: int = Field(ge=1, description="Output sample rate in Hz.")
    stream_copy: bool = Field(default=False, description="Copy the source's audio stream instead of encoding it.")


#: Bounds of the spec's strings: an API id (`rnd_` and 16 characters today), an S3 key (1024
#: bytes at most). Every string and list of the spec is bounded, which the CEL rule that keeps
#: the spec immutable needs (the API server refuses rules whose cost it cannot bound).
MAX_ID = 64
MAX_KEY = 1024
#: The spec is written once, by the API: a change is refused by the API server itself.
IMMUTABLE_SPEC = {"rule": "self == oldSelf", "message": "spec is immutable: delete the Render and create another"}

#: One of `roughy.encoder.sources.SOURCE_DEMUXERS` (the encoder checks which); the pattern keeps
#: anything but a short name out of the resource.
DEMUXER_PATTERN = "^[a-z0-9_]{1,32}$"


class PlanSpec(ResourceModel):
    """The encode plan (mirrors `roughy.core.plan.EncodePlan`): all the encoder needs to know."""

    format: Format = Field(description="Output container.")
    duration: float = Field(ge=0, description="Expected output duration in seconds.")
    video: VideoPlanSpec | None = Field(default=None, description="Absent for audio formats.")
    audio: AudioPlanSpec | None = Field(default=None, description="Absent when the source has no audio.")
    segments: list[SegmentSpec] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SEGMENTS,
        description="Kept segments of a cut, in order; absent: the whole source.",
    )
    separate_audio: bool = Field(default=False, description="Audio comes from a separate source (a client audio part).")
    chunks: list[SegmentSpec] | None = Field(
        default=None,
        min_length=2,
        max_length=MAX_CHUNKS,
        description="A long render's chunks, encoded apart and joined; absent: one encode.",
    )
    video_demuxer: str | None = Field(
        default=None,
        pattern=DEMUXER_PATTERN,
        max_length=32,
        description="Demuxer probing found for the video source, forced when the encoder opens it.",
    )
    audio_demuxer: str | None = Field(
        default=None,
        pattern=DEMUXER_PATTERN,
        max_length=32,
        description="Demuxer probing found for the audio source (separate audio, or an audio render's).",
    )

    @classmethod
    def from_plan(cls, plan: EncodePlan) -> PlanSpec:
        """The resource form of a plan; `to_plan` gives the same plan back."""
        data = plan.to_json()
        for key in ("segments", "chunks"):
            spans = data.pop(key, None)
            if spans is not None:
                data[key] = [{"start": start, "end": end} for start, end in spans]
        return cls.model_validate(data)

    def to_plan(self) -> EncodePlan:
        """Back to the domain's plan, through the same JSON reader the encoder uses."""
        data = self.model_dump(mode="json")
        if self.segments is not None:
            data["segments"] = [[s.start, s.end] for s in self.segments]
        if self.chunks is not None:
            data["chunks"] = [[s.start, s.end] for s in self.chunks]
        return EncodePlan.from_json(data)


class SourcesSpec(ResourceModel):
    """Object-storage keys of the asset's parts; the operator presigns them for the Job."""

    video: str | None = Field(default=None, min_length=1, max_length=MAX_KEY, description="Key of the video part.")
    audio: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_KEY,
        description="Key of the audio part (client audio, or extracted).",
    )


class RenderSpec(ResourceModel):
    """What to render. Written once by the API; the Job is built from it alone."""

    render_id: str = Field(min_length=1, max_length=MAX_ID, description="The render's id in the database (rnd_...).")
    account_id: str = Field(min_length=1, max_length=MAX_ID, description="The account that owns the render.")
    asset_id: str = Field(min_length=1, max_length=MAX_ID, description="The rendered asset.")
    cut_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID, description="The cut applied, if any.")
    tier: Resolution | None = Field(
        default=None,
        description="Output tier: the requested resolution, or for Auto the tier the plan's size falls in"
        " (see roughy.kube.crd.tier_of). Decides the node pool. Absent for audio formats.",
    )
    plan: PlanSpec
    sources: SourcesSpec
    output_key: str = Field(
        min_length=1, max_length=MAX_KEY, description="Object-storage key the output is uploaded to."
    )
    encoder: VideoEncoder | None = Field(
        default=None, description="Force a video encoder; absent: h264_nvenc for GPU tiers, libx264 otherwise."
    )


# --- status ---------------------------------------------------------------------------------


class ConditionStatus(enum.StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ResourceModel):
    """One observation, in the shape of metav1.Condition (what kubectl and tools expect)."""

    type: str = Field(min_length=1, max_length=316, description="CamelCase condition type, e.g. Completed.")
    status: ConditionStatus
    reason: str = Field(default="", max_length=1024, description="CamelCase reason for the last transition.")
    message: str = Field(default="", max_length=32768, description="Human-readable details.")
    last_transition_time: datetime = Field(description="When status last changed.")
    observed_generation: int | None = Field(default=None, ge=0, description="The generation this was set for.")


class ErrorStatus(ResourceModel):
    """Why a render failed, with the API's error code."""

    code: str = Field(min_length=1)
    message: str


class ResultStatus(ResourceModel):
    """What was produced (the API's render `result`): `RenderResult` field for field, camelCased;
    `from_result`/`to_result` convert through its JSON form, like `PlanSpec` does for plans."""

    format: Format
    width: int | None = Field(default=None, ge=0)
    height: int | None = Field(default=None, ge=0)
    duration: float = Field(ge=0, description="Seconds.")
    size_bytes: int = Field(ge=0)
    video_bitrate_kbps: int | None = Field(default=None, ge=0)
    audio_bitrate_kbps: int | None = Field(default=None, ge=0)
    copied: list[Literal["video", "audio"]] = Field(
        default_factory=list, description="Streams copied from the source instead of encoded."
    )
    # A string, not an enum: a value a newer encoder image reports must not make the operator
    # drop the whole result (status.encoder, the encoder asked for, stays an enum).
    encoder: str | None = Field(
        default=None,
        max_length=40,
        description="The video encode that ran: libx264, h264_nvenc, or h264_nvenc+cuda (decoded and scaled on"
        " the GPU too); absent when no video was encoded in the pod that wrote the result.",
    )

    @classmethod
    def from_result(cls, result: RenderResult) -> ResultStatus:
        return cls.model_validate(result.to_json())

    def to_result(self) -> RenderResult:
        return RenderResult.from_json(self.model_dump(mode="json"))


class RenderStatus(ResourceModel):
    """Where the render is, written by the operator only (status subresource)."""

    observed_generation: int | None = Field(default=None, ge=0, description="The spec generation last acted on.")
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    state: RenderState | None = Field(default=None, description="pending -> running -> completed | failed.")
    progress: float | None = Field(default=None, ge=0, le=1, description="Fraction done, 0 to 1.")
    progress_percent: int | None = Field(
        default=None, ge=0, le=100, description="The progress in whole percent (for `kubectl get`)."
    )
    encoder: VideoEncoder | None = Field(
        default=None, description="The video encoder actually used (after the NVENC probe)."
    )
    job_name: str | None = Field(default=None, description="The Job running the encode.")
    chunks_done: bool | None = Field(
        default=None, description="A chunked render's chunks are all encoded (its chunk Job may be gone since)."
    )
    started_at: datetime | None = Field(default=None, description="When the encoder started.")
    completed_at: datetime | None = Field(default=None, description="When the render completed or failed.")
    error: ErrorStatus | None = Field(default=None, description="Set when the render failed.")
    result: ResultStatus | None = Field(default=None, description="Set when the render completed.")


# --- helpers for the code that creates and reads Renders ------------------------------------


def tier_of(plan: EncodePlan) -> Resolution | None:
    """The tier an output's size falls in, bucketed like the Auto bitrate table (<=720, <=1080,
    above): a 1440p Auto render is as heavy as 4k for node-pool purposes. None for audio."""
    if plan.video is None:
        return None
    short = min(plan.video.width, plan.video.height)
    for tier in (Resolution.P720, Resolution.P1080):
        if short <= tier.short_edge:
            return tier
    return Resolution.UHD4K


def dump_resource(model: ResourceModel) -> dict[str, Any]:
    """The wire form: camelCase, JSON types, empty optionals omitted (never null)."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def render_body(name: str, spec: RenderSpec, *, namespace: str | None = None) -> dict[str, Any]:
    """A Render object to create. `name` is `core.signature.resource_name(signature)`."""
    metadata: dict[str, Any] = {"name": name, "labels": domain_labels(spec)}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": dump_resource(spec)}


def domain_labels(spec: RenderSpec) -> dict[str, str]:
    """Labels that let `kubectl get renders,jobs -l roughy.ai/asset=...` find an asset's work
    (the Render's name is a hash; these are the ids the API and the database speak)."""
    return {LABEL_RENDER: spec.render_id, LABEL_ACCOUNT: spec.account_id, LABEL_ASSET: spec.asset_id}


# --- the CRD --------------------------------------------------------------------------------

_RUNNING = '.status.conditions[?(@.type=="Running")]'
PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Render", "type": "string", "jsonPath": ".metadata.labels.roughy\\.ai/render",
     "description": "The API's render id."},
    {"name": "State", "type": "string", "jsonPath": ".status.state", "description": "pending, running, ..."},
    {"name": "Progress", "type": "integer", "jsonPath": ".status.progressPercent", "description": "Percent done."},
    {"name": "Reason", "type": "string", "jsonPath": f"{_RUNNING}.reason", "description": "Why it is in its state."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Message", "type": "string", "jsonPath": f"{_RUNNING}.message", "priority": 1},
    {"name": "Asset", "type": "string", "jsonPath": ".spec.assetId", "priority": 1},
    {"name": "Format", "type": "string", "jsonPath": ".spec.plan.format", "priority": 1},
    {"name": "Resolution", "type": "string", "jsonPath": ".spec.tier", "description": "Output tier.", "priority": 1},
    {"name": "Encoder", "type": "string", "jsonPath": ".status.encoder", "description": "Encoder used.",
     "priority": 1},
]  # fmt: skip


def render_crd() -> dict[str, Any]:
    """The CustomResourceDefinition of `Render` (apiextensions.k8s.io/v1)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME, "labels": {"app.kubernetes.io/part-of": "roughy"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": list(CATEGORIES),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(column) for column in PRINTER_COLUMNS],
                    "schema": {"openAPIV3Schema": resource_schema()},
                }
            ],
        },
    }


def resource_schema() -> dict[str, Any]:
    """The whole object's schema; `metadata` stays unconstrained (Kubernetes owns it)."""
    return {
        "type": "object",
        "description": "One render executing on Kubernetes, named r-<signature>. The database keeps the render;"
        " this is its execution record.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": structural_schema(RenderSpec) | {"x-kubernetes-validations": [dict(IMMUTABLE_SPEC)]},
            "status": structural_schema(RenderStatus),
        },
    }


class SchemaError(ValueError):
    """A model uses a construct a structural schema cannot express (a real union, say)."""


#: Keywords Kubernetes does not accept or that only add noise to `kubectl explain`.
_DROPPED = frozenset({"title", "$defs"})
#: Keywords a structural schema must not contain once converted.
UNSUPPORTED = frozenset(
    {"$ref", "$defs", "definitions", "$schema", "id", "anyOf", "allOf", "oneOf", "not", "const", "prefixItems",
     "patternProperties", "dependencies", "additionalItems", "discriminator", "examples"}
)  # fmt: skip


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON schema (validation side, camelCase) rewritten into a structural one."""
    raw = model.model_json_schema(by_alias=True)
    return _convert(raw, raw.get("$defs", {}))


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node, nullable = _unwrap_optional(_resolve(node, defs), defs)
    out = {key: value for key, value in node.items() if key not in _DROPPED}
    if "const" in out:
        out["enum"] = [out.pop("const")]
    _openapi_bounds(out)
    if "default" in out and (out["default"] is None or isinstance(out["default"], list | dict)):
        del out["default"]
    if "properties" in out:
        out["type"] = "object"
        out["properties"] = {name: _convert(sub, defs) for name, sub in out["properties"].items()}
        out.pop("additionalProperties", None)  # Kubernetes: mutually exclusive with properties
    elif isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _convert(out["additionalProperties"], defs)
    if "items" in out:
        out["items"] = _convert(out["items"], defs)
    if nullable:
        out["nullable"] = True
    _check_node(out)
    return _ordered(out)


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline a `$ref`; the referring node's own keys (its field description) win."""
    if "$ref" not in node:
        return node
    target = defs[node["$ref"].rsplit("/", 1)[-1]]
    own = {key: value for key, value in node.items() if key != "$ref"}
    return {**_resolve(target, defs), **own}


def _unwrap_optional(node: dict[str, Any], defs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """`anyOf: [X, {type: null}]` -> (X, nullable). Any other union is not structural."""
    if "anyOf" not in node:
        return node, False
    options = node["anyOf"]
    kept = [option for option in options if option.get("type") != "null"]
    if len(kept) != 1:
        raise SchemaError(f"only `X | None` unions can be expressed in a CRD, not {options}")
    own = {key: value for key, value in node.items() if key != "anyOf"}
    return {**_resolve(kept[0], defs), **own}, len(kept) < len(options)


def _openapi_bounds(out: dict[str, Any]) -> None:
    """JSON Schema 2020's `exclusiveMinimum: 0` is OpenAPI 3.0's `minimum: 0, exclusiveMinimum: true`."""
    for exclusive, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = out.get(exclusive)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[inclusive] = value
            out[exclusive] = True


#: Key order in the generated YAML, so a reviewer reads type and description first.
_KEY_ORDER = ("type", "format", "nullable", "description", "enum", "default", "minimum", "exclusiveMinimum",
              "maximum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems", "required")  # fmt: skip


def _ordered(out: dict[str, Any]) -> dict[str, Any]:
    rank = {key: index for index, key in enumerate(_KEY_ORDER)}
    return {key: out[key] for key in sorted(out, key=lambda key: (rank.get(key, len(rank)), key))}


def _check_node(out: dict[str, Any]) -> None:
    bad = UNSUPPORTED & out.keys()
    if bad:
        raise SchemaError(f"not expressible in a structural schema: {sorted(bad)} in {out}")
    if "type" not in out:
        raise SchemaError(f"every node of a structural schema needs a type: {out}")


# --- the generator --------------------------------------------------------------------------


def crd_yaml() -> str:
    """The CRD as the YAML checked in at crds/render.yaml (pyyaml is imported only here)."""
    import yaml

    def literal_blocks(dumper: Any, value: str) -> Any:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    dumper: Any = type("CrdDumper", (yaml.SafeDumper,), {})
    dumper.add_representer(str, literal_blocks)
    header = f"# Generated from roughy/kube/crd.py; do not edit. Regenerate: {REGENERATE}\n"
    return header + str(yaml.dump(render_crd(), Dumper=dumper, sort_keys=False, width=120))


def main() -> int:
    sys.stdout.write(crd_yaml())
    return 0


if __name__ == "__main__":
    sys.exit(main())
