"""`RenderResult`'s one wire shape (SPEC 5.6 `result`), read back by every runtime."""

from __future__ import annotations

import pytest

from roughy.core.models import Format, RenderResult

VIDEO = RenderResult(Format.MP4, 1280, 720, 10.0, 1_234_567, 5000, 192)
AUDIO = RenderResult(Format.MP3, None, None, 3.5, 84_000, None, 128)


@pytest.mark.parametrize("result", [VIDEO, AUDIO])
def test_round_trip(result: RenderResult) -> None:
    assert RenderResult.from_json(result.to_json()) == result


def test_the_wire_shape_is_the_spec_result() -> None:
    assert AUDIO.to_json() == {
        "format": "mp3",
        "width": None,
        "height": None,
        "duration": 3.5,
        "size_bytes": 84_000,
        "video_bitrate_kbps": None,
        "audio_bitrate_kbps": 128,
        "copied": [],  # beyond SPEC 5.6's list: which streams were copied from the source
    }


def test_a_result_stored_before_passthrough_reads_as_nothing_copied() -> None:
    stored = {k: v for k, v in AUDIO.to_json().items() if k != "copied"}
    assert RenderResult.from_json(stored) == AUDIO


@pytest.mark.parametrize(
    "broken",
    [{}, {**VIDEO.to_json(), "format": "avi"}, {**VIDEO.to_json(), "size_bytes": None}, {"format": "mp4"}],
)
def test_a_malformed_result_raises(broken: dict[str, object]) -> None:
    with pytest.raises((KeyError, TypeError, ValueError)):
        RenderResult.from_json(broken)
