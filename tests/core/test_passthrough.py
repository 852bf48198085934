"""Passthrough (issue 9): a stream that already is the output's is copied, anything else is
encoded, and nothing is copied on a guess."""

from __future__ import annotations

from dataclasses import replace

import pytest

from roughy.core.models import AudioInfo, Format, OutputSpec, Resolution, Segment, VideoInfo
from roughy.core.passthrough import audio_copy_refusals, copied_streams, video_copy_refusals
from roughy.core.planning import asked_audio_kbps, asked_video_kbps, plan_render

#: A 1080p H.264 + AAC-LC camera file, as the probe describes it.
VIDEO = VideoInfo(
    width=1920, height=1080, fps=30.0, codec="h264", bitrate_kbps=8000, demuxer="mov", pix_fmt="yuv420p",
    profile="High", square_pixels=True, constant_rate=True, interlaced=False,
)  # fmt: skip
AUDIO = AudioInfo(codec="aac", bitrate_kbps=128, sample_rate=48000, channels=2, demuxer="mov", profile="LC")


def planned(spec: OutputSpec, video: VideoInfo | None = VIDEO, audio: AudioInfo | None = AUDIO, **kw):  # type: ignore[no-untyped-def]
    return plan_render(spec, duration=60.0, video=video, audio=audio, segments=kw.get("segments"))


def test_a_source_that_already_is_the_output_is_copied_whole() -> None:
    plan = planned(OutputSpec(Format.MP4))
    assert plan.video is not None and plan.audio is not None
    assert plan.video.stream_copy and plan.audio.stream_copy
    assert copied_streams(plan.format, plan.video, plan.audio) == ["video", "audio"]
    assert planned(OutputSpec(Format.MOV, resolution=Resolution.P1080, video_bitrate=10)).video.stream_copy


def test_an_audio_render_of_aac_copies_it() -> None:
    plan = planned(OutputSpec(Format.M4A))
    assert plan.video is None and plan.audio is not None and plan.audio.stream_copy
    mp3 = planned(OutputSpec(Format.MP3))  # AAC into MP3 is an encode
    assert mp3.audio is not None and not mp3.audio.stream_copy
    assert copied_streams(mp3.format, mp3.video, mp3.audio) == []
    mp3_source = AudioInfo(codec="mp3", bitrate_kbps=192, sample_rate=44100, channels=2)
    assert planned(OutputSpec(Format.MP3), None, mp3_source).audio.stream_copy


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"codec": "hevc"}, "not h264"),
        ({"pix_fmt": "yuv420p10le"}, "pixel format"),
        ({"pix_fmt": "yuvj420p"}, "pixel format"),  # full range: the output is tagged limited
        ({"profile": "High 4:4:4 Predictive"}, "profile"),
        ({"square_pixels": False}, "square"),
        ({"rotation": 90, "width": 1080, "height": 1920}, "rotation"),
        ({"interlaced": True}, "interlaced"),
        ({"constant_rate": False}, "variable"),
        ({"fps": 120.0}, "frame rate 120 becomes 60"),
        ({"hdr": True}, "HDR"),
        ({"width": 1921}, "size 1921x1080 becomes 1920x1080"),  # an odd width is made even
        ({"bitrate_kbps": 12_000}, "not within 10000"),
        ({"bitrate_kbps": None}, "not within"),
        # probed before these facts were kept: not known, so not copied
        ({"pix_fmt": None, "profile": None, "square_pixels": None, "constant_rate": None, "interlaced": None},
         "not known"),
    ],
)  # fmt: skip
def test_each_reason_a_video_stream_is_encoded(change: dict[str, object], reason: str) -> None:
    video = replace(VIDEO, **change)  # type: ignore[arg-type]
    plan = planned(OutputSpec(Format.MP4), video)
    assert plan.video is not None and not plan.video.stream_copy
    cap = asked_video_kbps(OutputSpec(Format.MP4), min(plan.video.width, plan.video.height))
    assert any(reason in r for r in video_copy_refusals(video, plan.video, cap))


def test_a_tier_below_the_source_or_a_lower_bitrate_is_an_encode() -> None:
    assert not planned(OutputSpec(Format.MP4, resolution=Resolution.P720)).video.stream_copy
    assert not planned(OutputSpec(Format.MP4, video_bitrate=5)).video.stream_copy  # 8 Mb/s source, 5 asked
    small = replace(VIDEO, width=1280, height=720, bitrate_kbps=6000)  # above 720p's Auto 5 Mb/s
    assert not planned(OutputSpec(Format.MP4), small).video.stream_copy


@pytest.mark.parametrize(
    ("change", "spec", "reason"),
    [
        ({"profile": "HE-AAC"}, OutputSpec(Format.MP4), "profile"),
        ({"profile": None}, OutputSpec(Format.MP4), "profile"),
        ({"codec": "opus"}, OutputSpec(Format.MP4), "not aac"),
        ({"channels": 6, "bitrate_kbps": 384}, OutputSpec(Format.MP4), "6 channels become 2"),
        ({"sample_rate": 96000}, OutputSpec(Format.MP4), "96000 Hz becomes 48000 Hz"),
        ({"bitrate_kbps": 256}, OutputSpec(Format.MP4), "not within 192"),
        ({"bitrate_kbps": 256}, OutputSpec(Format.MP4, audio_bitrate=192), "not within 192"),
        ({"bitrate_kbps": None}, OutputSpec(Format.MP4), "not within"),
    ],
)
def test_each_reason_an_audio_stream_is_encoded(change: dict[str, object], spec: OutputSpec, reason: str) -> None:
    audio = replace(AUDIO, **change)  # type: ignore[arg-type]
    plan = planned(spec, VIDEO, audio)
    assert plan.audio is not None and not plan.audio.stream_copy
    cap = asked_audio_kbps(spec, plan.audio.channels)
    assert any(reason in r for r in audio_copy_refusals(spec.format, audio, plan.audio, cap))
    assert plan.video is not None and plan.video.stream_copy  # the other stream is still copied


def test_a_cut_may_copy_its_video_where_the_keyframes_allow_and_always_encodes_its_audio() -> None:
    segments = [Segment(0.0, 10.0), Segment(20.0, 30.0)]
    plan = planned(OutputSpec(Format.MP4), segments=segments)
    assert plan.video is not None and plan.audio is not None
    assert plan.video.cut_copy  # the encoder checks the cut points against the file's keyframes
    assert not plan.video.stream_copy and not plan.audio.stream_copy  # the edges' audio is faded
    smaller = planned(OutputSpec(Format.MP4, resolution=Resolution.P720), segments=segments)
    assert smaller.video is not None and not smaller.video.cut_copy  # a copy could not be the output
    whole = planned(OutputSpec(Format.MP4))
    assert whole.video is not None and whole.video.stream_copy and not whole.video.cut_copy
