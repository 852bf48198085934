"""The encoder Job of a Render: `build_job(render, settings) -> dict`, pure and unit-tested.

Why the Job looks the way it does:

- **Owned by the Render** (controller, blockOwnerDeletion): the garbage collector removes the
  Job with its Render, and kopf can route Job events back to the Render that caused them.
- **restartPolicy Never, small backoffLimit**: a retry is a new pod (fresh /tmp, maybe another
  node), never an in-place restart over a half-written output.
- **podFailurePolicy**: exit 3 (`InvalidMedia`: the source will never decode) and exit 2 (an
  unusable plan: the same plan fails the same way) fail the Job at once instead of burning the
  retries; a disrupted pod (preempted, evicted, node drained) is ignored, so it neither counts
  against the retries nor fails the render.
- **activeDeadlineSeconds** is a backstop over the whole Job, pending time and retries
  included (a GPU node scale-up takes minutes): the encoder's own per-attempt limit, the plan's
  `time_limit()`, fires first and reports a clean `encode_timeout`.
- **ttlSecondsAfterFinished**: finished Jobs go away on their own, after the operator has
  copied their outcome to the Render (the TTL leaves it ample time).
- **No credentials in the pod, no URL in its environment**: the pod holds its render's token
  (`roughy.core.tokens`), a file of the Secret `<render>-encoder` mounted read-only, and asks
  the API for presigned URLs when it needs them: the sources at start (ffmpeg reads them over
  HTTP with range requests, so a cut of a long source fetches only what it needs), the output
  once encoded. A URL is never older than the step that uses it, however long the Job waited
  for a node, and `kubectl describe` shows none.
- **GPU tiers** (4k by default) go to the GPU pool with NVENC; everything else encodes with
  libx264 on ordinary nodes. A required node affinity (`gpu_node_requirements`) keeps them off
  GPUs without an encode unit, as GPU Feature Discovery labels them (`NVENC_NODE_REQUIREMENTS`);
  the encoder still probes NVENC at start and falls back to libx264, so a GPU the labels did
  not catch degrades to a slower render, not a failed one. With NVENC it also decodes and
  scales on the GPU where it can (`gpu_decode`; `roughy.encoder.tools`).
- **Restricted pod security**: non-root, no privilege escalation, no capabilities, seccomp
  RuntimeDefault, read-only root filesystem; /tmp is an emptyDir sized from the plan, since
  the output is encoded there before it is uploaded.

The contract with `roughy-encode render` inside the pod (environment, so that the plan does not
show in `ps`): `ROUGHY_PLAN` (the plan's JSON, read when `--plan` is absent), `ROUGHY_API_URL`,
`ROUGHY_RENDER_ID` and `ROUGHY_TOKEN_FILE` (the channel to the API, `roughy.encoder.channel`:
URLs and progress), `ROUGHY_OUTPUT_CONTENT_TYPE`, `ROUGHY_ENCODER` (`h264_nvenc`: probe it, fall
back to `libx264`), `ROUGHY_HWACCEL` (`none` when `gpu_decode` is off: decode and scale on
the CPU) and `ROUGHY_TERMINATION_LOG` (write the outcome there: the pod's termination message,
which the operator reads from the pod's status). The encoder reports progress to the
API itself: the operator reads no pod log. Exit codes as in `roughy.encoder.cli`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from roughy.core.keys import chunk_keys, chunk_prefix  # noqa: F401 - the operator names them here too
from roughy.core.models import Resolution
from roughy.core.plan import EncodePlan
from roughy.encoder.errors import InvalidMedia
from roughy.encoder.protocol import EXIT_USAGE
from roughy.kube.crd import API_VERSION, KIND, RenderSpec, VideoEncoder, domain_labels, tier_of

CONTAINER = "encoder"
SCRATCH_DIR = "/tmp"
#: The encoder writes its outcome (result or error) here; the kubelet copies it into the pod's
#: status (`state.terminated.message`), where the operator reads it.
TERMINATION_LOG = "/dev/termination-log"

#: `roughy.encoder.errors.InvalidMedia.exit_code`, and the CLI's "unusable plan" exit. Both are
#: permanent. Mirrored here (a test keeps them equal) so that building a Job imports no PyAV.
EXIT_INVALID_MEDIA = InvalidMedia.exit_code
EXIT_UNUSABLE_PLAN = EXIT_USAGE
FAIL_FAST_EXIT_CODES = (EXIT_UNUSABLE_PLAN, EXIT_INVALID_MEDIA)  # Kubernetes wants them sorted

#: `roughy.encoder.ffmpeg_args.BATCH_SEGMENTS` (a test keeps them equal): above it, the encoder
#: keeps batch intermediates on disk until the join.
BATCH_SEGMENTS = 16
PCM_KBPS = 1536  # 48 kHz stereo 16-bit: the audio of the batch intermediates
SCRATCH_MARGIN = 2.0  # the average bitrate is a target, not a cap: the same margin as the upload plan

NVIDIA_DRIVER_CAPABILITIES = "compute,video,utility"  # `video` mounts libnvidia-encode (NVENC)

KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
#: Where the render's Secret (its encoder token) is mounted, and its key.
CREDENTIALS_DIR = "/var/run/secrets/roughy"
TOKEN_KEY = "token"
CREDENTIALS_MODE = 0o440  # read by the encoder's group (fsGroup), nobody else

_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")

# --- GPU nodes with an encode unit ------------------------------------------------------------
#
# NVIDIA's GPU Feature Discovery (the GPU Operator and the k8s-device-plugin chart run it) labels
# every GPU node. `nvidia.com/gpu.product` is the NVML device name with its spaces as dashes
# ("NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3", "Tesla-T4"), with `-MIG-<profile>` appended
# under MIG's single strategy and `-SHARED` when time-sliced; the same GPU is named differently
# by different drivers and SKUs (an H200 is "NVIDIA-H200", "NVIDIA-H200-NVL" or
# "NVIDIA-H200-141GB-HBM3e"). So the default below names products only where nothing steadier
# tells them apart, and every expression is `NotIn`, which a node without the label matches: a
# cluster without GPU Feature Discovery schedules as before (and the encoder's own check still
# falls back to libx264).

#: Data-centre GPUs without NVENC: every Hopper part (compute capability 9.x: H100, H800, H200,
#: H20, GH200) and data-centre Blackwell (10.x: B200, GB200, B300), per NVIDIA's data sheets
#: (NVDEC and NVJPG engines only). Workstation and consumer Blackwell (12.x) have NVENC.
NVENC_LESS_COMPUTE_MAJORS = ("9", "10")
#: GA100 (compute 8.0: A100, A800, A30) shares its major with Ampere and Ada parts that have
#: NVENC (A10, A40, L4, L40S: 8.6 and 8.9), so it is named; time-sliced ones too.
NVENC_LESS_PRODUCTS = tuple(
    f"{name}{suffix}"
    for name in (
        "NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-PCIE-40GB", "NVIDIA-A100-80GB-PCIe",
        "NVIDIA-A800-SXM4-80GB", "NVIDIA-A800-80GB-PCIe", "NVIDIA-A30",
    )
    for suffix in ("", "-SHARED")
)  # fmt: skip


class NodeRequirement(BaseModel):
    """One node selector requirement: an entry of a nodeAffinity term's `matchExpressions`."""

    model_config = ConfigDict(frozen=True)

    key: str = Field(min_length=1, max_length=317, description="A node label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    values: tuple[str, ...] = Field(default=(), description="In/NotIn: one or more; Gt/Lt: one integer; else none.")

    @model_validator(mode="after")
    def _values_fit_the_operator(self) -> NodeRequirement:
        count = len(self.values)
        if self.operator in ("In", "NotIn") and count == 0:
            raise ValueError(f"{self.operator} needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and count:
            raise ValueError(f"{self.operator} takes no values")
        if self.operator in ("Gt", "Lt") and (count != 1 or not re.fullmatch(r"-?[0-9]+", self.values[0])):
            raise ValueError(f"{self.operator} takes one integer value")
        return self

    def to_k8s(self) -> dict[str, Any]:
        item: dict[str, Any] = {"key": self.key, "operator": self.operator}
        if self.values:
            item["values"] = list(self.values)
        return item


#: The default of `JobSettings.gpu_node_requirements`: no GPU without NVENC, as GPU Feature
#: Discovery labels it. The last expression catches a MIG device with no encoder (its
#: `gpu.engines.encoder` label is set under MIG's single strategy only).
NVENC_NODE_REQUIREMENTS = (
    NodeRequirement(key="nvidia.com/gpu.compute.major", operator="NotIn", values=NVENC_LESS_COMPUTE_MAJORS),
    NodeRequirement(key="nvidia.com/gpu.product", operator="NotIn", values=NVENC_LESS_PRODUCTS),
    NodeRequirement(key="nvidia.com/gpu.engines.encoder", operator="NotIn", values=("0",)),
)


class PoolResources(BaseModel):
    """Requests and limits of the encoder container in one node pool."""

    model_config = ConfigDict(frozen=True)

    cpu_request: str = Field(default="1", description="CPU request; x264 uses every core it is given.")
    cpu_limit: str | None = Field(
        default=None, description="CPU limit; none by default (throttling only slows encodes)."
    )
    memory_request: str = Field(default="1Gi", description="Memory request: ~22 MB per open 1080p input, 16 at most.")
    memory_limit: str = Field(default="2Gi", description="Memory limit.")


class JobSettings(BaseModel):
    """How the operator builds encoder Jobs; validated once at start-up and passed in."""

    model_config = ConfigDict(frozen=True)

    image: str = Field(description="The encoder image (images/encoder/Dockerfile).")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = Field(default=(), description="Names of Secrets to pull the image with.")
    service_account: str | None = Field(
        default=None, description="ServiceAccount of encoder pods (needs no API rights)."
    )
    priority_class_name: str | None = None
    tier_priority_classes: dict[Resolution, str] = Field(
        default_factory=dict, description="PriorityClass of a tier's encodes (e.g. 4k lower); else priority_class_name."
    )
    queue_seconds: int = Field(
        default=3600,
        ge=0,
        description="How long a render may wait for capacity (no pod of its Job started: unschedulable, a node"
        " pool scaling up, a Kueue queue) before it fails with no_capacity; 0: no limit.",
    )
    kueue_queue: str | None = Field(
        default=None,
        description="A Kueue LocalQueue: Jobs are created suspended with kueue.x-k8s.io/queue-name, Kueue admits them.",
    )
    instance: str = Field(default="roughy", description="app.kubernetes.io/instance of the Jobs (the Helm release).")
    api_url: str | None = Field(
        default=None,
        description="The API as encoder pods reach it (its in-cluster Service): they ask it for presigned URLs and"
        " report progress to it.",
    )
    backoff_limit: int = Field(default=2, ge=0, le=6, description="Retries of a transient failure.")
    ttl_seconds_after_finished: int = Field(default=3600, ge=60, description="Finished Jobs are deleted after this.")
    time_limit_base: float = Field(default=120.0, gt=0, description="Encode time limit: base seconds...")
    time_limit_per_second: float = Field(default=20.0, gt=0, description="... plus this many per output second.")
    deadline_factor: float = Field(
        default=2.0, ge=1.0, description="Job deadline over the encode limit (room for a retry)."
    )
    startup_seconds: int = Field(
        default=600, ge=0, description="Job deadline allowance for scheduling and image pulls."
    )
    termination_grace_seconds: int = Field(
        default=30, ge=1, description="The encoder kills ffmpeg and cleans up on SIGTERM."
    )
    chunk_parallelism: int = Field(
        default=8, ge=1, le=100, description="Pods of one chunked render's Indexed Job that run at once."
    )
    run_as_user: int = Field(default=10001, ge=1, description="UID and GID of the encoder (the image's user).")
    scratch_min_mib: int = Field(default=512, ge=64, description="Smallest /tmp emptyDir, MiB.")
    pod_annotations: dict[str, str] = Field(
        default_factory=lambda: {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
        description="Annotations of encoder pods; by default the autoscaler does not evict a running encode.",
    )
    cpu: PoolResources = Field(default_factory=lambda: PoolResources())
    node_selector: dict[str, str] = Field(default_factory=dict, description="nodeSelector of CPU encodes.")
    tolerations: tuple[dict[str, Any], ...] = Field(default=(), description="Tolerations of CPU encodes.")
    gpu_tiers: frozenset[Resolution] = Field(
        default=frozenset({Resolution.UHD4K}), description="Output tiers encoded with NVENC on the GPU pool."
    )
    gpu: PoolResources = Field(
        default_factory=lambda: PoolResources(cpu_request="2", memory_request="2Gi", memory_limit="4Gi")
    )
    gpu_resource: str = Field(default="nvidia.com/gpu", description="Extended resource a GPU encode asks 1 of.")
    gpu_node_selector: dict[str, str] = Field(default_factory=dict, description="nodeSelector of the GPU pool.")
    gpu_tolerations: tuple[dict[str, Any], ...] = Field(
        default=({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},),
        description="Tolerations for the GPU pool's taints.",
    )
    gpu_runtime_class: str | None = Field(
        default=None, description="runtimeClassName of GPU pods (e.g. nvidia), if needed."
    )
    gpu_node_requirements: tuple[NodeRequirement, ...] = Field(
        default=NVENC_NODE_REQUIREMENTS,
        description="Node labels every GPU node an encode runs on must match (a required nodeAffinity term):"
        " by default no GPU without NVENC, by GPU Feature Discovery's labels; () places on any node of the pool.",
    )
    gpu_decode: bool = Field(
        default=True,
        description="NVENC encodes also decode and scale on the GPU when the encoder's check passes; false keeps"
        " decoding and scaling on the CPU.",
    )


def build_job(render: dict[str, Any], settings: JobSettings) -> dict[str, Any]:
    """The batch/v1 Job that encodes `render` (a Render object as read from the API server).

    Raises ValueError (pydantic's ValidationError is one) for a Render no Job can be built for:
    a permanent error for the operator, not a retry.
    """
    name = render["metadata"]["name"]
    spec = RenderSpec.model_validate(render["spec"])
    plan = spec.plan.to_plan()
    queue_labels, queue_spec = queue_fields(spec, settings)
    labels = job_labels(spec, settings) | queue_labels
    priority = priority_class(spec, settings)
    if plan.chunks:  # the chunks were encoded by the Indexed Job (`build_chunk_job`): join them
        labels[LABEL_STEP] = "join"
        main = join_container(plan, spec.render_id, settings, join_scratch_mib(plan, settings))
        pod = pod_spec(name, plan, None, settings, main, priority)
    else:
        encoder = video_encoder(spec, settings)
        scratch = scratch_mib(plan, settings)
        main = container(plan, encoder, spec.render_id, settings, scratch)
        pod = pod_spec(name, plan, encoder, settings, main, priority)
    template = {
        "metadata": {"labels": dict(labels), "annotations": dict(settings.pod_annotations)},
        "spec": pod,
    }
    job_spec = {
        "backoffLimit": settings.backoff_limit,
        "activeDeadlineSeconds": active_deadline_seconds(plan, settings),
        "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
        "podFailurePolicy": pod_failure_policy(),
        "template": template,
        **queue_spec,
    }
    metadata = _metadata(render, job_name(name), labels)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": job_spec}


def _metadata(render: dict[str, Any], name: str, labels: dict[str, str]) -> dict[str, Any]:
    """A Job's metadata: its name and labels, owned by the Render, in the Render's namespace."""
    metadata: dict[str, Any] = {"name": name, "labels": labels, "ownerReferences": [owner_reference(render)]}
    if render["metadata"].get("namespace"):
        metadata["namespace"] = render["metadata"]["namespace"]
    return metadata


def credentials_secret_name(render_name: str) -> str:
    """The Secret of a render's encoder token, shared by its Jobs (owned by the Render)."""
    return f"{render_name}-encoder"


def build_credentials_secret(render: dict[str, Any], settings: JobSettings, token: str) -> dict[str, Any]:
    """The Secret the render's encoder pods mount: its token (`roughy.core.tokens`), owned by the
    Render (the garbage collector removes it with the Render) and immutable."""
    spec = RenderSpec.model_validate(render["spec"])
    name = credentials_secret_name(render["metadata"]["name"])
    metadata = _metadata(render, name, job_labels(spec, settings))
    data = {TOKEN_KEY: base64.b64encode(token.encode()).decode()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "Opaque", "immutable": True,
            "data": data}  # fmt: skip


def job_name(render_name: str) -> str:
    """One Job per Render, under the Render's own name (r-<signature>, 42 characters): creating
    it again answers AlreadyExists, which is how the operator knows it is already running."""
    return render_name


def owner_reference(render: dict[str, Any]) -> dict[str, Any]:
    metadata = render["metadata"]
    if not metadata.get("uid"):
        raise ValueError("the Render has no metadata.uid: read it from the API server before building its Job")
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def job_labels(spec: RenderSpec, settings: JobSettings) -> dict[str, str]:
    """Recommended app labels plus the domain's (the same as the Render's), so
    `-l roughy.ai/render=rnd_...` finds both the Render and its Job."""
    labels = {
        "app.kubernetes.io/name": "roughy",
        "app.kubernetes.io/instance": settings.instance,
        "app.kubernetes.io/component": "encoder",
        "app.kubernetes.io/part-of": "roughy",
        "app.kubernetes.io/managed-by": "roughy",
        **domain_labels(spec),
    }
    return {key: _label_value(value) for key, value in labels.items()}


def video_encoder(spec: RenderSpec, settings: JobSettings) -> VideoEncoder | None:
    """The encoder asked for: the spec's choice, else NVENC for GPU tiers. None for audio."""
    if spec.plan.video is None:
        return None
    if spec.encoder is not None:
        return spec.encoder
    tier = spec.tier or tier_of(spec.plan.to_plan())
    return VideoEncoder.H264_NVENC if tier in settings.gpu_tiers else VideoEncoder.LIBX264


def encode_time_limit(plan: EncodePlan, settings: JobSettings) -> int:
    """The encoder's own limit for one attempt, scaled to the output duration."""
    return math.ceil(plan.time_limit(settings.time_limit_base, settings.time_limit_per_second))


def active_deadline_seconds(plan: EncodePlan, settings: JobSettings) -> int:
    """The Job's limit over all attempts and the time spent pending: the encode limit scaled,
    plus a fixed allowance for scheduling, a node scale-up and the image pull."""
    return math.ceil(encode_time_limit(plan, settings) * settings.deadline_factor) + _waiting_allowance(settings)


def _waiting_allowance(settings: JobSettings) -> int:
    """The part of a Job's deadline for waiting: scheduling, pulls, retries' pods, and the queue
    budget (the operator fails a render that waited longer with no_capacity, before this)."""
    return settings.startup_seconds + settings.queue_seconds


def queue_fields(spec: RenderSpec, settings: JobSettings) -> tuple[dict[str, str], dict[str, Any]]:
    """Labels and Job spec fields of the capacity queue: Kueue's queue name and `suspend: true`
    (Kueue admits the Job by resuming it) when a queue is configured."""
    if not settings.kueue_queue:
        return {}, {}
    return {KUEUE_QUEUE_LABEL: _label_value(settings.kueue_queue)}, {"suspend": True}


def priority_class(spec: RenderSpec, settings: JobSettings) -> str | None:
    """The PriorityClass of the render's tier, else the one of every encode."""
    tier = spec.tier or tier_of(spec.plan.to_plan())
    chosen = settings.tier_priority_classes.get(tier) if tier is not None else None
    return chosen or settings.priority_class_name


def scratch_mib(plan: EncodePlan, settings: JobSettings) -> int:
    """Size of the /tmp emptyDir: the output is encoded there before the upload, and a long cut
    list also keeps its batch intermediates (final video bitrate, PCM audio) until the join."""
    video = plan.video.bitrate_kbps if plan.video else 0
    kbps = video + (plan.audio.bitrate_kbps if plan.audio else 0)
    if plan.segments is not None and len(plan.segments) > BATCH_SEGMENTS:
        kbps += video + PCM_KBPS
    megabytes = plan.duration * kbps * SCRATCH_MARGIN * 1000 / 8 / 2**20
    return settings.scratch_min_mib + math.ceil(megabytes)


def pod_failure_policy() -> dict[str, Any]:
    return {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": list(FAIL_FAST_EXIT_CODES)},
            },
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]
    }


def pod_spec(
    render_name: str,
    plan: EncodePlan,
    encoder: VideoEncoder | None,
    settings: JobSettings,
    main: dict[str, Any],
    priority: str | None = None,
) -> dict[str, Any]:
    """The pod: one encoder container (`main`), no Kubernetes API token (it needs none), the
    render's Secret as a read-only volume, the pool's placement."""
    gpu = encoder is VideoEncoder.H264_NVENC
    scratch = main["resources"]["requests"]["ephemeral-storage"]
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": settings.termination_grace_seconds,
        "securityContext": pod_security_context(settings),
        "containers": [main],
        "volumes": [
            {"name": "tmp", "emptyDir": {"sizeLimit": scratch}},
            {
                "name": "credentials",
                "secret": {"secretName": credentials_secret_name(render_name), "defaultMode": CREDENTIALS_MODE},
            },
        ],
    }
    spec.update(_placement(gpu, settings))
    optional = {
        "serviceAccountName": settings.service_account,
        "priorityClassName": priority or settings.priority_class_name,
        "runtimeClassName": settings.gpu_runtime_class if gpu else None,
        "imagePullSecrets": [{"name": name} for name in settings.image_pull_secrets] or None,
    }
    spec.update({key: value for key, value in optional.items() if value is not None})
    return spec


def container(
    plan: EncodePlan, encoder: VideoEncoder | None, render_id: str, settings: JobSettings, scratch: int
) -> dict[str, Any]:
    """`roughy-encode render` as an argument list (never a shell string); the plan travels as an
    environment variable, which keeps it out of `ps` output."""
    output = f"{SCRATCH_DIR}/output.{plan.format.extension}"
    args = ["render", "--output", output, "--time-limit", str(encode_time_limit(plan, settings))]
    env = {item["name"]: item["value"] for item in encoder_env(plan, encoder, render_id, settings)}
    return _encoder_container(args, env, resources(encoder is VideoEncoder.H264_NVENC, scratch, settings), settings)


def encoder_env(
    plan: EncodePlan, encoder: VideoEncoder | None, render_id: str, settings: JobSettings
) -> list[dict[str, str]]:
    """What `roughy-encode render` reads from its environment (the contract in the module
    docstring): the plan, the channel to the API (nothing secret: the token is a file), the
    encoder to try first."""
    if not settings.api_url:
        raise ValueError("no api_url in the Job settings: encoder pods could not reach the API")
    values = {
        "ROUGHY_PLAN": json.dumps(plan.to_json(), separators=(",", ":"), sort_keys=True),
        "ROUGHY_API_URL": settings.api_url,
        "ROUGHY_RENDER_ID": render_id,
        "ROUGHY_TOKEN_FILE": f"{CREDENTIALS_DIR}/{TOKEN_KEY}",
        "ROUGHY_OUTPUT_CONTENT_TYPE": plan.format.mime_type,
        "ROUGHY_ENCODER": encoder.value if encoder else None,
        "ROUGHY_HWACCEL": "none" if encoder is VideoEncoder.H264_NVENC and not settings.gpu_decode else None,
        "NVIDIA_DRIVER_CAPABILITIES": NVIDIA_DRIVER_CAPABILITIES if encoder is VideoEncoder.H264_NVENC else None,
        "ROUGHY_TERMINATION_LOG": TERMINATION_LOG,
        "HOME": SCRATCH_DIR,  # the root filesystem is read-only
    }
    return [{"name": name, "value": value} for name, value in values.items() if value is not None]


# --- chunked renders: an Indexed Job encodes the chunks, then the render's Job joins them ---------

#: The label that tells a chunked render's two Jobs apart (`chunks`, `join`).
LABEL_STEP = "roughy.ai/step"
CHUNK_OUTPUT = f"{SCRATCH_DIR}/chunk.mov"


def chunk_job_name(render_name: str) -> str:
    """The Indexed Job of a chunked render: the Render's name plus `-chunks` (49 characters)."""
    return f"{render_name}-chunks"


def chunk_time_limit(plan: EncodePlan, settings: JobSettings) -> int:
    """The encoder's limit for one attempt at one chunk: scaled to the longest chunk."""
    return math.ceil(settings.time_limit_base + settings.time_limit_per_second * _longest_chunk(plan))


def _longest_chunk(plan: EncodePlan) -> float:
    return max(chunk.end - chunk.start for chunk in plan.chunks or ())


def chunk_parallelism(plan: EncodePlan, settings: JobSettings) -> int:
    return max(1, min(len(plan.chunks or ()), settings.chunk_parallelism))


def build_chunk_job(render: dict[str, Any], settings: JobSettings) -> dict[str, Any]:
    """The Indexed Job that encodes a chunked render's chunks, one pod per chunk (at most
    `settings.chunk_parallelism` at once): each runs `roughy-encode chunk` with the index
    Kubernetes gives it (`JOB_COMPLETION_INDEX`) and PUTs its chunk where the API says.

    Retries are per chunk (`backoffLimitPerIndex`), and the first chunk that fails for good
    fails the Job (`maxFailedIndexes: 0`): the render cannot succeed without it, so the other
    pods are stopped rather than left to run. Raises ValueError as `build_job` does.
    """
    name = render["metadata"]["name"]
    spec = RenderSpec.model_validate(render["spec"])
    plan = spec.plan.to_plan()
    if not plan.chunks or plan.video is None:
        raise ValueError("only a chunked video plan has a chunk Job")
    queue_labels, queue_spec = queue_fields(spec, settings)
    labels = job_labels(spec, settings) | {LABEL_STEP: "chunks"} | queue_labels
    encoder = video_encoder(spec, settings)
    limit = chunk_time_limit(plan, settings)
    scratch = chunk_scratch_mib(plan, settings)
    env: dict[str, str | None] = {item["name"]: item["value"] for item in
                                  encoder_env(plan, encoder, spec.render_id, settings)}  # fmt: skip
    env["ROUGHY_OUTPUT_CONTENT_TYPE"] = None  # a chunk is not the output
    main = _encoder_container(
        ["chunk", "--output", CHUNK_OUTPUT, "--time-limit", str(limit)], env,
        resources(encoder is VideoEncoder.H264_NVENC, scratch, settings), settings,
    )  # fmt: skip
    parallelism = chunk_parallelism(plan, settings)
    waves = math.ceil(len(plan.chunks) / parallelism)
    job_spec = {
        "completionMode": "Indexed",
        "completions": len(plan.chunks),
        "parallelism": parallelism,
        "backoffLimitPerIndex": settings.backoff_limit,
        "maxFailedIndexes": 0,
        "activeDeadlineSeconds": math.ceil(limit * settings.deadline_factor) * waves + _waiting_allowance(settings),
        "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
        "podFailurePolicy": pod_failure_policy(),
        "template": {
            "metadata": {"labels": dict(labels), "annotations": dict(settings.pod_annotations)},
            "spec": pod_spec(name, plan, encoder, settings, main, priority_class(spec, settings)),
        },
        **queue_spec,
    }
    metadata = _metadata(render, chunk_job_name(name), labels)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": job_spec}


def chunk_scratch_mib(plan: EncodePlan, settings: JobSettings) -> int:
    """/tmp of a chunk's pod: the longest chunk at the video's rate, with the usual margin."""
    assert plan.video is not None
    megabytes = _longest_chunk(plan) * plan.video.bitrate_kbps * SCRATCH_MARGIN * 1000 / 8 / 2**20
    return settings.scratch_min_mib + math.ceil(megabytes)


def join_scratch_mib(plan: EncodePlan, settings: JobSettings) -> int:
    """/tmp of the join: every chunk (downloaded) and the output beside them."""
    video = plan.video.bitrate_kbps if plan.video else 0
    kbps = 2 * video + (plan.audio.bitrate_kbps if plan.audio else 0)
    return settings.scratch_min_mib + math.ceil(plan.duration * kbps * SCRATCH_MARGIN * 1000 / 8 / 2**20)


def join_container(plan: EncodePlan, render_id: str, settings: JobSettings, scratch: int) -> dict[str, Any]:
    """`roughy-encode join`: the chunks' URLs come from the API, the rest as `render`'s."""
    env = encoder_env(plan, None, render_id, settings)
    output = f"{SCRATCH_DIR}/output.{plan.format.extension}"
    args = ["join", "--output", output, "--time-limit", str(encode_time_limit(plan, settings))]
    return _encoder_container(args, {item["name"]: item["value"] for item in env},
                              resources(False, scratch, settings), settings)  # fmt: skip


def _encoder_container(
    args: list[str], env: Mapping[str, str | None], resources_: dict[str, Any], settings: JobSettings
) -> dict[str, Any]:
    return {
        "name": CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["roughy-encode"],
        "args": args,
        "env": [{"name": name, "value": value} for name, value in env.items() if value is not None],
        "resources": resources_,
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": "tmp", "mountPath": SCRATCH_DIR},
            {"name": "credentials", "mountPath": CREDENTIALS_DIR, "readOnly": True},
        ],
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def resources(gpu: bool, scratch: int, settings: JobSettings) -> dict[str, Any]:
    pool = settings.gpu if gpu else settings.cpu
    requests = {"cpu": pool.cpu_request, "memory": pool.memory_request, "ephemeral-storage": f"{scratch}Mi"}
    limits = {"memory": pool.memory_limit}
    if pool.cpu_limit is not None:
        limits["cpu"] = pool.cpu_limit
    if gpu:
        limits[settings.gpu_resource] = "1"  # extended resources: the request follows the limit
    return {"requests": requests, "limits": limits}


def pod_security_context(settings: JobSettings) -> dict[str, Any]:
    uid = settings.run_as_user
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """What the `restricted` Pod Security Standard asks, plus a read-only root filesystem."""
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _placement(gpu: bool, settings: JobSettings) -> dict[str, Any]:
    """nodeSelector, tolerations and (GPU pool) node affinity of the pool the encode runs in
    (each omitted when empty)."""
    selector = settings.gpu_node_selector if gpu else settings.node_selector
    tolerations = settings.gpu_tolerations if gpu else settings.tolerations
    placement: dict[str, Any] = {}
    if selector:
        placement["nodeSelector"] = dict(selector)
    if tolerations:
        placement["tolerations"] = [dict(toleration) for toleration in tolerations]
    if gpu and settings.gpu_node_requirements:
        placement["affinity"] = gpu_node_affinity(settings.gpu_node_requirements)
    return placement


def gpu_node_affinity(requirements: tuple[NodeRequirement, ...]) -> dict[str, Any]:
    """A required node affinity of one term: a node must meet every requirement. Required, not
    preferred: a GPU without NVENC would hold a GPU while encoding with libx264 on two CPUs."""
    term = {"matchExpressions": [requirement.to_k8s() for requirement in requirements]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


def _label_value(value: str) -> str:
    if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        raise ValueError(f"not a valid label value: {value!r}")
    return value


# --- asset work as Jobs: audio extraction and silence detection -------------------------------

#: `roughy-encode` subcommands the operator runs as Jobs for assets and cuts.
TASKS = ("extract-audio", "silence")
TASK_OUTPUT = f"{SCRATCH_DIR}/audio.mka"


@dataclass(frozen=True)
class TaskJob:
    """One piece of asset work: `kind` (a TASKS entry) for `subject` (an asset or cut id)."""

    kind: str
    subject: str
    source_url: str
    duration: float  # seconds of media the task reads: scales its deadline
    labels: dict[str, str]  # domain labels (roughy.ai/asset=...)
    output_url: str | None = None  # extract-audio: the presigned PUT of the .mka
    args: tuple[str, ...] = ()  # extra arguments (silence: --min-silence, --threshold-db)


def task_job_name(kind: str, subject: str) -> str:
    """`t-` + a hash of the work: one Job per piece of work, so a repeat (an operator that
    restarted while it waited) finds the Job already there instead of starting another."""
    return "t-" + hashlib.sha256(f"{kind}:{subject}".encode()).hexdigest()[:40]


def build_task_job(task: TaskJob, settings: JobSettings, *, namespace: str | None = None) -> dict[str, Any]:
    """The batch/v1 Job running `roughy-encode <kind>` on the CPU pool, with the same pod
    security, failure policy and termination log as an encode. No owner: an asset is not a
    Kubernetes object; the operator deletes the Job once it has read the outcome, and
    ttlSecondsAfterFinished removes any it could not."""
    if task.kind not in TASKS:
        raise ValueError(f"not an asset task: {task.kind!r}")
    labels = {
        "app.kubernetes.io/name": "roughy",
        "app.kubernetes.io/instance": settings.instance,
        "app.kubernetes.io/component": "asset-task",
        "app.kubernetes.io/part-of": "roughy",
        "app.kubernetes.io/managed-by": "roughy",
        "roughy.ai/task": task.kind,
        **task.labels,
    }
    labels = {key: _label_value(value) for key, value in labels.items()}
    limit = math.ceil(settings.time_limit_base + task.duration)
    scratch = settings.scratch_min_mib + math.ceil(task.duration * PCM_KBPS * 1000 / 8 / 2**20)
    args = [task.kind]
    if task.kind == "extract-audio":
        if not task.output_url:
            raise ValueError("extract-audio needs an output URL")
        args.append(TASK_OUTPUT)
    args.extend(task.args)
    env = {
        "ROUGHY_SOURCE_URL": task.source_url,
        "ROUGHY_OUTPUT_URL": task.output_url,
        "ROUGHY_TERMINATION_LOG": TERMINATION_LOG,
        "HOME": SCRATCH_DIR,
    }
    container = {
        "name": CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["roughy-encode"],
        "args": args,
        "env": [{"name": name, "value": value} for name, value in env.items() if value is not None],
        "resources": resources(False, scratch, settings),
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": SCRATCH_DIR}],
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": settings.termination_grace_seconds,
        "securityContext": pod_security_context(settings),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": f"{scratch}Mi"}}],
        **_placement(False, settings),
    }
    optional = {
        "serviceAccountName": settings.service_account,
        "priorityClassName": settings.priority_class_name,
        "imagePullSecrets": [{"name": name} for name in settings.image_pull_secrets] or None,
    }
    pod.update({key: value for key, value in optional.items() if value is not None})
    metadata: dict[str, Any] = {"name": task_job_name(task.kind, task.subject), "labels": labels}
    if namespace is not None:
        metadata["namespace"] = namespace
    spec = {
        "backoffLimit": settings.backoff_limit,
        "activeDeadlineSeconds": math.ceil(limit * settings.deadline_factor) + settings.startup_seconds,
        "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
        "podFailurePolicy": pod_failure_policy(),
        "template": {"metadata": {"labels": dict(labels), "annotations": dict(settings.pod_annotations)}, "spec": pod},
    }
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}
