"""Poster frames: a video asset's JSON carries a signed URL of one JPEG of it, as it is displayed.

On both runtimes (the embedded one writes it to local disk and serves it itself; on Kubernetes
the operator's ffmpeg seeks into the presigned source and PUTs the JPEG to S3). The JPEG is
decoded and its pixels checked: a rotated phone clip gives a portrait poster whose picture is
turned, not squeezed.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from roughy.core.models import AssetKind
from roughy.encoder.errors import EncodeFailed
from roughy.encoder.poster import poster_size, poster_time
from tests.app.conftest import make_world
from tests.conftest import ready_asset
from tests.media import ffmpeg, tone_source

# -- media ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rotated_clip(media_dir: Path) -> Path:
    """A phone clip: 1280x720 stored, a 90-degree display rotation (so 720x1280 portrait), with
    audio. The stored picture is black on its top half and white below: displayed, the split
    runs top to bottom instead."""
    flat = media_dir / "halves-flat.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "color=c=white:s=1280x720:r=25:d=2",
        "-f", "lavfi", "-i", tone_source(2, 2.0),
        "-vf", "drawbox=x=0:y=0:w=1280:h=360:color=black:t=fill",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(flat),
    )  # fmt: skip
    out = media_dir / "halves-rotated.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(flat), "-c", "copy", str(out))
    return out


def decode_jpeg(data: bytes) -> av.VideoFrame:
    with av.open(io.BytesIO(data)) as container:
        assert container.streams.video[0].codec_context.name == "mjpeg"
        return next(container.decode(video=0))


def mean_luma(frame: av.VideoFrame, x0: int, x1: int, y0: int, y1: int) -> float:
    plane = frame.planes[0]
    data, stride = bytes(plane), plane.line_size
    total = sum(sum(data[y * stride + x0 : y * stride + x1]) for y in range(y0, y1))
    return total / ((x1 - x0) * (y1 - y0))


def fetch_poster(asset: dict[str, Any]) -> httpx.Response:
    return httpx.get(asset["poster"]["url"], timeout=30)


# -- both runtimes --------------------------------------------------------------------------------


def test_a_video_asset_gets_a_poster_as_it_is_displayed(service, api, rotated_clip) -> None:  # type: ignore[no-untyped-def]
    created = api.post("/v1/assets", json={"kind": "video", "filename": "phone.mp4"}).json()
    assert created["poster"] is None, "no poster before the video is processed"

    asset = ready_asset(api, rotated_clip)
    assert asset["state"] == "ready", asset
    assert (asset["video"]["width"], asset["video"]["height"]) == (720, 1280)
    poster = asset["poster"]
    assert poster is not None, "a processed video has a poster"
    assert datetime.fromisoformat(poster["expires_at"]) > datetime.now(UTC)

    resp = fetch_poster(asset)  # no API key: the signed URL is the credential
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("image/jpeg")
    frame = decode_jpeg(resp.content)
    assert (frame.width, frame.height) == (360, 640), "portrait, at most 640 px on its longer edge"
    w, h = frame.width, frame.height
    left, right = mean_luma(frame, 0, w // 2, 0, h), mean_luma(frame, w // 2, w, 0, h)
    top, bottom = mean_luma(frame, 0, w, 0, h // 2), mean_luma(frame, 0, w, h // 2, h)
    assert abs(left - right) > 200, ("the rotation is applied: the black half is a side", left, right)
    assert abs(top - bottom) < 20, ("not the stored top half", top, bottom)

    listed = api.get("/v1/assets").json()["data"]
    assert listed[0]["id"] == asset["id"] and listed[0]["poster"] is not None, "lists carry it too"


def test_an_audio_asset_has_no_poster(service, api, song) -> None:  # type: ignore[no-untyped-def]
    asset = ready_asset(api, song, kind="audio")
    assert asset["state"] == "ready", asset
    assert asset["poster"] is None
    assert not [key for key in service.stored_keys(f"assets/{asset['id']}") if key.endswith("poster.jpg")]


def test_a_deleted_assets_poster_is_gone(service, api, clip) -> None:  # type: ignore[no-untyped-def]
    asset = ready_asset(api, clip)
    assert fetch_poster(asset).status_code == 200
    assert f"assets/{asset['id']}/poster.jpg" in service.stored_keys(f"assets/{asset['id']}")

    assert api.delete(f"/v1/assets/{asset['id']}").status_code == 204
    # The URL has not expired, but there is nothing behind it: 404 (S3 without list rights: 403).
    assert fetch_poster(asset).status_code in (403, 404)
    assert service.stored_keys(f"assets/{asset['id']}") == []


# -- the rules, without media ---------------------------------------------------------------------


def test_a_poster_that_cannot_be_made_leaves_the_asset_ready_without_one(tmp_path: Path) -> None:
    world = make_world(tmp_path)

    def broken(src: str, target: str, info: object) -> None:
        raise EncodeFailed("ffmpeg decoded no frame for the poster")

    def crashing(src: str, target: str, info: object) -> None:
        raise OSError("disk full")

    for maker in (broken, crashing):
        world.processor.poster = maker
        asset = world.ready_asset()
        assert asset.state.value == "ready" and asset.cuttable
        assert world.app.assets.poster(asset) is None


def test_a_made_poster_is_recorded_and_signed(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    made: list[str] = []

    def maker(src: str, target: str, info: object) -> None:
        world.storage.put(target.removeprefix("memory://"), b"\xff\xd8jpeg")
        made.append(target)

    world.processor.poster = maker
    video = world.ready_asset()
    audio = world.ready_asset(b"audio", kind=AssetKind.AUDIO)
    assert made == [f"memory://assets/{video.id}/poster.jpg"], "one poster, for the video only"
    assert world.app.assets.poster(video) is not None
    assert world.app.assets.poster(audio) is None


@pytest.mark.parametrize(
    ("duration", "at"),
    [(0.0, 0.0), (0.4, 0.2), (3.0, 1.0), (60.0, 6.0), (3600.0, 360.0)],
)
def test_the_poster_is_taken_a_tenth_in_but_inside_short_clips(duration: float, at: float) -> None:
    assert poster_time(duration) == at


@pytest.mark.parametrize(
    ("display", "size"),
    [((1920, 1080), (640, 360)), ((1080, 1920), (360, 640)), ((320, 240), (320, 240)), ((853, 480), (640, 360))],
)
def test_the_poster_keeps_the_display_aspect_and_is_never_upscaled(
    display: tuple[int, int], size: tuple[int, int]
) -> None:
    assert poster_size(*display) == size
