"""values.schema.json: the chart's defaults pass it, and values that would break an install do not.

Helm validates the merged values (defaults + user values) against this schema on every lint,
template, install and upgrade, so a mistake is refused before anything reaches the cluster.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from roughy.kube.jobs import JobSettings
from tests.chart import chart

SCHEMA = json.loads((chart.CHART / "values.schema.json").read_text())


def errors(vals: dict[str, Any]) -> list[jsonschema.ValidationError]:
    return sorted(jsonschema.Draft7Validator(SCHEMA).iter_errors(vals), key=lambda e: list(e.absolute_path))


def test_schema_is_a_valid_draft7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_default_values_validate() -> None:
    assert errors(chart.default_values()) == []


def test_a_production_configuration_validates() -> None:
    vals = chart.values(
        image={"repository": "registry.example/roughy", "tag": "1.2.3"},
        imagePullSecrets=[{"name": "pull-secret"}],
        database={"existingSecret": "roughy-db", "existingSecretKey": "url"},
        s3={"bucket": "media", "region": "eu-west-1", "prefix": "roughy/"},
        adminKey={"existingSecret": "roughy-admin"},
        config={"publicUrl": "https://renders.example.com", "extraEnv": [{"name": "ROUGHY_WORKERS", "value": "4"}]},
        api={
            "replicas": 3,
            "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/roughy"}},
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "hosts": [{"host": "renders.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
                "tls": [{"secretName": "renders-tls", "hosts": ["renders.example.com"]}],
            },
        },
        encoder={
            "priorityClassName": "batch-low",
            "resources": {"limits": {"cpu": "4", "memory": "3Gi"}},
            "gpu": {
                "tiers": ["1080p", "4k"],
                "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
                "tolerations": [{"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
                "runtimeClassName": "nvidia",
            },
        },
        metrics={"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    )
    assert errors(vals) == []


BAD = [
    pytest.param({"api": {"replica": 2}}, ["api"], id="unknown-key-typo"),
    pytest.param({"unknownTopLevel": True}, [], id="unknown-top-level-key"),
    pytest.param({"api": {"replicas": -1}}, ["api", "replicas"], id="negative-replicas"),
    pytest.param({"api": {"replicas": "2"}}, ["api", "replicas"], id="replicas-as-string"),
    pytest.param({"operator": {"replicas": -1}}, ["operator", "replicas"], id="negative-operator-replicas"),
    pytest.param({"operator": {"leaderElection": {"leaseDurationSeconds": 15}}}, ["operator", "leaderElection"],
                 id="leader-election-typo"),
    pytest.param({"operator": {"leaderElection": {"leaseDuration": 7.5}}},
                 ["operator", "leaderElection", "leaseDuration"], id="lease-duration-whole-seconds"),
    pytest.param({"operator": {"leaderElection": {"retryPeriod": 0}}}, ["operator", "leaderElection", "retryPeriod"],
                 id="retry-period-zero"),
    pytest.param({"database": {"url": "sqlite:///roughy.db"}}, ["database", "url"], id="sqlite-database"),
    pytest.param({"s3": {"addressingStyle": "dns"}}, ["s3", "addressingStyle"], id="addressing-style"),
    pytest.param({"s3": {"endpointUrl": "minio:9000"}}, ["s3", "endpointUrl"], id="endpoint-without-scheme"),
    pytest.param({"encoder": {"gpu": {"tiers": ["8k"]}}}, ["encoder", "gpu", "tiers", 0], id="unknown-tier"),
    pytest.param({"encoder": {"backoffLimit": 10}}, ["encoder", "backoffLimit"], id="backoff-over-jobsettings-max"),
    pytest.param({"encoder": {"image": {"pullPolicy": "Sometimes"}}}, ["encoder", "image", "pullPolicy"], id="pull"),
    pytest.param({"encoder": {"resources": {"requests": {"cpu": "lots"}}}}, ["encoder", "resources", "requests", "cpu"],
                 id="cpu-quantity"),
    pytest.param({"encoder": {"tolerations": [{"key": "a", "effect": "Sometimes"}]}}, ["encoder", "tolerations", 0,
                 "effect"], id="toleration-effect"),
    pytest.param({"encoder": {"gpu": {"resources": {"requests": {"cpu": 2}}}}},
                 ["encoder", "gpu", "resources", "requests", "cpu"], id="encoder-quantity-unquoted"),
    pytest.param({"config": {"logFormat": "xml"}}, ["config", "logFormat"], id="log-format"),
    pytest.param({"config": {"extraEnv": [{"value": "x"}]}}, ["config", "extraEnv", 0], id="env-without-name"),
    pytest.param({"metrics": {"serviceMonitor": {"interval": "often"}}}, ["metrics", "serviceMonitor", "interval"],
                 id="interval"),
]  # fmt: skip


@pytest.mark.parametrize(("override", "where"), BAD)
def test_bad_values_are_refused_where_they_are_wrong(override: dict[str, Any], where: list[Any]) -> None:
    found = errors(chart.values(**override))
    assert found, f"{override} was accepted"
    assert any(list(e.absolute_path) == where for e in found), [(list(e.absolute_path), e.message) for e in found]


def test_every_value_in_values_yaml_is_described_and_required() -> None:
    """Strict both ways: a key the schema does not name is refused (additionalProperties), and a
    key the schema names but values.yaml lacks fails `required` (so the two cannot drift)."""

    def check(node: dict[str, Any], vals: Any, path: str) -> None:
        if node.get("type") != "object" or "properties" not in node:
            return
        assert node.get("additionalProperties") is False, f"{path or '.'} accepts any key"
        for key in vals:
            assert key in node["properties"], f"{path}.{key} is not in the schema"
            check(node["properties"][key], vals[key], f"{path}.{key}")

    check(SCHEMA, chart.default_values(), "")


@pytest.mark.parametrize(
    "path",
    [chart.ROOT / "tests" / "chart" / "values-test.yaml", chart.ROOT / "tests" / "e2e" / "values.yaml"],
    ids=lambda p: str(p.relative_to(chart.ROOT)),
)
def test_the_repositorys_values_files_validate(path: Path) -> None:
    """The values the helm tests and the kind suite install with: a mistake shows here, not
    twenty minutes into the e2e workflow."""
    vals = chart.merged(chart.default_values(), yaml.safe_load(path.read_text()))
    assert errors(vals) == []
    JobSettings.model_validate(chart.job_settings(vals))
