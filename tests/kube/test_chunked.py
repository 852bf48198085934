"""Chunk-parallel renders on the Kubernetes runtime (issue 9), with no cluster (tests/kube/stack.py
says what runs): the chunks as an Indexed Job whose pods PUT them to S3, then the join as the
render's own Job, and what cancel and failure leave behind (nothing).

Chunking is a setting of the API (ROUGHY_CHUNK_*); here chunks are a second long, so that a
few-second clip is split. That the joined output is the single render frame for frame is held
by tests/encoder/test_chunked_render.py, on the same encoder code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from roughy.encoder.probe import probe
from roughy.kube import crd, jobs
from tests.conftest import ready_asset, wait_for
from tests.kube.stack import NAMESPACE, KubeService, start_kube_service
from tests.media import make_video
from tests.storage.s3server import StrictS3Server

pytestmark = pytest.mark.kubernetes
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
ENCODED = {"format": "mp4"}  # of an MPEG-4 Part 2 source: an encode (a copy is never chunked)


@pytest.fixture
def kube_service(tmp_path: Path, s3_server: StrictS3Server, s3: Any) -> Iterator[KubeService]:
    chunking = {"chunk_parallelism": 2, "chunk_seconds": 1.0, "chunk_min_seconds": 2.0}
    with start_kube_service(tmp_path, s3_server.url, **chunking) as service:
        yield service


def the_render_resource(service: KubeService) -> dict[str, Any]:
    def read(emulator: Any) -> list[dict[str, Any]]:
        return [obj.raw for key, obj in emulator.objects.items() if key[0].plural == crd.PLURAL and not obj.deleted]

    (resource,) = service.kube.call(read)
    return resource


def pods_of(service: KubeService, job: str) -> list[dict[str, Any]]:
    def read(emulator: Any) -> list[dict[str, Any]]:
        pods = [obj.raw for key, obj in emulator.objects.items() if key[0].plural == "pods" and not obj.deleted]
        return [pod for pod in pods if (pod["metadata"].get("labels") or {}).get("job-name") == job]

    return list(service.kube.call(read))


def ready_source(api: httpx.Client, tmp_path: Path, duration: float) -> dict[str, Any]:
    """An asset of `duration` seconds of MPEG-4 Part 2 at 640x360, 25 fps: rendered to MP4 it
    is encoded (never copied), so it is chunked."""
    source = make_video(tmp_path / "source.mp4", duration=duration, width=640, height=360, fps=25, codec="mpeg4")
    asset = ready_asset(api, source)
    assert asset["state"] == "ready", asset
    return asset


def start_render(api: httpx.Client, asset: dict[str, Any]) -> dict[str, Any]:
    resp = api.post("/v1/renders", json={"asset_id": asset["id"], "output": ENCODED})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def test_a_long_render_is_encoded_by_an_indexed_job_then_joined(
    kube_service: KubeService, api: httpx.Client, tmp_path: Path
) -> None:
    render = start_render(api, ready_source(api, tmp_path, 4.0))
    progress: list[float] = []

    def poll() -> dict[str, Any]:
        current: dict[str, Any] = api.get(f"/v1/renders/{render['id']}").json()
        progress.append(current["progress"])
        return current

    done = wait_for(poll, lambda r: r["state"] in ("completed", "failed"), timeout=120)
    assert done["state"] == "completed", done
    assert progress == sorted(progress) and done["progress"] == 1.0

    resource = the_render_resource(kube_service)
    name = resource["metadata"]["name"]
    chunk_job = kube_service.kube.object("jobs", NAMESPACE, jobs.chunk_job_name(name))
    join_job = kube_service.kube.object("jobs", NAMESPACE, name)
    assert chunk_job is not None and join_job is not None
    assert (chunk_job["spec"]["completionMode"], chunk_job["spec"]["completions"]) == ("Indexed", 4)
    assert chunk_job["status"]["completedIndexes"] == "0-3"
    assert join_job["spec"]["template"]["spec"]["containers"][0]["args"][0] == "join"
    chunk_pods = pods_of(kube_service, chunk_job["metadata"]["name"])
    indexes = sorted(pod["metadata"]["annotations"][INDEX_KEY] for pod in chunk_pods)
    assert indexes == ["0", "1", "2", "3"]  # one pod per chunk, none retried
    assert resource["status"]["encoder"] == "libx264"  # what the chunks' pods ran

    # The output is whole (every frame, the audio), and the chunks are gone from S3.
    assert kube_service.stored_keys(f"renders/{render['id']}") == [f"renders/{render['id']}/output.mp4"]
    fetched = httpx.get(done["download_url"], timeout=30)
    out = tmp_path / "out.mp4"
    out.write_bytes(fetched.content)
    info = probe(str(out))
    assert info.video is not None and (info.video.width, info.video.height) == (640, 360)
    assert info.audio is not None and info.duration == pytest.approx(4.0, abs=0.05)
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 100  # 4 s at 25 fps: no frame lost or doubled


def test_cancel_during_the_chunks_stops_every_chunk_pod_and_leaves_nothing(
    kube_service: KubeService, api: httpx.Client, tmp_path: Path
) -> None:
    render = start_render(api, ready_source(api, tmp_path, 24.0))
    wait_for(lambda: {"pods": kube_service.kubelet.processes()}, lambda d: len(d["pods"]) == 2, timeout=60)
    name = the_render_resource(kube_service)["metadata"]["name"]
    assert all(pod.startswith(jobs.chunk_job_name(name)) for pod in kube_service.kubelet.processes())

    assert api.delete(f"/v1/renders/{render['id']}").status_code == 204
    assert api.get(f"/v1/renders/{render['id']}").status_code == 404
    # The DELETE waited for the finalizer, which waited for both Jobs to be gone.
    assert kube_service.kube.object("jobs", NAMESPACE, jobs.chunk_job_name(name)) is None
    assert kube_service.kube.object("jobs", NAMESPACE, name) is None
    assert kube_service.kubelet.processes() == {}
    assert kube_service.stored_keys(f"renders/{render['id']}") == []


def test_a_chunk_that_cannot_read_its_source_fails_the_render_and_leaves_nothing(
    kube_service: KubeService, api: httpx.Client, tmp_path: Path
) -> None:
    asset = ready_source(api, tmp_path, 4.0)
    kube_service.write_media(f"assets/{asset['id']}/video", b"not a video any more" * 100)  # probed, then broken
    render = start_render(api, asset)
    done = wait_for(lambda: api.get(f"/v1/renders/{render['id']}").json(),
                    lambda r: r["state"] in ("completed", "failed"), timeout=120)  # fmt: skip
    assert done["state"] == "failed", done
    assert done["error"]["code"] == "invalid_media", done["error"]  # the chunk's own words, not the Job's
    name = the_render_resource(kube_service)["metadata"]["name"]
    chunk_job = kube_service.kube.object("jobs", NAMESPACE, jobs.chunk_job_name(name))
    assert chunk_job is not None and chunk_job["status"]["conditions"][-1]["type"] == "Failed"
    assert kube_service.kube.object("jobs", NAMESPACE, name) is None  # no join for a failed chunk
    assert kube_service.stored_keys(f"renders/{render['id']}") == []
    assert wait_for(lambda: {"p": kube_service.kubelet.processes()}, lambda d: not d["p"], timeout=10)


def test_the_error_of_a_failed_chunk_render_comes_from_an_index_that_failed_for_good() -> None:
    """A chunk Job's pods include those of indexes a retry got past: their errors are stale."""
    from kubernetes import client as k8s

    from roughy.operator.controller import _indexes, _pod_index

    assert _indexes("1,3-5,7") == {1, 3, 4, 5, 7} and _indexes("") == set() and _indexes(None) == set()

    def pod(index: str | None) -> k8s.V1Pod:
        annotations = {INDEX_KEY: index} if index is not None else None
        return k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="p", annotations=annotations))

    assert [_pod_index(pod(i)) for i in ("3", None, "x")] == [3, None, None]
