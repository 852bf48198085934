"""The application layer: one service per aggregate, holding every use case and state
transition once, written against the ports (`roughy.core.ports`) and nothing else.

Routes parse, call one service method and shape the answer; the embedded runtime's executor
and the Kubernetes operator report encode outcomes to the same `RenderService`; processing
records what it found through the asset's state machine (`roughy.core.lifecycle`). Which state
change makes which webhook event is decided here (`roughy.core.events`), and the store writes
those events in the change's own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from roughy.app.accounts import AccountService
from roughy.app.assets import AssetService
from roughy.app.cuts import CutService
from roughy.app.renders import RenderService
from roughy.app.signal import Signal
from roughy.app.webhooks import WebhookService
from roughy.core.chunks import Chunking
from roughy.core.ports import Executor, Storage, Store, WebhookTargets
from roughy.settings import Settings


@dataclass
class Application:
    store: Store
    storage: Storage
    accounts: AccountService
    assets: AssetService
    cuts: CutService
    renders: RenderService
    webhooks: WebhookService
    signal: Signal

    def ping(self) -> None:
        """Raise unless the system of record answers (readiness)."""
        self.store.ping()


def build_application(
    settings: Settings,
    store: Store,
    storage: Storage,
    executor: Executor,
    targets: WebhookTargets,
    *,
    signal: Signal | None = None,
) -> Application:
    """The services over the given adapters; `signal` wakes the process's scheduler."""
    signal = signal or Signal()
    chunking = None  # one encode per render unless chunks could run side by side
    if settings.chunk_parallelism > 1:
        chunking = Chunking(settings.chunk_seconds, settings.chunk_min_seconds)
    renders = RenderService(
        store,
        storage,
        executor,
        max_active=settings.max_active_renders,
        download_ttl=settings.download_url_ttl,
        wake=signal.wake,
        chunking=chunking,
    )
    assets = AssetService(
        store,
        storage,
        stop_renders=renders.stop,
        max_upload_bytes=settings.max_upload_bytes,
        max_uploading=settings.max_uploading_assets,
        upload_ttl=settings.upload_url_ttl,
        poster_ttl=settings.download_url_ttl,
        wake=signal.wake,
    )
    return Application(
        store=store,
        storage=storage,
        accounts=AccountService(store, wake=signal.wake),
        assets=assets,
        cuts=CutService(store, stop_renders=renders.stop, wake=signal.wake),
        renders=renders,
        webhooks=WebhookService(store, targets, secret_overlap=settings.webhook_secret_overlap),
        signal=signal,
    )
