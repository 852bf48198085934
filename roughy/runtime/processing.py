"""Asset and cut processing: probe, charge, extract audio, check or derive cut segments.

Written against the ports (store, storage) and the encoder's in-process tasks; called by the
embedded scheduler's worker threads. Every step is idempotent, so recovery after a crash is
simply "run it again".
"""

from __future__ import annotations

import logging
from dataclasses import replace

from roughy.core.errors import InsufficientCredit
from roughy.core.models import (
    Asset,
    AssetKind,
    AssetState,
    Cut,
    CutMethod,
    CutState,
    ErrorInfo,
    PartName,
    PartState,
)
from roughy.core.segments import SegmentsOutOfRange, finalize, keep_between_silences
from roughy.encoder import tasks
from roughy.encoder.errors import EncoderError
from roughy.encoder.probe import probe

log = logging.getLogger(__name__)


def part_key(asset_id: str, part: PartName) -> str:
    return f"assets/{asset_id}/{part.value}"


def extracted_audio_key(asset_id: str) -> str:
    return f"assets/{asset_id}/extracted-audio.mka"


def audio_key(asset: Asset) -> str:
    """Where the asset's audio lives: the client's audio part, or the track extracted from the video."""
    if asset.audio_part is not None:
        return part_key(asset.id, PartName.AUDIO)
    return extracted_audio_key(asset.id)


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


class AssetProcessor:
    def __init__(self, store, storage):  # type: ignore[no-untyped-def]
        self.store = store
        self.storage = storage

    def process_asset(self, asset_id: str) -> None:
        asset = self.store.get_asset(asset_id)
        if asset is None or asset.state is AssetState.FAILED:
            return
        if not asset.charged:
            try:
                self.store.charge_asset(asset.account_id, asset.id)
            except InsufficientCredit:
                if asset.state is not AssetState.PAYMENT_REQUIRED:
                    asset.state = AssetState.PAYMENT_REQUIRED
                    self._save(asset)
                return
            asset = self.store.get_asset(asset_id)
            if asset is None:
                return
        for part in asset.parts:
            if asset.part_state(part) is PartState.UPLOADED:
                asset = self._process_part(asset, part)
        asset.state = overall_state(asset)
        self._save(asset)

    def _save(self, asset: Asset) -> None:
        """Write this worker's copy back without undoing what the API did meanwhile.

        Processing a part takes a while; meanwhile the client may complete the other part (the
        API moves it awaiting_upload -> uploaded). Writing back the copy read before that would
        revert the completion and leave the asset `uploading` for ever, so parts the API moved
        on are taken from the row as it is now. An asset deleted meanwhile is not resurrected,
        and what this worker wrote for it (extracted audio) is removed.
        """
        fresh = self.store.get_asset(asset.id)
        if fresh is None:
            self.storage.delete_prefix(f"assets/{asset.id}/")
            return
        moved = False
        if asset.video_part is PartState.AWAITING_UPLOAD and fresh.video_part is not PartState.AWAITING_UPLOAD:
            asset.video_part, moved = fresh.video_part, True
        if asset.audio_part is PartState.AWAITING_UPLOAD and fresh.audio_part is not PartState.AWAITING_UPLOAD:
            asset.audio_part, moved = fresh.audio_part, True
        if moved and asset.state is not AssetState.PAYMENT_REQUIRED:
            asset.state = overall_state(asset)
        self.store.save_asset(asset)

    def _process_part(self, asset: Asset, part: PartName) -> Asset:
        try:
            if part is PartName.VIDEO:
                return self._process_video(asset)
            return self._process_audio(asset)
        except EncoderError as exc:
            log.info("asset %s: %s part failed: %s", asset.id, part.value, exc.message)
            failed = replace(asset, error=ErrorInfo(exc.code, exc.message))
            if part is PartName.VIDEO:
                failed.video_part = PartState.FAILED
            else:
                failed.audio_part = PartState.FAILED
            return failed

    def _process_video(self, asset: Asset) -> Asset:
        info = probe(self.storage.source_url(part_key(asset.id, PartName.VIDEO)))
        if info.video is None:
            raise _invalid("the video part has no video stream")
        asset.video = info.video
        asset.duration = info.duration  # the video's timeline is the source's timeline
        if not asset.client_audio:
            if info.audio is not None:
                out = self.storage.output_target(extracted_audio_key(asset.id))
                asset.audio = tasks.extract_audio(
                    self.storage.source_url(part_key(asset.id, PartName.VIDEO)), out
                )
        asset.video_part = PartState.PROCESSED
        return asset

    def _process_audio(self, asset: Asset) -> Asset:
        info = probe(self.storage.source_url(part_key(asset.id, PartName.AUDIO)))
        if info.audio is None:
            raise _invalid("the audio part has no audio stream")
        asset.audio = info.audio
        if asset.kind is AssetKind.AUDIO or asset.duration is None:
            asset.duration = info.duration
        asset.audio_part = PartState.PROCESSED
        # The audio part is what cuts read: make the asset cuttable now, before other parts finish.
        asset.state = overall_state(asset)
        self._save(asset)
        return asset

    # -- cuts -------------------------------------------------------------------------------

    def process_cut(self, cut_id: str) -> None:
        cut = self.store.get_cut(cut_id)
        if cut is None or cut.state in (CutState.COMPLETED, CutState.FAILED):
            return
        asset = self.store.get_asset(cut.asset_id)
        if asset is None:
            return
        if asset.state is AssetState.FAILED:
            self._fail_cut(cut, "asset_failed", "processing the asset failed; the cut cannot complete")
            return
        if not asset.cuttable:
            return  # waits until the asset's audio is processed and paid for
        try:
            segments = self._cut_segments(cut, asset)
            cut.segments = finalize(segments, duration=asset.duration or 0.0, fps=_fps(asset))
        except SegmentsOutOfRange as exc:
            self._fail_cut(cut, "segments_out_of_range", str(exc))
            return
        except EncoderError as exc:
            self._fail_cut(cut, exc.code, exc.message)
            return
        cut.state = CutState.COMPLETED
        self.store.save_cut(cut)

    def _cut_segments(self, cut: Cut, asset: Asset):  # type: ignore[no-untyped-def]
        if cut.method is CutMethod.SEGMENTS:
            return cut.segments
        if asset.audio is None:
            raise SegmentsOutOfRange("the asset has no audio track to find silences in")
        cut.state = CutState.PROCESSING
        self.store.save_cut(cut)
        params = cut.silence or {}
        silences = tasks.detect_silence(
            self.storage.source_url(audio_key(asset)),
            min_silence=float(params.get("min_silence", 0.5)),
            threshold_db=float(params.get("threshold_db", -35.0)),
        )
        duration = asset.duration or 0.0
        padding = float(params.get("padding", 0.1))
        # Padding keeps a little silence next to kept sound; at the source's edges there is no
        # sound to pad, so a silence touching the start or the end goes whole (no slivers of
        # nothing, and a silent source keeps nothing).
        silences = [
            (-padding if s <= 0.01 else s, duration + padding if e >= duration - 0.05 else e)
            for s, e in silences
        ]
        frame = 1.0 / asset.video.fps if asset.video and asset.video.fps else 0.001
        kept = keep_between_silences(silences, duration=duration, padding=padding, min_length=frame * 1.01)
        if not kept:
            raise SegmentsOutOfRange("the whole source is silent: nothing to keep")
        return kept

    def _fail_cut(self, cut: Cut, code: str, message: str) -> None:
        cut.state = CutState.FAILED
        cut.error = ErrorInfo(code, message)
        self.store.save_cut(cut)


def _fps(asset: Asset) -> float | None:
    return asset.video.fps if asset.video else None


def _invalid(message: str) -> EncoderError:
    from roughy.encoder.errors import InvalidMedia

    return InvalidMedia(message)
