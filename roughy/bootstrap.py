"""The composition root: settings in, a wired embedded service out."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from roughy.adapters.executor import SubprocessExecutor
from roughy.adapters.storage import LocalStorage
from roughy.adapters.store import SqlStore, open_store
from roughy.adapters.webhooks import WebhookDispatcher, WebhookSender
from roughy.api.app import create_app
from roughy.api.deps import Services
from roughy.core.accounts import new_api_key
from roughy.core.webhooks import RetryPolicy
from roughy.runtime.embedded import EmbeddedRuntime
from roughy.settings import Settings

log = logging.getLogger("roughy")


@dataclass
class Embedded:
    settings: Settings
    store: SqlStore
    storage: LocalStorage
    runtime: EmbeddedRuntime
    dispatcher: WebhookDispatcher
    app: FastAPI


def signing_key(settings: Settings) -> bytes:
    """The URL-signing key: configured, or generated once and kept in the data directory."""
    if settings.signing_key:
        return settings.signing_key.encode()
    path = settings.data_dir / "signing.key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip().encode()


def first_start(store: SqlStore, settings: Settings) -> tuple[str, str] | None:
    """On an empty database: a first account, its API key (returned once) and starter credits."""
    if store.count_accounts() > 0:
        return None
    account = store.create_account("default")
    key = new_api_key()
    store.create_api_key(account.id, key)
    if settings.starter_credits:
        store.grant(account.id, settings.starter_credits, "starter credits")
    return account.id, key


def build_embedded(settings: Settings) -> Embedded:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.resolved_database_url())
    storage = LocalStorage(
        Path(settings.data_dir) / "media", signing_key=signing_key(settings), public_url=settings.resolved_public_url()
    )
    executor = SubprocessExecutor(
        ffmpeg=settings.ffmpeg,
        timeout_base=settings.encode_timeout_base,
        timeout_factor=settings.encode_timeout_factor,
    )
    runtime = EmbeddedRuntime(
        store, storage, executor, workers=settings.workers, asset_workers=settings.asset_workers
    )
    sender = WebhookSender(allow_private=settings.webhook_allow_private, timeout=settings.webhook_timeout)
    dispatcher = WebhookDispatcher(store, sender, retry_policy(settings), workers=settings.webhook_workers)
    services = Services(settings=settings, store=store, storage=storage, runtime=runtime, webhooks=sender)

    def start() -> None:
        runtime.start()
        dispatcher.start()

    def stop() -> None:
        dispatcher.stop()
        runtime.stop()

    app = create_app(services, on_startup=start, on_shutdown=stop)
    return Embedded(settings, store, storage, runtime, dispatcher, app)


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        base=settings.webhook_retry_base,
        cap=settings.webhook_retry_cap,
        window=settings.webhook_retry_window,
        disable_after=settings.webhook_disable_after,
    )
