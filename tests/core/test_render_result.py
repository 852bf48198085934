"""`RenderResult`'s one wire shape (SPEC 5.6 `result`), read back by every runtime."""

from __future__ import annotations

import dataclasses

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
        "encoder": None,  # ... and what encoded the video (none here: an audio render)
    }


def test_a_result_stored_before_passthrough_reads_as_nothing_copied() -> None:
    stored = {k: v for k, v in AUDIO.to_json().items() if k != "copied"}
    assert RenderResult.from_json(stored) == AUDIO


def test_the_encoder_that_ran_round_trips_and_an_older_result_has_none() -> None:
    gpu = dataclasses.replace(VIDEO, encoder="h264_nvenc+cuda")
    assert RenderResult.from_json(gpu.to_json()) == gpu and gpu.to_json()["encoder"] == "h264_nvenc+cuda"
    stored = {k: v for k, v in gpu.to_json().items() if k != "encoder"}
    assert RenderResult.from_json(stored).encoder is None


@pytest.mark.parametrize(
    "broken",
    [{}, {**VIDEO.to_json(), "format": "avi"}, {**VIDEO.to_json(), "size_bytes": None}, {"format": "mp4"}],
)
def test_a_malformed_result_raises(broken: dict[str, object]) -> None:
    with pytest.raises((KeyError, TypeError, ValueError)):
        RenderResult.from_json(broken)


def test_clients_see_the_fields_the_api_declares() -> None:
    """A `render.completed` webhook reads as GET shows the render: the result's fields in the
    public resource are exactly the API schema's, `encoder` (what ran) included."""
    from roughy.api.schemas import ResultOut
    from roughy.core.resources import RESULT_FIELDS

    assert set(RESULT_FIELDS) == set(ResultOut.model_fields)
    assert set(RESULT_FIELDS) == set(dataclasses.replace(VIDEO, encoder="libx264").to_json())
