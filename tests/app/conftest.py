"""The application's rules on the in-memory fakes (roughy.testing): no database, disk, ffmpeg
or web server, so each test runs in milliseconds. The same services run over SQL, local disk
and real encodes in tests/api (both runtimes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from roughy.app import Application, build_application
from roughy.app.processing import AssetProcessor
from roughy.app.scheduler import Scheduler
from roughy.core.models import Asset, AssetKind, OutputSpec, PartName, Render
from roughy.settings import Settings
from roughy.testing import (
    HD_VIDEO,
    STEREO_AAC,
    AllowTargets,
    MediaFacts,
    MemoryExecutor,
    MemoryStorage,
    MemoryStore,
    MemoryTasks,
    probe_from,
)

#: What the fake probe finds, by the bytes uploaded.
MEDIA = {
    b"video+audio": MediaFacts(10.0, HD_VIDEO, STEREO_AAC),
    b"video": MediaFacts(10.0, HD_VIDEO, None),
    b"audio": MediaFacts(10.0, None, STEREO_AAC),
}


@dataclass
class World:
    store: MemoryStore
    storage: MemoryStorage
    executor: MemoryExecutor
    tasks: MemoryTasks
    app: Application
    processor: AssetProcessor
    scheduler: Scheduler
    account_id: str

    def ready_asset(self, data: bytes = b"video+audio", kind: AssetKind = AssetKind.VIDEO) -> Asset:
        """Create, upload, complete and process an asset."""
        asset = self.app.assets.create(self.account_id, kind, "talk.mp4", client_audio=False)
        part = PartName.VIDEO if kind is AssetKind.VIDEO else PartName.AUDIO
        self.storage.put(f"assets/{asset.id}/uploads/{part.value}", data)  # the client PUTs it
        self.app.assets.complete_part(self.account_id, asset.id, part)
        self.processor.process_asset(asset.id)
        return self.app.assets.get(self.account_id, asset.id)

    def render(self, asset: Asset, spec: OutputSpec, cut_id: str | None = None) -> Render:
        render, created = self.app.renders.create(self.account_id, asset.id, cut_id, spec)
        assert created
        return render

    def event_types(self) -> list[str]:
        return [e.type for e in self.store.events_of(self.account_id)]


def make_world(tmp_path: Path, *, credits: int = 10, capacity: int = 2, **settings: object) -> World:
    store, storage, executor = MemoryStore(), MemoryStorage(), MemoryExecutor(capacity)
    app = build_application(Settings(data_dir=tmp_path, **settings), store, storage, executor, AllowTargets())  # type: ignore[arg-type]
    executor.bind(app.renders)
    tasks = MemoryTasks(storage)
    processor = AssetProcessor(store, storage, tasks, probe=probe_from(storage, MEDIA.get))
    scheduler = Scheduler(store, app.renders, executor, signal=app.signal)
    account_id = app.accounts.first_start(credits)[0]  # type: ignore[index]
    return World(store, storage, executor, tasks, app, processor, scheduler, account_id)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)
