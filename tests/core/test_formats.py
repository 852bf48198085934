"""The format facts (SPEC 5.1, 5.5): one table, and the rules derived from it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roughy.core.formats import (
    AAC,
    AUDIO_BITRATES_KBPS,
    FORMATS,
    MP3,
    Format,
    auto_audio_kbps,
    auto_video_mbps,
    format_of,
    output_sample_rate,
)

#: MPEG-1 Layer III bitrates (kbps), the only ones valid at 32/44.1/48 kHz (ISO 11172-3).
MPEG1_LAYER3_KBPS = {32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320}


def test_every_format_has_its_facts() -> None:
    assert set(FORMATS) == set(Format)
    assert len({facts.extension for facts in FORMATS.values()}) == len(Format), "one format per extension"


@pytest.mark.parametrize(
    ("fmt", "video", "audio", "content_type"),
    [
        (Format.MP4, True, "aac", "video/mp4"),
        (Format.MOV, True, "aac", "video/quicktime"),
        (Format.M4A, False, "aac", "audio/mp4"),
        (Format.MP3, False, "mp3", "audio/mpeg"),
    ],
)
def test_spec_formats(fmt: Format, video: bool, audio: str, content_type: str) -> None:
    """SPEC 5.1: mp4/mov are H.264 + AAC, m4a is AAC alone, mp3 is MP3 alone."""
    assert fmt.is_video is video
    assert fmt.facts.audio_codec.name == audio
    assert fmt.mime_type == content_type
    assert fmt.facts.index_first is (fmt is not Format.MP3), "SPEC 5.5: index first in MP4/MOV/M4A"


def test_mp3_carries_every_ladder_step() -> None:
    """Why MP3 keeps to the MPEG-1 rates: MPEG-2/2.5 rates cannot carry 192-320 kbps, and the
    render's result would report a bitrate the file does not have."""
    assert set(AUDIO_BITRATES_KBPS) <= MPEG1_LAYER3_KBPS
    assert set(MP3.sample_rates) == {32000, 44100, 48000}


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 400_000), st.sampled_from(list(Format)))
def test_sample_rate_rule_is_idempotent(rate: int, fmt: Format) -> None:
    """The encoder applies the planner's rule again: it must not move a planned rate."""
    once = output_sample_rate(fmt, rate)
    assert once in fmt.facts.audio_codec.sample_rates
    assert output_sample_rate(fmt, once) == once


@pytest.mark.parametrize(
    ("rate", "mp3", "aac"),
    [(0, 48000, 48000), (8000, 44100, 8000), (22050, 44100, 22050), (32000, 32000, 32000), (40000, 44100, 44100),
     (44100, 44100, 44100), (46000, 48000, 48000), (96000, 48000, 48000)],
)  # fmt: skip
def test_sample_rates(rate: int, mp3: int, aac: int) -> None:
    assert MP3.sample_rate(rate) == mp3
    assert AAC.sample_rate(rate) == aac


@pytest.mark.parametrize(("edge", "mbps"), [(480, 5), (720, 5), (721, 10), (1080, 10), (1081, 20), (2160, 20)])
def test_auto_video_table(edge: int, mbps: int) -> None:
    assert auto_video_mbps(edge) == mbps


def test_auto_audio() -> None:
    assert (auto_audio_kbps(1), auto_audio_kbps(2)) == (128, 192)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("renders/r/output.mp4", Format.MP4), ("talk-720p.MOV", Format.MOV), ("x.m4a", Format.M4A),
     ("a/b.mp3", Format.MP3), ("assets/a/video", None), ("v1.0/video", None), ("x.wav", None)],
)  # fmt: skip
def test_format_of(name: str, fmt: Format | None) -> None:
    assert format_of(name) is fmt
