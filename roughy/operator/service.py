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
        self._loops = [
            Ticker("assets", assets.tick, interval=poll_interval, signal=signal),
            Ticker("prune", self._prune, interval=prune_interval),
        ]

    def start(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.start()
        for loop in self._loops:
            loop.start()

    def stop(self) -> None:
        for loop in self._loops:
            loop.stop()
        self.assets.shutdown()
        if self.dispatcher is not None:
            self.dispatcher.stop()

    def _prune(self) -> None:
        if pruned := self.executor.prune_terminal():
            log.info("pruned %d finished Render resource(s)", len(pruned))
