"""Check a manifest's keys against the Kubernetes client's models, field by field.

The API server drops (or, with strict field validation, refuses) a field it does not know; a
misspelt `podFailurePolicy` or a JSON-Schema-only keyword would pass every other test. The
client's generated models carry each type's JSON field names (`attribute_map`) and field types
(`openapi_types`), which is all this walk needs. Only tests use it: the builders stay pure.
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

import pytest


def unknown_fields(obj: Any, type_name: str) -> list[str]:
    """Paths of keys in `obj` that the model `type_name` (e.g. "V1Job") and its parts lack."""
    client = pytest.importorskip(
        "kubernetes.client", reason="the 'kubernetes' extra is not installed; `make test` installs it (dev extra)"
    )
    return _walk(client, obj, type_name, "")


def _walk(client: ModuleType, value: Any, type_name: str, path: str) -> list[str]:
    if value is None:
        return []
    if (inner := re.fullmatch(r"list\[(.+)\]", type_name)) is not None:
        return [p for i, item in enumerate(value) for p in _walk(client, item, inner.group(1), f"{path}[{i}]")]
    if (inner := re.fullmatch(r"dict[\[(]str, (.+)[\])]", type_name)) is not None:
        return [p for key, item in value.items() for p in _walk(client, item, inner.group(1), f"{path}.{key}")]
    model = getattr(client, type_name, None)
    if model is None or not isinstance(value, dict):
        return []  # a scalar, or an untyped `object`
    return _walk_model(client, model, value, path)


def _walk_model(client: ModuleType, model: type, value: dict[str, Any], path: str) -> list[str]:
    python_names = {json_key: name for name, json_key in model.attribute_map.items()}  # type: ignore[attr-defined]
    problems: list[str] = []
    for key, item in value.items():
        if key not in python_names:
            problems.append(f"{path}.{key}")
            continue
        field_type = model.openapi_types[python_names[key]]  # type: ignore[attr-defined]
        if model is client.V1JSONSchemaProps and key in ("items", "additionalProperties") and isinstance(item, dict):
            field_type = "V1JSONSchemaProps"  # typed `object` in the client: a schema or a bool
        problems += _walk(client, item, field_type, f"{path}.{key}")
    return problems
