"""Asset and cut processing: charge, probe, extract audio, store a video's poster frame, check or
derive cut segments.

Written against the ports (store, storage, asset tasks) and the asset's state machine
(`roughy.core.lifecycle`); run by the embedded scheduler's worker threads and by the operator.
Every step is idempotent, so recovery after a crash is simply "run it again". Probing and
extraction run outside any transaction; their results are applied to the row as it is then
(`store.modify_asset`), so a part the client completed meanwhile is never undone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

from roughy.core.errors import InsufficientCredit
from roughy.core.events import asset_events, cut_events
from roughy.core.ids import now
from roughy.core.keys import asset_prefix, audio_key, extracted_audio_key, part_key, poster_key
from roughy.core.lifecycle import (
    WAITING,
    Change,
    expired_change,
    part_failed,
    part_processed,
    settle,
    wait_for_credit,
)
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
    Segment,
)
from roughy.core.ports import AssetTasks, Storage, Store
from roughy.core.segments import SegmentsOutOfRange, finalize, keep_between_silences
from roughy.encoder.errors import EncoderError, InvalidMedia
from roughy.encoder.poster import make_poster
from roughy.encoder.probe import MediaInfo, probe
from roughy.encoder.sources import SourceLimits

log = logging.getLogger(__name__)

Prober = Callable[[str], MediaInfo]
#: Writes a video's poster frame: (source URL, target, what the probe found).
PosterMaker = Callable[[str, str, MediaInfo], None]
#: Seconds between two looks for abandoned uploads.
EXPIRY_INTERVAL = 60.0


class AssetProcessor:
    def __init__(
        self,
        store: Store,
        storage: Storage,
        tasks: AssetTasks,
        *,
        probe: Prober | None = None,
        poster: PosterMaker | None = None,
        limits: SourceLimits = SourceLimits(),  # noqa: B008 - frozen
        upload_expiry: float = 86400.0,
    ):
        self.store = store
        self.storage = storage
        self.tasks = tasks
        self.probe = probe  # None: the encoder's PyAV probe, looked up when called
        self.poster = poster  # None: the encoder's ffmpeg, in this process (a seek and one frame)
        self.upload_expiry = upload_expiry
        self.limits = limits

    def _probe(self, src: str) -> MediaInfo:
        return self.probe(src) if self.probe is not None else probe(src, self.limits)

    def _make_poster(self, asset: Asset, info: MediaInfo) -> bool:
        """Store the video's poster frame beside its media; whether it was. Light enough to run
        where the probe runs (on Kubernetes, ffmpeg in the operator reads the presigned source
        with a seek). A poster is a nicety: any failure is logged and the asset goes on without."""
        if info.video is None:
            return False
        try:
            src = self.storage.source_url(part_key(asset.id, PartName.VIDEO))
            target = self.storage.output_target(poster_key(asset.id))
            if self.poster is not None:
                self.poster(src, target, info)
            else:
                make_poster(src, target, info.video, info.duration, demuxer=info.demuxer)
        except EncoderError as exc:
            log.warning("asset %s: no poster frame: %s", asset.id, exc.message)
            return False
        except Exception:  # storage trouble, say: still no reason to fail the asset
            log.exception("asset %s: no poster frame", asset.id)
            return False
        return True

    def process_asset(self, asset_id: str) -> None:
        """Process each uploaded part and record what was found; the credit is charged once,
        when the first part turns out to be media. A part that is not (junk, a truncated file)
        fails the asset without a charge. An account that cannot pay is not probed for: the
        asset waits for credit first."""
        asset = self.store.get_asset(asset_id)
        if asset is None or asset.state is AssetState.FAILED:
            return
        if not asset.charged and self.store.balance(asset.account_id) < 1:
            self._apply(asset_id, wait_for_credit)
            return
        for part in asset.parts:
            if asset.part_state(part) is PartState.UPLOADED:
                updated = self._process_part(asset, part)
                if updated is None or updated.state is AssetState.FAILED:
                    return  # deleted, waiting for credit, or failed: nothing more to do (or charge)
                asset = updated
        self._apply(asset_id, settle)  # e.g. payment_required -> processing/ready once paid

    def _process_part(self, asset: Asset, part: PartName) -> Asset | None:
        """Probe the part; charge the asset once it is known to be media; only then do the
        heavy work (extracting a video's audio) and record it all. None: stop here."""
        try:
            info = self._probe_part(asset, part)
            if not asset.charged and not self._charge(asset):
                return None
            change = self._video_found(asset, info) if part is PartName.VIDEO else self._audio_found(info)
        except EncoderError as exc:
            log.info("asset %s: %s part failed: %s", asset.id, part.value, exc.message)
            change = part_failed(part, ErrorInfo(exc.code, exc.message))
        return self._apply(asset.id, change)

    def expire_uploads(self) -> list[str]:
        """Assets still waiting after `upload_expiry`, for an upload (`upload_expired`) or for
        credit (`payment_expired`), fail and their media goes: neither may hold storage, nor
        the account's quota of waiting assets, forever."""
        cutoff = now() - timedelta(seconds=self.upload_expiry)
        expired = []
        for asset in self.store.assets_created_before(WAITING, cutoff):
            updated = self.store.modify_asset(asset.id, expired_change(self.upload_expiry), asset_events)
            if updated is None or updated.state is not AssetState.FAILED:
                continue
            expired.append(asset.id)
            try:
                self.storage.delete_prefix(asset_prefix(asset.id))
            except Exception:  # the asset is failed either way; its media goes with its deletion
                log.exception("asset %s expired, but its media could not be deleted now", asset.id)
        if expired:
            log.info("%d asset(s) waited too long for their uploads: %s", len(expired), expired)
        return expired

    def _charge(self, asset: Asset) -> bool:
        """The asset's one credit; False when it cannot be paid (the asset waits for credit, and
        its part is examined again once it can)."""
        try:
            self.store.charge_asset(asset.account_id, asset.id)
        except InsufficientCredit:
            self._apply(asset.id, wait_for_credit)
            return False
        asset.charged = True
        return True

    def _apply(self, asset_id: str, change: Change) -> Asset | None:
        updated = self.store.modify_asset(asset_id, change, asset_events)
        if updated is None:  # deleted meanwhile: remove what this worker wrote for it
            self.storage.delete_prefix(asset_prefix(asset_id))
        return updated

    def _probe_part(self, asset: Asset, part: PartName) -> MediaInfo:
        info = self._probe(self.storage.source_url(part_key(asset.id, part)))
        if part is PartName.VIDEO and info.video is None:
            raise InvalidMedia("the video part has no video stream")
        if part is PartName.AUDIO and info.audio is None:
            raise InvalidMedia("the audio part has no audio stream")
        return info

    def _video_found(self, asset: Asset, info: MediaInfo) -> Change:
        extracted = None
        if not asset.client_audio and info.audio is not None:
            extracted = self.tasks.extract_audio(
                self.storage.source_url(part_key(asset.id, PartName.VIDEO)),
                self.storage.output_target(extracted_audio_key(asset.id)),
                subject=asset.id,
                duration=info.duration,
                labels={"roughy.ai/asset": asset.id, "roughy.ai/account": asset.account_id},
            )
        video = replace(info.video, poster=True) if self._make_poster(asset, info) and info.video else info.video

        def record(a: Asset) -> None:
            a.video = video
            a.duration = info.duration  # the video's timeline is the source's timeline
            if not a.client_audio:
                a.audio = extracted

        return part_processed(PartName.VIDEO, record)

    @staticmethod
    def _audio_found(info: MediaInfo) -> Change:
        def record(a: Asset) -> None:
            # Recorded on its own, before any other part: the asset is cuttable from here on.
            a.audio = info.audio
            if a.kind is AssetKind.AUDIO or a.duration is None:
                a.duration = info.duration

        return part_processed(PartName.AUDIO, record)

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
        self.store.save_cut(cut, cut_events)

    def _cut_segments(self, cut: Cut, asset: Asset) -> list[Segment]:
        if cut.method is CutMethod.SEGMENTS:
            return cut.segments
        if asset.audio is None:
            raise SegmentsOutOfRange("the asset has no audio track to find silences in")
        cut.state = CutState.PROCESSING
        self.store.save_cut(cut, cut_events)
        params = cut.silence or {}
        silences = self.tasks.detect_silence(
            self.storage.source_url(audio_key(asset)),
            min_silence=float(params.get("min_silence", 0.5)),
            threshold_db=float(params.get("threshold_db", -35.0)),
            subject=cut.id,
            duration=asset.duration or 0.0,
            labels={"roughy.ai/asset": asset.id, "roughy.ai/account": asset.account_id},
        )
        duration = asset.duration or 0.0
        padding = float(params.get("padding", 0.1))
        # Padding keeps a little silence next to kept sound; at the source's edges there is no
        # sound to pad, so a silence touching the start or the end goes whole (no slivers of
        # nothing, and a silent source keeps nothing).
        silences = [
            (-padding if s <= 0.01 else s, duration + padding if e >= duration - 0.05 else e) for s, e in silences
        ]
        frame = 1.0 / asset.video.fps if asset.video and asset.video.fps else 0.001
        kept = keep_between_silences(silences, duration=duration, padding=padding, min_length=frame * 1.01)
        if not kept:
            raise SegmentsOutOfRange("the whole source is silent: nothing to keep")
        return kept

    def _fail_cut(self, cut: Cut, code: str, message: str) -> None:
        cut.state = CutState.FAILED
        cut.error = ErrorInfo(code, message)
        self.store.save_cut(cut, cut_events)


def _fps(asset: Asset) -> float | None:
    return asset.video.fps if asset.video else None


class AssetWork:
    """Assets and cuts processed on a small thread pool, each at most once at a time.

    `tick()` submits what the store says needs processing; `on_done` is called after each job
    (a processed asset may unblock cuts and renders). A failed job is logged and retried on a
    later tick: the store still lists it.
    """

    def __init__(self, processor: AssetProcessor, *, workers: int = 1, on_done: Callable[[], None] | None = None):
        self.processor = processor
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="asset")
        self._jobs: dict[str, Future[None]] = {}
        self._lock = threading.Lock()
        self._on_done = on_done
        self._last_expiry = 0.0

    def tick(self) -> None:
        if time.monotonic() - self._last_expiry >= EXPIRY_INTERVAL:
            self._last_expiry = time.monotonic()
            self.processor.expire_uploads()
        store = self.processor.store
        for asset in store.assets_to_process():
            self._submit(f"asset:{asset.id}", self.processor.process_asset, asset.id)
        for cut in store.cuts_to_process():
            self._submit(f"cut:{cut.id}", self.processor.process_cut, cut.id)

    @property
    def idle(self) -> bool:
        """No asset or cut job is queued or running."""
        with self._lock:
            return not self._jobs

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self, key: str, fn: Callable[[str], None], arg: str) -> None:
        with self._lock:
            if key in self._jobs:
                return
            future = self._pool.submit(self._guard, fn, arg)
            self._jobs[key] = future
        future.add_done_callback(lambda _f: self._done(key))

    def _done(self, key: str) -> None:
        with self._lock:
            self._jobs.pop(key, None)
        if self._on_done is not None:
            self._on_done()

    @staticmethod
    def _guard(fn: Callable[[str], None], arg: str) -> None:
        try:
            fn(arg)
        except Exception:
            log.exception("processing %s failed; it will be retried", arg)
