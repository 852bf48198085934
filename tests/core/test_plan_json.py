"""An encode plan survives its trip to the encoder (a subprocess or a Kubernetes Job) as JSON."""

from __future__ import annotations

import json

from hypothesis import given, settings

from roughy.core.models import Format, Segment
from roughy.core.plan import AudioPlan, EncodePlan, VideoPlan
from tests.strategies import plans


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
    assert data["video"] == {"width": 1280, "height": 720, "fps": 29.97, "bitrate_kbps": 5000, "hdr": True,
                             "stream_copy": False, "cut_copy": False}  # fmt: skip
    assert EncodePlan.from_json(data) == plan


def test_the_time_limit_grows_with_the_duration() -> None:
    short = EncodePlan(Format.MP3, 10.0, None, AudioPlan(128, 1, 44100))
    long = EncodePlan(Format.MP3, 600.0, None, AudioPlan(128, 1, 44100))
    assert 0 < short.time_limit() < long.time_limit()
