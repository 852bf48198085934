"""Renders end to end (SPEC 5): real HTTP, real ffmpeg, real files read back."""

from __future__ import annotations

import concurrent.futures
import os
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import av
import httpx
import pytest

from roughy.encoder.probe import probe
from tests.conftest import Service, finished_render, ready_asset, upload_part, wait_for
from tests.media import make_video


@pytest.fixture
def asset(api: httpx.Client, clip: Path) -> dict:
    a = ready_asset(api, clip)
    assert a["state"] == "ready", a
    return a


def download(render: dict, tmp_path: Path, name: str = "out") -> Path:
    resp = httpx.get(render["download_url"], timeout=30)
    assert resp.status_code == 200, resp.text
    path = tmp_path / f"{name}.{render['output']['format']}"
    path.write_bytes(resp.content)
    return path


# -- 5.1 planning, read back from the produced file ---------------------------------------------


def test_mp4_render_keeps_source_size_and_reports_what_it_produced(api, asset, tmp_path):
    render = finished_render(api, {"asset_id": asset["id"], "output": {"format": "mp4"}})
    assert render["state"] == "completed", render
    assert render["progress"] == 1.0
    result = render["result"]
    assert (result["width"], result["height"]) == (640, 360)
    assert result["format"] == "mp4"
    assert abs(result["duration"] - 3.0) < 0.1
    out = download(render, tmp_path)
    assert out.stat().st_size == result["size_bytes"]
    info = probe(str(out))
    assert info.video and (info.video.width, info.video.height) == (640, 360)
    assert info.video.codec == "h264" and info.audio and info.audio.codec == "aac"
    assert render["started_at"] and render["completed_at"]


def test_tier_sets_the_shorter_edge_and_keeps_portrait(api, media_dir, tmp_path):
    src = make_video(media_dir / "portrait.mp4", duration=1.0, width=1080, height=1920, fps=25)
    a = ready_asset(api, src)
    render = finished_render(api, {"asset_id": a["id"], "output": {"format": "mp4", "resolution": "720p"}})
    assert render["state"] == "completed", render
    assert (render["result"]["width"], render["result"]["height"]) == (720, 1280)
    with av.open(str(download(render, tmp_path))) as c:
        s = c.streams.video[0]
        assert (s.codec_context.width, s.codec_context.height) == (720, 1280)
        assert s.codec_context.format.name == "yuv420p"


def test_rotated_phone_clip_comes_out_upright_without_rotation_flag(api, media_dir, tmp_path):
    src = make_video(media_dir / "phone.mp4", duration=1.0, width=640, height=360, rotation=90)
    a = ready_asset(api, src)
    assert (a["video"]["width"], a["video"]["height"]) == (360, 640)
    render = finished_render(api, {"asset_id": a["id"], "output": {"format": "mov"}})
    assert render["state"] == "completed", render
    info = probe(str(download(render, tmp_path)))
    assert info.video and (info.video.width, info.video.height) == (360, 640)
    assert info.video.rotation == 0


def test_audio_renders_from_a_video_asset(api, asset, tmp_path):
    for fmt, codec in (("m4a", "aac"), ("mp3", "mp3")):
        render = finished_render(api, {"asset_id": asset["id"], "output": {"format": fmt}})
        assert render["state"] == "completed", render
        assert render["result"]["width"] is None and render["result"]["height"] is None
        info = probe(str(download(render, tmp_path, fmt)))
        assert info.video is None and info.audio and info.audio.codec.startswith(codec)


def test_auto_and_explicit_bitrates_are_reported_and_capped_at_the_source(api, asset):
    auto = finished_render(api, {"asset_id": asset["id"], "output": {"format": "m4a"}})
    src_kbps = asset["audio"]["bitrate_kbps"]
    assert auto["result"]["audio_bitrate_kbps"] == min(192, src_kbps)
    high = finished_render(api, {"asset_id": asset["id"], "output": {"format": "m4a", "audio_bitrate": 320}})
    assert high["result"]["audio_bitrate_kbps"] == src_kbps  # lowered to the source's


# -- 5.3 validation and 5.2 order -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "param"),
    [
        ({"format": "avi"}, "output.format"),
        ({"format": "mp4", "resolution": "480p"}, "output.resolution"),
        ({"format": "mp4", "video_bitrate": 7}, "output.video_bitrate"),
        ({"format": "mp4", "audio_bitrate": 100}, "output.audio_bitrate"),
        ({"format": "mp4", "colour": "red"}, "output.colour"),
        ({"format": "mp4", "video_bitrate": "10"}, "output.video_bitrate"),
        ({"format": "mp3", "resolution": "720p"}, "output.resolution"),
        ({"format": "m4a", "video_bitrate": 5}, "output.video_bitrate"),
        ({"format": "mp4", "resolution": "1080p"}, "output.resolution"),  # source is 360p: no upscale
        ({"format": "mp4", "video_bitrate": 50}, "output.video_bitrate"),  # above the source's bitrate
    ],
)
def test_invalid_outputs_are_422_with_the_field(api, asset, output, param):
    resp = api.post("/v1/renders", json={"asset_id": asset["id"], "output": output})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "validation_error"
    assert resp.json()["error"]["param"] == param


def test_video_format_for_an_audio_asset_is_422(api, song):
    a = ready_asset(api, song, kind="audio")
    resp = api.post("/v1/renders", json={"asset_id": a["id"], "output": {"format": "mp4"}})
    assert resp.status_code == 422 and resp.json()["error"]["param"] == "output.format"


def test_audio_format_for_a_source_without_audio_is_422(api, media_dir):
    a = ready_asset(api, make_video(media_dir / "silent.mp4", duration=1.0, audio=None))
    resp = api.post("/v1/renders", json={"asset_id": a["id"], "output": {"format": "mp3"}})
    assert resp.status_code == 422 and resp.json()["error"]["param"] == "output.format"


def test_unknown_asset_is_404_with_param_after_body_checks(api):
    bad_body = api.post("/v1/renders", json={"asset_id": "ast_nope", "output": {"format": "nope"}})
    assert bad_body.status_code == 422  # the body is checked before the asset
    resp = api.post("/v1/renders", json={"asset_id": "ast_nope", "output": {"format": "mp4"}})
    assert resp.status_code == 404
    error = resp.json()["error"]
    assert (error["code"], error["param"]) == ("not_found", "asset_id")


def test_cut_of_another_asset_is_422(api, asset, clip):
    other = ready_asset(api, clip)
    cut = api.post(f"/v1/assets/{other['id']}/cuts", json={"segments": [{"start": 0, "end": 1}]}).json()
    resp = api.post("/v1/renders", json={"asset_id": asset["id"], "cut_id": cut["id"], "output": {"format": "mp4"}})
    assert resp.status_code == 422 and resp.json()["error"]["param"] == "cut_id"
    resp = api.post("/v1/renders", json={"asset_id": asset["id"], "cut_id": "cut_nobody", "output": {"format": "mp4"}})
    assert resp.status_code == 422 and resp.json()["error"]["param"] == "cut_id"


def test_gates_video_needs_ready_audio_needs_cuttable(api, clip, song):
    asset = api.post("/v1/assets", json={"kind": "video", "filename": "x.mp4"}).json()
    resp = api.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "mp4"}})
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "asset_not_ready"
    resp = api.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "mp3"}})
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "asset_processing"


def test_client_audio_renders_audio_while_the_video_is_still_uploading(api, clip, song, tmp_path):
    asset = api.post("/v1/assets", json={"kind": "video", "filename": "talk.mp4", "client_audio": True}).json()
    upload_part(api, asset, "audio", song)
    asset = wait_for(lambda: api.get(f"/v1/assets/{asset['id']}").json(), lambda a: a["cuttable"])
    assert asset["state"] == "uploading"
    video = api.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "mp4"}})
    assert video.status_code == 409 and video.json()["error"]["code"] == "asset_not_ready"
    audio = finished_render(api, {"asset_id": asset["id"], "output": {"format": "m4a"}})
    assert audio["state"] == "completed", audio
    assert abs(audio["result"]["duration"] - 3.0) < 0.1


def test_cut_not_completed_is_modifier_not_ready(api, asset, service: Service):
    service.stop_processing()  # no worker: the cut stays pending
    cut = api.post(f"/v1/assets/{asset['id']}/cuts", json={"segments": [{"start": 0, "end": 1}]}).json()
    assert cut["state"] == "pending"
    resp = api.post("/v1/renders", json={"asset_id": asset["id"], "cut_id": cut["id"], "output": {"format": "mp4"}})
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "modifier_not_ready"
    assert resp.json()["error"]["param"] == "cut_id"


# -- 5.4 idempotency -------------------------------------------------------------------------------


def test_identical_requests_return_the_same_render(api, asset):
    body = {"asset_id": asset["id"], "output": {"format": "m4a", "audio_bitrate": None}}
    first = api.post("/v1/renders", json=body)
    reordered = api.post("/v1/renders", json={"output": {"format": "m4a"}, "asset_id": asset["id"]})
    assert first.status_code == 201 and reordered.status_code == 200
    assert first.json()["id"] == reordered.json()["id"]
    explicit_body = {"asset_id": asset["id"], "output": {"format": "m4a", "audio_bitrate": 128}}
    explicit = api.post("/v1/renders", json=explicit_body)
    other = api.post("/v1/renders", json={"asset_id": asset["id"], "output": {"format": "mp3"}})
    assert explicit.status_code == 201 and other.status_code == 201
    assert len({first.json()["id"], explicit.json()["id"], other.json()["id"]}) == 3


def test_32_concurrent_identical_posts_create_one_render(service: Service, asset):
    body = {"asset_id": asset["id"], "output": {"format": "mp3", "audio_bitrate": 128}}

    def post(_: int) -> tuple[int, str]:
        with service.client() as c:
            r = c.post("/v1/renders", json=body)
            return r.status_code, r.json()["id"]

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        results = list(pool.map(post, range(32)))
    assert len({rid for _, rid in results}) == 1
    assert sorted(code for code, _ in results).count(201) == 1
    with service.client() as c:
        listed = c.get("/v1/renders", params={"asset_id": asset["id"], "limit": 100}).json()["data"]
    assert len(listed) == 1


def test_a_failed_render_is_replaced_by_a_fresh_attempt(api, asset, service: Service):
    key = f"assets/{asset['id']}/video"
    good = service.read_media(key)
    service.write_media(key, b"\0" * 4096)  # the source went bad in storage after it was probed
    body = {"asset_id": asset["id"], "output": {"format": "mp4"}}
    failed = finished_render(api, body)
    assert failed["state"] == "failed"
    assert failed["error"]["code"] == "invalid_media" and failed["error"]["message"]
    service.write_media(key, good)
    again = api.post("/v1/renders", json=body)
    assert again.status_code == 201 and again.json()["id"] != failed["id"]
    assert api.get(f"/v1/renders/{failed['id']}").status_code == 404
    done = wait_for(lambda: api.get(f"/v1/renders/{again.json()['id']}").json(), lambda r: r["state"] == "completed")
    assert done["result"]["size_bytes"] > 0


# -- 5.6 reading, progress, downloads --------------------------------------------------------------


def test_progress_never_goes_backwards(api, media_dir):
    # MPEG-4 Part 2: an encode (an H.264 source would be copied in a blink, with nothing in between)
    src = make_video(media_dir / "longer-mpeg4.mp4", duration=8.0, width=640, height=360, codec="mpeg4")
    a = ready_asset(api, src)
    render = api.post("/v1/renders", json={"asset_id": a["id"], "output": {"format": "mp4"}}).json()
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r = api.get(f"/v1/renders/{render['id']}").json()
        seen.append(r["progress"])
        if r["state"] in ("completed", "failed"):
            break
        time.sleep(0.02)
    assert r["state"] == "completed"
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert any(0 < p < 1 for p in seen), seen  # it reported something in between


def test_download_url_serves_the_file_with_ranges_and_a_filename(api, asset):
    render = finished_render(api, {"asset_id": asset["id"], "output": {"format": "mp4"}})
    url = render["download_url"]
    assert render["download_expires_at"]
    full = httpx.get(url)
    assert full.status_code == 200
    assert full.headers["content-type"] == "video/mp4"
    assert int(full.headers["content-length"]) == render["result"]["size_bytes"]
    assert 'filename="clip.mp4"' in full.headers["content-disposition"]
    part = httpx.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == full.content[:100]
    assert full.content[4:8] == b"ftyp"
    # faststart: the index (moov) comes before the media data (mdat)
    assert full.content.find(b"moov") < full.content.find(b"mdat")


@pytest.mark.embedded_only("the API's own download route; S3 checks presigned GETs (tests/storage)")
def test_altered_or_expired_download_url_is_403(api, asset, service: Service):
    render = finished_render(api, {"asset_id": asset["id"], "output": {"format": "m4a"}})
    parts = urlsplit(render["download_url"])
    query = parse_qs(parts.query)
    query["filename"] = ["evil.m4a"]
    altered = urlunsplit(parts._replace(query=urlencode({k: v[0] for k, v in query.items()})))
    assert httpx.get(altered).status_code == 403
    expired_url, _ = service.embedded.storage.download_url(
        f"renders/{render['id']}/output.m4a", "clip.m4a", ttl=-10
    )
    resp = httpx.get(expired_url)
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "forbidden"


def test_lists_filter_and_never_carry_download_urls(api, asset):
    done = finished_render(api, {"asset_id": asset["id"], "output": {"format": "mp3"}})
    listed = api.get("/v1/renders", params={"asset_id": asset["id"], "state": "completed"}).json()
    assert [r["id"] for r in listed["data"]] == [done["id"]]
    assert all("download_url" not in r for r in listed["data"])
    assert api.get("/v1/renders", params={"state": "running"}).json()["data"] == []


def test_damaged_source_fails_with_a_clear_error_not_a_hang(api, media_dir, service: Service):
    """A source that probes fine but cannot be decoded fails the render with a code and message."""
    a = ready_asset(api, make_video(media_dir / "dmg.mp4", duration=2.0))
    key = f"assets/{a['id']}/video"
    data = bytearray(service.read_media(key))
    moov = data.find(b"moov")
    mdat = data.find(b"mdat")
    start = mdat + 8 if mdat > moov else 64
    data[start:] = bytes(len(data) - start)  # all media data zeroed; the index survives
    service.write_media(key, bytes(data))
    render = finished_render(api, {"asset_id": a["id"], "output": {"format": "mp4"}})
    if render["state"] == "failed":
        assert render["error"]["code"] in ("invalid_media", "encode_failed")
        assert render["error"]["message"]
    else:  # ffmpeg may conceal: then what was decodable is rendered
        assert render["result"]["size_bytes"] > 0


# -- 5.7 cancel --------------------------------------------------------------------------------------


@pytest.mark.embedded_only("the subprocess executor's processes; tests/kube/test_runtime.py cancels via the finalizer")
def test_cancel_is_a_hard_delete_that_kills_the_encode(api, media_dir, service: Service):
    src = make_video(media_dir / "long.mp4", duration=30.0, width=1280, height=720, fps=30)
    a = ready_asset(api, src)
    render = api.post("/v1/renders", json={"asset_id": a["id"], "output": {"format": "mp4"}}).json()
    wait_for(lambda: api.get(f"/v1/renders/{render['id']}").json(), lambda r: r["progress"] > 0, timeout=60)
    procs = dict(service.embedded.runtime.executor._procs)
    assert render["id"] in procs
    pid = procs[render["id"]].pid
    out_dir = service.embedded.storage.path(f"renders/{render['id']}")
    assert out_dir.exists()
    t0 = time.monotonic()
    resp = api.delete(f"/v1/renders/{render['id']}")
    assert resp.status_code == 204
    while _group_alive(pid) and time.monotonic() - t0 < 5:
        time.sleep(0.01)
    assert not _group_alive(pid), "the encoder's process group is still alive"
    assert time.monotonic() - t0 < 2.0
    assert api.get(f"/v1/renders/{render['id']}").status_code == 404
    time.sleep(0.3)
    assert not out_dir.exists(), list(out_dir.iterdir())
    assert api.delete(f"/v1/renders/{render['id']}").status_code == 404


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # zombies still count as group members until reaped; treat a reaped leader as gone
    return Path(f"/proc/{pgid}").exists() and "Z" not in Path(f"/proc/{pgid}/stat").read_text().split()[2]


@pytest.mark.embedded_only("the subprocess executor's processes; tests/kube/test_runtime.py covers the Job side")
def test_deleting_the_asset_stops_its_renders(api, media_dir, service: Service):
    a = ready_asset(api, make_video(media_dir / "del.mp4", duration=20.0, width=1280, height=720))
    render = api.post("/v1/renders", json={"asset_id": a["id"], "output": {"format": "mp4"}}).json()
    wait_for(lambda: api.get(f"/v1/renders/{render['id']}").json(), lambda r: r["state"] == "running")
    assert api.delete(f"/v1/assets/{a['id']}").status_code == 204
    assert api.get(f"/v1/renders/{render['id']}").status_code == 404
    deadline = time.monotonic() + 5
    while render["id"] in service.embedded.runtime.executor._procs and time.monotonic() < deadline:
        time.sleep(0.05)
    assert render["id"] not in service.embedded.runtime.executor._procs
    time.sleep(0.3)
    assert not service.embedded.storage.path(f"renders/{render['id']}").exists()


def test_an_encode_over_its_time_limit_fails_instead_of_running_forever(tmp_path, media_dir):
    from tests.conftest import start_service

    svc = start_service(tmp_path / "slow", encode_timeout_base=0.3, encode_timeout_factor=0.01)
    try:
        with svc.client() as api:
            a = ready_asset(api, make_video(media_dir / "limit.mp4", duration=10.0, width=1280, height=720))
            render = finished_render(api, {"asset_id": a["id"], "output": {"format": "mp4"}}, timeout=60)
            assert render["state"] == "failed"
            assert render["error"]["code"] == "encode_timeout" and "did not finish within" in render["error"]["message"]
            assert not svc.embedded.storage.path(f"renders/{render['id']}").exists()
    finally:
        svc.stop()
