"""What runs in the operator process besides kopf's handlers.

- asset and cut processing, polled from the database (the API replicas stay stateless): the
  light probe of a presigned URL runs here, audio extraction and silence detection run as Jobs
  (`tasks`: roughy.adapters.executor.kube_tasks.KubeTasks) that a worker thread waits on;
- webhook delivery (the dispatcher's lease-based claims make a second process harmless);
- pruning of finished Render resources older than the retention (the database keeps renders;
  etcd is not an archive).

One operator replica runs (the Deployment's strategy is Recreate); every piece is safe to run
twice anyway, since claims and deletes go through the database or with preconditions.
"""

from __future__ import annotations

import logging
import threading

from roughy.adapters.executor.kube import KubeExecutor
from roughy.app.delivery import WebhookDispatcher
from roughy.app.processing import AssetWork
from roughy.app.signal import Signal, Ticker

log = logging.getLogger(__name__)


class OperatorService:
    def __init__(
        self,
        assets: AssetWork,
        executor: KubeExecutor,
        dispatcher: WebhookDispatcher | None,
        *,
        signal: Signal | None = None,
        poll_interval: float = 0.5,
        prune_interval: float = 60.0,
    ):
        self.assets = assets
        self.executor = executor
        self.dispatcher = dispatcher
        self.prune_interval = prune_interval
        self._assets_loop = Ticker("assets", assets.tick, interval=poll_interval, signal=signal)
        self._stop = threading.Event()
        self._prune_thread: threading.Thread | None = None

    def start(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.start()
        self._assets_loop.start()
        self._prune_thread = threading.Thread(target=self._prune_loop, name="prune", daemon=True)
        self._prune_thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._assets_loop.stop()
        if self._prune_thread is not None:
            self._prune_thread.join(timeout=10)
        self.assets.shutdown()
        if self.dispatcher is not None:
            self.dispatcher.stop()

    def _prune_loop(self) -> None:
        while not self._stop.wait(self.prune_interval):
            try:
                pruned = self.executor.prune_terminal()
            except Exception:
                log.exception("pruning finished Render resources failed; retrying later")
                continue
            if pruned:
                log.info("pruned %d finished Render resource(s)", len(pruned))
