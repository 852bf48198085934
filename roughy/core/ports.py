"""Ports: what the API and the runtimes need from the outside world, as small Protocols.

Adapters implement them (`roughy.adapters`); the embedded runtime plugs in SQLite, local disk
and a subprocess executor, the Kubernetes runtime PostgreSQL, S3 and Render resources.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from roughy.core.plan import EncodePlan


class Storage(Protocol):
    """Media by key (`assets/<id>/video`, `renders/<id>/output.mp4`)."""

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    async def write_stream(self, key: str, chunks: AsyncIterator[bytes], *, limit: int) -> int:
        """Store a stream atomically; raise PayloadTooLarge past `limit` bytes, leaving nothing."""
        ...

    def delete_prefix(self, prefix: str) -> None: ...

    def source_url(self, key: str) -> str:
        """Where an encoder reads the object: a local path, or a presigned URL."""
        ...

    def output_target(self, key: str) -> str:
        """Where an encoder writes the object: a local path, or a presigned upload."""
        ...

    def upload_target(self, key: str, ttl: int) -> dict[str, object]:
        """A client's upload target: {url, method, headers, expires_at}."""
        ...

    def download_url(self, key: str, filename: str, ttl: int) -> tuple[str, datetime]:
        """A signed download URL that names the file, and when it expires."""
        ...


@dataclass(frozen=True)
class EncodeJob:
    render_id: str
    plan: EncodePlan
    video_src: str | None
    audio_src: str | None
    output: str


class Cancelled(Exception):
    """The encode was stopped because its render was deleted."""


class Executor(Protocol):
    def run(self, job: EncodeJob, on_progress: Callable[[float], None]) -> dict[str, Any]:
        """Run one encode to the end; return the result dict; raise EncoderError or Cancelled."""
        ...

    def stop(self, render_id: str) -> bool:
        """Stop the render's encode if it runs (the whole process tree); True if one was running."""
        ...
