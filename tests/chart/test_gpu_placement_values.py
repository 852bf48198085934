"""encoder.gpu.nodeRequirements and encoder.gpu.decode: the schema and JobSettings agree on what
they accept, and the values reach GPU encode pods (and only them)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from roughy.kube.jobs import NVENC_NODE_REQUIREMENTS, JobSettings
from tests.chart import chart
from tests.chart.test_job_settings import SCHEMA, pod_of, settings_for

GKE_DENY = [{"key": "cloud.google.com/gke-accelerator", "operator": "NotIn",
             "values": ["nvidia-tesla-a100", "nvidia-a100-80gb", "nvidia-h100-80gb", "nvidia-h200-141gb"]}]  # fmt: skip
OWN_LABEL = [{"key": "roughy.ai/nvenc", "operator": "In", "values": ["true"]}]


def schema_errors(requirements: list[dict[str, Any]]) -> list[str]:
    vals = chart.values(encoder={"gpu": {"nodeRequirements": requirements}})
    return [error.message for error in jsonschema.Draft7Validator(SCHEMA).iter_errors(vals)]


def affinity_terms(pod: dict[str, Any]) -> list[dict[str, Any]]:
    terms: list[dict[str, Any]] = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    return terms


def test_the_default_is_the_nvenc_rule_and_reaches_gpu_pods_only() -> None:
    settings = settings_for()
    assert settings.gpu_node_requirements == NVENC_NODE_REQUIREMENTS and settings.gpu_decode is True
    [term] = affinity_terms(pod_of(settings, 3840, 2160))
    assert [e["key"] for e in term["matchExpressions"]] == [
        "nvidia.com/gpu.compute.major", "nvidia.com/gpu.product", "nvidia.com/gpu.engines.encoder",
    ]  # fmt: skip
    assert "affinity" not in pod_of(settings, 1920, 1080)


@pytest.mark.parametrize("requirements", [GKE_DENY, OWN_LABEL], ids=["gke-deny-list", "own-label-allow-list"])
def test_the_documented_alternatives_validate_and_replace_the_default(requirements: list[dict[str, Any]]) -> None:
    assert schema_errors(requirements) == []
    settings = settings_for(encoder={"gpu": {"nodeRequirements": requirements}})
    [term] = affinity_terms(pod_of(settings, 3840, 2160))
    assert term["matchExpressions"] == requirements


def test_an_empty_list_places_on_any_gpu_node() -> None:
    assert "affinity" not in pod_of(settings_for(encoder={"gpu": {"nodeRequirements": []}}), 3840, 2160)


def test_decode_false_keeps_decoding_on_the_cpu() -> None:
    container = pod_of(settings_for(encoder={"gpu": {"decode": False}}), 3840, 2160)["containers"][0]
    assert {"name": "ROUGHY_HWACCEL", "value": "none"} in container["env"]


REFUSED = [
    pytest.param({"key": "a", "operator": "In"}, id="in-without-values"),
    pytest.param({"key": "a", "operator": "NotIn", "values": []}, id="notin-empty"),
    pytest.param({"key": "a", "operator": "Exists", "values": ["x"]}, id="exists-with-values"),
    pytest.param({"key": "a", "operator": "Gt", "values": ["nine"]}, id="gt-not-an-integer"),
    pytest.param({"key": "a", "operator": "Lt", "values": ["1", "2"]}, id="lt-two-values"),
    pytest.param({"key": "a", "operator": "Matches", "values": ["x"]}, id="unknown-operator"),
    pytest.param({"key": "", "operator": "Exists"}, id="empty-key"),
    pytest.param({"key": "a", "operator": "In", "values": ["x"], "value": "x"}, id="unknown-field"),
]


@pytest.mark.parametrize("requirement", REFUSED)
def test_what_jobsettings_refuses_helm_refuses_first(requirement: dict[str, Any]) -> None:
    """A requirement the operator would refuse at start-up (a crash loop after a successful
    `helm upgrade`) is refused by the schema, at `helm upgrade`."""
    assert schema_errors([requirement]), f"{requirement} passed the schema"
    if "value" not in requirement:  # pydantic ignores an unknown key; the schema does not
        with pytest.raises(ValueError):
            JobSettings(image="x", gpu_node_requirements=[requirement])
