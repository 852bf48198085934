"""The operator's jobs.json, as the chart renders it from values, is what JobSettings accepts.

`chart.job_settings` applies the mapping table read from the chart's own template (see
tests/chart/chart.py); with helm installed, test_helm.py also compares it to the rendered
ConfigMap. Going on from there through `build_job` shows where the values end up in a pod.
"""

from __future__ import annotations

import json
from typing import Any

import annotated_types
import pytest

from roughy.core.models import Resolution
from roughy.kube.jobs import JobSettings, build_job
from tests.chart import chart
from tests.kube_pure import examples

SCHEMA = json.loads((chart.CHART / "values.schema.json").read_text())

GPU_POOL = {
    "encoder": {
        "nodeSelector": {"pool": "cpu"},
        "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
        "resources": {"requests": {"cpu": "3", "memory": "1536Mi"}, "limits": {"cpu": "4", "memory": "3Gi"}},
        "gpu": {
            "tiers": ["1080p", "4k"],
            "resourceName": "nvidia.com/mig-1g.10gb",
            "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
            "tolerations": [{"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
            "runtimeClassName": "nvidia",
        },
    },
    "imagePullSecrets": [{"name": "pull-a"}, {"name": "pull-b"}],
}


def settings_for(**override: Any) -> JobSettings:
    return JobSettings.model_validate(chart.job_settings(chart.values(**override)))


def pod_of(settings: JobSettings, width: int, height: int) -> dict[str, Any]:
    spec = examples.spec_for(examples.video_plan(width, height))
    pod: dict[str, Any] = build_job(examples.render_object(spec), settings)["spec"]["template"]["spec"]
    return pod


def test_the_table_covers_every_jobsettings_field_once() -> None:
    mapped = {key.split(".")[0] for key in chart.path_table()} | chart.special_keys()
    assert mapped == set(JobSettings.model_fields), "add the new field to the roughy.jobSettings table (or remove it)"


def test_every_path_of_the_table_is_in_values_yaml() -> None:
    vals = chart.default_values()
    for path in chart.path_table().values():
        chart.walk(vals, path)  # KeyError names the path


def test_default_values_make_valid_settings() -> None:
    settings = settings_for()
    assert settings.image == f"roughy-encoder:{chart.chart_meta()['appVersion']}"
    assert settings.instance == chart.RELEASE
    assert settings.service_account == "roughy-encoder"
    assert settings.gpu_tiers == frozenset({Resolution.UHD4K})
    assert settings.cpu.cpu_limit is None and settings.gpu.cpu_limit is None, "an empty limit sets none"
    assert settings.priority_class_name is None and settings.gpu_runtime_class is None


def test_defaults_agree_with_jobsettings_defaults() -> None:
    """Where values.yaml restates a JobSettings default, it restates it exactly (no accidental
    divergence between `helm install` and the operator's own defaults)."""
    from_chart = settings_for().model_dump()
    own = JobSettings(image="x").model_dump()
    computed = {"image", "instance", "service_account", "api_url"}  # from the release, not restated defaults
    differ = {k for k in own if k not in computed and own[k] != from_chart[k]}
    assert differ == set()


def test_the_gpu_pool_values_reach_gpu_pods_and_only_them() -> None:
    settings = settings_for(**GPU_POOL)
    gpu = pod_of(settings, 3840, 2160)
    assert gpu["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert gpu["tolerations"] == GPU_POOL["encoder"]["gpu"]["tolerations"]
    assert gpu["runtimeClassName"] == "nvidia"
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == "1"
    assert gpu["imagePullSecrets"] == [{"name": "pull-a"}, {"name": "pull-b"}]
    assert pod_of(settings, 1920, 1080)["nodeSelector"] == gpu["nodeSelector"], "1080p is a GPU tier here"

    cpu = pod_of(settings, 1280, 720)
    assert cpu["nodeSelector"] == {"pool": "cpu"}
    assert cpu["tolerations"] == GPU_POOL["encoder"]["tolerations"]
    assert "runtimeClassName" not in cpu
    resources = cpu["containers"][0]["resources"]
    assert resources["requests"]["cpu"] == "3" and resources["requests"]["memory"] == "1536Mi"
    assert resources["limits"] == {"cpu": "4", "memory": "3Gi"}
    assert cpu["serviceAccountName"] == "roughy-encoder" and cpu["automountServiceAccountToken"] is False


def test_no_gpu_tiers_keeps_4k_on_cpu_nodes() -> None:
    pod = pod_of(settings_for(encoder={"gpu": {"tiers": []}}), 3840, 2160)
    assert not any("gpu" in key for key in pod["containers"][0]["resources"]["limits"])


def test_schema_tiers_are_the_resolutions() -> None:
    tiers = SCHEMA["properties"]["encoder"]["properties"]["gpu"]["properties"]["tiers"]["items"]["enum"]
    assert sorted(tiers) == sorted(r.value for r in Resolution)


def _schema_at(path: str) -> dict[str, Any]:
    node = SCHEMA
    for part in path.split("."):
        node = node["properties"][part]
    return node


@pytest.mark.parametrize("key", sorted(k for k in chart.path_table() if "." not in k))
def test_schema_bounds_match_jobsettings_bounds(key: str) -> None:
    """A value the schema lets through must not be one JobSettings refuses at the operator's
    start-up (a crash loop after a successful `helm upgrade`)."""
    node = _schema_at(chart.path_table()[key])
    for bound in JobSettings.model_fields[key].metadata:
        if isinstance(bound, annotated_types.Ge):
            assert node.get("minimum") == bound.ge, (key, node)
        elif isinstance(bound, annotated_types.Gt):
            assert node.get("exclusiveMinimum") == bound.gt, (key, node)
        elif isinstance(bound, annotated_types.Le):
            assert node.get("maximum") == bound.le, (key, node)
