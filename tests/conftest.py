"""Shared fixtures: the real embedded service over real HTTP, on a free loopback port.

`service` starts `roughy` exactly as `roughy serve` wires it (SQLite file, local disk,
subprocess encoder) in a uvicorn thread; `api` is an httpx client with the first account's key.
PostgreSQL-backed tests read ROUGHY_TEST_DATABASE_URL and skip, saying so, where it is unset.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from roughy.bootstrap import Embedded, build_embedded, first_start
from roughy.settings import Settings
from tests.media import make_audio, make_video

ADMIN_KEY = "test-admin-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    embedded: Embedded
    url: str
    account_id: str
    key: str
    server: uvicorn.Server
    thread: threading.Thread

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)

    # The surface both runtimes' services share (tests/kube/stack.py: KubeService).
    @property
    def settings(self) -> Any:
        return self.embedded.settings

    @property
    def store(self) -> Any:
        return self.embedded.store

    @property
    def storage(self) -> Any:
        return self.embedded.storage

    @property
    def assets(self) -> Any:
        """The asset and cut processing (AssetWork)."""
        return self.embedded.runtime.assets

    def stored_keys(self, prefix: str) -> list[str]:
        """Storage keys under `prefix` (files under the media directory)."""
        root = Path(self.embedded.settings.data_dir) / "media"
        return sorted(str(p.relative_to(root)) for p in (root / prefix).rglob("*") if p.is_file())

    def read_media(self, key: str) -> bytes:
        return self.embedded.storage.path(key).read_bytes()  # type: ignore[no-any-return]

    def write_media(self, key: str, data: bytes) -> None:
        """Change stored media behind the service's back (a source gone bad after its probe)."""
        self.embedded.storage.path(key).write_bytes(data)

    def stop_processing(self) -> None:
        """No worker any more: assets, cuts and renders stay where they are."""
        self.embedded.runtime.stop()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def start_service(data_dir: Path, **overrides: Any) -> Service:
    port = free_port()
    settings = Settings(
        data_dir=data_dir,
        host="127.0.0.1",
        port=port,
        admin_key=ADMIN_KEY,
        starter_credits=overrides.pop("starter_credits", 10),
        **overrides,
    )
    embedded = build_embedded(settings)
    created = first_start(embedded.store, settings)
    assert created is not None, "a fresh data directory makes a first account"
    account_id, key = created
    config = uvicorn.Config(embedded.app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the service did not start")
        time.sleep(0.02)
    return Service(embedded, f"http://127.0.0.1:{port}", account_id, key, server, thread)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = start_service(tmp_path / "data")
    yield svc
    svc.stop()


@pytest.fixture
def api(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip(media_dir: Path) -> Path:
    """A 3 s 640x360 25 fps H.264 clip with stereo AAC audio."""
    return make_video(media_dir / "clip.mp4", duration=3.0, width=640, height=360, fps=25)


@pytest.fixture(scope="session")
def song(media_dir: Path) -> Path:
    return make_audio(media_dir / "song.mp3", duration=3.0, channels=2)


def wait_for(
    fetch: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool], timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        obj = fetch()
        if done(obj):
            return obj
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last seen: {obj}")
        time.sleep(0.05)


def upload_part(client: httpx.Client, asset: dict[str, Any], part: str, path: Path, complete: bool = True) -> None:
    target = asset["upload"][part]
    resp = httpx.put(target["url"], content=path.read_bytes(), headers=target["headers"], timeout=30)
    assert resp.status_code == 200, resp.text
    if complete:
        done = client.post(f"/v1/assets/{asset['id']}/parts/{part}/complete")
        assert done.status_code == 200, done.text


def ready_asset(client: httpx.Client, path: Path, kind: str = "video", **extra: Any) -> dict[str, Any]:
    """Create, upload, complete and wait until the asset is ready (or failed)."""
    asset = client.post("/v1/assets", json={"kind": kind, "filename": path.name, **extra}).json()
    upload_part(client, asset, "video" if kind == "video" else "audio", path)
    return wait_for(
        lambda: client.get(f"/v1/assets/{asset['id']}").json(),
        lambda a: a["state"] in ("ready", "failed", "payment_required"),
    )


def finished_render(client: httpx.Client, body: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    resp = client.post("/v1/renders", json=body)
    assert resp.status_code in (200, 201), resp.text
    render_id = resp.json()["id"]
    return wait_for(
        lambda: client.get(f"/v1/renders/{render_id}").json(),
        lambda r: r["state"] in ("completed", "failed"),
        timeout,
    )


def postgres_url() -> str | None:
    return os.environ.get("ROUGHY_TEST_DATABASE_URL")
