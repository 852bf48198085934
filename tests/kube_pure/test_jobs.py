"""The encoder Job built from a Render: pure, checked field by field, no cluster needed."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import pytest

from roughy.core.chunks import Chunking, chunk_segments
from roughy.core.models import Resolution
from roughy.core.plan import EncodePlan
from roughy.kube import jobs
from roughy.kube.crd import RenderSpec, VideoEncoder
from roughy.kube.jobs import JobSettings, build_job
from tests.kube_pure import examples
from tests.kube_pure.k8s_models import unknown_fields

SETTINGS = JobSettings(
    image="ghcr.io/example/roughy-encoder:1.0",
    node_selector={"pool": "cpu"},
    gpu_node_selector={"pool": "gpu", "nvidia.com/gpu.present": "true"},
    api_url="http://roughy-api.media.svc:8000",
)
SHELL_TOKENS = (";", "&&", "||", "|", "$(", "`", ">", "<")


def job_for(
    plan: EncodePlan,
    settings: JobSettings = SETTINGS,
    *,
    tier: Resolution | None = None,
    encoder: VideoEncoder | None = None,
) -> dict[str, Any]:
    spec = examples.spec_for(plan, tier=tier, encoder=encoder)
    return build_job(examples.render_object(spec), settings)


def pod(job: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec


def container(job: dict[str, Any]) -> dict[str, Any]:
    [only] = pod(job)["containers"]
    return dict(only)


def env(job: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container(job)["env"]}


def test_job_is_a_batch_v1_job_the_api_understands() -> None:
    job = job_for(examples.video_plan())
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert unknown_fields(job, "V1Job") == []
    json.dumps(job)  # plain JSON types only


def test_builder_is_pure() -> None:
    assert job_for(examples.video_plan()) == job_for(examples.video_plan())


def test_owner_reference_points_at_the_render() -> None:
    job = job_for(examples.video_plan())
    render = examples.render_object(examples.spec_for(examples.video_plan()))
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "roughy.ai/v1alpha1",
            "kind": "Render",
            "name": render["metadata"]["name"],
            "uid": examples.UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert job["metadata"]["name"] == render["metadata"]["name"]
    assert job["metadata"]["namespace"] == "media"


def test_a_render_without_uid_has_no_job() -> None:
    render = examples.render_object(examples.spec_for(examples.video_plan()))
    del render["metadata"]["uid"]
    with pytest.raises(ValueError, match="uid"):
        build_job(render, SETTINGS)


def test_labels_on_job_and_pods() -> None:
    job = job_for(examples.video_plan())
    labels = job["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "roughy"
    assert labels["app.kubernetes.io/component"] == "encoder"
    assert labels["app.kubernetes.io/instance"] == "roughy"
    assert {"app.kubernetes.io/part-of", "app.kubernetes.io/managed-by"} <= set(labels)
    assert labels["roughy.ai/render"] == "rnd_abc"  # the render id, as on the Render itself
    assert labels["roughy.ai/account"] == "acct_1" and labels["roughy.ai/asset"] == "ast_1"
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    render = examples.render_object(examples.spec_for(examples.video_plan()))
    assert render["metadata"]["labels"].items() <= labels.items()


def test_an_id_that_is_no_label_value_is_refused() -> None:
    spec = examples.spec_for(examples.video_plan()).model_copy(update={"asset_id": "ast 1/../x"})
    with pytest.raises(ValueError, match="label value"):
        jobs.job_labels(spec, SETTINGS)


def test_retries_and_cleanup() -> None:
    job = job_for(examples.video_plan())
    assert pod(job)["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["ttlSecondsAfterFinished"] == SETTINGS.ttl_seconds_after_finished > 0


def test_pod_failure_policy_fails_fast_on_bad_input_and_ignores_disruptions() -> None:
    rules = job_for(examples.video_plan())["spec"]["podFailurePolicy"]["rules"]
    fail = next(rule for rule in rules if rule["action"] == "FailJob")
    codes = fail["onExitCodes"]
    assert codes["operator"] == "In" and 3 in codes["values"]
    assert codes["values"] == sorted(set(codes["values"])) and 0 not in codes["values"]  # what the API requires
    assert codes["containerName"] == container(job_for(examples.video_plan()))["name"]
    ignore = next(rule for rule in rules if rule["action"] == "Ignore")
    assert ignore["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]


def test_exit_codes_and_batching_mirror_the_encoder() -> None:
    from roughy.encoder import cli
    from roughy.encoder.errors import InvalidMedia
    from roughy.encoder.ffmpeg_args import BATCH_SEGMENTS

    assert jobs.EXIT_INVALID_MEDIA == InvalidMedia.exit_code == 3
    assert jobs.EXIT_UNUSABLE_PLAN == cli.EXIT_USAGE
    assert jobs.BATCH_SEGMENTS == BATCH_SEGMENTS


def test_deadline_scales_with_the_plan_duration() -> None:
    short, long = examples.video_plan(duration=60.0), examples.video_plan(duration=3600.0)
    deadlines = [job_for(plan)["spec"]["activeDeadlineSeconds"] for plan in (short, long)]
    assert deadlines[0] < deadlines[1]
    for plan, deadline in zip((short, long), deadlines, strict=True):
        limit = int(container(job_for(plan))["args"][-1])  # the encoder's own, per attempt
        assert limit == math.ceil(plan.time_limit())
        waiting = SETTINGS.startup_seconds + SETTINGS.queue_seconds
        assert deadline == math.ceil(limit * SETTINGS.deadline_factor) + waiting


def test_deadline_follows_the_configured_time_limit() -> None:
    settings = SETTINGS.model_copy(update={"time_limit_base": 10.0, "time_limit_per_second": 2.0})
    job = job_for(examples.video_plan(duration=100.0), settings)
    assert container(job)["args"][-1] == "210"
    assert job["spec"]["activeDeadlineSeconds"] == 420 + settings.startup_seconds + settings.queue_seconds


def test_command_is_an_argument_list_not_a_shell_string() -> None:
    c = container(job_for(examples.video_plan(segments=3)))
    assert c["command"] == ["roughy-encode"]
    assert c["args"][0] == "render"
    assert c["args"][1:3] == ["--output", "/tmp/output.mp4"]
    for word in c["command"] + c["args"]:
        assert isinstance(word, str) and " " not in word
        assert not any(token in word for token in SHELL_TOKENS), word
    assert not {"sh", "bash", "/bin/sh", "-c"} & set(c["command"] + c["args"])


def test_the_plan_and_the_channel_to_the_api_reach_the_encoder_no_url_and_no_secret() -> None:
    plan = examples.video_plan(segments=3)
    job = job_for(plan)
    variables = env(job)
    assert EncodePlan.from_json(json.loads(variables["ROUGHY_PLAN"])) == plan
    spec = examples.spec_for(plan)
    assert variables["ROUGHY_API_URL"] == SETTINGS.api_url and variables["ROUGHY_RENDER_ID"] == spec.render_id
    assert variables["ROUGHY_OUTPUT_CONTENT_TYPE"] == "video/mp4"
    # The token is a file of the render's Secret, mounted read-only for the encoder's group.
    assert variables["ROUGHY_TOKEN_FILE"] == f"{jobs.CREDENTIALS_DIR}/{jobs.TOKEN_KEY}"
    mount = {m["name"]: m for m in container(job)["volumeMounts"]}["credentials"]
    assert (mount["mountPath"], mount["readOnly"]) == (jobs.CREDENTIALS_DIR, True)
    volume = {v["name"]: v for v in pod(job)["volumes"]}["credentials"]
    name = examples.render_object(spec)["metadata"]["name"]
    assert volume["secret"] == {"secretName": f"{name}-encoder", "defaultMode": 0o440}
    assert not any(name.endswith(("_URL", "_URLS", "_UPLOAD")) and name != "ROUGHY_API_URL" for name in variables)
    assert "sig=" not in json.dumps(job)


def test_the_render_secret_holds_its_token_and_goes_with_the_render() -> None:
    render = examples.render_object(examples.spec_for(examples.video_plan()))
    secret = jobs.build_credentials_secret(render, SETTINGS, "tok")
    assert unknown_fields(secret, "V1Secret") == []
    assert secret["metadata"]["name"] == jobs.credentials_secret_name(render["metadata"]["name"])
    assert secret["metadata"]["ownerReferences"][0]["uid"] == examples.UID and secret["immutable"] is True
    assert secret["data"] == {"token": "dG9r"}  # base64 of "tok"


def test_no_api_url_no_job() -> None:
    with pytest.raises(ValueError, match="api_url"):
        job_for(examples.video_plan(), JobSettings(image="img"))


def test_audio_only_render() -> None:
    job = job_for(examples.audio_plan())
    variables = env(job)
    assert "ROUGHY_ENCODER" not in variables and "NVIDIA_DRIVER_CAPABILITIES" not in variables
    assert "nvidia.com/gpu" not in container(job)["resources"]["limits"]
    assert container(job)["args"][2] == "/tmp/output.m4a"


def test_an_invalid_spec_is_a_value_error() -> None:
    render = examples.render_object(examples.spec_for(examples.video_plan()))
    render["spec"]["plan"]["format"] = "avi"
    with pytest.raises(ValueError):
        build_job(render, SETTINGS)


# --- GPU pool -------------------------------------------------------------------------------


def assert_gpu(job: dict[str, Any]) -> None:
    c, p = container(job), pod(job)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert p["nodeSelector"] == SETTINGS.gpu_node_selector
    assert p["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert env(job)["NVIDIA_DRIVER_CAPABILITIES"] == "compute,video,utility"
    assert env(job)["ROUGHY_ENCODER"] == "h264_nvenc"


def assert_cpu(job: dict[str, Any]) -> None:
    c, p = container(job), pod(job)
    assert not any("gpu" in name for name in c["resources"]["limits"])
    assert p["nodeSelector"] == SETTINGS.node_selector and "tolerations" not in p
    assert "NVIDIA_DRIVER_CAPABILITIES" not in env(job)
    assert env(job)["ROUGHY_ENCODER"] == "libx264"


def test_4k_goes_to_the_gpu_pool() -> None:
    assert_gpu(job_for(examples.video_plan(3840, 2160), tier=Resolution.UHD4K))


def test_auto_resolution_of_a_4k_source_goes_to_the_gpu_pool() -> None:
    plan = examples.video_plan(3840, 2160)
    spec = examples.spec_for(plan).model_copy(update={"tier": None})
    assert_gpu(build_job(examples.render_object(spec), SETTINGS))


@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720)])
def test_other_tiers_stay_on_cpu_nodes(size: tuple[int, int]) -> None:
    assert_cpu(job_for(examples.video_plan(*size)))


def test_gpu_tiers_are_configurable() -> None:
    settings = SETTINGS.model_copy(update={"gpu_tiers": frozenset({Resolution.P1080, Resolution.UHD4K})})
    job = job_for(examples.video_plan(1920, 1080), settings)
    assert env(job)["ROUGHY_ENCODER"] == "h264_nvenc"
    assert JobSettings(image="x", gpu_tiers={"4k"}).gpu_tiers == {Resolution.UHD4K}  # strings from settings


def test_a_forced_encoder_wins_over_the_tier() -> None:
    assert_cpu(job_for(examples.video_plan(3840, 2160), encoder=VideoEncoder.LIBX264))
    assert_gpu(job_for(examples.video_plan(1280, 720), encoder=VideoEncoder.H264_NVENC))


def test_gpu_runtime_class_only_on_gpu_pods() -> None:
    settings = SETTINGS.model_copy(update={"gpu_runtime_class": "nvidia"})
    assert pod(job_for(examples.video_plan(3840, 2160), settings))["runtimeClassName"] == "nvidia"
    assert "runtimeClassName" not in pod(job_for(examples.video_plan(), settings))


# --- security and resources -----------------------------------------------------------------


def test_restricted_security_context() -> None:
    job = job_for(examples.video_plan(3840, 2160))
    p, c = pod(job), container(job)
    assert p["securityContext"]["runAsNonRoot"] is True
    assert p["securityContext"]["runAsUser"] == 10001 != 0
    assert p["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True and sc["runAsNonRoot"] is True
    assert "privileged" not in sc and "hostNetwork" not in p and "hostPID" not in p
    assert p["automountServiceAccountToken"] is False


def test_tmp_is_a_sized_empty_dir() -> None:
    job = job_for(examples.video_plan())
    volume = {v["name"]: v for v in pod(job)["volumes"]}["tmp"]
    assert container(job)["volumeMounts"][0] == {"name": "tmp", "mountPath": "/tmp"}
    size = volume["emptyDir"]["sizeLimit"]
    assert size.endswith("Mi") and container(job)["resources"]["requests"]["ephemeral-storage"] == size


def test_scratch_grows_with_duration_bitrate_and_batching() -> None:
    small = jobs.scratch_mib(examples.video_plan(duration=10.0), SETTINGS)
    hour = jobs.scratch_mib(examples.video_plan(duration=3600.0), SETTINGS)
    batched = jobs.scratch_mib(examples.video_plan(duration=3600.0, segments=jobs.BATCH_SEGMENTS + 1), SETTINGS)
    assert SETTINGS.scratch_min_mib < small < hour < batched
    expected = 3600 * (10_000 + 192) * 1000 / 8 / 2**20  # the output alone, MiB
    # room for the output at twice its average bitrate: the bound its upload is planned for
    assert 1.5 * expected < hour - SETTINGS.scratch_min_mib <= 2.01 * expected


def test_resources_per_pool() -> None:
    cpu = container(job_for(examples.video_plan()))["resources"]
    gpu = container(job_for(examples.video_plan(3840, 2160)))["resources"]
    assert cpu["requests"]["memory"] == SETTINGS.cpu.memory_request
    assert cpu["limits"]["memory"] == SETTINGS.cpu.memory_limit
    assert gpu["requests"]["cpu"] == SETTINGS.gpu.cpu_request
    assert "cpu" not in cpu["limits"]  # CPU throttling only slows an encode


def test_spec_round_trip_keeps_the_tier() -> None:
    spec = examples.spec_for(examples.video_plan(3840, 2160))
    assert RenderSpec.model_validate(examples.render_object(spec)["spec"]) == spec


# --- a chunked render: an Indexed Job of chunks, then the join --------------------------------


def chunked_plan(duration: float = 600.0, width: int = 1920, height: int = 1080) -> EncodePlan:
    plan = examples.video_plan(width=width, height=height, duration=duration)
    assert plan.video is not None
    chunks = chunk_segments(plan.duration, plan.video.fps, Chunking(60.0, 300.0))
    assert chunks is not None
    return replace(plan, chunks=chunks)


def chunk_job_for(plan: EncodePlan, settings: JobSettings = SETTINGS, **kwargs: Any) -> dict[str, Any]:
    render = examples.render_object(examples.spec_for(plan, **kwargs))
    return jobs.build_chunk_job(render, settings)


def test_a_chunked_render_encodes_its_chunks_in_an_indexed_job_one_pod_per_chunk() -> None:
    plan = chunked_plan()
    assert plan.chunks is not None and len(plan.chunks) == 10
    job = chunk_job_for(plan, JobSettings(image="img", chunk_parallelism=4, api_url="http://api"))
    assert unknown_fields(job, "V1Job") == []
    spec = job["spec"]
    assert job["metadata"]["name"] == examples.render_object(examples.spec_for(plan))["metadata"]["name"] + "-chunks"
    assert job["metadata"]["ownerReferences"][0]["uid"] == examples.UID  # collected with its Render
    assert job["metadata"]["labels"][jobs.LABEL_STEP] == "chunks"
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 10, 4)
    # Retries are per chunk, and the first chunk that fails for good stops the others.
    assert (spec["backoffLimitPerIndex"], spec["maxFailedIndexes"]) == (2, 0) and "backoffLimit" not in spec
    assert spec["podFailurePolicy"] == jobs.pod_failure_policy()
    c = container(job)
    assert c["args"][:3] == ["chunk", "--output", jobs.CHUNK_OUTPUT]  # the index comes from JOB_COMPLETION_INDEX
    limit = int(c["args"][-1])
    assert limit == math.ceil(120 + 20 * 60.06) < jobs.encode_time_limit(plan, SETTINGS) / 5  # one chunk's
    # Three waves of at most 4 pods, each allowed its deadline factor: the Job's whole budget.
    assert spec["activeDeadlineSeconds"] == 3 * math.ceil(limit * 2.0) + 600 + 3600  # + the queue budget
    variables = env(job)
    assert variables["ROUGHY_API_URL"] == "http://api" and "ROUGHY_OUTPUT_CONTENT_TYPE" not in variables
    assert EncodePlan.from_json(json.loads(variables["ROUGHY_PLAN"])) == plan
    assert "sig=" not in json.dumps(job)  # each pod asks the API for its chunk's URL
    # A chunk's scratch holds one chunk, not the whole render.
    assert c["resources"]["requests"]["ephemeral-storage"] == f"{jobs.chunk_scratch_mib(plan, SETTINGS)}Mi"
    assert jobs.chunk_scratch_mib(plan, SETTINGS) < jobs.scratch_mib(plan, SETTINGS)


def test_the_chunks_of_a_gpu_tier_run_on_the_gpu_pool_and_their_join_on_cpu_nodes() -> None:
    plan = chunked_plan(width=3840, height=2160)
    chunk_pod = pod(chunk_job_for(plan, tier=Resolution.UHD4K))
    assert chunk_pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert chunk_pod["nodeSelector"] == SETTINGS.gpu_node_selector
    join = job_for(plan, tier=Resolution.UHD4K)
    assert unknown_fields(join, "V1Job") == []
    assert join["metadata"]["labels"][jobs.LABEL_STEP] == "join" and "completionMode" not in join["spec"]
    assert "nvidia.com/gpu" not in container(join)["resources"]["limits"]  # a copy and an audio encode
    assert pod(join)["nodeSelector"] == SETTINGS.node_selector
    assert container(join)["args"][0] == "join"
    variables = env(join)
    assert "ROUGHY_ENCODER" not in variables and variables["ROUGHY_TOKEN_FILE"].startswith(jobs.CREDENTIALS_DIR)
    assert jobs.join_scratch_mib(plan, SETTINGS) > jobs.scratch_mib(plan, SETTINGS)  # the chunks and the output


def test_only_a_chunked_plan_has_a_chunk_job() -> None:
    with pytest.raises(ValueError, match="only a chunked video plan"):
        chunk_job_for(examples.video_plan())


def test_with_a_kueue_queue_jobs_are_created_suspended_for_kueue_to_admit() -> None:
    settings = JobSettings(image="img", kueue_queue="renders", api_url="http://api")
    for job in (job_for(examples.video_plan(), settings), chunk_job_for(chunked_plan(), settings)):
        assert job["spec"]["suspend"] is True
        assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "renders"
        assert unknown_fields(job, "V1Job") == []
    assert "suspend" not in job_for(examples.video_plan())["spec"]  # no queue: runs at once


def test_each_tier_can_have_its_own_priority_class() -> None:
    settings = JobSettings(
        image="img", priority_class_name="encodes", tier_priority_classes={Resolution.UHD4K: "bulk"}, api_url="http://api"
    )
    assert pod(job_for(examples.video_plan(3840, 2160), settings))["priorityClassName"] == "bulk"
    assert pod(job_for(examples.video_plan(1920, 1080), settings))["priorityClassName"] == "encodes"


def test_the_job_deadline_leaves_room_for_the_queue_budget() -> None:
    plan = examples.video_plan()
    quick = JobSettings(image="img", queue_seconds=0, api_url="http://api")
    patient = JobSettings(image="img", queue_seconds=7200)
    assert jobs.active_deadline_seconds(plan, patient) - jobs.active_deadline_seconds(plan, quick) == 7200


# --- GPU placement: nodes with an encode unit (NVENC) ------------------------------------------


def matches(requirement: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes' node selector operators: a NotIn or DoesNotExist also matches a node that
    lacks the label."""
    key, operator, values = requirement["key"], requirement["operator"], requirement.get("values", [])
    if operator in ("Exists", "DoesNotExist"):
        return (key in labels) == (operator == "Exists")
    if key not in labels:
        return operator == "NotIn"
    value = labels[key]
    if operator in ("In", "NotIn"):
        return (value in values) == (operator == "In")
    return int(value) > int(values[0]) if operator == "Gt" else int(value) < int(values[0])


def schedulable(pod_spec: dict[str, Any], labels: dict[str, str]) -> bool:
    terms = pod_spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    return any(all(matches(r, labels) for r in term["matchExpressions"]) for term in terms)


ENCODERS = "nvidia.com/gpu.engines.encoder"  # set for MIG devices (single strategy)


def gfd(product: str, major: int, minor: int, **more: str) -> dict[str, str]:
    """A GPU node's labels as NVIDIA GPU Feature Discovery writes them."""
    labels = {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": product,
              "nvidia.com/gpu.compute.major": str(major), "nvidia.com/gpu.compute.minor": str(minor)}  # fmt: skip
    return labels | more


#: Label sets seen on real clusters (the product names as GPU Feature Discovery spells them).
NVENC_LESS_NODES = {
    "A100 SXM4 80GB": gfd("NVIDIA-A100-SXM4-80GB", 8, 0),
    "A100 PCIe 40GB": gfd("NVIDIA-A100-PCIE-40GB", 8, 0),
    "A100 80GB PCIe": gfd("NVIDIA-A100-80GB-PCIe", 8, 0),
    "A100 time-sliced": gfd("NVIDIA-A100-SXM4-40GB-SHARED", 8, 0),
    "A100 MIG (single strategy)": gfd("NVIDIA-A100-80GB-PCIe-MIG-1g.10gb", 8, 0, **{ENCODERS: "0"}),
    "A30": gfd("NVIDIA-A30", 8, 0),
    "H100 SXM": gfd("NVIDIA-H100-80GB-HBM3", 9, 0),
    "H100 NVL": gfd("NVIDIA-H100-NVL", 9, 0),
    "H200": gfd("NVIDIA-H200", 9, 0),
    "H200 (another driver's name)": gfd("NVIDIA-H200-141GB-HBM3e", 9, 0),
    "H200 NVL": gfd("NVIDIA-H200-NVL", 9, 0),
    "GH200": gfd("NVIDIA-GH200-480GB", 9, 0),
    "B200": gfd("NVIDIA-B200", 10, 0),
}
NVENC_NODES = {
    "T4": gfd("Tesla-T4", 7, 5),
    "A10": gfd("NVIDIA-A10", 8, 6),
    "A40": gfd("NVIDIA-A40", 8, 6),
    "L4": gfd("NVIDIA-L4", 8, 9),
    "L40S": gfd("NVIDIA-L40S", 8, 9),
    "RTX PRO 6000 Blackwell": gfd("NVIDIA-RTX-PRO-6000-Blackwell-Server-Edition", 12, 0),
    "no GPU Feature Discovery": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
}


def gpu_pod(settings: JobSettings = SETTINGS) -> dict[str, Any]:
    return pod(job_for(examples.video_plan(3840, 2160), settings))


def test_gpu_pods_require_a_node_with_nvenc_by_gpu_feature_discovery_labels() -> None:
    job = job_for(examples.video_plan(3840, 2160))
    assert unknown_fields(job, "V1Job") == []
    affinity = pod(job)["affinity"]["nodeAffinity"]
    assert set(affinity) == {"requiredDuringSchedulingIgnoredDuringExecution"}, "required: never a GPU without NVENC"
    [term] = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [r.to_k8s() for r in jobs.NVENC_NODE_REQUIREMENTS]
    assert pod(job)["nodeSelector"] == SETTINGS.gpu_node_selector, "the pool's own selector still applies"


@pytest.mark.parametrize("name", sorted(NVENC_LESS_NODES))
def test_gpus_without_nvenc_are_not_schedulable(name: str) -> None:
    assert not schedulable(gpu_pod(), NVENC_LESS_NODES[name])


@pytest.mark.parametrize("name", sorted(NVENC_NODES))
def test_gpus_with_nvenc_and_unlabelled_nodes_are(name: str) -> None:
    assert schedulable(gpu_pod(), NVENC_NODES[name])


def test_only_gpu_encodes_carry_the_affinity() -> None:
    assert "affinity" not in pod(job_for(examples.video_plan(1280, 720)))
    plan = chunked_plan(width=3840, height=2160)
    assert "affinity" in pod(chunk_job_for(plan, tier=Resolution.UHD4K)), "the chunks encode with NVENC"
    assert "affinity" not in pod(job_for(plan, tier=Resolution.UHD4K)), "the join only copies"
    task = jobs.build_task_job(jobs.TaskJob("silence", "ast_1", "https://s3/x", 60.0, {}), SETTINGS)
    assert "affinity" not in task["spec"]["template"]["spec"]


def test_an_allow_list_replaces_the_default() -> None:
    """An operator who labels the NVENC nodes (or lists the products) allows only those."""
    labelled = [{"key": "roughy.ai/nvenc", "operator": "In", "values": ["true"]}]
    own = JobSettings.model_validate(SETTINGS.model_dump() | {"gpu_node_requirements": labelled})
    job = job_for(examples.video_plan(3840, 2160), own)
    assert unknown_fields(job, "V1Job") == []
    assert schedulable(pod(job), NVENC_NODES["L4"] | {"roughy.ai/nvenc": "true"})
    assert not schedulable(pod(job), NVENC_NODES["L4"]), "an allow-list refuses an unlabelled node"
    products = own.model_copy(update={"gpu_node_requirements": (
        jobs.NodeRequirement(key="nvidia.com/gpu.product", operator="In", values=("NVIDIA-L4", "NVIDIA-L40S")),
    )})  # fmt: skip
    assert schedulable(gpu_pod(products), NVENC_NODES["L40S"]) and not schedulable(gpu_pod(products), NVENC_NODES["T4"])


def test_no_requirements_no_affinity() -> None:
    assert "affinity" not in gpu_pod(SETTINGS.model_copy(update={"gpu_node_requirements": ()}))


@pytest.mark.parametrize(
    "requirement",
    [
        {"key": "a", "operator": "In"},  # In/NotIn need values
        {"key": "a", "operator": "NotIn", "values": []},
        {"key": "a", "operator": "Exists", "values": ["x"]},  # Exists/DoesNotExist take none
        {"key": "a", "operator": "Gt", "values": ["nine"]},  # Gt/Lt take one integer
        {"key": "a", "operator": "Lt", "values": ["1", "2"]},
        {"key": "a", "operator": "Matches", "values": ["x"]},
        {"key": "", "operator": "Exists"},
    ],
)
def test_a_requirement_the_api_server_would_refuse_is_refused_at_start_up(requirement: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        JobSettings(image="x", gpu_node_requirements=[requirement])


def test_gt_and_exists_render_as_the_api_expects() -> None:
    settings = SETTINGS.model_copy(update={"gpu_node_requirements": (
        jobs.NodeRequirement(key="nvidia.com/gpu.compute.major", operator="Gt", values=("7",)),
        jobs.NodeRequirement(key="nvidia.com/gpu.present", operator="Exists"),
    )})  # fmt: skip
    job = job_for(examples.video_plan(3840, 2160), settings)
    assert unknown_fields(job, "V1Job") == []
    [term] = pod(job)["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchExpressions"][1] == {"key": "nvidia.com/gpu.present", "operator": "Exists"}
    assert schedulable(pod(job), NVENC_NODES["L4"])
    assert not schedulable(pod(job), NVENC_NODES["no GPU Feature Discovery"])


def test_gpu_decoding_is_on_unless_turned_off() -> None:
    assert "ROUGHY_HWACCEL" not in env(job_for(examples.video_plan(3840, 2160)))
    off = SETTINGS.model_copy(update={"gpu_decode": False})
    assert env(job_for(examples.video_plan(3840, 2160), off))["ROUGHY_HWACCEL"] == "none"
    assert "ROUGHY_HWACCEL" not in env(job_for(examples.video_plan(1280, 720), off)), "libx264 has nothing to turn off"
