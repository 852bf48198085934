"""Example Renders shared by the CRD and Job tests: built from the models, the way the API would."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from roughy.core.models import Format, RenderState, Resolution, Segment
from roughy.core.plan import AudioPlan, EncodePlan, VideoPlan
from roughy.core.signature import resource_name
from roughy.kube.crd import (
    Condition,
    ConditionStatus,
    PlanSpec,
    RenderSpec,
    RenderStatus,
    ResultStatus,
    SourcesSpec,
    VideoEncoder,
    dump_resource,
    render_body,
    tier_of,
)

SIGNATURE = "0123456789abcdef" * 4
UID = "7b0e7c6a-1c1e-4c1e-9a55-3f0e0d0c0b0a"


def video_plan(
    width: int = 1920, height: int = 1080, duration: float = 60.0, segments: int | None = None
) -> EncodePlan:
    cuts = tuple(Segment(10.0 * i, 10.0 * i + 5.0) for i in range(segments)) if segments else None
    return EncodePlan(
        format=Format.MP4,
        duration=duration,
        video=VideoPlan(width=width, height=height, fps=29.97, bitrate_kbps=10_000),
        audio=AudioPlan(bitrate_kbps=192, channels=2, sample_rate=48_000),
        segments=cuts,
    )


def audio_plan(duration: float = 60.0) -> EncodePlan:
    return EncodePlan(format=Format.M4A, duration=duration, video=None, audio=AudioPlan(128, 1, 44_100))


def spec_for(
    plan: EncodePlan, *, tier: Resolution | None = None, encoder: VideoEncoder | None = None, audio_source: bool = False
) -> RenderSpec:
    """A spec as the API would write it; `tier` defaults to the plan's own."""
    sources = SourcesSpec(
        video="assets/ast_1/video" if plan.video else None,
        audio="assets/ast_1/audio.mka" if audio_source or plan.video is None else None,
    )
    return RenderSpec(
        render_id="rnd_abc",
        account_id="acct_1",
        asset_id="ast_1",
        cut_id="cut_1" if plan.segments else None,
        tier=tier or tier_of(plan),
        plan=PlanSpec.from_plan(plan),
        sources=sources,
        output_key=f"renders/rnd_abc/output.{plan.format.value}",
        encoder=encoder,
    )


def render_object(spec: RenderSpec, *, status: RenderStatus | None = None) -> dict[str, Any]:
    """A Render as read back from the API server: with uid, namespace and generation."""
    body = render_body(resource_name(SIGNATURE), spec, namespace="media")
    body["metadata"].update(uid=UID, generation=1, creationTimestamp="2025-01-01T00:00:00Z")
    if status is not None:
        body["status"] = dump_resource(status)
    return body


def completed_status() -> RenderStatus:
    at = datetime(2025, 1, 1, 0, 5, tzinfo=UTC)
    return RenderStatus(
        observed_generation=1,
        conditions=[
            Condition(type="Completed", status=ConditionStatus.TRUE, reason="Encoded", last_transition_time=at)
        ],
        state=RenderState.COMPLETED,
        progress=1.0,
        encoder=VideoEncoder.H264_NVENC,
        job_name=resource_name(SIGNATURE),
        started_at=datetime(2025, 1, 1, 0, 1, tzinfo=UTC),
        completed_at=at,
        result=ResultStatus(
            format=Format.MP4,
            width=3840,
            height=2160,
            duration=60.0,
            size_bytes=75_000_000,
            video_bitrate_kbps=10_000,
            audio_bitrate_kbps=192,
        ),
    )
