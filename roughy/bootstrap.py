"""The composition root: settings in, a wired service out.

- `build_embedded`: API + SQLite + local disk + in-process runner (`roughy serve`);
- `build_kubernetes`: the same API over PostgreSQL, S3 and Render resources
  (`ROUGHY_RUNTIME=kubernetes roughy serve`);
- `build_operator`: the kopf operator's controller, handlers and background service, and its
  leader election when that is on (`roughy operator`).

Tests pass in their own store, storage or Kubernetes client; everything else comes from settings.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from roughy.adapters.datadir import DataDirLock
from roughy.adapters.executor import LocalExecutor, LocalTasks
from roughy.adapters.storage import LocalStorage
from roughy.adapters.store import open_store
from roughy.adapters.webhooks import WebhookSender
from roughy.api.app import create_app
from roughy.api.deps import Services
from roughy.app import Application, build_application
from roughy.app.delivery import WebhookDispatcher
from roughy.app.encoding import EncoderGateway
from roughy.app.processing import AssetProcessor, AssetWork
from roughy.app.scheduler import Scheduler
from roughy.app.signal import Signal
from roughy.core.ports import PresignedStorage, Store
from roughy.core.webhooks import RetryPolicy
from roughy.encoder.sources import SourceLimits
from roughy.runtime.embedded import EmbeddedRuntime
from roughy.settings import Settings

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from roughy.adapters.executor.kube import KubeExecutor
    from roughy.adapters.kubeapi import KubeApi
    from roughy.kube.jobs import JobSettings
    from roughy.operator.controller import Controller
    from roughy.operator.leader import LeaderElector
    from roughy.operator.service import OperatorService
    from roughy.runtime.kube import KubeRuntime

log = logging.getLogger("roughy")


@dataclass
class Embedded:
    settings: Settings
    store: Store
    storage: LocalStorage
    application: Application
    runtime: EmbeddedRuntime
    dispatcher: WebhookDispatcher
    app: FastAPI
    lock: DataDirLock


def signing_key(settings: Settings) -> bytes:
    """The URL-signing key: configured, or generated once and kept in the data directory."""
    if settings.signing_key:
        return settings.signing_key.encode()
    path = settings.data_dir / "signing.key"
    if not path.exists():  # created private: never readable by others, not even for a moment
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def first_start(store: Store, settings: Settings) -> tuple[str, str] | None:
    """On an empty database: a first account, its API key (returned once) and starter credits."""
    from roughy.app.accounts import AccountService

    return AccountService(store).first_start(settings.starter_credits)


def build_embedded(settings: Settings) -> Embedded:
    """Raises DataDirInUse, before anything in the data directory is read or written, when
    another process serves it."""
    lock = DataDirLock(settings.data_dir).acquire()
    if settings.data_dir.stat().st_uid == os.getuid():  # a volume root owned by another user stays as it is
        settings.data_dir.chmod(0o700)
    store = open_store(settings.resolved_database_url())
    _private(settings.data_dir / "roughy.db")
    storage = LocalStorage(
        Path(settings.data_dir) / "media", signing_key=signing_key(settings), public_url=settings.resolved_public_url()
    )
    if swept := storage.sweep_partial():
        log.warning("removed %d partial upload(s) left by an earlier process", len(swept))
    signal = Signal()
    executor = LocalExecutor(
        storage,
        workers=settings.workers,
        ffmpeg=settings.ffmpeg,
        timeout_base=settings.encode_timeout_base,
        timeout_factor=settings.encode_timeout_factor,
        on_idle=signal.wake,
        parallel=settings.chunk_parallelism,
    )
    sender = WebhookSender(allow_private=settings.webhook_allow_private, timeout=settings.webhook_timeout)
    application = build_application(settings, store, storage, executor, sender, signal=signal)
    executor.bind(application.renders)
    processor = AssetProcessor(
        store, storage, LocalTasks(), limits=source_limits(settings), upload_expiry=settings.upload_expiry
    )
    assets = AssetWork(processor, workers=settings.asset_workers, on_done=signal.wake)
    scheduler = Scheduler(store, application.renders, executor, assets=assets, signal=signal)
    runtime = EmbeddedRuntime(scheduler, executor, assets)
    dispatcher = WebhookDispatcher(store, sender, retry_policy(settings), workers=settings.webhook_workers)

    def start() -> None:
        runtime.start()
        dispatcher.start()

    def stop() -> None:
        dispatcher.stop()
        runtime.stop()
        lock.release()

    services = Services(settings=settings, app=application, files=storage)
    app = create_app(services, on_startup=start, on_shutdown=stop)
    return Embedded(settings, store, storage, application, runtime, dispatcher, app, lock)


def _private(path: Path) -> None:
    """The SQLite database and its WAL files: the owner's only."""
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists():
            file.chmod(0o600)


@dataclass
class Kubernetes:
    settings: Settings
    store: Store
    storage: PresignedStorage
    executor: KubeExecutor
    application: Application
    runtime: KubeRuntime
    app: FastAPI


def build_kubernetes(
    settings: Settings,
    *,
    store: Store | None = None,
    storage: PresignedStorage | None = None,
    api: ApiClient | None = None,
) -> Kubernetes:
    """The API of the Kubernetes runtime: renders execute as Render resources (the operator
    runs them); assets are processed and webhooks delivered by the operator process."""
    from roughy.adapters.storage.s3 import S3Storage
    from roughy.runtime.kube import KubeRuntime

    store = store or open_store(_database_url(settings))
    storage = storage or S3Storage.from_settings(settings)
    executor = _kube_executor(settings, api)
    signal = Signal()
    sender = WebhookSender(allow_private=settings.webhook_allow_private, timeout=settings.webhook_timeout)
    application = build_application(settings, store, storage, executor, sender, signal=signal)
    # Each hand-over is a Render created through the Kubernetes API: several at once (a burst).
    scheduler = Scheduler(store, application.renders, executor, signal=signal, poll_interval=1.0, handover_workers=8)
    runtime = KubeRuntime(scheduler)
    gateway = EncoderGateway(
        application.renders, storage, url_ttl=settings.s3_encoder_url_ttl, show_progress=executor.show_progress
    )
    services = Services(settings=settings, app=application, encoder=gateway)
    app = create_app(services, on_startup=runtime.start, on_shutdown=runtime.stop)
    return Kubernetes(settings, store, storage, executor, application, runtime, app)


@dataclass
class Operator:
    settings: Settings
    namespace: str
    controller: Controller
    registry: Any  # kopf.OperatorRegistry
    service: OperatorService
    elector: LeaderElector | None = None  # with settings.leader_election


def build_operator(
    settings: Settings,
    *,
    store: Store | None = None,
    storage: PresignedStorage | None = None,
    api: ApiClient | None = None,
    sweep_interval: float = 30.0,
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
    sender = WebhookSender(allow_private=settings.webhook_allow_private, timeout=settings.webhook_timeout)
    signal = Signal()
    application = build_application(settings, store, storage, executor, sender, signal=signal)
    config = ControllerConfig(namespace=executor.namespace, jobs=job_settings(settings))
    controller = Controller(application.renders, storage, executor.api, config)
    dispatcher = WebhookDispatcher(store, sender, retry_policy(settings), workers=settings.webhook_workers)
    tasks = KubeTasks(executor.api, namespace=executor.namespace, settings=config.jobs)
    # A worker waits on each asset Job: more of them than the embedded runtime's CPU-bound pool.
    workers = max(settings.asset_workers, 4)
    processor = AssetProcessor(
        store, storage, tasks, limits=source_limits(settings), upload_expiry=settings.upload_expiry
    )
    assets = AssetWork(processor, workers=workers, on_done=signal.wake)
    service = OperatorService(assets, executor, dispatcher, signal=signal)
    registry = build_registry(controller, sweep_interval=sweep_interval, login=login)
    elector = leader_elector(settings, executor.api, executor.namespace) if settings.leader_election else None
    return Operator(settings, executor.namespace, controller, registry, service, elector)


def leader_elector(settings: Settings, api: KubeApi, namespace: str) -> LeaderElector:
    """The operator's part in its leader election (roughy.operator.leader), as this pod."""
    from roughy.operator.leader import LeaderElector, Timing, process_identity

    timing = Timing(
        lease_duration=settings.leader_election_lease_duration,
        renew_deadline=settings.leader_election_renew_deadline,
        retry_period=settings.leader_election_retry_period,
    )
    return LeaderElector(
        api,
        namespace=settings.leader_election_namespace or namespace,
        name=settings.leader_election_lease,
        identity=process_identity(),
        timing=timing,
    )


def job_settings(settings: Settings) -> JobSettings:
    """The encoder Jobs' settings: the JSON file `ROUGHY_JOBS_CONFIG` names (the Helm chart's
    ConfigMap), with `ROUGHY_ENCODER_IMAGE` over its `image`."""
    from roughy.kube.jobs import JobSettings

    values: dict[str, Any] = {}
    if settings.jobs_config is not None:
        values = json.loads(Path(settings.jobs_config).read_text())
    if settings.encoder_image:
        values["image"] = settings.encoder_image
    if settings.encoder_api_url:  # where encoder pods reach the API (the chart's jobs.json names its Service)
        values["api_url"] = settings.encoder_api_url
    elif not values.get("api_url"):
        values["api_url"] = settings.resolved_public_url()
    if not values.get("image"):
        raise ValueError("no encoder image: set ROUGHY_ENCODER_IMAGE or `image` in the ROUGHY_JOBS_CONFIG file")
    return JobSettings.model_validate(values)


def _kube_executor(settings: Settings, api: ApiClient | None) -> KubeExecutor:
    """The executor, on `api` (a kubernetes ApiClient, from tests) or the environment's client;
    its KubeApi (`executor.api`) is shared with the operator's controller and tasks."""
    from roughy.adapters.executor.kube import KubeExecutor
    from roughy.adapters.kubeapi import KubeApi

    if api is not None:
        kube = KubeApi(api, timeout=settings.kube_request_timeout)
        return KubeExecutor(
            kube,
            namespace=settings.namespace or "default",
            retention=settings.render_retention,
            max_running=settings.kube_max_running,
        )
    return KubeExecutor.from_environment(
        namespace=settings.namespace,
        timeout=settings.kube_request_timeout,
        retention=settings.render_retention,
        max_running=settings.kube_max_running,
    )


def _database_url(settings: Settings) -> str:
    if not settings.database_url:
        raise ValueError("the Kubernetes runtime needs ROUGHY_DATABASE_URL (PostgreSQL)")
    return settings.database_url


def source_limits(settings: Settings) -> SourceLimits:
    return SourceLimits(
        max_pixels=settings.max_source_pixels,
        max_seconds=settings.max_source_seconds,
        max_channels=settings.max_source_channels,
    )


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        base=settings.webhook_retry_base,
        cap=settings.webhook_retry_cap,
        window=settings.webhook_retry_window,
        disable_after=settings.webhook_disable_after,
    )
