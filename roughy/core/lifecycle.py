"""An asset's state machine, as pure changes of an `Asset` (applied by the store in one
transaction with the row as it is then, so concurrent changes never undo each other).

An asset's state follows from its parts once it is paid for: failed > uploading > processing >
ready. Until the credit is charged it may wait in `payment_required`, and it leaves that state
only once charged.
"""

from __future__ import annotations

from collections.abc import Callable

from roughy.core.models import Asset, AssetState, ErrorInfo, PartName, PartState

Change = Callable[[Asset], None]


def overall_state(asset: Asset) -> AssetState:
    """The asset's state from its parts: failed > uploading > processing > ready."""
    parts = [p for p in (asset.video_part, asset.audio_part) if p is not None]
    if any(p is PartState.FAILED for p in parts):
        return AssetState.FAILED
    if any(p is PartState.AWAITING_UPLOAD for p in parts):
        return AssetState.UPLOADING
    if any(p is PartState.UPLOADED for p in parts):
        return AssetState.PROCESSING
    return AssetState.READY


def _set_part(asset: Asset, part: PartName, state: PartState) -> None:
    if part is PartName.VIDEO:
        asset.video_part = state
    else:
        asset.audio_part = state


def settle(asset: Asset) -> None:
    """The state that follows from the parts, once the asset is paid for."""
    if asset.charged or asset.state is not AssetState.PAYMENT_REQUIRED:
        asset.state = overall_state(asset)


def wait_for_credit(asset: Asset) -> None:
    if not asset.charged and asset.state is not AssetState.FAILED:
        asset.state = AssetState.PAYMENT_REQUIRED


def part_uploaded(part: PartName) -> Change:
    """The client completed the part. A client-audio asset stays `uploading` until its last
    part is in (never backwards); completing twice changes nothing."""

    def change(asset: Asset) -> None:
        if asset.part_state(part) is not PartState.AWAITING_UPLOAD:
            return
        _set_part(asset, part, PartState.UPLOADED)
        awaiting = any(asset.part_state(p) is PartState.AWAITING_UPLOAD for p in asset.parts)
        if asset.state is AssetState.UPLOADING and not awaiting:
            asset.state = AssetState.PROCESSING

    return change


def part_failed(part: PartName, error: ErrorInfo) -> Change:
    def change(asset: Asset) -> None:
        asset.error = error
        _set_part(asset, part, PartState.FAILED)
        asset.state = AssetState.FAILED

    return change


#: The states an asset waits in on its client or its account: an upload, or credit.
WAITING = (AssetState.UPLOADING, AssetState.PAYMENT_REQUIRED)


def expired_change(max_age: float) -> Change:
    """An asset still waiting (for an upload, or for credit) after `max_age` seconds fails;
    its awaited parts fail with it (a part already in is kept as it is)."""

    def change(asset: Asset) -> None:
        hours = f"{max_age / 3600:g} h"
        if asset.state is AssetState.UPLOADING:
            error = ErrorInfo("upload_expired", f"no upload was completed within {hours}; upload it again")
        elif asset.state is AssetState.PAYMENT_REQUIRED:
            error = ErrorInfo("payment_expired", f"no credit was granted within {hours}; upload it again")
        else:
            return  # it moved on meanwhile
        for part in asset.parts:
            if asset.part_state(part) in (PartState.AWAITING_UPLOAD, PartState.UPLOADED):
                _set_part(asset, part, PartState.FAILED)
        asset.error, asset.state = error, AssetState.FAILED

    return change


def part_processed(part: PartName, record: Change) -> Change:
    """`record` writes what processing found; then the part is processed and the state settles."""

    def change(asset: Asset) -> None:
        record(asset)
        _set_part(asset, part, PartState.PROCESSED)
        settle(asset)

    return change
