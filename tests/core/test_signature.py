"""The content signature (SPEC 5.4) and the Kubernetes resource name derived from it."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roughy.core.models import Format, OutputSpec, Resolution
from roughy.core.signature import render_signature, resource_name

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

FULL = {"format": Format.MP4, "resolution": Resolution.P1080, "video_bitrate": 10, "audio_bitrate": 192}


@pytest.mark.parametrize("order", list(itertools.permutations(FULL)))
def test_field_order_does_not_matter(order: tuple[str, ...]) -> None:
    spec = OutputSpec(**{k: FULL[k] for k in order})
    assert render_signature("ast_1", "cut_1", spec) == render_signature("ast_1", "cut_1", OutputSpec(**FULL))


def test_absent_and_none_are_the_same() -> None:
    absent = OutputSpec(**{"format": Format.MP3})
    nulls = OutputSpec(**{"audio_bitrate": None, "format": Format.MP3, "resolution": None, "video_bitrate": None})
    assert render_signature("ast_1", None, absent) == render_signature("ast_1", None, nulls)


@pytest.mark.parametrize(
    ("field", "explicit"),
    [("resolution", Resolution.P1080), ("video_bitrate", 10), ("audio_bitrate", 192)],
)
def test_auto_and_an_explicit_value_differ(field: str, explicit: object) -> None:
    auto = OutputSpec(Format.MP4)
    chosen = OutputSpec(Format.MP4, **{field: explicit})  # type: ignore[arg-type]
    assert render_signature("ast_1", None, auto) != render_signature("ast_1", None, chosen)


def test_a_different_cut_format_tier_or_asset_is_another_render() -> None:
    base = render_signature("ast_1", None, OutputSpec(Format.MP4, resolution=Resolution.P720))
    others = {
        render_signature("ast_1", "cut_1", OutputSpec(Format.MP4, resolution=Resolution.P720)),
        render_signature("ast_1", "cut_2", OutputSpec(Format.MP4, resolution=Resolution.P720)),
        render_signature("ast_1", None, OutputSpec(Format.MOV, resolution=Resolution.P720)),
        render_signature("ast_1", None, OutputSpec(Format.MP4, resolution=Resolution.P1080)),
        render_signature("ast_2", None, OutputSpec(Format.MP4, resolution=Resolution.P720)),
        render_signature("ast_1", None, OutputSpec(Format.MP4)),
    }
    assert base not in others and len(others) == 6
    assert render_signature("ast_1", None, OutputSpec(Format.MP3)) != render_signature(
        "ast_1", None, OutputSpec(Format.M4A)
    )


specs = st.builds(
    OutputSpec,
    format=st.sampled_from(list(Format)),
    resolution=st.one_of(st.none(), st.sampled_from(list(Resolution))),
    video_bitrate=st.sampled_from([None, 5, 10, 20, 50]),
    audio_bitrate=st.sampled_from([None, 128, 192, 256, 320]),
)
ids = st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(ids, st.one_of(st.none(), ids), specs, ids, st.one_of(st.none(), ids), specs)
def test_signatures_are_equal_exactly_when_the_requests_are(a1, c1, s1, a2, c2, s2) -> None:  # type: ignore[no-untyped-def]
    same = (a1, c1, s1) == (a2, c2, s2)
    assert (render_signature(a1, c1, s1) == render_signature(a2, c2, s2)) == same


@settings(max_examples=200, deadline=None)
@given(ids, st.one_of(st.none(), ids), specs)
def test_resource_name_is_a_dns1123_label(asset_id, cut_id, spec) -> None:  # type: ignore[no-untyped-def]
    name = resource_name(render_signature(asset_id, cut_id, spec))
    assert len(name) <= 63
    assert DNS1123_LABEL.match(name), name


def test_resource_names_differ_with_the_signature() -> None:
    a = resource_name(render_signature("ast_1", None, OutputSpec(Format.MP4)))
    b = resource_name(render_signature("ast_1", None, OutputSpec(Format.MOV)))
    assert a != b and a.startswith("r-")
