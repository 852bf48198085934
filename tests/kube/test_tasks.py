"""Asset work as Jobs (`KubeTasks`) on the emulator with the fake kubelet: the Job runs
`roughy-encode extract-audio | silence` locally, reading and writing over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s

from roughy.adapters.executor.kube_tasks import KubeTasks
from roughy.adapters.kubeapi import KubeApi
from roughy.encoder.errors import InvalidMedia
from roughy.encoder.probe import probe
from roughy.kube.jobs import JobSettings
from tests.encoder.http_media import MediaServer
from tests.kube.conftest import NAMESPACE
from tests.kube.harness import EmulatorServer
from tests.kube.kubelet import FakeKubelet
from tests.media import ffmpeg, make_video

pytestmark = pytest.mark.kubernetes
LABELS = {"roughy.ai/asset": "ast_1"}


@pytest.fixture
def media() -> Iterator[MediaServer]:
    with MediaServer() as server:
        yield server


@pytest.fixture
def tasks(kube: EmulatorServer, kube_api: k8s.ApiClient, tmp_path: Path) -> Iterator[KubeTasks]:
    with FakeKubelet(kube, namespaces=(NAMESPACE,), workdir=tmp_path / "kubelet"):
        yield KubeTasks(
            KubeApi(kube_api), namespace=NAMESPACE, settings=JobSettings(image="encoder:test"), poll_interval=0.05
        )


def jobs(kube: EmulatorServer) -> list[str]:
    return kube.call(lambda e: [k[2] for k, obj in e.objects.items() if k[0].plural == "jobs" and not obj.deleted])


def test_audio_is_extracted_by_a_job_and_uploaded(
    tasks: KubeTasks, media: MediaServer, kube: EmulatorServer, tmp_path: Path
) -> None:
    clip = make_video(tmp_path / "clip.mp4", duration=2.0)
    info = tasks.extract_audio(
        media.serve("/clip.mp4", clip), media.url("/audio.mka"), subject="ast_1", duration=2.0, labels=LABELS
    )
    assert info.codec == "aac" and info.channels == 2
    (upload,) = media.state.uploads
    assert upload.path == "/audio.mka" and upload.headers["content-type"] == "audio/x-matroska"
    stored = tmp_path / "audio.mka"
    stored.write_bytes(upload.body)
    assert probe(str(stored)).audio is not None
    assert jobs(kube) == [], "the Job is deleted once its outcome is read"


def test_a_source_without_audio_fails_as_invalid_media(
    tasks: KubeTasks, media: MediaServer, kube: EmulatorServer, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a movie" * 100)
    with pytest.raises(InvalidMedia):
        tasks.extract_audio(media.serve("/junk.mp4", junk), media.url("/a.mka"), subject="ast_2", duration=1.0,
                            labels=LABELS)  # fmt: skip
    assert media.state.uploads == [] and jobs(kube) == []


def test_a_silence_list_too_long_for_a_termination_message_is_read_from_the_log(
    tasks: KubeTasks, media: MediaServer, tmp_path: Path
) -> None:
    beeps = tmp_path / "beeps.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=120",
           "-af", "volume='if(lt(mod(t,0.5),0.25),1,0)':eval=frame", "-c:a", "aac", str(beeps))  # fmt: skip
    spans = tasks.detect_silence(media.serve("/beeps.m4a", beeps), min_silence=0.1, threshold_db=-35.0,
                                 subject="cut_1", duration=120.0, labels=LABELS)  # fmt: skip
    assert len(spans) > 200  # more than 4 KiB of JSON
    assert all(0.15 < end - start < 0.35 for start, end in spans[1:-1])
