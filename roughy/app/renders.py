"""Renders (SPEC 5): every use case and state transition of a render, for both runtimes.

- `create`: validate the output against the source, the 409 gates, dedupe on the signature,
  the per-account cap, save, wake the scheduler;
- `cancel`: the row goes first (so nothing can complete it), then the encode and the files;
- `start`: a claimed render handed to the executor (the scheduler calls it);
- `progress` / `finished`: the `ExecutionListener` every executor reports to: the embedded
  executor's worker threads, and on Kubernetes the operator watching the Job. The outcome is
  the truth even for a row that was put back in the queue meanwhile (a hand-over whose result
  the API could not know), so it settles pending rows too;
- `requeue_lost` and `execution_removed`: what happens to a render whose execution is gone.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import PurePath
from typing import Any

from prometheus_client import Counter, Histogram

from roughy.core.chunks import Chunking
from roughy.core.errors import ExecutorFailed, ExecutorUnavailable, NotFound, RateLimited, ValidationFailed
from roughy.core.events import NewEvent, render_events
from roughy.core.gates import check_render_gates
from roughy.core.ids import new_id, now
from roughy.core.keys import audio_key, output_key, part_key, render_prefix
from roughy.core.models import AssetKind, AssetState, Cut, ErrorInfo, OutputSpec, PartName, Render, RenderState
from roughy.core.planning import plan_render, validate_output
from roughy.core.ports import EncodeJob, Executor, Outcome, Storage, Store
from roughy.core.signature import render_signature
from roughy.core.tokens import token_digest

log = logging.getLogger(__name__)

ENCODE_SECONDS = Histogram(
    "roughy_encode_seconds",
    "Wall time of completed encodes, from the claim to the outcome",
    ["format", "tier", "encoder"],  # see encode_labels
    buckets=(1, 5, 15, 30, 60, 120, 300, 900, 3600),
)
RENDERS_FINISHED = Counter("roughy_renders_finished_total", "Renders that reached a final state", ["state"])


class RenderService:
    def __init__(
        self,
        store: Store,
        storage: Storage,
        executor: Executor,
        *,
        max_active: int = 200,
        download_ttl: int = 900,
        wake: Callable[[], None] = lambda: None,
        chunking: Chunking | None = None,
    ):
        self.chunking = chunking  # when a long render is split (`roughy.core.chunks`); None: never
        self.store = store
        self.storage = storage
        self.executor = executor
        self.max_active = max_active
        self.download_ttl = download_ttl
        self.wake = wake

    # -- the API's use cases -------------------------------------------------------------------

    def create(self, account_id: str, asset_id: str, cut_id: str | None, spec: OutputSpec) -> tuple[Render, bool]:
        """(the render, whether it was created): an identical live render is returned as it is."""
        asset = self.store.get_asset(asset_id, account_id)
        if asset is None:
            raise NotFound(f"no such asset: {asset_id}", param="asset_id")
        probed = asset.state is AssetState.READY if spec.format.is_video else asset.cuttable
        validate_output(spec, asset.kind, asset.video, asset.audio, probed=probed)
        cut = self._cut_of_asset(account_id, cut_id, asset.id)
        check_render_gates(asset, spec.format, cut)
        signature = render_signature(asset.id, cut.id if cut else None, spec)
        existing = self.store.live_render_by_signature(signature)
        if existing is not None:
            return existing, False
        if self.store.count_active_renders(account_id) >= self.max_active:
            raise RateLimited("too many pending or running renders; retry when some finish", retry_after=30)
        render = Render(
            id=new_id("rnd"),
            account_id=account_id,
            asset_id=asset.id,
            cut_id=cut.id if cut else None,
            output=spec,
            signature=signature,
            state=RenderState.PENDING,
            created_at=now(),
        )
        stored, created = self.store.create_render(render, render_events)
        if created:
            log.info("render %s created (asset %s, %s)", stored.id, stored.asset_id, _output(stored),
                     extra=render_fields(stored))  # fmt: skip
            self.wake()
        return stored, created

    def _cut_of_asset(self, account_id: str, cut_id: str | None, asset_id: str) -> Cut | None:
        if cut_id is None:
            return None
        cut = self.store.get_cut(cut_id, account_id)
        if cut is None or cut.asset_id != asset_id:
            raise ValidationFailed("cut_id is not a cut of this asset", param="cut_id")
        return cut

    def get(self, account_id: str, render_id: str) -> Render:
        render = self.store.get_render(render_id, account_id)
        if render is None:
            raise NotFound(f"no such render: {render_id}")
        return render

    def page(
        self,
        account_id: str,
        limit: int,
        starting_after: str | None,
        asset_id: str | None = None,
        state: RenderState | None = None,
    ) -> tuple[list[Render], bool]:
        return self.store.list_renders(account_id, limit, starting_after, asset_id, state)

    def counts(self) -> dict[str, int]:
        """Renders by state (the metrics' gauges)."""
        return self.store.render_counts()

    def download(self, render: Render) -> tuple[str, datetime] | None:
        """A fresh signed download URL of a completed render's output (named after its asset)."""
        if render.state is not RenderState.COMPLETED:
            return None
        asset = self.store.get_asset(render.asset_id)
        filename = download_filename(asset.filename if asset else "render", render)
        return self.storage.download_url(output_key(render), filename, self.download_ttl)

    def cancel(self, account_id: str, render_id: str) -> None:
        """Hard delete: the row goes first (so nothing can complete it), then the encode and the files."""
        render = self.store.get_render(render_id, account_id)
        if render is None or not self.store.delete_render(render.id):
            raise NotFound(f"no such render: {render_id}")
        log.info("render %s cancelled (was %s)", render.id, render.state.value, extra=render_fields(render))
        self.stop([render.id])

    def stop(self, render_ids: list[str]) -> None:
        """Stop the encodes of renders whose rows are deleted, and remove their files."""
        for render_id in render_ids:
            try:
                self.executor.cancel(render_id)
            except (ExecutorUnavailable, ExecutorFailed) as exc:
                # Kubernetes: the operator removes a Render whose row is gone when it next looks.
                log.warning("render %s: could not reach the executor to cancel (%s)", render_id, exc.message)
            self.storage.delete_prefix(render_prefix(render_id))

    # -- execution ---------------------------------------------------------------------------

    def job(self, render: Render) -> EncodeJob | None:
        """The encode of `render` planned from its asset (and cut); None when either is gone
        (deleted meanwhile: the render row went with them)."""
        asset = self.store.get_asset(render.asset_id)
        if asset is None:
            return None
        segments = None
        if render.cut_id:
            cut = self.store.get_cut(render.cut_id)
            if cut is None:
                return None
            segments = cut.segments
        separate_audio = asset.kind is AssetKind.VIDEO and asset.client_audio and asset.audio is not None
        plan = plan_render(
            render.output,
            duration=asset.duration or 0.0,
            video=asset.video,
            audio=asset.audio,
            segments=segments,
            separate_audio=separate_audio,
            chunking=self.chunking,
        )
        audio = audio_key(asset) if asset.audio is not None else None
        if not render.output.format.is_video:
            return EncodeJob(render, plan, None, audio, output_key(render))
        video = part_key(asset.id, PartName.VIDEO)
        return EncodeJob(render, plan, video, audio if separate_audio else None, output_key(render))

    def start(self, render: Render) -> bool:
        """Hand a claimed render to the executor. False when the executor cannot take it now
        (the render is back in pending); True otherwise (started, failed, or gone)."""
        try:
            job = self.job(render)
            if job is None:
                return True
            self.executor.start(job)
        except ExecutorUnavailable as exc:
            log.warning("render %s: the executor is unavailable (%s); it stays queued", render.id, exc.message)
            self.store.release_render(render.id, render_events)
            return False
        except Exception as exc:  # refused for good, an unplannable render, or a bug: never run it again
            log.exception("render %s cannot be executed: %s", render.id, exc)
            self.finished(render.id, Outcome.failed("internal_error", "the render could not be started"))
            return True
        if self.store.get_render(render.id) is None:  # cancelled between the claim and the hand-over
            self.stop([render.id])
            return True
        log.info("render %s started (%s)", render.id, _output(render), extra=render_fields(render))
        return True

    def progress(self, render_id: str, progress: float) -> None:
        self.store.set_progress(render_id, progress)

    def set_encoder_token(self, render_id: str, token: str) -> None:
        """Keep (the digest of) the token the render's encoder pods were given (Kubernetes)."""
        self.store.set_encoder_token(render_id, token_digest(token))

    def finished(self, render_id: str, outcome: Outcome) -> None:
        """Record an encode's outcome with its event; a failed render's files are removed, and so
        are those of a render deleted or failed meanwhile (nothing will ever serve them)."""
        settled: list[Render] = []  # the row as the transaction wrote it: its claim time, its state

        def announce(before: RenderState | None, render: Render) -> list[NewEvent]:
            settled.append(render)
            return render_events(before, render)

        if self.store.finish_render(render_id, outcome.result, outcome.error, announce, from_pending=True):
            render = settled[-1]
            RENDERS_FINISHED.labels(render.state.value).inc()
            seconds = max(0.0, (now() - render.started_at).total_seconds()) if render.started_at else None
            if render.state is RenderState.COMPLETED and seconds is not None:
                ENCODE_SECONDS.labels(*encode_labels(render)).observe(seconds)
            if render.state is RenderState.FAILED:
                self.storage.delete_prefix(render_prefix(render_id))
            _log_finished(render, seconds)
        else:
            row = self.store.get_render(render_id)
            if row is None or row.state is RenderState.FAILED:
                self.storage.delete_prefix(render_prefix(render_id))
            log.debug("render %s: an outcome for a render already settled or gone, ignored", render_id)

    def requeue_lost(self, executing: set[str], started_before: datetime) -> list[str]:
        """Renders claimed before `started_before` that no executor has: back to pending, their
        partial files removed (the process that claimed one died before or while executing it)."""
        lost = []
        for render in self.store.running_renders(started_before=started_before):
            if render.id not in executing and self.store.release_render(render.id, render_events):
                self.storage.delete_prefix(render_prefix(render.id))
                lost.append(render.id)
        if lost:
            log.warning("%d render(s) claimed but not executing went back to the queue: %s", len(lost), lost)
            self.wake()
        return lost

    def execution_removed(self, render_id: str, *, requeue: bool) -> None:
        """An execution record was removed before its outcome (Kubernetes: a Render deleted).
        A completed render keeps its output; an unfinished one goes back to the queue when
        `requeue` (a drain), else fails, so that it is not executed again (a hand delete)."""
        row = self.store.get_render(render_id)
        if row is not None and row.state is RenderState.COMPLETED:
            return
        if row is not None and row.state in (RenderState.RUNNING, RenderState.PENDING):
            if requeue:
                self.store.release_render(render_id, render_events)
            else:
                message = "the render's Render resource was deleted on the cluster before the encode finished"
                error = ErrorInfo("encode_failed", message)
                if self.store.finish_render(render_id, None, error, render_events, from_pending=True):
                    failed = dataclasses.replace(row, state=RenderState.FAILED, error=error)
                    _log_finished(failed, None)
        self.storage.delete_prefix(render_prefix(render_id))


def render_fields(render: Render) -> dict[str, Any]:
    """The structured fields of a render's lifecycle lines (docs/observability.md)."""
    fields: dict[str, Any] = {
        "render_id": render.id,
        "asset_id": render.asset_id,
        "account_id": render.account_id,
        "state": render.state.value,
        "format": render.output.format.value,
        "tier": _tier(render),
    }
    if render.cut_id:
        fields["cut_id"] = render.cut_id
    return fields


def encode_labels(render: Render) -> tuple[str, str, str]:
    """`roughy_encode_seconds`'s labels: format; tier (720p, 1080p, 4k, `source` for a video
    kept at its own size, `audio`); encoder (the result's: libx264, h264_nvenc,
    h264_nvenc+cuda; `copy` for a copied video; `none` when no video was encoded here: an
    audio render, or a chunked render whose chunks were encoded elsewhere)."""
    result = render.result
    encoder = "none"
    if result is not None and result.encoder:
        encoder = result.encoder
    elif result is not None and "video" in result.copied:
        encoder = "copy"
    return render.output.format.value, _tier(render), encoder


def _tier(render: Render) -> str:
    if not render.output.format.is_video:
        return "audio"
    return render.output.resolution.value if render.output.resolution else "source"


def _output(render: Render) -> str:
    return f"{render.output.format.value} {_tier(render)}"


def _log_finished(render: Render, seconds: float | None) -> None:
    """The one line of a render that reached a final state (completed or failed)."""
    fields = render_fields(render)
    if seconds is not None:
        fields["encode_seconds"] = round(seconds, 3)
    if render.state is RenderState.COMPLETED:
        fields["encoder"] = encode_labels(render)[2]
        fields["size_bytes"] = render.result.size_bytes if render.result else None
        said = [_output(render)]
        said += [fields["encoder"]] if fields["encoder"] != "none" else []
        said += [f"{seconds:.1f} s"] if seconds is not None else []
        log.info("render %s completed (%s)", render.id, ", ".join(said), extra=fields)
        return
    code = render.error.code if render.error else "internal_error"
    fields["error_code"] = code
    log.info("render %s failed: %s (%s)", render.id, code, render.error.message if render.error else "",
             extra=fields)  # fmt: skip


def download_filename(asset_filename: str, render: Render) -> str:
    """`talk.mov` rendered to 720p mp4 -> `talk-720p.mp4`; only safe characters survive."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", PurePath(asset_filename).stem).strip("._") or "render"
    tier = f"-{render.output.resolution.value}" if render.output.resolution else ""
    cut = "-cut" if render.cut_id else ""
    return f"{stem[:80]}{cut}{tier}.{render.output.format.extension}"
