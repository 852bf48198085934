"""Encoder fixtures: tiny media made once per session (ffmpeg lavfi), outputs per test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from roughy.core.models import Format, OutputSpec, Resolution, Segment
from roughy.core.plan import EncodePlan
from roughy.core.planning import plan_render
from roughy.encoder.probe import probe
from tests.media import make_audio, make_sync_markers, make_tones_with_silences, make_video

PlanFor = Callable[..., EncodePlan]


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("encoder-media")


@pytest.fixture(scope="session")
def stereo_clip(media_dir: Path) -> Path:
    return make_video(media_dir / "stereo.mp4", duration=2.0)


@pytest.fixture(scope="session")
def rotated_clip(media_dir: Path) -> Path:
    """A phone clip: stored 320x180 landscape with a 90-degree display rotation."""
    return make_video(media_dir / "rotated.mp4", width=320, height=180, rotation=90)


@pytest.fixture(scope="session")
def sync_clip(media_dir: Path) -> Path:
    """6 s, a flash and a beep together at 0.4, 1.4, ... 5.4 s."""
    return make_sync_markers(media_dir / "sync.mp4", duration=6.0)


@pytest.fixture(scope="session")
def tones_clip(media_dir: Path) -> Path:
    pattern = [("tone", 1.0), ("silence", 0.8), ("tone", 1.0), ("silence", 0.6)]
    return make_tones_with_silences(media_dir / "tones.m4a", pattern)


@pytest.fixture(scope="session")
def mp3_clip(media_dir: Path) -> Path:
    return make_audio(media_dir / "tones.mp3", duration=2.0, channels=2)


@pytest.fixture
def plan_for() -> PlanFor:
    """Plan a render of a real file the way the service does: probe it, then core planning."""

    def build(
        src: Path,
        fmt: Format = Format.MP4,
        *,
        resolution: Resolution | None = None,
        segments: list[Segment] | None = None,
        audio_bitrate: int | None = None,
    ) -> EncodePlan:
        info = probe(str(src))
        spec = OutputSpec(format=fmt, resolution=resolution, audio_bitrate=audio_bitrate)
        return plan_render(spec, duration=info.duration, video=info.video, audio=info.audio, segments=segments)

    return build
