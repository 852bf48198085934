"""The render loop of both runtimes: claim pending renders and hand them to the executor.

The database is the queue. On every wake-up (the API wrote work) or poll, the scheduler
processes assets and cuts (when this process does), then claims pending renders (pending ->
running, atomically: `FOR UPDATE SKIP LOCKED` on PostgreSQL, so API replicas never claim the
same one) while the executor has room, and starts each. Nothing is held only in memory:

- a claim the executor cannot take now goes back to pending and waits for a later tick; one it
  refuses for good fails the render;
- claims are made one at a time (the database serializes them anyway), hand-overs up to
  `handover_workers` at once: on Kubernetes each is an API call (a Render created), and a burst
  of renders must not queue behind one call after another;
- every `lost_after` seconds, renders claimed longer ago that the executor is not executing
  go back to pending (a process died between its claim and the hand-over, or while it ran the
  encode here): `RenderService.requeue_lost`. The embedded runtime owns its data directory, so
  at start-up and shutdown every running render is lost: no cutoff.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from roughy.app.processing import AssetWork
from roughy.app.renders import RenderService
from roughy.app.signal import Signal, Ticker
from roughy.core.errors import ExecutorUnavailable
from roughy.core.events import render_events
from roughy.core.ids import now
from roughy.core.models import Render, RenderState
from roughy.core.ports import Executor, Store

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self,
        store: Store,
        renders: RenderService,
        executor: Executor,
        *,
        assets: AssetWork | None = None,
        signal: Signal | None = None,
        poll_interval: float = 0.5,
        lost_after: float = 30.0,
        handover_workers: int = 1,
    ):
        self.store = store
        self.renders = renders
        self.executor = executor
        self.assets = assets
        self.lost_after = lost_after
        self.ticker = Ticker("scheduler", self.tick, interval=poll_interval, signal=signal)
        self._last_sweep = time.monotonic()
        self.handover_workers = max(1, handover_workers)
        self._pool: ThreadPoolExecutor | None = None

    @property
    def poll_interval(self) -> float:
        return self.ticker.interval

    @poll_interval.setter
    def poll_interval(self, value: float) -> None:
        self.ticker.interval = value

    def start(self) -> None:
        self.ticker.start()

    def stop(self) -> None:
        self.ticker.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def tick(self) -> None:
        if self.assets is not None:
            self.assets.tick()
        if time.monotonic() - self._last_sweep >= self.lost_after:
            self._last_sweep = time.monotonic()
            self.sweep(self.lost_after)
        free = self.executor.capacity - self.store.count_renders(RenderState.RUNNING)
        while free > 0 and not self.ticker.stopping:
            batch: list[Render] = []
            while len(batch) < min(free, self.handover_workers):
                render = self.store.claim_next_render(render_events)
                if render is None:
                    break
                batch.append(render)
            if not batch:
                return
            if not all(self._hand_over(batch)):
                return  # the executor is unavailable: try again on a later tick
            free -= len(batch)

    def _hand_over(self, batch: list[Render]) -> list[bool]:
        if len(batch) == 1:
            return [self.renders.start(batch[0])]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.handover_workers, thread_name_prefix="handover")
        return list(self._pool.map(self.renders.start, batch))

    def sweep(self, older_than: float) -> list[str]:
        """Put back in the queue the renders claimed more than `older_than` seconds ago that
        are not executing; one look at what executes, then a release only of what is missing."""
        try:
            executing = self.executor.executing()
        except ExecutorUnavailable as exc:
            log.warning("cannot see what executes to find lost claims (%s); trying later", exc.message)
            return []
        return self.renders.requeue_lost(executing, now() - timedelta(seconds=older_than))
