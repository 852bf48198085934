"""The Kubernetes runtime, API side: the scheduler hands pending renders to the cluster as
Render resources (`KubeExecutor`); the operator runs them and records their outcomes.

At most `max_running` renders are handed over at once (the executor's capacity); beyond it
renders wait pending in the database (where `GET /v1/renders` shows them) instead of as
Pending pods. A claim left by a dead API replica goes back to the queue after `lost_after`
seconds (the scheduler's sweep lists the Renders once, and only what is missing is released).
"""

from __future__ import annotations

from roughy.app.scheduler import Scheduler


class KubeRuntime:
    def __init__(self, scheduler: Scheduler):
        self.scheduler = scheduler

    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()
