"""A render's lifecycle in the log, once per transition, from the application layer (so both
runtimes write the same lines), and `roughy_encode_seconds` by format, tier and encoder. Here
on the embedded runtime: real encodes, a real data directory."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from roughy.core.keys import part_key
from roughy.core.models import PartName
from tests.conftest import finished_render, ready_asset
from tests.media import make_video
from tests.observability.metrics import scrape, value

LOGGER = "roughy.app.renders"
ENCODES = "roughy_encode_seconds_count"


@pytest.fixture
def lifecycle(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        yield caplog


def lines_of(caplog: pytest.LogCaptureFixture, render_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and getattr(r, "render_id", None) == render_id]


def transitions(records: list[logging.LogRecord]) -> list[str]:
    """'created', 'started', ...: the word after the render id in each line."""
    return [r.getMessage().split(" ")[2].rstrip(":") for r in records]


@pytest.fixture(scope="module")
def mpeg4_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MPEG-4 Part 2: rendered to MP4 it is encoded with libx264 (an H.264 source is copied)."""
    return make_video(tmp_path_factory.mktemp("m") / "talk.mp4", duration=1.0, width=1280, height=720, codec="mpeg4")


def test_a_completed_render_logs_created_started_completed_once_each(service, api, mpeg4_clip, lifecycle):
    asset = ready_asset(api, mpeg4_clip)
    before = scrape(service.url)
    render = finished_render(api, {"asset_id": asset["id"], "output": {"format": "mp4", "resolution": "720p"}})
    assert render["state"] == "completed", render
    assert render["result"]["encoder"] == "libx264"

    records = lines_of(lifecycle, render["id"])
    assert transitions(records) == ["created", "started", "completed"], [r.getMessage() for r in records]
    assert all(r.levelno == logging.INFO for r in records)
    ids = {"render_id": render["id"], "asset_id": asset["id"], "account_id": service.account_id}
    for record in records:
        assert {key: getattr(record, key) for key in ids} == ids
        assert (record.format, record.tier) == ("mp4", "720p")  # type: ignore[attr-defined]
    created, started, completed = records
    assert (created.state, started.state, completed.state) == ("pending", "running", "completed")  # type: ignore[attr-defined]
    assert completed.encoder == "libx264" and completed.encode_seconds > 0  # type: ignore[attr-defined]
    assert completed.size_bytes == render["result"]["size_bytes"]  # type: ignore[attr-defined]

    after = scrape(service.url)
    labels = {"format": "mp4", "tier": "720p", "encoder": "libx264"}
    assert value(after, ENCODES, **labels) - value(before, ENCODES, **labels) == 1, "one encode, labelled"


def test_an_audio_render_is_counted_under_tier_audio_and_no_video_encoder(service, api, song, lifecycle):
    asset = ready_asset(api, song, kind="audio")
    before = scrape(service.url)
    render = finished_render(api, {"asset_id": asset["id"], "output": {"format": "m4a"}})
    assert render["state"] == "completed", render
    labels = {"format": "m4a", "tier": "audio", "encoder": "none"}
    assert value(scrape(service.url), ENCODES, **labels) - value(before, ENCODES, **labels) == 1
    assert transitions(lines_of(lifecycle, render["id"])) == ["created", "started", "completed"]


def test_a_failed_render_logs_failed_with_its_error_code(service, api, clip, lifecycle):
    asset = ready_asset(api, clip)
    service.write_media(part_key(asset["id"], PartName.VIDEO), b"\0" * 4096)  # gone bad after its probe
    render = finished_render(api, {"asset_id": asset["id"], "output": {"format": "mov"}})
    assert render["state"] == "failed", render
    records = lines_of(lifecycle, render["id"])
    assert transitions(records) == ["created", "started", "failed"], [r.getMessage() for r in records]
    failed = records[-1]
    assert failed.error_code == render["error"]["code"] and failed.state == "failed"  # type: ignore[attr-defined]
    assert render["error"]["code"] in failed.getMessage()
    assert (failed.format, failed.tier) == ("mov", "source")  # type: ignore[attr-defined]


def test_a_cancelled_render_logs_cancelled_and_nothing_after(service, api, clip, lifecycle):
    asset = ready_asset(api, clip)
    service.stop_processing()  # nothing claims it: cancelled while pending
    render: dict[str, Any] = api.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "mp3"}}).json()
    assert api.delete(f"/v1/renders/{render['id']}").status_code == 204
    records = lines_of(lifecycle, render["id"])
    assert transitions(records) == ["created", "cancelled"], [r.getMessage() for r in records]
    assert records[-1].state == "pending" and records[-1].format == "mp3"  # type: ignore[attr-defined]


def test_an_identical_request_returns_the_live_render_and_logs_no_second_creation(service, api, clip, lifecycle):
    asset = ready_asset(api, clip)
    service.stop_processing()
    body = {"asset_id": asset["id"], "output": {"format": "mp3"}}
    first, again = api.post("/v1/renders", json=body).json(), api.post("/v1/renders", json=body).json()
    assert first["id"] == again["id"]
    assert transitions(lines_of(lifecycle, first["id"])) == ["created"]
