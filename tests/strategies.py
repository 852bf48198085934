"""Hypothesis strategies shared by test tiers: any encode plan the planner could produce, and more."""

from __future__ import annotations

from hypothesis import strategies as st

from roughy.core.models import Format, Segment
from roughy.core.plan import AudioPlan, EncodePlan, VideoPlan
from roughy.encoder.sources import SOURCE_DEMUXERS

seconds = st.floats(0, 1e5, allow_nan=False, allow_infinity=False)
videos = st.builds(
    VideoPlan,
    width=st.integers(1, 4096).map(lambda n: 2 * n),
    height=st.integers(1, 4096).map(lambda n: 2 * n),
    fps=st.floats(1, 60),
    bitrate_kbps=st.integers(1, 50_000),
    hdr=st.booleans(),
)
audios = st.builds(
    AudioPlan,
    bitrate_kbps=st.integers(8, 320),
    channels=st.sampled_from([1, 2]),
    sample_rate=st.sampled_from([22_050, 32_000, 44_100, 48_000]),
)
segment_lists = st.lists(st.tuples(seconds, seconds).map(lambda p: Segment(*sorted(p))), min_size=1, max_size=20)
plans = st.builds(
    EncodePlan,
    format=st.sampled_from(list(Format)),
    duration=seconds,
    video=st.one_of(st.none(), videos),
    audio=st.one_of(st.none(), audios),
    segments=st.one_of(st.none(), segment_lists.map(tuple)),
    separate_audio=st.booleans(),
    video_demuxer=st.one_of(st.none(), st.sampled_from(SOURCE_DEMUXERS)),
    audio_demuxer=st.one_of(st.none(), st.sampled_from(SOURCE_DEMUXERS)),
    chunks=st.one_of(st.none(), segment_lists.filter(lambda s: len(s) >= 2).map(tuple)),
)
