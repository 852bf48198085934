"""probe() on real files: display size, rotation, frame rate, HDR, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from roughy.encoder.errors import EncodeFailed, InvalidMedia
from roughy.encoder.probe import display_size, normalise_rotation, probe
from roughy.encoder.sources import SourceLimits
from tests.media import ffmpeg, make_audio, make_video, truncate_file


def test_plain_clip(stereo_clip: Path) -> None:
    info = probe(str(stereo_clip))
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert info.video is not None and info.audio is not None
    assert (info.video.width, info.video.height, info.video.rotation) == (320, 240, 0)
    assert info.video.fps == 25.0 and info.video.codec == "h264" and not info.video.hdr
    assert info.video.bitrate_kbps and info.video.bitrate_kbps > 0
    assert (info.audio.codec, info.audio.channels, info.audio.sample_rate) == ("aac", 2, 48000)
    assert info.size_bytes == stereo_clip.stat().st_size
    assert "mp4" in info.format_name


def test_the_facts_a_stream_copy_needs(stereo_clip: Path) -> None:
    info = probe(str(stereo_clip))
    assert info.video is not None and info.audio is not None
    assert info.demuxer == info.video.demuxer == info.audio.demuxer == "mov"
    assert (info.video.pix_fmt, info.video.profile) == ("yuv420p", "Constrained Baseline")  # x264 ultrafast
    assert info.video.square_pixels and info.video.constant_rate and info.video.interlaced is False
    assert info.audio.profile == "LC"


def test_containers_name_the_demuxer_later_opens_force(tmp_path: Path, mp3_clip: Path) -> None:
    assert probe(str(make_video(tmp_path / "clip.mkv"))).demuxer == "matroska"
    assert probe(str(make_video(tmp_path / "clip.ts"))).demuxer == "mpegts"
    assert probe(str(mp3_clip)).demuxer == "mp3"


def test_rotation_swaps_the_display_size(rotated_clip: Path) -> None:
    info = probe(str(rotated_clip))
    assert info.video is not None
    assert (info.video.width, info.video.height, info.video.rotation) == (180, 320, 90)


def test_anamorphic_width_follows_the_sample_aspect_ratio(tmp_path: Path) -> None:
    info = probe(str(make_video(tmp_path / "sar.mp4", width=320, height=240, sar="4:3", audio=None)))
    assert info.video is not None and info.audio is None
    assert (info.video.width, info.video.height) == (427, 240)
    assert info.video.square_pixels is False


def test_hdr_is_detected(tmp_path: Path) -> None:
    info = probe(str(make_video(tmp_path / "hdr.mp4", hdr=True, audio=None)))
    assert info.video is not None and info.video.hdr and info.video.codec == "hevc"


def test_vfr_reports_the_average_rate(tmp_path: Path) -> None:
    info = probe(str(make_video(tmp_path / "vfr.mp4", vfr=True, audio=None)))
    assert info.video is not None
    assert info.video.fps == pytest.approx(21.0, abs=0.5)  # 25 fps, a third dropped after 1 s
    assert info.video.constant_rate is False


def test_audio_only_and_mp3_codec_name(mp3_clip: Path) -> None:
    info = probe(str(mp3_clip))
    assert info.video is None and info.audio is not None
    assert info.audio.codec == "mp3" and info.audio.bitrate_kbps


def test_cover_art_is_not_video(tmp_path: Path, mp3_clip: Path) -> None:
    cover = tmp_path / "cover.png"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=64x64", "-frames:v", "1", str(cover))
    tagged = tmp_path / "tagged.mp3"
    ffmpeg(
        "-i", str(mp3_clip), "-i", str(cover), "-map", "0", "-map", "1", "-c", "copy",
        "-disposition:v", "attached_pic", str(tagged),
    )  # fmt: skip
    info = probe(str(tagged))
    assert info.video is None and info.audio is not None


def test_matroska_without_stream_bitrate_gets_an_estimate(tmp_path: Path) -> None:
    info = probe(str(make_video(tmp_path / "clip.mkv")))
    assert info.video is not None and info.video.bitrate_kbps and info.video.bitrate_kbps > 50


@pytest.mark.parametrize("fraction", [0.5, 0.05])
def test_truncated_mp4_is_invalid(tmp_path: Path, stereo_clip: Path, fraction: float) -> None:
    cut = truncate_file(stereo_clip, tmp_path / "cut.mp4", fraction)  # moov atom is at the end
    with pytest.raises(InvalidMedia, match="cut.mp4"):
        probe(str(cut))


def test_junk_and_empty_files_are_invalid(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mov"
    junk.write_bytes(b"this is not a video\n" * 100)
    with pytest.raises(InvalidMedia):
        probe(str(junk))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InvalidMedia, match="empty"):
        probe(str(empty))


def test_a_file_without_audio_or_video_is_invalid(tmp_path: Path) -> None:
    subs = tmp_path / "subs.srt"
    subs.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    with pytest.raises(InvalidMedia):
        probe(str(subs))  # not even a media container
    only_subs = tmp_path / "subs.mkv"
    ffmpeg("-i", str(subs), "-c:s", "srt", str(only_subs))
    with pytest.raises(InvalidMedia, match="no audio or video"):
        probe(str(only_subs))


def test_missing_file_is_not_blamed_on_the_media(tmp_path: Path) -> None:
    with pytest.raises(EncodeFailed, match="not found"):
        probe(str(tmp_path / "nope.mp4"))


def test_wav_audio(tmp_path: Path) -> None:
    info = probe(str(make_audio(tmp_path / "mono.wav", channels=1)))
    assert info.audio is not None and info.audio.channels == 1 and info.audio.bitrate_kbps == 768


def test_display_size_and_rotation_maths() -> None:
    from fractions import Fraction

    assert display_size(720, 576, Fraction(16, 15), 0) == (768, 576)
    assert display_size(1920, 1080, None, 90) == (1080, 1920)
    assert display_size(1920, 1080, Fraction(1), 270) == (1080, 1920)
    assert display_size(1440, 1080, Fraction(4, 3), 90) == (1080, 1920)
    assert [normalise_rotation(d) for d in (0, 90, -90, 180, -180, 270, 89.6)] == [
        0,
        90,
        270,
        180,
        180,
        270,
        90,
    ]


def test_sources_beyond_the_limits_are_invalid_media_naming_the_limit(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", duration=3.0, width=640, height=360, fps=25)
    surround = make_audio(tmp_path / "six.wav", duration=1.0, channels=6)
    cases = [
        (clip, SourceLimits(max_pixels=640 * 360 - 1), "at most 230399 pixels"),
        (clip, SourceLimits(max_seconds=2.0), "at most 2 s"),
        (surround, SourceLimits(max_channels=2), "at most 2 are accepted"),
    ]
    for src, limits, says in cases:
        with pytest.raises(InvalidMedia, match=says):
            probe(str(src), limits)
        assert probe(str(src)) is not None, "within the default limits"


def test_a_huge_frame_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    """An 8192x8192 frame took seconds and hundreds of MB to probe; over the pixel limit the
    probe stops at the stream's header."""
    huge = tmp_path / "huge.mkv"
    source = "color=c=green:s=8192x8192:r=1:d=1"
    ffmpeg("-f", "lavfi", "-i", source, "-c:v", "libx264", "-preset", "ultrafast", str(huge))
    with pytest.raises(InvalidMedia, match="8192x8192"):
        probe(str(huge))
