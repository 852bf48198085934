"""Output-spec rules (SPEC 5.1, 5.3, 5.5): tiers, never upscaling, ladders, Auto, channels, rates."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roughy.core.errors import ValidationFailed
from roughy.core.models import (
    AssetKind,
    AudioInfo,
    Format,
    OutputSpec,
    Resolution,
    Segment,
    VideoInfo,
)
from roughy.core.planning import output_size, plan_render, validate_output

FAST = settings(max_examples=200, deadline=None)

VIDEO_FORMATS = [Format.MP4, Format.MOV]
AUDIO_FORMATS = [Format.M4A, Format.MP3]
MP3_RATES = {32000, 44100, 48000}
AAC_RATES = {8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000}


def video(w: int = 1920, h: int = 1080, fps: float = 30.0, kbps: int | None = 20_000) -> VideoInfo:
    return VideoInfo(width=w, height=h, fps=fps, codec="h264", bitrate_kbps=kbps)


def audio(channels: int = 2, kbps: int | None = 320, rate: int = 48000) -> AudioInfo:
    return AudioInfo(codec="aac", bitrate_kbps=kbps, sample_rate=rate, channels=channels)


def plan(spec: OutputSpec, v: VideoInfo | None = None, a: AudioInfo | None = None, **kw):  # type: ignore[no-untyped-def]
    kind = AssetKind.VIDEO if v is not None else AssetKind.AUDIO
    validate_output(spec, kind, v, a, probed=True)
    return plan_render(spec, duration=kw.pop("duration", 10.0), video=v, audio=a, segments=kw.pop("segments", None))


def refused(spec: OutputSpec, kind: AssetKind, v: VideoInfo | None, a: AudioInfo | None) -> str | None:
    with pytest.raises(ValidationFailed) as info:
        validate_output(spec, kind, v, a, probed=True)
    assert info.value.status == 422 and info.value.code == "validation_error"
    return info.value.param


# -- tiers: examples ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "tier", "expected"),
    [
        ((1920, 1080), Resolution.P720, (1280, 720)),
        ((1920, 1080), Resolution.P1080, (1920, 1080)),
        ((3840, 2160), Resolution.P1080, (1920, 1080)),
        ((3840, 2160), Resolution.UHD4K, (3840, 2160)),
        ((1080, 1920), Resolution.P720, (720, 1280)),  # portrait stays portrait
        ((2160, 3840), Resolution.P1080, (1080, 1920)),
        ((1440, 1080), Resolution.P720, (960, 720)),  # 4:3, no padding, no cropping
        ((2560, 1080), Resolution.P720, (1706, 720)),  # 21:9: 1706.67 -> nearest even
        ((1080, 1080), Resolution.P720, (720, 720)),
        ((1920, 1081), Resolution.P1080, (1918, 1080)),  # odd source, just above the tier
    ],
)
def test_tier_sets_the_shorter_display_edge(source, tier, expected) -> None:  # type: ignore[no-untyped-def]
    p = plan(OutputSpec(Format.MP4, resolution=tier), video(*source), audio())
    assert p.video is not None
    assert (p.video.width, p.video.height) == expected


def test_phone_clip_is_planned_at_its_display_size() -> None:
    """Stored 1920x1080 with a 90-degree rotation: a 1080x1920 portrait source (probe gives display size)."""
    phone = VideoInfo(width=1080, height=1920, fps=30, codec="h264", bitrate_kbps=12_000, rotation=90)
    p = plan(OutputSpec(Format.MP4, resolution=Resolution.P720), phone, audio())
    assert p.video is not None and (p.video.width, p.video.height) == (720, 1280)
    assert "rotation" not in p.to_json()["video"]


@pytest.mark.parametrize(
    ("source", "expected"),
    [((1920, 1080), (1920, 1080)), ((1279, 719), (1278, 718)), ((1923, 1081), (1922, 1080)), ((3, 3), (2, 2))],
)
def test_no_tier_keeps_the_source_size_made_even_without_upscaling(source, expected) -> None:  # type: ignore[no-untyped-def]
    p = plan(OutputSpec(Format.MOV), video(*source), audio())
    assert p.video is not None and (p.video.width, p.video.height) == expected


@pytest.mark.parametrize(
    ("source", "tier"),
    [
        ((1280, 720), Resolution.P1080),
        ((1920, 1080), Resolution.UHD4K),
        ((1078, 1920), Resolution.P1080),  # portrait: the shorter edge is the width
        ((640, 360), Resolution.P720),
    ],
)
def test_a_tier_above_the_source_is_refused(source, tier) -> None:  # type: ignore[no-untyped-def]
    spec = OutputSpec(Format.MP4, resolution=tier)
    assert refused(spec, AssetKind.VIDEO, video(*source), audio()) == "output.resolution"


def test_tier_is_not_checked_before_the_source_is_known() -> None:
    spec = OutputSpec(Format.MP4, resolution=Resolution.UHD4K)
    validate_output(spec, AssetKind.VIDEO, None, None, probed=False)  # no error yet


# -- tiers: properties ----------------------------------------------------------------------------

sizes = st.tuples(st.integers(2, 8000), st.integers(2, 8000))


@FAST
@given(sizes)
def test_without_tier_size_is_source_made_even_never_larger(size: tuple[int, int]) -> None:
    w, h = size
    ow, oh = output_size(video(w, h), None)
    assert ow % 2 == 0 and oh % 2 == 0 and ow >= 2 and oh >= 2
    assert ow <= w and oh <= h, "never upscales"
    assert w - ow <= 1 and h - oh <= 1, "keeps the source size"


@FAST
@given(sizes, st.sampled_from(list(Resolution)))
def test_tier_output_is_even_proportional_and_never_upscaled(size: tuple[int, int], tier: Resolution) -> None:
    w, h = size
    v = video(w, h)
    spec = OutputSpec(Format.MP4, resolution=tier)
    short, long_ = min(w, h), max(w, h)
    if tier.short_edge > short:
        assert refused(spec, AssetKind.VIDEO, v, None) == "output.resolution"
        return
    validate_output(spec, AssetKind.VIDEO, v, None, probed=True)
    p = plan_render(spec, duration=5.0, video=v, audio=None, segments=None)
    assert p.video is not None
    ow, oh = p.video.width, p.video.height
    assert ow % 2 == 0 and oh % 2 == 0 and ow >= 2 and oh >= 2
    assert ow <= w and oh <= h, "never upscales"
    o_short, o_long = min(ow, oh), max(ow, oh)
    if tier.short_edge < short:
        assert o_short == tier.short_edge
        assert abs(o_long - long_ * tier.short_edge / short) <= 1.0, "the other edge in proportion"
    else:
        assert (ow, oh) == output_size(v, None)
    # portrait never turns landscape, nor landscape portrait
    if w < h:
        assert ow <= oh
    if w > h:
        assert ow >= oh


@FAST
@given(sizes, st.sampled_from([None, *Resolution]))
def test_plan_dimensions_are_always_even_and_at_least_two(size: tuple[int, int], tier: Resolution | None) -> None:
    v = video(*size)
    spec = OutputSpec(Format.MOV, resolution=tier)
    p = plan_render(spec, duration=1.0, video=v, audio=None, segments=None)  # even without validation
    assert p.video is not None
    assert p.video.width % 2 == 0 and p.video.height % 2 == 0
    assert p.video.width >= 2 and p.video.height >= 2


# -- video bitrate ----------------------------------------------------------------------------------


def test_video_bitrate_above_the_source_is_refused() -> None:
    spec = OutputSpec(Format.MP4, video_bitrate=20)
    assert refused(spec, AssetKind.VIDEO, video(kbps=8_000), audio()) == "output.video_bitrate"


def test_video_bitrate_at_or_below_the_source_is_used_as_asked() -> None:
    p = plan(OutputSpec(Format.MP4, video_bitrate=10), video(kbps=10_000), audio())
    assert p.video is not None and p.video.bitrate_kbps == 10_000
    p = plan(OutputSpec(Format.MP4, video_bitrate=5), video(kbps=50_000), audio())
    assert p.video is not None and p.video.bitrate_kbps == 5_000


def test_video_bitrate_with_unknown_source_bitrate_is_allowed() -> None:
    p = plan(OutputSpec(Format.MP4, video_bitrate=50), video(kbps=None), audio())
    assert p.video is not None and p.video.bitrate_kbps == 50_000


@pytest.mark.parametrize(
    ("source", "tier", "expected_kbps"),
    [
        ((1280, 720), None, 5_000),
        ((1920, 1080), Resolution.P720, 5_000),
        ((1920, 1080), None, 10_000),
        ((3840, 2160), Resolution.P1080, 10_000),
        ((3840, 2160), None, 20_000),
        ((1080, 1920), None, 10_000),  # the tier follows the shorter edge, portrait too
        ((640, 360), None, 5_000),
    ],
)
def test_auto_video_bitrate_follows_the_documented_table(source, tier, expected_kbps) -> None:  # type: ignore[no-untyped-def]
    p = plan(OutputSpec(Format.MP4, resolution=tier), video(*source, kbps=None), audio())
    assert p.video is not None and p.video.bitrate_kbps == expected_kbps


def test_auto_video_bitrate_takes_the_source_bitrate_when_lower() -> None:
    p = plan(OutputSpec(Format.MP4), video(1920, 1080, kbps=3_500), audio())
    assert p.video is not None and p.video.bitrate_kbps == 3_500


@FAST
@given(sizes, st.sampled_from([None, *Resolution]), st.one_of(st.none(), st.integers(50, 200_000)))
def test_auto_video_bitrate_is_never_above_the_source(size, tier, kbps) -> None:  # type: ignore[no-untyped-def]
    v = video(*size, kbps=kbps)
    p = plan_render(OutputSpec(Format.MP4, resolution=tier), duration=1.0, video=v, audio=None, segments=None)
    assert p.video is not None
    if kbps is not None:
        assert p.video.bitrate_kbps <= kbps
    assert p.video.bitrate_kbps <= 20_000


# -- audio formats and format/asset mismatches ----------------------------------------------------------


@pytest.mark.parametrize("fmt", AUDIO_FORMATS)
def test_resolution_on_an_audio_format_is_refused(fmt: Format) -> None:
    spec = OutputSpec(fmt, resolution=Resolution.P720)
    assert refused(spec, AssetKind.VIDEO, video(), audio()) == "output.resolution"


@pytest.mark.parametrize("fmt", AUDIO_FORMATS)
def test_video_bitrate_on_an_audio_format_is_refused(fmt: Format) -> None:
    spec = OutputSpec(fmt, video_bitrate=5)
    assert refused(spec, AssetKind.AUDIO, None, audio()) == "output.video_bitrate"


@pytest.mark.parametrize("fmt", VIDEO_FORMATS)
def test_a_video_format_for_an_audio_asset_is_refused(fmt: Format) -> None:
    assert refused(OutputSpec(fmt), AssetKind.AUDIO, None, audio()) == "output.format"


@pytest.mark.parametrize("fmt", AUDIO_FORMATS)
def test_an_audio_format_for_a_source_without_audio_is_refused(fmt: Format) -> None:
    assert refused(OutputSpec(fmt), AssetKind.VIDEO, video(), None) == "output.format"


def test_a_silent_video_still_renders_to_a_video_format() -> None:
    p = plan(OutputSpec(Format.MP4), video(), None)
    assert p.video is not None and p.audio is None


def test_an_audio_render_of_a_video_has_no_video() -> None:
    p = plan(OutputSpec(Format.M4A), video(), audio())
    assert p.video is None and p.audio is not None


def test_each_source_is_opened_with_the_demuxer_probing_found() -> None:
    """The video's file with the video's demuxer; the audio's only when audio is read from
    another file (client audio, or an audio render of the extracted track)."""
    v, a = VideoInfo(1920, 1080, 30.0, "h264", 5000, demuxer="mov"), AudioInfo("aac", 128, 48000, 2, demuxer="matroska")
    both = plan_render(OutputSpec(Format.MP4), duration=5.0, video=v, audio=a, segments=None)
    assert (both.video_demuxer, both.audio_demuxer) == ("mov", None)  # audio comes from the video file
    separate = plan_render(OutputSpec(Format.MP4), duration=5.0, video=v, audio=a, segments=None, separate_audio=True)
    assert (separate.video_demuxer, separate.audio_demuxer) == ("mov", "matroska")
    sound = plan_render(OutputSpec(Format.M4A), duration=5.0, video=v, audio=a, segments=None)
    assert (sound.video_demuxer, sound.audio_demuxer) == (None, "matroska")
    older = plan_render(OutputSpec(Format.MP4), duration=5.0, video=video(), audio=audio(), segments=None)
    assert (older.video_demuxer, older.audio_demuxer) == (None, None)  # probed before demuxers were kept


# -- audio bitrate, channels, sample rate ------------------------------------------------------------


@pytest.mark.parametrize(
    ("channels", "source_kbps", "expected"),
    [(2, 320, 192), (6, 640, 192), (1, 256, 128), (2, 96, 96), (1, 64, 64), (2, None, 192), (1, None, 128)],
)
def test_auto_audio_bitrate(channels: int, source_kbps: int | None, expected: int) -> None:
    p = plan(OutputSpec(Format.M4A), None, audio(channels=channels, kbps=source_kbps))
    assert p.audio is not None and p.audio.bitrate_kbps == expected


@pytest.mark.parametrize(("asked", "source_kbps", "expected"), [(320, 192, 192), (128, 320, 128), (256, 256, 256)])
def test_explicit_audio_bitrate_is_lowered_to_the_source(asked: int, source_kbps: int, expected: int) -> None:
    p = plan(OutputSpec(Format.MP3, audio_bitrate=asked), None, audio(kbps=source_kbps))
    assert p.audio is not None and p.audio.bitrate_kbps == expected


@FAST
@given(
    st.sampled_from(list(Format)),
    st.sampled_from([None, 128, 192, 256, 320]),
    st.one_of(st.none(), st.integers(32, 1500)),
    st.integers(1, 8),
)
def test_audio_bitrate_is_never_above_the_source(fmt, asked, source_kbps, channels) -> None:  # type: ignore[no-untyped-def]
    a = audio(channels=channels, kbps=source_kbps)
    p = plan_render(
        OutputSpec(fmt, audio_bitrate=asked), duration=1.0, video=video() if fmt.is_video else None,
        audio=a, segments=None,
    )
    assert p.audio is not None
    if source_kbps is not None:
        assert p.audio.bitrate_kbps <= source_kbps
    if asked is not None:
        assert p.audio.bitrate_kbps <= asked
    assert p.audio.channels == (1 if channels == 1 else 2), "mono stays mono, more fold down to stereo"


@pytest.mark.parametrize(("channels", "expected"), [(1, 1), (2, 2), (6, 2), (8, 2)])
@pytest.mark.parametrize("fmt", list(Format))
def test_channels(fmt: Format, channels: int, expected: int) -> None:
    v = video() if fmt.is_video else None
    p = plan(OutputSpec(fmt), v, audio(channels=channels))
    assert p.audio is not None and p.audio.channels == expected


@FAST
@given(st.integers(4000, 192_000), st.sampled_from(list(Format)))
def test_sample_rate_is_one_the_codec_carries(rate: int, fmt: Format) -> None:
    p = plan_render(
        OutputSpec(fmt), duration=1.0, video=video() if fmt.is_video else None,
        audio=audio(rate=rate), segments=None,
    )
    assert p.audio is not None
    allowed = MP3_RATES if fmt is Format.MP3 else AAC_RATES
    assert p.audio.sample_rate in allowed
    if rate in allowed:
        assert p.audio.sample_rate == rate, "a rate the codec carries is kept"


@pytest.mark.parametrize(("rate", "expected"), [(44100, 44100), (48000, 48000), (22050, 44100), (96000, 48000)])
def test_mp3_sample_rates(rate: int, expected: int) -> None:
    p = plan(OutputSpec(Format.MP3), None, audio(rate=rate))
    assert p.audio is not None and p.audio.sample_rate == expected


# -- frame rate and duration ------------------------------------------------------------------------------


@pytest.mark.parametrize(("fps", "expected"), [(120.0, 60.0), (59.94, 59.94), (29.97, 29.97), (25.0, 25.0), (240, 60)])
def test_frame_rate_is_capped_at_60(fps: float, expected: float) -> None:
    p = plan(OutputSpec(Format.MP4), video(fps=fps), audio())
    assert p.video is not None and p.video.fps == expected


@FAST
@given(st.floats(1.0, 1000.0))
def test_frame_rate_never_exceeds_60(fps: float) -> None:
    p = plan_render(OutputSpec(Format.MP4), duration=1.0, video=video(fps=fps), audio=None, segments=None)
    assert p.video is not None and 0 < p.video.fps <= 60.0


def test_plan_duration_of_a_cut_is_the_sum_of_its_segments() -> None:
    segs = [Segment(1.0, 2.5), Segment(4.0, 4.04), Segment(10.0, 19.96)]
    p = plan(OutputSpec(Format.MP4), video(), audio(), duration=60.0, segments=segs)
    assert p.duration == pytest.approx(1.5 + 0.04 + 9.96)
    assert p.segments == tuple(segs)


def test_plan_duration_without_a_cut_is_the_source_duration() -> None:
    p = plan(OutputSpec(Format.M4A), None, audio(), duration=42.5)
    assert p.duration == 42.5 and p.segments is None


@FAST
@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0.01, 10)), min_size=1, max_size=20))
def test_plan_duration_is_the_sum_of_segments(pieces: list[tuple[float, float]]) -> None:
    segs, t = [], 0.0
    for gap, length in pieces:
        segs.append(Segment(t + gap, t + gap + length))
        t += gap + length
    p = plan_render(OutputSpec(Format.MP3), duration=t + 1, video=None, audio=audio(), segments=segs)
    assert p.duration == pytest.approx(sum(s.end - s.start for s in segs), abs=1e-5)
