"""Object-storage keys of the media of assets and renders (shared by the API and every runtime)."""

from __future__ import annotations

from roughy.core.models import Asset, PartName, Render

POSTER_NAME = "poster.jpg"


def render_prefix(render_id: str) -> str:
    """Everything stored for one render: deleted together on cancel or failure."""
    return f"renders/{render_id}/"


def output_key(render: Render) -> str:
    return f"{render_prefix(render.id)}output.{render.output.format.extension}"


def chunk_prefix(output_key: str) -> str:
    """Where a chunked render's chunks are stored: beside its output, under the render's prefix
    (so a failed or cancelled render's cleanup removes them with the rest)."""
    directory, _, _ = output_key.rpartition("/")
    return f"{directory}/chunks/" if directory else "chunks/"


def chunk_keys(output_key: str, count: int) -> list[str]:
    return [f"{chunk_prefix(output_key)}{index:04d}.mov" for index in range(count)]


def asset_prefix(asset_id: str) -> str:
    """Everything stored for one asset: its parts and the audio extracted from its video."""
    return f"assets/{asset_id}/"


def part_key(asset_id: str, part: PartName) -> str:
    """Where a completed part's bytes live: what was probed, and what every encode reads."""
    return f"{asset_prefix(asset_id)}{part.value}"


def upload_key(asset_id: str, part: PartName) -> str:
    """Where the client's upload of a part lands. Completing the part moves it to `part_key`:
    a PUT arriving later lands here again and is never read (the part is sealed)."""
    return f"{asset_prefix(asset_id)}uploads/{part.value}"


def extracted_audio_key(asset_id: str) -> str:
    return f"{asset_prefix(asset_id)}extracted-audio.mka"


def poster_key(asset_id: str) -> str:
    """A video asset's poster frame (a JPEG), beside its media: deleted with the asset."""
    return f"{asset_prefix(asset_id)}{POSTER_NAME}"


def is_poster_key(key: str) -> bool:
    """Whether `key` is an asset's poster (the one asset object a signed GET may serve)."""
    head, _, name = key.rpartition("/")
    return name == POSTER_NAME and head.startswith("assets/") and head.count("/") == 1


def audio_key(asset: Asset) -> str:
    """Where the asset's audio lives: the client's audio part, or the track extracted from the video."""
    if asset.audio_part is not None:
        return part_key(asset.id, PartName.AUDIO)
    return extracted_audio_key(asset.id)
