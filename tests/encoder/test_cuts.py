"""Cuts on real media: kept lengths add up, audio and video stay together across joins."""

from __future__ import annotations

from pathlib import Path

import pytest

from roughy.core.models import Format, Segment
from roughy.encoder import tasks
from roughy.encoder.tasks import render
from tests.encoder.conftest import PlanFor
from tests.encoder.measure import beep_onsets, flash_times, max_step, stream_times

FRAME = 1 / 25
# Four segments, three joins; each keeps one marker (markers at k + 0.4 s) away from its edges.
SEGMENTS = [Segment(0.2, 1.0), Segment(1.32, 2.12), Segment(2.92, 3.52), Segment(4.12, 5.0)]


def expected_marker_times(segments: list[Segment], markers: list[float]) -> list[float]:
    out, offset = [], 0.0
    for seg in segments:
        out += [offset + m - seg.start for m in markers if seg.start <= m < seg.end]
        offset += seg.duration
    return out


def test_three_segment_cut_lasts_the_sum_with_audio_as_long_as_video(
    tmp_path: Path, stereo_clip: Path, plan_for: PlanFor
) -> None:
    segments = [Segment(0.0, 0.6), Segment(0.8, 1.2), Segment(1.4, 1.96)]
    plan = plan_for(stereo_clip, segments=segments)
    out = tmp_path / "cut.mp4"
    result = render(plan, video_src=str(stereo_clip), audio_src=str(stereo_clip), output=str(out))
    total = sum(s.duration for s in segments)
    times = stream_times(out)
    assert times.video_duration == pytest.approx(total, abs=FRAME)
    assert times.audio_duration == pytest.approx(times.video_duration, abs=FRAME)
    assert result.duration == pytest.approx(total, abs=FRAME)


def test_markers_stay_in_sync_after_the_third_join(tmp_path: Path, sync_clip: Path, plan_for: PlanFor) -> None:
    plan = plan_for(sync_clip, segments=SEGMENTS)
    out = tmp_path / "synced.mp4"
    render(plan, video_src=str(sync_clip), audio_src=str(sync_clip), output=str(out))
    expected = expected_marker_times(SEGMENTS, [k + 0.4 for k in range(6)])
    assert len(expected) == 4  # one marker per segment, the last one after the third join
    flashes, beeps = flash_times(out), beep_onsets(out)
    assert len(flashes) == len(beeps) == 4
    for want, flash, beep in zip(expected, flashes, beeps, strict=True):
        assert flash == pytest.approx(want, abs=FRAME)
        assert beep == pytest.approx(flash, abs=FRAME)  # within one video frame
    times = stream_times(out)
    assert times.audio_duration == pytest.approx(times.video_duration, abs=FRAME)


def test_audio_only_cut(tmp_path: Path, sync_clip: Path, plan_for: PlanFor) -> None:
    plan = plan_for(sync_clip, Format.M4A, segments=SEGMENTS)
    out = tmp_path / "synced.m4a"
    render(plan, video_src=None, audio_src=str(sync_clip), output=str(out))
    expected = expected_marker_times(SEGMENTS, [k + 0.4 for k in range(6)])
    assert beep_onsets(out) == pytest.approx(expected, abs=0.005)
    times = stream_times(out)
    assert times.audio_duration == pytest.approx(sum(s.duration for s in SEGMENTS), abs=0.03)


def test_joins_do_not_click(tmp_path: Path, stereo_clip: Path, plan_for: PlanFor) -> None:
    """Tones cut mid-wave jump at the join (a click); the 5 ms fades keep the waveform smooth."""
    segments = [Segment(0.0, 0.5013), Segment(1.0071, 1.5)]
    plan = plan_for(stereo_clip, Format.M4A, segments=segments)
    out = tmp_path / "faded.m4a"
    render(plan, video_src=None, audio_src=str(stereo_clip), output=str(out))
    whole = tmp_path / "whole.m4a"
    render(plan_for(stereo_clip, Format.M4A), video_src=None, audio_src=str(stereo_clip), output=str(whole))
    # no step anywhere larger than the uncut tones' own steepest one (plus codec noise)
    assert max_step(out) < max_step(whole) * 1.5


@pytest.mark.parametrize("fmt", [Format.MP4, Format.M4A])
def test_long_cut_lists_are_batched_and_stay_in_sync(
    tmp_path: Path, sync_clip: Path, plan_for: PlanFor, monkeypatch: pytest.MonkeyPatch, fmt: Format
) -> None:
    """Five segments in batches of two: three encodes and a join, same result as one process."""
    monkeypatch.setattr(tasks, "BATCH_SEGMENTS", 2)
    segments = [*SEGMENTS, Segment(5.2, 5.8)]
    plan = plan_for(sync_clip, fmt, segments=segments)
    out = tmp_path / f"batched.{fmt.value}"
    progress: list[float] = []
    render(plan, video_src=str(sync_clip), audio_src=str(sync_clip), output=str(out), on_progress=progress.append)
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # batches and list removed
    expected = expected_marker_times(segments, [k + 0.4 for k in range(6)])
    beeps = beep_onsets(out)
    assert beeps == pytest.approx(expected, abs=FRAME)
    times = stream_times(out)
    if fmt.is_video:
        assert flash_times(out) == pytest.approx(beeps, abs=FRAME)
        assert times.video_duration == pytest.approx(sum(s.duration for s in segments), abs=FRAME)
        assert times.audio_duration == pytest.approx(times.video_duration, abs=FRAME)
    else:
        assert times.audio_duration == pytest.approx(sum(s.duration for s in segments), abs=0.03)
