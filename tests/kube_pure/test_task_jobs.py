"""Asset work as Jobs (audio extraction, silence detection): the pure builder."""

from __future__ import annotations

from typing import Any

import pytest

from roughy.kube.jobs import (
    TERMINATION_LOG,
    JobSettings,
    TaskJob,
    build_task_job,
    container_security_context,
    pod_failure_policy,
    task_job_name,
)
from tests.kube_pure.k8s_models import unknown_fields

SETTINGS = JobSettings(image="ghcr.io/example/roughy-encoder:1.0", node_selector={"pool": "cpu"})
LABELS = {"roughy.ai/asset": "ast_Abc123", "roughy.ai/account": "acct_X"}


def extract(duration: float = 60.0) -> TaskJob:
    return TaskJob("extract-audio", "ast_Abc123", "https://s3.example/video?sig=v", duration, LABELS,
                   output_url="https://s3.example/audio?sig=o")  # fmt: skip


def env(job: dict[str, Any]) -> dict[str, str]:
    [container] = job["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item["value"] for item in container["env"]}


def test_an_extraction_job_the_api_understands() -> None:
    job = build_task_job(extract(), SETTINGS, namespace="roughy")
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert unknown_fields(job, "V1Job") == []
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["roughy-encode"] and container["args"] == ["extract-audio", "/tmp/audio.mka"]
    # the URLs travel in the environment, out of the argument list
    assert env(job)["ROUGHY_SOURCE_URL"].startswith("https://s3.example/video")
    assert env(job)["ROUGHY_OUTPUT_URL"].startswith("https://s3.example/audio")
    assert env(job)["ROUGHY_TERMINATION_LOG"] == container["terminationMessagePath"] == TERMINATION_LOG
    assert container["securityContext"] == container_security_context()
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] == {"pool": "cpu"} and "nvidia.com/gpu" not in str(pod)
    assert job["spec"]["podFailurePolicy"] == pod_failure_policy()
    assert job["metadata"]["labels"]["roughy.ai/asset"] == "ast_Abc123"
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "asset-task"


def test_a_silence_job_passes_its_parameters_as_arguments() -> None:
    task = TaskJob("silence", "cut_1", "https://s3.example/a", 10.0, LABELS, args=("--min-silence", "0.5"))
    job = build_task_job(task, SETTINGS)
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["silence", "--min-silence", "0.5"]
    assert "ROUGHY_OUTPUT_URL" not in env(job)


def test_the_name_follows_the_work_and_is_a_dns_label() -> None:
    name = task_job_name("extract-audio", "ast_Abc123")
    assert name == task_job_name("extract-audio", "ast_Abc123"), "a repeat finds the same Job"
    assert name != task_job_name("silence", "ast_Abc123") != task_job_name("extract-audio", "ast_Other")
    assert len(name) <= 63 and name == name.lower() and name.replace("-", "").isalnum()


def test_the_deadline_and_scratch_grow_with_the_media() -> None:
    short, long = build_task_job(extract(60.0), SETTINGS), build_task_job(extract(3600.0), SETTINGS)
    assert long["spec"]["activeDeadlineSeconds"] > short["spec"]["activeDeadlineSeconds"] + 3600
    size = [j["spec"]["template"]["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] for j in (short, long)]
    assert int(size[1].removesuffix("Mi")) > int(size[0].removesuffix("Mi"))


def test_refuses_what_it_cannot_run() -> None:
    with pytest.raises(ValueError, match="not an asset task"):
        build_task_job(TaskJob("render", "x", "https://s", 1.0, LABELS), SETTINGS)
    with pytest.raises(ValueError, match="output URL"):
        build_task_job(TaskJob("extract-audio", "x", "https://s", 1.0, LABELS), SETTINGS)
