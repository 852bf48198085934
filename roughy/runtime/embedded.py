"""The embedded runtime: one scheduler thread, a bounded pool of encode workers, recovery.

The database is the queue. The scheduler wakes on `wake()` (called by the API after it writes
work) or every `poll_interval` seconds, processes assets and cuts on a small pool, and claims
pending renders (pending -> running, atomically) while encode workers are free. Nothing is held
only in memory: after a crash, `recover()` puts renders left running back to pending and the
parts left uploaded are processed again.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from prometheus_client import Counter, Histogram

from roughy.core.models import ErrorInfo, Render, RenderResult
from roughy.core.ports import Cancelled, EncodeJob
from roughy.encoder.errors import EncoderError
from roughy.runtime.processing import AssetProcessor, AssetWork
from roughy.runtime.work import render_work

log = logging.getLogger(__name__)

ENCODE_SECONDS = Histogram(
    "roughy_encode_seconds", "Wall time of finished encodes", buckets=(1, 5, 15, 30, 60, 120, 300, 900, 3600)
)
RENDERS_FINISHED = Counter("roughy_renders_finished_total", "Renders that reached a final state", ["state"])


class EmbeddedRuntime:
    def __init__(
        self, store, storage, executor, *, workers: int = 2, asset_workers: int = 1, poll_interval: float = 0.5
    ):  # type: ignore[no-untyped-def]
        self.store = store
        self.storage = storage
        self.executor = executor
        self.assets = AssetWork(AssetProcessor(store, storage), workers=asset_workers, on_done=self.wake)
        self.workers = workers
        self.poll_interval = poll_interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._render_pool = ThreadPoolExecutor(workers, thread_name_prefix="encode")
        self._running: dict[str, Future[None]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop scheduling; kill running encodes and put their renders back to pending."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)
        with self._lock:
            running = list(self._running)
        for render_id in running:
            self.executor.stop(render_id)
        self._render_pool.shutdown(wait=True, cancel_futures=True)
        self.assets.shutdown()
        self.store.requeue_running_renders()

    def recover(self) -> None:
        requeued = self.store.requeue_running_renders()
        for render_id in requeued:
            self.storage.delete_prefix(f"renders/{render_id}/")
        if requeued:
            log.warning("recovered %d render(s) left running by a previous process", len(requeued))

    def wake(self) -> None:
        self._wake.set()

    @property
    def queue_depth(self) -> int:
        return self.store.render_counts().get("pending", 0)

    # -- the loop ---------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            try:
                self.tick()
            except Exception:
                log.exception("scheduler tick failed; retrying")
                time.sleep(self.poll_interval)

    def tick(self) -> None:
        self.assets.tick()
        while self._free_workers() > 0 and not self._stop.is_set():
            render = self.store.claim_next_render()
            if render is None:
                break
            with self._lock:
                self._running[render.id] = self._render_pool.submit(self._execute, render)

    def _free_workers(self) -> int:
        with self._lock:
            return self.workers - len(self._running)

    # -- one render -------------------------------------------------------------------------

    def _execute(self, render: Render) -> None:
        started = time.monotonic()
        try:
            job = self._job(render)
            result = self.executor.run(job, lambda p: self.store.set_progress(render.id, p))
        except Cancelled:
            self._cleanup_if_gone(render)
            return
        except EncoderError as exc:
            self._finish(render, None, ErrorInfo(exc.code, exc.message))
            return
        except Exception as exc:  # a bug: fail the render with a request-free message, log it
            log.exception("render %s crashed", render.id)
            self._finish(render, None, ErrorInfo("internal_error", f"the render failed: {type(exc).__name__}"))
            return
        finally:
            with self._lock:
                self._running.pop(render.id, None)
            self._wake.set()
        ENCODE_SECONDS.observe(time.monotonic() - started)
        self._finish(render, RenderResult.from_json(result), None)

    def _job(self, render: Render) -> EncodeJob:
        work = render_work(self.store, render)
        if work is None:
            raise Cancelled(render.id)
        video = self.storage.source_url(work.video_key) if work.video_key else None
        audio = self.storage.source_url(work.audio_key) if work.audio_key else None
        return EncodeJob(render.id, work.plan, video, audio, self.storage.output_target(work.output_key))

    def _finish(self, render: Render, result: RenderResult | None, error: ErrorInfo | None) -> None:
        if self.store.finish_render(render.id, result, error):
            RENDERS_FINISHED.labels("completed" if result else "failed").inc()
            if error is not None:
                self.storage.delete_prefix(f"renders/{render.id}/")
        else:
            self._cleanup_if_gone(render)

    def _cleanup_if_gone(self, render: Render) -> None:
        if self.store.get_render(render.id) is None:
            self.storage.delete_prefix(f"renders/{render.id}/")

    def cancel(self, render_id: str) -> None:
        """Called after the render's row is deleted: stop its encode, remove its files.

        The executor keeps a cancel mark for a render claimed but not started yet; a render
        that is not ours (finished, or never claimed) must not leave one behind.
        """
        with self._lock:
            claimed = render_id in self._running
        if not self.executor.stop(render_id) and not claimed:
            self.executor.forget(render_id)
        self.storage.delete_prefix(f"renders/{render_id}/")
