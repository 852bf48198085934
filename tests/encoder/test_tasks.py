"""extract_audio and detect_silence on real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from roughy.encoder.errors import InvalidMedia
from roughy.encoder.probe import probe
from roughy.encoder.tasks import detect_silence, extract_audio
from tests.media import make_audio, make_tones_with_silences, make_video


def test_extract_audio_is_a_stream_copy_into_matroska(tmp_path: Path, stereo_clip: Path) -> None:
    out = tmp_path / "audio.mka"
    info = extract_audio(str(stereo_clip), str(out))
    source = probe(str(stereo_clip)).audio
    assert source is not None
    assert (info.codec, info.channels, info.sample_rate) == ("aac", 2, 48000)
    assert info.bitrate_kbps == source.bitrate_kbps
    produced = probe(str(out))
    assert produced.format_name.startswith("matroska") and produced.video is None
    assert produced.duration == pytest.approx(2.0, abs=0.05)
    assert [p.name for p in tmp_path.iterdir()] == ["audio.mka"]


@pytest.mark.parametrize("name", ["tones.mp3", "tones.wav", "tones.ogg"])
def test_extract_audio_works_for_any_codec(tmp_path: Path, name: str) -> None:
    src = make_audio(tmp_path / name, duration=1.0, channels=1)
    info = extract_audio(str(src), str(tmp_path / "out.mka"))
    assert info.channels == 1 and info.codec == probe(str(src)).audio.codec  # type: ignore[union-attr]


def test_extract_audio_without_audio_is_invalid(tmp_path: Path) -> None:
    src = make_video(tmp_path / "mute.mp4", duration=1.0, audio=None)
    with pytest.raises(InvalidMedia, match="no audio"):
        extract_audio(str(src), str(tmp_path / "out.mka"))
    assert not (tmp_path / "out.mka").exists()


def test_detect_silence_finds_the_gaps_and_closes_the_last(tmp_path: Path, tones_clip: Path) -> None:
    spans = detect_silence(str(tones_clip), min_silence=0.5, threshold_db=-40)
    assert len(spans) == 2
    (s1, e1), (s2, e2) = spans
    assert s1 == pytest.approx(1.0, abs=0.03) and e1 == pytest.approx(1.8, abs=0.03)
    assert s2 == pytest.approx(2.8, abs=0.03)
    assert e2 == pytest.approx(probe(str(tones_clip)).duration, abs=1e-6)  # open at the end


def test_detect_silence_respects_min_silence(tmp_path: Path) -> None:
    src = make_tones_with_silences(
        tmp_path / "short-gap.mp4", [("tone", 0.5), ("silence", 0.3), ("tone", 0.5)], video=True
    )
    assert detect_silence(str(src), min_silence=0.5, threshold_db=-40) == []
    assert len(detect_silence(str(src), min_silence=0.2, threshold_db=-40)) == 1
