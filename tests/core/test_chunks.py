"""Where a long render is split (issue 9): whole frames per chunk, nothing lost at the seams."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roughy.core.chunks import MAX_CHUNKS, Chunking, chunk_segments
from roughy.core.models import Format, OutputSpec, Resolution, Segment, VideoInfo
from roughy.core.planning import plan_render

POLICY = Chunking(seconds=60.0, min_seconds=300.0)


def test_a_ten_minute_render_is_ten_chunks_of_a_minute() -> None:
    chunks = chunk_segments(600.0, 30.0, POLICY)
    assert chunks is not None and len(chunks) == 10
    assert chunks[0] == Segment(0.0, 60.0) and chunks[-1] == Segment(540.0, 600.0)


def test_a_short_tail_joins_the_chunk_before() -> None:
    chunks = chunk_segments(320.0, 25.0, POLICY)  # 5 x 60 s + 20 s
    assert chunks is not None and len(chunks) == 5 and chunks[-1] == Segment(240.0, 320.0)
    longer = chunk_segments(340.0, 25.0, POLICY)  # a 40 s tail is a chunk of its own
    assert longer is not None and len(longer) == 6 and longer[-1] == Segment(300.0, 340.0)


def test_a_very_long_render_gets_longer_chunks_not_more_of_them() -> None:
    six_hours = chunk_segments(6 * 3600.0, 29.97, POLICY)
    assert six_hours is not None and len(six_hours) == MAX_CHUNKS
    assert all(c.end - c.start == pytest.approx(6 * 3600.0 / MAX_CHUNKS, abs=1.0) for c in six_hours)
    fewer = chunk_segments(3600.0, 25.0, Chunking(60.0, 300.0, max_chunks=8))
    assert fewer is not None and len(fewer) == 8 and fewer[0] == Segment(0.0, 450.0)


@pytest.mark.parametrize(("duration", "policy"), [(299.0, POLICY), (600.0, None), (100.0, Chunking(60.0, 0.0))])
def test_short_renders_and_no_policy_are_one_encode(duration: float, policy: Chunking | None) -> None:
    assert chunk_segments(duration, 30.0, policy) is None


@settings(max_examples=300, deadline=None)
@given(
    duration=st.floats(1.0, 7200.0),
    fps=st.sampled_from([23.976, 24.0, 25.0, 29.97, 30.0, 50.0, 59.94, 60.0]),
    seconds=st.floats(0.5, 300.0),
)
def test_chunks_tile_the_output_on_whole_frames(duration: float, fps: float, seconds: float) -> None:
    chunks = chunk_segments(duration, fps, Chunking(seconds, 0.0))
    if chunks is None:
        return
    assert len(chunks) <= MAX_CHUNKS
    assert chunks[0].start == 0.0 and chunks[-1].end == pytest.approx(duration, abs=1e-6)
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert before.end == after.start  # no gap, no overlap
        frames = after.start * fps
        assert frames == pytest.approx(round(frames), abs=1e-3)  # every seam is on a frame


VIDEO = VideoInfo(1920, 1080, 30.0, "h264", 8000, demuxer="mov", pix_fmt="yuv420p", profile="High",
                  square_pixels=True, constant_rate=True, interlaced=False)  # fmt: skip


def test_only_encoded_whole_source_video_is_chunked() -> None:
    def plan(spec: OutputSpec, segments: list[Segment] | None = None):  # type: ignore[no-untyped-def]
        return plan_render(spec, duration=600.0, video=VIDEO, audio=None, segments=segments, chunking=POLICY)

    assert plan(OutputSpec(Format.MP4, resolution=Resolution.P720)).chunks is not None
    assert plan(OutputSpec(Format.MP4)).chunks is None  # copied: nothing to encode
    assert plan(OutputSpec(Format.MP4, resolution=Resolution.P720), [Segment(0, 400)]).chunks is None  # a cut
    unchunked = plan_render(OutputSpec(Format.MP4, resolution=Resolution.P720), duration=600.0, video=VIDEO,
                            audio=None, segments=None)  # fmt: skip
    assert unchunked.chunks is None  # no policy: the default
