"""The Helm chart as data, for tests that run without a `helm` binary.

Two things are read from the chart's own files rather than restated here:

- the values (`values.yaml`), merged with overrides the way Helm merges them (maps deeply,
  everything else replaced);
- the table in `_helpers.tpl` that maps JobSettings fields to values paths (the `$paths := dict`
  of the "roughy.jobSettings" template). `job_settings()` applies that table with the same rules
  the template states: walk the dotted path, leave out empty strings, nest "a.b" keys. Only the
  four entries computed by other helpers (image, instance, service_account, image_pull_secrets)
  are mirrored in Python; `special_keys()` reads their names from the template, so a new one
  cannot go unnoticed, and the helm-backed tests compare the rendered ConfigMap to this.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "roughy"
HELPERS = CHART / "templates" / "_helpers.tpl"
RELEASE = "roughy"
NAMESPACE = "roughy-test"  # the namespace the helm-backed tests render into

_DEFINE = re.compile(r'\{\{-? define "roughy\.jobSettings" -?\}\}(?P<body>.*?)(?=\{\{-? define |\Z)', re.S)
_PATHS = re.compile(r"\$paths := dict(?P<pairs>.*?)\}\}", re.S)
_SPECIALS = re.compile(r"\$settings := dict(?P<pairs>.*?)\}\}", re.S)
_PAIR = re.compile(r'^\s*"(?P<key>[a-z_.]+)"\s+"(?P<path>[A-Za-z0-9_.]+)"\s*$')
_SPECIAL_KEY = re.compile(r'^\s*"(?P<key>[a-z_]+)"\s+\S')


def chart_meta() -> dict[str, Any]:
    return dict(yaml.safe_load((CHART / "Chart.yaml").read_text()))


def default_values() -> dict[str, Any]:
    return dict(yaml.safe_load((CHART / "values.yaml").read_text()))


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of user values over the chart's: maps merge, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def values(**override: Any) -> dict[str, Any]:
    return merged(default_values(), override)


def _job_settings_template() -> str:
    found = _DEFINE.search(HELPERS.read_text())
    if found is None:
        raise AssertionError(f'no {{{{ define "roughy.jobSettings" }}}} in {HELPERS}')
    return found.group("body")


def path_table() -> dict[str, str]:
    """JobSettings key ("cpu.cpu_request" for nested ones) -> values path, as the template says.
    Any line of the table that is not a plain "key" "path" pair fails here, not silently."""
    found = _PATHS.search(_job_settings_template())
    if found is None:
        raise AssertionError("no `$paths := dict` table in the roughy.jobSettings template")
    table: dict[str, str] = {}
    for line in found.group("pairs").splitlines():
        if not line.strip():
            continue
        pair = _PAIR.match(line)
        if pair is None:
            raise AssertionError(f"not a plain key/path pair in the jobSettings table: {line!r}")
        if pair["key"] in table:
            raise AssertionError(f"{pair['key']} is mapped twice")
        table[pair["key"]] = pair["path"]
    return table


def special_keys() -> set[str]:
    """The keys the template computes with other helpers (`$settings := dict ...`)."""
    found = _SPECIALS.search(_job_settings_template())
    if found is None:
        raise AssertionError("no `$settings := dict` in the roughy.jobSettings template")
    return {m["key"] for line in found.group("pairs").splitlines() if (m := _SPECIAL_KEY.match(line))}


def walk(tree: dict[str, Any], path: str) -> Any:
    node: Any = tree
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"values have no {path!r} (stopped at {part!r})")
        node = node[part]
    return node


def fullname(vals: dict[str, Any], release: str = RELEASE) -> str:
    """The "roughy.fullname" helper."""
    if vals.get("fullnameOverride"):
        return str(vals["fullnameOverride"])[:63].rstrip("-")
    name = vals.get("nameOverride") or chart_meta()["name"]
    return (release if name in release else f"{release}-{name}")[:63].rstrip("-")


def service_account_name(vals: dict[str, Any], component: str, release: str = RELEASE) -> str:
    """The "roughy.serviceAccountName" helper."""
    sa = vals[component]["serviceAccount"]
    if sa["create"]:
        return str(sa["name"] or f"{fullname(vals, release)}-{component}")
    return str(sa["name"] or "default")


def job_settings(vals: dict[str, Any], release: str = RELEASE, namespace: str = NAMESPACE) -> dict[str, Any]:
    """The jobs.json the chart renders for these values (see the module docstring)."""
    image = vals["encoder"]["image"]
    settings: dict[str, Any] = {
        "image": f"{image['repository']}:{image['tag'] or chart_meta()['appVersion']}",
        "instance": release,
        "service_account": service_account_name(vals, "encoder", release),
        "image_pull_secrets": [secret["name"] for secret in vals.get("imagePullSecrets") or []],
        # encoder pods reach the API through its Service, in the release's namespace
        "api_url": f"http://{fullname(vals, release)}-api.{namespace}.svc:{vals['api']['service']['port']}",
    }
    mirrored = set(settings)
    if special_keys() != mirrored:
        raise AssertionError(f"the template computes {sorted(special_keys())}, this mirror {sorted(mirrored)}")
    for key, path in path_table().items():
        value = walk(vals, path)
        if isinstance(value, str) and value == "":
            continue  # "not set": JobSettings' default applies
        *parents, leaf = key.split(".")
        target = settings
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = copy.deepcopy(value)
    return settings
