"""Cut segments (SPEC 4): structural 422s at creation, final checks against the source, silences."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from roughy.core.errors import ValidationFailed
from roughy.core.models import Segment
from roughy.core.segments import SegmentsOutOfRange, check_structure, finalize, keep_between_silences

FAST = settings(max_examples=200, deadline=None)
EPS = 1e-6


def segs(*pairs: tuple[float, float]) -> list[Segment]:
    return [Segment(a, b) for a, b in pairs]


def param_of(segments: list[Segment]) -> str | None:
    with pytest.raises(ValidationFailed) as info:
        check_structure(segments)
    assert info.value.status == 422 and info.value.code == "validation_error"
    return info.value.param


# -- check_structure ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pairs", "param"),
    [
        ([(0, 1), (5, 5)], "segments[1]"),  # empty
        ([(3, 2)], "segments[0]"),  # backwards
        ([(0, 1), (2, 3), (-1, 4)], "segments[2].start"),  # negative
        ([(0, 5), (4, 6)], "segments[1]"),  # overlap
        ([(4, 6), (0, 5)], "segments[0]"),  # overlap, given out of order: names the later-starting one
        ([(0, 1), (float("nan"), 2)], "segments[1].start"),
        ([(0, float("inf"))], "segments[0].end"),
        ([(0, 1), (1, float("nan"))], "segments[1].end"),
        ([(float("-inf"), 1)], "segments[0].start"),
    ],
)
def test_broken_segments_are_refused_naming_the_segment(pairs, param) -> None:  # type: ignore[no-untyped-def]
    assert param_of(segs(*pairs)) == param


def test_no_segments_is_refused() -> None:
    assert param_of([]) == "segments"


def test_touching_segments_are_fine_and_come_back_sorted() -> None:
    out = check_structure(segs((5, 7), (0, 2.5), (2.5, 5)))
    assert out == segs((0, 2.5), (2.5, 5), (5, 7))


disjoint = st.lists(
    st.tuples(st.floats(0, 50, allow_nan=False), st.floats(0.001, 50, allow_nan=False)), min_size=1, max_size=30
)


def layout(pieces: list[tuple[float, float]]) -> list[Segment]:
    out, t = [], 0.0
    for gap, length in pieces:
        start = t + gap
        end = start + length
        assume(end > start)
        out.append(Segment(start, end))
        t = end
    return out


@FAST
@given(disjoint, st.randoms(use_true_random=False))
def test_valid_segments_come_back_sorted_and_unchanged(pieces, rnd: random.Random) -> None:  # type: ignore[no-untyped-def]
    ordered = layout(pieces)
    shuffled = ordered[:]
    rnd.shuffle(shuffled)
    assert check_structure(shuffled) == ordered


@FAST
@given(disjoint, st.data())
def test_any_overlap_is_refused(pieces, data) -> None:  # type: ignore[no-untyped-def]
    ordered = layout(pieces)
    victim = data.draw(st.integers(0, len(ordered) - 1))
    seg = ordered[victim]
    # a new segment that starts inside `seg`
    start = data.draw(st.floats(seg.start, seg.end, exclude_max=True, allow_nan=False))
    end = data.draw(st.floats(start, start + 10, exclude_min=True, allow_nan=False))
    assume(start < end)
    broken = [*ordered, Segment(start, end)]
    with pytest.raises(ValidationFailed) as info:
        check_structure(broken)
    assert info.value.param is not None and info.value.param.startswith("segments[")


# -- finalize ---------------------------------------------------------------------------------------------


def test_a_segment_past_the_source_fails_the_cut() -> None:
    with pytest.raises(SegmentsOutOfRange):
        finalize(segs((1, 2), (9, 12)), duration=10.0, fps=25)
    with pytest.raises(SegmentsOutOfRange):
        finalize(segs((10.5, 11)), duration=10.0, fps=25)
    with pytest.raises(SegmentsOutOfRange):
        finalize(segs((0, 10.5)), duration=10.0, fps=None)


def test_an_end_within_a_frame_of_the_source_end_is_clamped_to_it() -> None:
    out = finalize(segs((8, 10.03)), duration=10.0, fps=25)
    assert out == segs((8, 10.0))


def test_segments_snap_to_the_frame_grid() -> None:
    out = finalize(segs((1.013, 2.021), (3.0, 3.05)), duration=10.0, fps=25)
    assert out == segs((1.0, 2.04), (3.0, 3.04))


def test_a_segment_shorter_than_a_frame_fails_the_cut() -> None:
    with pytest.raises(SegmentsOutOfRange):
        finalize(segs((1.0, 1.01)), duration=10.0, fps=25)


def test_audio_only_sources_keep_millisecond_precision() -> None:
    assert finalize(segs((1.2345, 2.5)), duration=3.0, fps=None) == segs((1.234, 2.5))


@FAST
@given(disjoint, st.sampled_from([23.976, 24.0, 25.0, 29.97, 30.0, 50.0, 59.94, 60.0, None]), st.floats(0, 5))
def test_final_segments_are_on_the_grid_sorted_inside_and_at_least_a_frame(pieces, fps, tail) -> None:  # type: ignore[no-untyped-def]
    ordered = layout(pieces)
    frame = 1.0 / fps if fps else 0.001
    assume(all(s.end - s.start >= 2 * frame for s in ordered))
    duration = ordered[-1].end + tail
    out = finalize(ordered, duration=duration, fps=fps)
    assert len(out) == len(ordered)
    for seg in out:
        assert 0 <= seg.start < seg.end <= duration + EPS
        assert seg.end - seg.start >= frame - EPS, "at least one frame"
        if fps:
            for t in (seg.start, seg.end):
                if t != pytest.approx(duration, abs=EPS):
                    k = t / frame
                    assert abs(k - round(k)) < 1e-3, f"{t} is off the frame grid"
    for prev, cur in zip(out, out[1:], strict=False):
        assert prev.end <= cur.start + EPS, "sorted and non-overlapping"
    for seg, src in zip(out, ordered, strict=True):
        assert abs(seg.start - src.start) <= frame / 2 + EPS, "snapping moves a start by at most half a frame"


@FAST
@given(st.floats(0.5, 100), st.floats(0.01, 10), st.sampled_from([25.0, 30.0, 60.0, None]))
def test_a_segment_starting_at_or_after_the_end_fails(duration, over, fps) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SegmentsOutOfRange):
        finalize([Segment(duration + over, duration + over + 1)], duration=duration, fps=fps)


# -- keep_between_silences --------------------------------------------------------------------------------


def test_silences_are_cut_out_keeping_padding() -> None:
    kept = keep_between_silences([(2.0, 4.0), (6.0, 6.1), (8.0, 10.0)], duration=10.0, padding=0.1)
    # the 0.1 s silence is shorter than twice the padding: kept; the last one keeps its padding too
    assert kept == segs((0.0, 2.1), (3.9, 8.1), (9.9, 10.0))


def test_no_silence_keeps_everything() -> None:
    assert keep_between_silences([], duration=7.5, padding=0.2) == segs((0.0, 7.5))


def test_all_silence_keeps_nothing_without_padding() -> None:
    assert keep_between_silences([(0.0, 5.0)], duration=5.0, padding=0.0) == []


silence_layouts = st.lists(
    st.tuples(st.floats(0, 5, allow_nan=False), st.floats(0.01, 5, allow_nan=False)), max_size=12
)


def measure(intervals: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in intervals)


@FAST
@given(silence_layouts, st.floats(0, 5), st.floats(0, 0.5))
def test_kept_and_removed_cover_the_timeline(pieces, tail, padding) -> None:  # type: ignore[no-untyped-def]
    silences, t = [], 0.0
    for gap, length in pieces:
        silences.append((t + gap, t + gap + length))
        t += gap + length
    duration = t + tail
    assume(duration > 0)
    kept = keep_between_silences(silences, duration=duration, padding=padding)

    for seg in kept:
        assert 0 <= seg.start < seg.end <= duration + EPS, seg
    for prev, cur in zip(kept, kept[1:], strict=False):
        assert prev.end <= cur.start, "sorted and disjoint"

    removed = [(a + padding, min(duration, b - padding)) for a, b in silences]
    removed = [(a, b) for a, b in removed if b > a]
    # nothing kept is inside a removed stretch ...
    for seg in kept:
        for a, b in removed:
            overlap = min(seg.end, b) - max(seg.start, a)
            assert overlap <= 1e-5, (seg, (a, b))
    # ... and together they are the whole timeline
    total = measure([(s.start, s.end) for s in kept]) + measure(removed)
    assert math.isclose(total, duration, abs_tol=1e-4 * (1 + len(silences)))
