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
from typing import Any

from roughy.runtime.processing import AssetProcessor, AssetWork

log = logging.getLogger(__name__)


class OperatorService:
    def __init__(
        self,
        store: Any,
        storage: Any,
        executor: Any,
        dispatcher: Any | None,
        *,
        tasks: Any = None,
        asset_workers: int = 1,
        poll_interval: float = 0.5,
        prune_interval: float = 60.0,
    ):
        self.store = store
        self.executor = executor
        self.dispatcher = dispatcher
        self.assets = AssetWork(AssetProcessor(store, storage, tasks), workers=asset_workers, on_done=self._wake_up)
        self.poll_interval = poll_interval
        self.prune_interval = prune_interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.start()
        for target, name in ((self._asset_loop, "assets"), (self._prune_loop, "prune")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self.assets.shutdown()
        if self.dispatcher is not None:
            self.dispatcher.stop()

    def _wake_up(self) -> None:
        self._wake.set()

    def _asset_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            try:
                self.assets.tick()
            except Exception:
                log.exception("asset processing tick failed; retrying")

    def _prune_loop(self) -> None:
        while not self._stop.wait(self.prune_interval):
            try:
                pruned = self.executor.prune_terminal()
            except Exception:
                log.exception("pruning finished Render resources failed; retrying later")
                continue
            if pruned:
                log.info("pruned %d finished Render resource(s)", len(pruned))
