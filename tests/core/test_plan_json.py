"""An encode plan survives its trip to the encoder (a subprocess or a Kubernetes Job) as JSON."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from roughy.core.models import Format, Segment
from roughy.core.plan import AudioPlan, EncodePlan, VideoPlan

finite = st.floats(0, 1e5, allow_nan=False, allow_infinity=False)
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
    bitrate_kbps=st.integers(32, 320),
    channels=st.sampled_from([1, 2]),
    sample_rate=st.sampled_from([22050, 32000, 44100, 48000]),
)
segment_lists = st.lists(st.tuples(finite, finite).map(lambda p: Segment(*sorted(p))), min_size=1, max_size=20)
plans = st.builds(
    EncodePlan,
    format=st.sampled_from(list(Format)),
    duration=finite,
    video=st.one_of(st.none(), videos),
    audio=st.one_of(st.none(), audios),
    segments=st.one_of(st.none(), segment_lists.map(tuple)),
    separate_audio=st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(plans)
def test_plan_round_trips_through_json(plan: EncodePlan) -> None:
    wire = json.loads(json.dumps(plan.to_json()))
    assert EncodePlan.from_json(wire) == plan


def test_plan_json_is_plain_data() -> None:
    plan = EncodePlan(
        format=Format.MP4, duration=3.5,
        video=VideoPlan(1280, 720, 29.97, 5000, hdr=True),
        audio=AudioPlan(192, 2, 48000),
        segments=(Segment(0.0, 1.5), Segment(2.0, 4.0)),
        separate_audio=True,
    )
    data = plan.to_json()
    assert data["format"] == "mp4"
    assert data["segments"] == [[0.0, 1.5], [2.0, 4.0]]
    assert data["video"] == {"width": 1280, "height": 720, "fps": 29.97, "bitrate_kbps": 5000, "hdr": True}
    assert EncodePlan.from_json(data) == plan


def test_the_time_limit_grows_with_the_duration() -> None:
    short = EncodePlan(Format.MP3, 10.0, None, AudioPlan(128, 1, 44100))
    long = EncodePlan(Format.MP3, 600.0, None, AudioPlan(128, 1, 44100))
    assert 0 < short.time_limit() < long.time_limit()
