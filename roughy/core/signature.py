"""The content signature of a render: what makes two render requests the same render (SPEC 5.4)."""

from __future__ import annotations

import hashlib
import json

from roughy.core.models import OutputSpec


def render_signature(asset_id: str, cut_id: str | None, spec: OutputSpec) -> str:
    """A hex SHA-256 over (asset, cut, normalised output).

    The normalised spec has every field, with None for Auto, so field order and absent-vs-null
    never matter, while Auto and an explicit value stay different.
    """
    canonical = json.dumps(
        {"asset_id": asset_id, "cut_id": cut_id, "output": spec.as_dict()},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def resource_name(signature: str) -> str:
    """A DNS-1123 name for the render's execution record (a Kubernetes `Render`)."""
    return "r-" + signature[:40]
