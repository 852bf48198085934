"""The Kubernetes runtime, API side: hand pending renders to the cluster, cancel them there.

The database stays the queue and the system of record. A scheduler thread claims pending
renders (pending -> running, atomically: `FOR UPDATE SKIP LOCKED` on PostgreSQL, so API
replicas never claim the same one) and creates one `Render` resource per claim through the
kube executor; the operator turns it into a Job and writes progress and the outcome back to
the database. Nothing is held only in memory:

- a claim whose hand-over fails for now (API server unreachable, 429, 5xx) goes back to
  pending and is retried on a later tick; one refused for good fails the render;
- renders left `running` by an API process that died between its claim and the create are
  submitted again after `resubmit_after` seconds (creation is idempotent: AlreadyExists for
  the same render means it is already executing);
- `cancel` deletes the render's Render with foreground propagation (the operator's finalizer
  stops the Job and deletes the outputs). When the cluster cannot be reached, the operator
  finds the orphaned Render later (its render row is gone) and removes it the same way.

`max_running` caps how many renders are handed over at once; beyond it renders wait pending in
the database (where `GET /v1/renders` shows them) instead of as Pending pods.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

from roughy.adapters.executor.kube import ExecutorFailed, ExecutorUnavailable
from roughy.core.errors import RoughyError
from roughy.core.ids import now
from roughy.core.keys import render_prefix
from roughy.core.models import ErrorInfo, Render, RenderState
from roughy.runtime.work import render_work

log = logging.getLogger(__name__)


class KubeRuntime:
    def __init__(
        self,
        store: Any,
        storage: Any,
        executor: Any,
        *,
        poll_interval: float = 1.0,
        resubmit_after: float = 30.0,
        max_running: int = 500,
    ):
        self.store = store
        self.storage = storage
        self.executor = executor
        self.poll_interval = poll_interval
        self.resubmit_after = resubmit_after
        self.max_running = max_running
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_recovery = 0.0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="kube-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)

    def wake(self) -> None:
        self._wake.set()

    @property
    def queue_depth(self) -> int:
        return int(self.store.count_renders(RenderState.PENDING))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            try:
                self.tick()
            except Exception:
                log.exception("kube scheduler tick failed; retrying")
                time.sleep(self.poll_interval)

    # -- scheduling -------------------------------------------------------------------------

    def tick(self) -> None:
        if time.monotonic() - self._last_recovery >= self.resubmit_after:
            self._last_recovery = time.monotonic()
            self.resubmit_stale()
        running = self.store.count_renders(RenderState.RUNNING)
        while running < self.max_running and not self._stop.is_set():
            render = self.store.claim_next_render()
            if render is None:
                return
            if not self.submit(render):
                return  # the cluster is unavailable: try again on a later tick
            running += 1

    def submit(self, render: Render) -> bool:
        """Create the render's Render resource. False when the cluster is unavailable right now
        (the render is back in pending); True otherwise (submitted, failed, or gone)."""
        work = render_work(self.store, render)
        if work is None:
            return True  # its asset or cut was deleted: the render row goes with it
        try:
            self.executor.submit(
                render.id,
                render.account_id,
                render.asset_id,
                render.signature,
                work.plan,
                {"video": work.video_key, "audio": work.audio_key},
                work.output_key,
                cut_id=render.cut_id,
            )
        except ExecutorUnavailable as exc:
            log.warning("render %s: the cluster is unavailable (%s); it stays queued", render.id, exc.message)
            self.store.release_render(render.id)
            return False
        except (ExecutorFailed, ValueError) as exc:
            message = exc.message if isinstance(exc, RoughyError) else str(exc)
            log.error("render %s cannot be executed on the cluster: %s", render.id, message)
            self.store.finish_render(render.id, None, ErrorInfo("internal_error", "the render could not be started"))
            return True
        return True

    def resubmit_stale(self) -> None:
        """Submit again the renders claimed long ago that have no Render: the process that
        claimed one may have died before creating it. One list of the Renders, then a create
        only for what is missing (a repeat create of one that exists would change nothing)."""
        try:
            executing = self.executor.render_ids()
        except ExecutorUnavailable as exc:
            log.warning("cannot list Renders to find lost claims (%s); trying later", exc.message)
            return
        cutoff = now() - timedelta(seconds=self.resubmit_after)
        for render in self.store.running_renders(started_before=cutoff):
            if render.id in executing:
                continue
            log.warning("render %s was claimed but has no Render: submitting it again", render.id)
            if self._stop.is_set() or not self.submit(render):
                return

    # -- cancel -----------------------------------------------------------------------------

    def cancel(self, render_id: str) -> None:
        """Called after the render's row is deleted: stop its Job, remove its files."""
        try:
            if not self.executor.cancel_render(render_id):
                log.info("render %s: its Render is still being finalized", render_id)
        except ExecutorUnavailable as exc:
            # The operator removes a Render whose render row is gone when it next looks at it.
            log.warning("render %s: could not reach the cluster to cancel (%s)", render_id, exc.message)
        self.storage.delete_prefix(render_prefix(render_id))
