"""The composition root: settings in, a wired service out.

- `build_embedded`: API + SQLite + local disk + in-process runner (`roughy serve`);
- `build_kubernetes`: the same API over PostgreSQL, S3 and Render resources
  (`ROUGHY_RUNTIME=kubernetes roughy serve`);
- `build_operator`: the kopf operator's controller, handlers and background service
  (`roughy operator`).

Tests pass in their own store, storage or Kubernetes client; everything else comes from settings.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    runtime = EmbeddedRuntime(store, storage, executor, workers=settings.workers, asset_workers=settings.asset_workers)
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


@dataclass
class Kubernetes:
    settings: Settings
    store: SqlStore
    storage: Any
    executor: Any
    runtime: Any  # KubeRuntime
    app: FastAPI


def build_kubernetes(settings: Settings, *, store: Any = None, storage: Any = None, api: Any = None) -> Kubernetes:
    """The API of the Kubernetes runtime: renders execute as Render resources (the operator
    runs them); assets are processed and webhooks delivered by the operator process."""
    from roughy.adapters.storage.s3 import S3Storage
    from roughy.runtime.kube import KubeRuntime

    store = store or open_store(_database_url(settings))
    storage = storage or S3Storage.from_settings(settings)
    executor = _kube_executor(settings, api)
    runtime = KubeRuntime(store, storage, executor)
    sender = WebhookSender(allow_private=settings.webhook_allow_private, timeout=settings.webhook_timeout)
    services = Services(settings=settings, store=store, storage=storage, runtime=runtime, webhooks=sender)
    app = create_app(services, on_startup=runtime.start, on_shutdown=runtime.stop)
    return Kubernetes(settings, store, storage, executor, runtime, app)


@dataclass
class Operator:
    settings: Settings
    namespace: str
    controller: Any
    registry: Any
    service: Any


def build_operator(
    settings: Settings,
    *,
    store: Any = None,
    storage: Any = None,
    api: Any = None,
    interval: float = 2.0,
    login: bool = True,
) -> Operator:
    from roughy.adapters.executor.kube_tasks import KubeTasks
    from roughy.adapters.storage.s3 import S3Storage
    from roughy.operator.controller import Controller, ControllerConfig
    from roughy.operator.handlers import build_registry
    from roughy.operator.service import OperatorService

    store = store or open_store(_database_url(settings))
    storage = storage or S3Storage.from_settings(settings)
    executor = _kube_executor(settings, api)
    config = ControllerConfig(
        namespace=executor.namespace, jobs=job_settings(settings), url_ttl=settings.s3_encoder_url_ttl
    )
    controller = Controller(store, storage, executor.api, config)
    sender = WebhookSender(allow_private=settings.webhook_allow_private, timeout=settings.webhook_timeout)
    dispatcher = WebhookDispatcher(store, sender, retry_policy(settings), workers=settings.webhook_workers)
    jobs = config.jobs
    tasks = KubeTasks(executor.api, namespace=executor.namespace, settings=jobs)
    # A worker waits on each asset Job: more of them than the embedded runtime's CPU-bound pool.
    workers = max(settings.asset_workers, 4)
    service = OperatorService(store, storage, executor, dispatcher, tasks=tasks, asset_workers=workers)
    return Operator(
        settings, executor.namespace, controller, build_registry(controller, interval=interval, login=login), service
    )


def job_settings(settings: Settings) -> Any:
    """The encoder Jobs' settings: the JSON file `ROUGHY_JOBS_CONFIG` names (the Helm chart's
    ConfigMap), with `ROUGHY_ENCODER_IMAGE` over its `image`."""
    from roughy.kube.jobs import JobSettings

    values: dict[str, Any] = {}
    if settings.jobs_config is not None:
        values = json.loads(Path(settings.jobs_config).read_text())
    if settings.encoder_image:
        values["image"] = settings.encoder_image
    if not values.get("image"):
        raise ValueError("no encoder image: set ROUGHY_ENCODER_IMAGE or `image` in the ROUGHY_JOBS_CONFIG file")
    return JobSettings.model_validate(values)


def _kube_executor(settings: Settings, api: Any) -> Any:
    """The executor, on `api` (a kubernetes ApiClient, from tests) or the environment's client;
    its KubeApi (`executor.api`) is shared with the operator's controller and tasks."""
    from roughy.adapters.executor.kube import KubeExecutor
    from roughy.adapters.kubeapi import KubeApi

    if api is not None:
        kube = KubeApi(api, timeout=settings.kube_request_timeout)
        return KubeExecutor(kube, namespace=settings.namespace or "default", retention=settings.render_retention)
    return KubeExecutor.from_environment(
        namespace=settings.namespace, timeout=settings.kube_request_timeout, retention=settings.render_retention
    )


def _database_url(settings: Settings) -> str:
    if not settings.database_url:
        raise ValueError("the Kubernetes runtime needs ROUGHY_DATABASE_URL (PostgreSQL)")
    return settings.database_url


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        base=settings.webhook_retry_base,
        cap=settings.webhook_retry_cap,
        window=settings.webhook_retry_window,
        disable_after=settings.webhook_disable_after,
    )
