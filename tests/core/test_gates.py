"""The 409 gates of SPEC 5.2, in order, built on real Asset and Cut objects."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from roughy.core.errors import (
    AssetFailed,
    AssetNotReady,
    AssetPaymentRequired,
    AssetProcessing,
    Conflict,
    ModifierNotReady,
)
from roughy.core.gates import check_render_gates
from roughy.core.models import (
    Asset,
    AssetKind,
    AssetState,
    Cut,
    CutMethod,
    CutState,
    ErrorInfo,
    Format,
    PartState,
    Segment,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
VIDEO_FORMATS = [Format.MP4, Format.MOV]
AUDIO_FORMATS = [Format.M4A, Format.MP3]


def video_asset(state: AssetState, *, charged: bool = True, client_audio: bool = False, **kw) -> Asset:  # type: ignore[no-untyped-def]
    ready = state is AssetState.READY
    return Asset(
        id="ast_v", account_id="acct_1", kind=AssetKind.VIDEO, filename="talk.mp4", client_audio=client_audio,
        state=state,
        video_part=kw.pop("video_part", PartState.PROCESSED if ready else PartState.UPLOADED),
        audio_part=kw.pop("audio_part", (PartState.PROCESSED if ready else PartState.AWAITING_UPLOAD)
                          if client_audio else None),
        created_at=T0, charged=charged, **kw,
    )


def audio_asset(state: AssetState, *, charged: bool = True, audio_part: PartState | None = None) -> Asset:
    if audio_part is None:
        audio_part = PartState.PROCESSED if state is AssetState.READY else PartState.UPLOADED
    return Asset(
        id="ast_a", account_id="acct_1", kind=AssetKind.AUDIO, filename="talk.mp3", client_audio=False,
        state=state, video_part=None, audio_part=audio_part, created_at=T0, charged=charged,
    )


def cut(state: CutState) -> Cut:
    return Cut(
        id="cut_1", account_id="acct_1", asset_id="ast_v", state=state, method=CutMethod.SEGMENTS,
        created_at=T0, segments=[Segment(0, 1)],
    )


def refusal(asset: Asset, fmt: Format, c: Cut | None = None) -> Conflict:
    with pytest.raises(Conflict) as info:
        check_render_gates(asset, fmt, c)
    assert info.value.status == 409
    return info.value


# -- video output needs a ready asset ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", VIDEO_FORMATS)
@pytest.mark.parametrize(
    "state", [AssetState.UPLOADING, AssetState.PROCESSING, AssetState.FAILED, AssetState.PAYMENT_REQUIRED]
)
def test_video_render_needs_a_ready_asset(fmt: Format, state: AssetState) -> None:
    err = refusal(video_asset(state, charged=state is not AssetState.PAYMENT_REQUIRED), fmt)
    assert isinstance(err, AssetNotReady) and err.code == "asset_not_ready"


@pytest.mark.parametrize("fmt", list(Format))
def test_a_ready_asset_passes_every_gate(fmt: Format) -> None:
    check_render_gates(video_asset(AssetState.READY), fmt, None)
    check_render_gates(video_asset(AssetState.READY), fmt, cut(CutState.COMPLETED))


# -- audio output needs a cuttable asset, with the precise reason -----------------------------------


@pytest.mark.parametrize("fmt", AUDIO_FORMATS)
@pytest.mark.parametrize(
    ("asset", "error", "code"),
    [
        (audio_asset(AssetState.UPLOADING, charged=False, audio_part=PartState.AWAITING_UPLOAD),
         AssetProcessing, "asset_processing"),
        (audio_asset(AssetState.PROCESSING, charged=True), AssetProcessing, "asset_processing"),
        (audio_asset(AssetState.PAYMENT_REQUIRED, charged=False), AssetPaymentRequired, "asset_payment_required"),
        (audio_asset(AssetState.FAILED, charged=True, audio_part=PartState.FAILED), AssetFailed, "asset_failed"),
        (video_asset(AssetState.PROCESSING), AssetProcessing, "asset_processing"),
        (video_asset(AssetState.PAYMENT_REQUIRED, charged=False), AssetPaymentRequired, "asset_payment_required"),
        (video_asset(AssetState.FAILED, error=ErrorInfo("invalid_media", "no streams")), AssetFailed, "asset_failed"),
    ],
)
def test_audio_render_names_why_the_asset_is_not_cuttable(fmt, asset, error, code) -> None:  # type: ignore[no-untyped-def]
    err = refusal(asset, fmt)
    assert type(err) is error and err.code == code


def test_a_failed_asset_says_why() -> None:
    err = refusal(video_asset(AssetState.FAILED, error=ErrorInfo("invalid_media", "no streams")), Format.M4A)
    assert "no streams" in err.message


def test_client_audio_asset_renders_audio_while_its_video_still_uploads() -> None:
    asset = video_asset(
        AssetState.UPLOADING, client_audio=True,
        video_part=PartState.AWAITING_UPLOAD, audio_part=PartState.PROCESSED,
    )
    assert asset.cuttable
    for fmt in AUDIO_FORMATS:
        check_render_gates(asset, fmt, None)
        check_render_gates(asset, fmt, cut(CutState.COMPLETED))
    for fmt in VIDEO_FORMATS:
        assert isinstance(refusal(asset, fmt), AssetNotReady)


def test_client_audio_asset_whose_audio_is_not_processed_is_not_cuttable() -> None:
    asset = video_asset(
        AssetState.UPLOADING, client_audio=True,
        video_part=PartState.UPLOADED, audio_part=PartState.UPLOADED,
    )
    assert isinstance(refusal(asset, Format.MP3), AssetProcessing)


# -- the cut, checked after the asset --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(Format))
@pytest.mark.parametrize("state", [CutState.PENDING, CutState.PROCESSING, CutState.FAILED])
def test_a_cut_that_is_not_completed_is_refused(fmt: Format, state: CutState) -> None:
    err = refusal(video_asset(AssetState.READY), fmt, cut(state))
    assert isinstance(err, ModifierNotReady) and err.code == "modifier_not_ready" and err.param == "cut_id"


def test_the_asset_gate_comes_before_the_cut_gate() -> None:
    pending = cut(CutState.PENDING)
    assert isinstance(refusal(video_asset(AssetState.PROCESSING), Format.MP4, pending), AssetNotReady)
    assert isinstance(refusal(audio_asset(AssetState.PROCESSING), Format.M4A, pending), AssetProcessing)
    assert isinstance(
        refusal(audio_asset(AssetState.PAYMENT_REQUIRED, charged=False), Format.MP3, pending), AssetPaymentRequired
    )
