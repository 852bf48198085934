"""The 409 gates of SPEC 5.2, in SPEC order, as pure functions of the asset and the cut."""

from __future__ import annotations

from roughy.core.errors import (
    AssetFailed,
    AssetNotReady,
    AssetPaymentRequired,
    AssetProcessing,
    ModifierNotReady,
)
from roughy.core.models import Asset, AssetState, Cut, CutState, Format, PartState


def require_cuttable(asset: Asset) -> None:
    """Audio renders and cuts read only the asset's audio: it must be processed and paid for."""
    if asset.cuttable:
        return
    if asset.state is AssetState.FAILED or asset.audio_part is PartState.FAILED:
        raise AssetFailed(_failed_message(asset))
    if asset.state is AssetState.PAYMENT_REQUIRED:
        raise AssetPaymentRequired("the asset waits for credit; it resumes when credit is granted")
    raise AssetProcessing("the asset's audio is still uploading or processing")


def check_render_gates(asset: Asset, fmt: Format, cut: Cut | None) -> None:
    if fmt.is_video:
        if asset.state is not AssetState.READY:
            raise AssetNotReady(f"the asset is {asset.state.value}; video renders need it ready")
    else:
        require_cuttable(asset)
    if cut is not None and cut.state is not CutState.COMPLETED:
        raise ModifierNotReady(f"the cut is {cut.state.value}; retry once it completes", param="cut_id")


def _failed_message(asset: Asset) -> str:
    detail = f": {asset.error.message}" if asset.error else ""
    return f"processing the asset failed{detail}"
