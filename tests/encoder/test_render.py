"""Real renders: what a user would notice in the produced files (SPEC 5.5)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import av
import pytest

from roughy.core.models import Format, RenderResult, Resolution
from roughy.core.plan import AudioPlan, EncodePlan, VideoPlan
from roughy.encoder.ffmpeg_args import BUFSIZE_SECONDS
from roughy.encoder.probe import probe
from roughy.encoder.tasks import render
from roughy.encoder.tools import ffmpeg_path
from tests.encoder.conftest import PlanFor
from tests.encoder.measure import rotation_of, stream_times, top_level_atoms
from tests.media import ffmpeg, make_video, truncate_file


def run_render(plan: EncodePlan, src: Path, out: Path) -> RenderResult:
    progress: list[float] = []
    result = render(plan, video_src=str(src), audio_src=str(src), output=str(out), on_progress=progress.append)
    assert out.exists()
    assert progress and progress[-1] == 1.0 and progress == sorted(progress)
    assert [p.name for p in out.parent.iterdir() if ".part" in p.name] == []
    return result


def video_props(path: Path) -> tuple[str, int, int, tuple[int, int] | None, str | None]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        ctx = s.codec_context
        sar = s.sample_aspect_ratio
        pix = ctx.pix_fmt
        return (
            ctx.codec.canonical_name,
            ctx.width,
            ctx.height,
            (sar.numerator, sar.denominator) if sar else None,
            pix,
        )


def test_rotated_phone_clip_becomes_portrait_without_rotation_flag(
    tmp_path: Path, rotated_clip: Path, plan_for: PlanFor
) -> None:
    plan = plan_for(rotated_clip)
    assert plan.video is not None and (plan.video.width, plan.video.height) == (180, 320)
    out = tmp_path / "portrait.mp4"
    result = run_render(plan, rotated_clip, out)
    assert (result.width, result.height) == (180, 320)
    codec, width, height, sar, pix = video_props(out)
    assert (codec, width, height, pix) == ("h264", 180, 320, "yuv420p")
    assert rotation_of(out) == 0
    info = probe(str(out))
    assert info.video is not None and info.video.rotation == 0


def test_result_reports_what_was_produced(tmp_path: Path, stereo_clip: Path, plan_for: PlanFor) -> None:
    plan = plan_for(stereo_clip, Format.MOV)
    out = tmp_path / "clip.mov"
    result = run_render(plan, stereo_clip, out)
    assert plan.video is not None and plan.audio is not None
    assert result.to_json() == {
        "format": "mov",
        "width": 320,
        "height": 240,
        "duration": pytest.approx(2.0, abs=0.05),
        "size_bytes": out.stat().st_size,
        "video_bitrate_kbps": plan.video.bitrate_kbps,
        "audio_bitrate_kbps": plan.audio.bitrate_kbps,
        "copied": ["video", "audio"],  # the clip already is H.264 + AAC-LC within Auto
        "encoder": None,  # so no video encoder ran
    }
    assert "mov" in probe(str(out)).format_name


def packets(path: Path, kind: str) -> list[tuple[int | None, bytes]]:
    """(pts, payload) of every packet of the first stream of `kind`."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0] if kind == "video" else c.streams.audio[0]
        return [(p.pts, bytes(p)) for p in c.demux(stream) if p.size]


def test_passthrough_copies_the_streams_bit_for_bit(tmp_path: Path, plan_for: PlanFor) -> None:
    """A source that already is the output is copied: the same frames, the same bytes, the
    index in front; a tier below it is an encode."""
    src = make_video(tmp_path / "camera.mkv", duration=2.0, width=1920, height=1080, crf=30)  # under 10 Mb/s
    plan = plan_for(src)
    assert plan.video is not None and plan.video.stream_copy
    out = tmp_path / "copied.mp4"
    result = run_render(plan, src, out)
    assert result.copied == ["video", "audio"] if plan.audio and plan.audio.stream_copy else ["video"]
    assert [b for _, b in packets(out, "video")] == [b for _, b in packets(src, "video")]
    assert top_level_atoms(out).index("moov") < top_level_atoms(out).index("mdat")
    info = probe(str(out))
    assert info.video is not None and (info.video.width, info.video.height) == (1920, 1080)
    assert info.duration == pytest.approx(2.0, abs=0.05)

    smaller = plan_for(src, resolution=Resolution.P720)
    assert smaller.video is not None and not smaller.video.stream_copy
    encoded = run_render(smaller, src, tmp_path / "encoded.mp4")
    assert encoded.copied == [] or encoded.copied == ["audio"]
    assert (encoded.width, encoded.height) == (1280, 720)


def test_vfr_comes_out_constant_at_the_average_rate(tmp_path: Path, plan_for: PlanFor) -> None:
    src = make_video(tmp_path / "vfr.mp4", vfr=True)
    plan = plan_for(src)
    assert plan.video is not None
    out = tmp_path / "cfr.mp4"
    run_render(plan, src, out)
    times = stream_times(out)
    steps = {round(b - a, 4) for a, b in zip(times.video_pts, times.video_pts[1:], strict=False)}
    assert steps == {round(1 / plan.video.fps, 4)}  # every frame the same length: CFR
    info = probe(str(out))
    assert info.video is not None and info.video.fps == pytest.approx(plan.video.fps, abs=0.01)
    assert times.audio_duration == pytest.approx(times.video_duration, abs=1 / plan.video.fps)


def test_hdr_is_tone_mapped_to_bt709_8bit(tmp_path: Path, plan_for: PlanFor) -> None:
    src = make_video(tmp_path / "hdr.mp4", hdr=True, audio=None)
    plan = plan_for(src)
    assert plan.video is not None and plan.video.hdr
    out = tmp_path / "sdr.mp4"
    run_render(plan, src, out)
    with av.open(str(out)) as c:
        ctx = c.streams.video[0].codec_context
        assert ctx.pix_fmt == "yuv420p"
        # 1 = BT.709 for primaries, transfer and matrix alike
        assert (ctx.color_primaries, ctx.color_trc, ctx.colorspace) == (1, 1, 1)
    info = probe(str(out))
    assert info.video is not None and not info.video.hdr and info.audio is None


def test_anamorphic_source_gets_square_pixels_at_display_aspect(tmp_path: Path, plan_for: PlanFor) -> None:
    src = make_video(tmp_path / "anamorphic.mp4", width=240, height=180, sar="4:3")
    plan = plan_for(src)
    assert plan.video is not None and (plan.video.width, plan.video.height) == (320, 180)
    out = tmp_path / "square.mp4"
    run_render(plan, src, out)
    _, width, height, sar, _ = video_props(out)
    assert (width, height) == (320, 180)
    assert sar in (None, (1, 1), (0, 1))


def test_odd_sized_source_encodes_to_even(tmp_path: Path, plan_for: PlanFor) -> None:
    src = make_video(tmp_path / "odd.mp4", width=321, height=241, audio="mono")
    plan = plan_for(src)
    assert plan.video is not None and plan.video.width % 2 == 0 and plan.video.height % 2 == 0
    out = tmp_path / "even.mp4"
    result = run_render(plan, src, out)
    assert (result.width, result.height) == (plan.video.width, plan.video.height)


def test_tier_scales_down(tmp_path: Path, stereo_clip: Path, plan_for: PlanFor) -> None:
    plan = plan_for(stereo_clip)
    small = EncodePlan(
        format=plan.format,
        duration=plan.duration,
        video=VideoPlan(width=160, height=120, fps=25.0, bitrate_kbps=300),
        audio=plan.audio,
    )
    result = run_render(small, stereo_clip, tmp_path / "small.mp4")
    assert (result.width, result.height) == (160, 120)


@pytest.mark.parametrize(("layout", "channels"), [("5.1", 2), ("mono", 1), ("stereo", 2)])
def test_channels_fold_to_stereo_and_mono_stays_mono(
    tmp_path: Path, plan_for: PlanFor, layout: str, channels: int
) -> None:
    src = make_video(tmp_path / f"{layout}.mp4", duration=1.0, width=160, height=120, audio=layout)
    plan = plan_for(src, Format.M4A)
    out = tmp_path / "out.m4a"
    run_render(plan, src, out)
    info = probe(str(out))
    assert info.audio is not None and info.video is None
    assert (info.audio.codec, info.audio.channels) == ("aac", channels)


def test_mp4_index_is_at_the_front(tmp_path: Path, stereo_clip: Path, plan_for: PlanFor) -> None:
    for fmt, name in ((Format.MP4, "a.mp4"), (Format.M4A, "a.m4a")):
        out = tmp_path / name
        run_render(plan_for(stereo_clip, fmt), stereo_clip, out)
        atoms = top_level_atoms(out)
        assert "moov" in atoms and "mdat" in atoms
        assert atoms.index("moov") < atoms.index("mdat"), atoms


def test_audio_formats_probe_as_mp3_and_aac(tmp_path: Path, stereo_clip: Path, plan_for: PlanFor) -> None:
    mp3 = tmp_path / "a.mp3"
    run_render(plan_for(stereo_clip, Format.MP3), stereo_clip, mp3)
    info = probe(str(mp3))
    assert info.format_name == "mp3" and info.audio is not None and info.audio.codec == "mp3"
    assert info.video is None
    m4a = tmp_path / "a.m4a"
    run_render(plan_for(stereo_clip, Format.M4A), stereo_clip, m4a)
    info = probe(str(m4a))
    assert info.audio is not None and info.audio.codec == "aac" and info.video is None
    with open(m4a, "rb") as f:
        assert f.read(12)[4:12] == b"ftypM4A "


def test_mp3_with_an_odd_sample_rate(tmp_path: Path, stereo_clip: Path) -> None:
    plan = EncodePlan(format=Format.MP3, duration=2.0, video=None, audio=AudioPlan(128, 2, 96000))
    out = tmp_path / "odd-rate.mp3"
    run_render(plan, stereo_clip, out)
    info = probe(str(out))
    assert info.audio is not None and info.audio.sample_rate == 48000


def test_video_without_audio_track(tmp_path: Path, stereo_clip: Path, plan_for: PlanFor) -> None:
    plan = plan_for(stereo_clip)
    silent = EncodePlan(format=plan.format, duration=plan.duration, video=plan.video, audio=None)
    out = tmp_path / "silent.mp4"
    run_render(silent, stereo_clip, out)
    assert probe(str(out)).audio is None


def test_separate_audio_replaces_the_videos_own(tmp_path: Path, plan_for: PlanFor) -> None:
    src = make_video(tmp_path / "noaudio.mp4", audio=None)
    voice = make_video(tmp_path / "voice.mp4", width=160, height=120, audio="mono")
    plan = plan_for(src)
    with_voice = EncodePlan(
        format=plan.format,
        duration=plan.duration,
        video=plan.video,
        audio=AudioPlan(bitrate_kbps=96, channels=1, sample_rate=48000),
        separate_audio=True,
    )
    out = tmp_path / "dubbed.mp4"
    render(with_voice, video_src=str(src), audio_src=str(voice), output=str(out))
    info = probe(str(out))
    assert info.video is not None and info.audio is not None and info.audio.channels == 1


def test_source_damaged_partway_renders_what_is_decodable(tmp_path: Path, plan_for: PlanFor) -> None:
    src = make_video(tmp_path / "src.mp4", duration=3.0)
    indexed = tmp_path / "indexed.mp4"
    ffmpeg("-i", str(src), "-c", "copy", "-movflags", "+faststart", str(indexed))
    damaged = truncate_file(indexed, tmp_path / "damaged.mp4", 0.6)  # index intact, data cut short
    plan = plan_for(damaged)
    result = run_render(plan, damaged, tmp_path / "out.mp4")
    assert 0.5 < result.duration < 2.9


def mean_yuv(path: Path, at: float) -> tuple[float, float, float]:
    """The average Y, U and V of the frame shown at `at` seconds (ffmpeg's signalstats)."""
    argv = [ffmpeg_path(), "-hide_banner", "-nostdin", "-ss", str(at), "-i", str(path), "-frames:v", "1",
            "-vf", "signalstats,metadata=print", "-f", "null", "-"]  # fmt: skip
    err = subprocess.run(argv, capture_output=True, text=True, check=True).stderr
    stat = {k: float(v) for k, v in re.findall(r"lavfi\.signalstats\.([YUV]AVG)=([0-9.]+)", err)}
    return stat["YAVG"], stat["UAVG"], stat["VAVG"]


def test_a_near_static_source_keeps_its_colour(tmp_path: Path, plan_for: PlanFor) -> None:
    """A solid-colour 1080p source is ~20 kb/s; its Auto 720p render used to get a VBV too small
    for one I-frame and came out grey (x264 stuck at QP 51) where the source is green."""
    src = tmp_path / "green.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=green:s=1920x1080:r=30:d=4", "-c:v", "libx264", "-preset", "veryfast",
           "-pix_fmt", "yuv420p", str(src))  # fmt: skip
    plan = plan_for(src, resolution=Resolution.P720)
    assert plan.video is not None and plan.video.bitrate_kbps < 50  # Auto: the source's own tiny rate
    out = tmp_path / "green-720p.mp4"
    run_render(plan, src, out)
    for at in (0.0, 2.0, 3.9):
        assert mean_yuv(out, at) == pytest.approx(mean_yuv(src, at), abs=3), f"at {at} s"


def video_kbps(path: Path) -> float:
    """The video stream's average bitrate, from its packets."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        sizes = [p.size for p in c.demux(stream) if p.size]
        return sum(sizes) * 8 / (len(sizes) / float(stream.average_rate)) / 1000


def test_the_bitrate_is_a_cap_not_a_target(tmp_path: Path) -> None:
    """Capped CRF: easy content takes what it needs, far under the step; hard content (noise)
    is held at the step."""
    easy = tmp_path / "easy.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=blue:s=640x360:r=25:d=3", "-c:v", "libx264", "-preset", "ultrafast",
           "-pix_fmt", "yuv420p", str(easy))  # fmt: skip
    hard = tmp_path / "hard.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=640x360:r=25:d=3", "-vf", "noise=alls=60:allf=t+u", "-c:v", "libx264",
           "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p", str(hard))  # fmt: skip
    plan = EncodePlan(Format.MP4, 3.0, VideoPlan(640, 360, 25.0, 1000), None)
    run_render(plan, easy, tmp_path / "easy-out.mp4")
    run_render(plan, hard, tmp_path / "hard-out.mp4")
    assert video_kbps(tmp_path / "easy-out.mp4") < 50  # of a 1000 kb/s cap
    # The VBV's promise: over any T seconds at most cap x (T + buffer seconds); the buffer
    # starts full, so a 3 s clip may spend it once on top of the cap.
    hard_kbps = video_kbps(tmp_path / "hard-out.mp4")
    assert 800 < hard_kbps and hard_kbps * 3.0 <= 1000 * (3.0 + BUFSIZE_SECONDS)
