"""Audio extraction and silence detection in this process, with the encoder's own tasks (the
embedded runtime); the Kubernetes runtime runs them as Jobs (`kube_tasks.KubeTasks`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from roughy.core.models import AudioInfo
from roughy.encoder import tasks
from roughy.encoder.upload import upload


class LocalTasks:
    """Audio extraction and silence detection in this process (the embedded runtime); the
    Kubernetes runtime runs them as Jobs (roughy.adapters.executor.kube_tasks.KubeTasks)."""

    def extract_audio(
        self, src: str, target: str, *, subject: str = "", duration: float = 0.0, labels: dict[str, str] | None = None
    ) -> AudioInfo:
        return _extract_audio(src, target)

    def detect_silence(
        self,
        src: str,
        *,
        min_silence: float,
        threshold_db: float,
        subject: str = "",
        duration: float = 0.0,
        labels: dict[str, str] | None = None,
    ) -> list[tuple[float, float]]:
        return tasks.detect_silence(src, min_silence=min_silence, threshold_db=threshold_db)


def _extract_audio(src: str, target: str) -> AudioInfo:
    """Extract the audio track to `target`: a local path, or a presigned upload URL (object
    storage), in which case it is extracted to a temp file first and PUT there."""
    if not target.lower().startswith(("http://", "https://")):
        return tasks.extract_audio(src, target)
    with tempfile.TemporaryDirectory(prefix="roughy-audio-") as scratch:
        local = str(Path(scratch) / "audio.mka")
        extracted = tasks.extract_audio(src, local)
        upload(local, target, "audio/x-matroska")
    return extracted
