"""The embedded runtime: the scheduler, asset processing and local encodes in this process.

It owns its data directory: renders left `running` by an earlier process were lost with it, so
start-up puts every one back in the queue (their partial files removed), and so does a clean
stop, after it killed the encodes it ran. Parts left `uploaded` are simply processed again.
"""

from __future__ import annotations

import logging

from roughy.adapters.executor import LocalExecutor
from roughy.app.processing import AssetWork
from roughy.app.scheduler import Scheduler

log = logging.getLogger(__name__)


class EmbeddedRuntime:
    def __init__(self, scheduler: Scheduler, executor: LocalExecutor, assets: AssetWork):
        self.scheduler = scheduler
        self.executor = executor
        self.assets = assets

    def start(self) -> None:
        self.recover()
        self.scheduler.start()

    def stop(self) -> None:
        """Stop scheduling; kill running encodes and put their renders back to pending."""
        self.scheduler.stop()
        self.executor.shutdown()
        self.assets.shutdown()
        self.scheduler.sweep(0.0)

    def recover(self) -> None:
        if lost := self.scheduler.sweep(0.0):
            log.warning("recovered %d render(s) left running by a previous process", len(lost))
