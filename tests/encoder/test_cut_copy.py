"""A cut whose kept segments start and end on keyframes copies the source's video (issue 9):
the same packets, byte for byte, end to end; the audio encoded on the same cuts, in sync. Any
other cut is encoded, as before. Real ffmpeg, real files: sources made here with a known GOP."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import pytest

from roughy.core.models import Format, Segment
from roughy.encoder.cutcopy import NotAligned, _copy_segment
from roughy.encoder.tasks import render
from tests.encoder.conftest import PlanFor
from tests.encoder.measure import beep_onsets, flash_times
from tests.media import ffmpeg, make_sync_markers, tone_source

FPS = 25
FRAME = 1 / FPS


def gop_source(path: Path) -> Path:
    """8 s of 640x360 testsrc2 at 25 fps, a keyframe every second exactly, B-frames (decode
    order differs from display order), stereo AAC."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=640x360:rate={FPS}:duration=8", "-f", "lavfi", "-i",
           tone_source(2, 8.0), "-c:v", "libx264", "-preset", "veryfast", "-g", "25", "-keyint_min", "25",
           "-sc_threshold", "0", "-bf", "3", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k",
           str(path))  # fmt: skip
    return path


def video_packets(path: Path) -> list[tuple[float, bytes]]:
    """(display time, payload) of every video packet, in display order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None
        packets = [(round(float(p.pts * stream.time_base), 4), bytes(p)) for p in container.demux(stream) if p.size]
    return sorted(packets)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gop_source(tmp_path_factory.mktemp("cutcopy") / "gop.mp4")


def test_a_cut_on_keyframes_copies_the_video_packet_for_packet(tmp_path: Path, source: Path, plan_for: PlanFor) -> None:
    plan = plan_for(source, segments=[Segment(1.0, 3.0), Segment(5.0, 6.0)])
    assert plan.video is not None and plan.video.cut_copy and not plan.video.stream_copy
    out = tmp_path / "cut.mp4"
    progress: list[float] = []
    result = render(plan, video_src=str(source), audio_src=None, output=str(out), on_progress=progress.append)
    assert result.copied == ["video"]
    kept = [(t, data) for t, data in video_packets(source) if 1.0 <= t < 3.0 - 1e-6 or 5.0 <= t < 6.0 - 1e-6]
    copied = video_packets(out)
    assert [data for _, data in copied] == [data for _, data in kept]  # the source's bytes, in order
    assert [t for t, _ in copied] == [round(i * FRAME, 4) for i in range(75)]  # 3 s of frames, no gap
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 75  # every copied frame decodes
        assert container.streams.audio[0].codec_context.name == "aac"
    assert result.duration == pytest.approx(3.0, abs=0.03)
    assert progress == sorted(progress) and 0 < progress[-1] < 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mp4"]  # no intermediate left


def test_a_copied_cut_keeps_the_audio_in_sync(tmp_path: Path, plan_for: PlanFor) -> None:
    """Flashes and beeps every second; keyframes every 12 frames (0.48 s): segments on them."""
    clip = make_sync_markers(tmp_path / "sync.mp4", duration=6.0)
    plan = plan_for(clip, Format.MOV, segments=[Segment(0.96, 2.88), Segment(3.84, 5.76)])
    out = tmp_path / "synced.mov"
    result = render(plan, video_src=str(clip), audio_src=str(clip), output=str(out))
    assert result.copied == ["video"]
    flashes, beeps = flash_times(out), beep_onsets(out)
    # 1.4 and 2.4 from the first segment, 4.4 and 5.4 from the second (which starts at 1.92).
    assert flashes == pytest.approx([0.44, 1.44, 2.48, 3.48], abs=FRAME)
    assert beeps == pytest.approx(flashes, abs=FRAME)


@pytest.mark.parametrize(
    "segments",
    [
        pytest.param([Segment(1.2, 3.0)], id="starts-inside-a-gop"),
        pytest.param([Segment(1.0, 2.6)], id="ends-inside-a-gop"),
    ],
)
def test_a_cut_off_the_keyframes_is_encoded(
    tmp_path: Path, source: Path, plan_for: PlanFor, segments: list[Segment]
) -> None:
    plan = plan_for(source, segments=segments)
    out = tmp_path / "cut.mp4"
    result = render(plan, video_src=str(source), audio_src=None, output=str(out))
    assert result.copied == []
    frames = round(sum(s.duration for s in segments) * FPS)
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == frames
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mp4"]


@dataclass
class FakePacket:
    pts: int
    dts: int
    is_keyframe: bool
    size: int = 100
    duration: int = 1
    stream: object = None


class FakeSource:
    """Packets in decode order, as a demuxer gives them after a seek to the keyframe at 2 s."""

    def __init__(self, packets: list[FakePacket]) -> None:
        self.packets = packets

    def seek(self, *args: object, **kwargs: object) -> None:
        pass

    def demux(self, stream: object) -> list[FakePacket]:
        return list(self.packets)


def test_an_open_gop_is_not_copied() -> None:
    """x264 (even with open-gop=1 at a fixed GOP) writes no leading pictures, so the rule is
    checked on the packets themselves: after the keyframe at frame 50 comes, in decode order,
    a picture shown at frame 48, which needs the GOP before it."""
    frames = [FakePacket(50, 48, True), FakePacket(48, 49, False), FakePacket(49, 50, False)]
    frames += [FakePacket(n, n + 1, False) for n in range(51, 75)] + [FakePacket(75, 75, True)]
    muxed: list[FakePacket] = []
    target = SimpleNamespace(mux=muxed.append)
    args = (None, target, None, 0, Fraction(1, FPS), 2.0, 3.0, 0.0, FRAME / 2)
    with pytest.raises(NotAligned, match="open GOP"):
        _copy_segment(FakeSource(frames), *args)  # type: ignore[arg-type]
    closed = [FakePacket(50, 49, True)] + [FakePacket(n, n, False) for n in range(51, 75)] + [FakePacket(75, 74, True)]
    assert _copy_segment(FakeSource(closed), *args) == 25  # type: ignore[arg-type]


def test_a_copy_that_libav_cannot_finish_falls_back_to_the_encode(
    tmp_path: Path, source: Path, plan_for: PlanFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read or a mux that fails while copying (a dropped connection, timestamps the muxer
    refuses) is not the render's failure: the cut is encoded instead, from the source again."""
    import av.error

    from roughy.encoder import cutcopy

    def broken(*args: object, **kwargs: object) -> int:
        raise av.error.ArgumentError(22, "non monotonically increasing dts")

    monkeypatch.setattr(cutcopy, "_copy", broken)
    plan = plan_for(source, segments=[Segment(1.0, 3.0)])
    out = tmp_path / "cut.mp4"
    result = render(plan, video_src=str(source), audio_src=None, output=str(out))
    assert result.copied == []
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mp4"]
