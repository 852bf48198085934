"""Object-storage keys of the media a render produces (shared by the API and every runtime)."""

from __future__ import annotations

from roughy.core.models import Render


def render_prefix(render_id: str) -> str:
    """Everything stored for one render: deleted together on cancel or failure."""
    return f"renders/{render_id}/"


def output_key(render: Render) -> str:
    return f"{render_prefix(render.id)}output.{render.output.format.extension}"
