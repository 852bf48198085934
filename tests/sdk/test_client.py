"""The SDK against the real embedded service over real HTTP: what a script using it sees."""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
import pytest

from roughy.encoder.probe import probe
from roughy.sdk import ApiError, Client, ConnectionFailed, NotFound, Unauthorized, ValidationError
from tests.conftest import free_port, start_service


class CountingReader(io.RawIOBase):
    """A binary file that records the size of every read: proof the upload streams in chunks."""

    def __init__(self, path: Path):
        self._fh = path.open("rb")
        self.name = path.name
        self.reads: list[int] = []

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def read(self, size: int = -1) -> bytes:
        self.reads.append(size)
        return self._fh.read(size)

    def close(self) -> None:
        self._fh.close()
        super().close()


@pytest.fixture
def sdk(service):
    with Client(service.url, service.key, timeout=30) as client:
        yield client


def test_upload_streams_the_file_in_chunks_and_reports_bytes_sent(sdk, clip):
    size = clip.stat().st_size
    reader = CountingReader(clip)
    sent: list[tuple[int, int | None]] = []
    asset = sdk.assets.upload(reader, kind="video", progress=lambda done, total: sent.append((done, total)),
                              chunk_size=16 * 1024)  # fmt: skip
    reader.close()
    assert asset.state in ("processing", "ready")
    assert reader.reads and max(reader.reads) == 16 * 1024, "never read whole, never unbounded"
    assert len(reader.reads) >= size // (16 * 1024)
    assert [d for d, _ in sent] == sorted(d for d, _ in sent) and sent[-1] == (size, size)
    ready = sdk.assets.wait(asset.id)
    assert ready.state == "ready" and ready.filename == clip.name
    assert ready.video is not None and (ready.video.width, ready.video.height) == (640, 360)
    assert ready.poster is not None, "a video asset's poster frame"
    assert httpx.get(ready.poster.url).content[:3] == b"\xff\xd8\xff", "a JPEG"


def test_render_wait_reports_monotonic_progress_and_downloads_the_file(sdk, clip, tmp_path):
    asset = sdk.assets.wait(sdk.assets.upload(clip).id)
    cut = sdk.cuts.wait(sdk.cuts.create(asset.id, segments=[(0.4, 1.4), (2.0, 2.6)]).id)
    assert cut.state == "completed" and len(cut.segments) == 2
    render = sdk.renders.create(asset.id, "mp4", cut_id=cut.id)
    seen: list[float] = []
    done = sdk.renders.wait(render.id, progress=lambda r: seen.append(r.progress), poll_interval=0.05)
    assert done.state == "completed" and done.result is not None
    assert seen == sorted(seen) and seen[-1] == 1.0
    again = sdk.renders.create(asset.id, "mp4", cut_id=cut.id)
    assert again.id == render.id, "the same content is the same render (SPEC 5.4)"

    got: list[tuple[int, int | None]] = []
    out = tmp_path / "out"
    out.mkdir()
    path = sdk.renders.download(done, out, progress=lambda d, t: got.append((d, t)))
    assert path.parent == out and path.suffix == ".mp4" and path.name.startswith("clip")
    assert path.stat().st_size == done.result.size_bytes == got[-1][0] == got[-1][1]
    assert abs(probe(str(path)).duration - 1.6) < 0.1
    assert [p.name for p in out.iterdir()] == [path.name], "no partial file left beside it"
    named = sdk.renders.download(render.id, out / "mine.mp4")
    assert named == out / "mine.mp4" and named.read_bytes() == path.read_bytes()


def test_iter_follows_pages_and_list_filters(sdk, song):
    asset = sdk.assets.wait(sdk.assets.upload(song).id)
    made = {sdk.renders.create(asset.id, fmt, audio_bitrate=rate).id
            for fmt in ("m4a", "mp3") for rate in (128, 192)}  # fmt: skip
    assert len(made) == 4
    first = sdk.renders.list(limit=3)
    assert len(first.data) == 3 and first.has_more
    every = list(sdk.renders.iter(asset_id=asset.id, page_size=3))
    assert {r.id for r in every} == made and len(every) == 4, "two pages, nothing twice"
    assert {r.id for r in sdk.renders.iter(state="pending", page_size=3)} <= made
    assets = list(sdk.assets.iter(page_size=1))
    assert [a.id for a in assets] == [asset.id]


def test_errors_carry_status_code_param_and_request_id(sdk, service, clip):
    with pytest.raises(NotFound) as missing:
        sdk.renders.get("rnd_missing")
    err = missing.value
    assert (err.status, err.code) == (404, "not_found") and err.request_id
    assert err.doc_url == f"{service.url}/docs/errors#not_found"
    assert str(err).startswith(err.message) and f"request {err.request_id}" in str(err)

    asset = sdk.assets.wait(sdk.assets.upload(clip).id)
    with pytest.raises(ValidationError) as invalid:
        sdk.renders.create(asset.id, "mp4", resolution="4k")
    assert invalid.value.param == "output.resolution" and invalid.value.status == 422
    assert isinstance(invalid.value, ApiError)

    with Client(service.url, "rk_wrong") as stranger, pytest.raises(Unauthorized):
        stranger.credits.get()


def test_cancel_deletes_and_credits_read(sdk, song):
    before = sdk.credits.get().balance
    asset = sdk.assets.wait(sdk.assets.upload(song).id)
    assert sdk.credits.get().balance == before - 1
    render = sdk.renders.create(asset.id, "mp3")
    sdk.renders.cancel(render.id)
    with pytest.raises(NotFound):
        sdk.renders.get(render.id)
    sdk.assets.delete(asset.id)
    with pytest.raises(NotFound):
        sdk.assets.get(asset.id)


def test_a_server_not_answering_is_connection_failed():
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, "rk_x", max_retries=1, max_retry_delay=0.1) as client, pytest.raises(ConnectionFailed) as exc:
        client.assets.list()
    assert exc.value.url == url and "cannot reach roughy" in str(exc.value)


class LosesFirstAnswer(httpx.BaseTransport):
    """Forwards to the real service, but loses the answer of the first POST to `path`: the
    server acted, the client saw a dropped connection (what a flaky network does)."""

    def __init__(self, path: str):
        self.inner = httpx.HTTPTransport()
        self.path = path
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and request.url.path == self.path and not self.lost:
            response.read()
            self.lost += 1
            raise httpx.ReadError("connection reset after the server answered")
        return response


def test_an_asset_create_whose_answer_was_lost_is_retried_into_one_asset(service):
    """The server's Idempotency-Key and the SDK's retry together: a lost answer makes one asset."""
    transport = LosesFirstAnswer("/v1/assets")
    with Client(service.url, service.key, transport=transport) as client:
        asset = client.assets.create("video", "once.mp4")
        assert transport.lost == 1
        assert [a.id for a in client.assets.iter()] == [asset.id], "the retry answered the first asset"


@pytest.fixture
def private_hooks(tmp_path):
    """A service that may deliver webhooks to loopback (development setting)."""
    svc = start_service(tmp_path / "hooks", webhook_allow_private=True)
    yield svc
    svc.stop()


def test_webhook_endpoints_deliveries_and_redelivery(private_hooks, song):
    hook = f"http://127.0.0.1:{free_port()}/hook"  # nobody listens: deliveries fail and wait to retry
    with Client(private_hooks.url, private_hooks.key) as sdk:
        endpoint = sdk.webhook_endpoints.create(hook, ["asset.ready"])
        assert endpoint.secret and endpoint.url == hook and endpoint.events == ["asset.ready"]
        assert sdk.webhook_endpoints.get(endpoint.id).secret is None, "the secret is shown once"
        assert [e.id for e in sdk.webhook_endpoints.iter()] == [endpoint.id]

        asset = sdk.assets.wait(sdk.assets.upload(song).id)
        deadline = time.monotonic() + 30
        while not (deliveries := sdk.webhook_endpoints.deliveries(endpoint.id).data):
            assert time.monotonic() < deadline, "no delivery of asset.ready"
            time.sleep(0.1)
        delivery = deliveries[0]
        assert delivery.event_type == "asset.ready" and delivery.event_id.startswith("evt_")
        again = sdk.events.redeliver(delivery.event_id)
        assert again.event_id == delivery.event_id and len(again.deliveries) == 1
        with pytest.raises(NotFound):
            sdk.events.redeliver("evt_missing")

        sdk.webhook_endpoints.delete(endpoint.id)
        assert sdk.webhook_endpoints.list().data == []
        assert asset.state == "ready"
