"""Assets end to end (SPEC 3): upload targets, signed PUTs, processing, failures, credits, delete.

Real HTTP against the real embedded service, real media made with ffmpeg, files checked on disk.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from tests.conftest import Service, ready_asset, start_service, upload_part, wait_for
from tests.media import make_audio, make_video, truncate_file

FINAL = ("ready", "failed", "payment_required")


# -- helpers ---------------------------------------------------------------------------------------


def create(api: httpx.Client, kind: str = "video", filename: str = "clip.mp4", **extra: Any) -> dict:
    resp = api.post("/v1/assets", json={"kind": kind, "filename": filename, **extra})
    assert resp.status_code == 201, resp.text
    return resp.json()


def get(api: httpx.Client, asset_id: str) -> dict:
    resp = api.get(f"/v1/assets/{asset_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait_state(api: httpx.Client, asset_id: str, done=lambda a: a["state"] in FINAL, timeout=60) -> dict:
    return wait_for(lambda: get(api, asset_id), done, timeout)


def put(target: dict, content: Any, url: str | None = None) -> httpx.Response:
    return httpx.put(url or target["url"], content=content, headers=target["headers"], timeout=30)


def media_files(service: Service, asset_id: str) -> list[str]:
    """The asset's stored media (files on disk, or objects in S3), as storage keys."""
    return service.stored_keys(f"assets/{asset_id}")


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def new_account(service: Service, name: str = "broke") -> tuple[str, str]:
    """An account made through the admin API (it starts with no credit) and a key for it."""
    with service.admin() as admin:
        acct = admin.post("/v1/admin/accounts", json={"name": name})
        assert acct.status_code == 201, acct.text
        key = admin.post(f"/v1/admin/accounts/{acct.json()['id']}/api_keys")
        assert key.status_code == 201, key.text
    return acct.json()["id"], key.json()["key"]


def grant(service: Service, account_id: str, amount: int = 1) -> dict:
    with service.admin() as admin:
        resp = admin.post(f"/v1/admin/accounts/{account_id}/credits", json={"amount": amount, "reason": "test"})
    assert resp.status_code == 201, resp.text
    return resp.json()


def charges(api: httpx.Client) -> list[dict]:
    return [e for e in api.get("/v1/credits").json()["entries"] if e["type"] == "charge"]


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 320x240 clip stored landscape with a 90-degree display rotation: a portrait source."""
    return make_video(tmp_path_factory.mktemp("rot") / "phone.mp4", duration=1.0, rotation=90)


@pytest.fixture(scope="module")
def short_audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_audio(tmp_path_factory.mktemp("aud") / "voice.m4a", duration=3.0, channels=1)


# -- creation and upload targets -------------------------------------------------------------------


def _check_target(target: dict) -> None:
    assert set(target) >= {"url", "method", "headers", "expires_at"}, target
    assert target["method"] == "PUT"
    assert target["url"].startswith("http")
    assert isinstance(target["headers"], dict)
    expires = datetime.fromisoformat(target["expires_at"].replace("Z", "+00:00"))
    assert expires.tzinfo is not None
    assert expires > datetime.now(UTC), "a fresh target is not already expired"


def test_create_video_asset_has_one_video_upload_target(api):
    asset = create(api, filename="talk.mp4")
    assert asset["id"].startswith("ast_")
    assert asset["object"] == "asset"
    assert (asset["kind"], asset["filename"], asset["state"]) == ("video", "talk.mp4", "uploading")
    assert asset["cuttable"] is False
    assert asset["duration"] is None and asset["video"] is None and asset["audio"] is None
    assert asset["error"] is None
    assert datetime.fromisoformat(asset["created_at"].replace("Z", "+00:00")).tzinfo is not None
    assert set(asset["upload"]) == {"video"}
    _check_target(asset["upload"]["video"])
    assert get(api, asset["id"])["state"] == "uploading"


def test_create_audio_asset_has_one_audio_upload_target(api):
    asset = create(api, kind="audio", filename="song.mp3")
    assert asset["kind"] == "audio" and asset["state"] == "uploading"
    assert set(asset["upload"]) == {"audio"}
    _check_target(asset["upload"]["audio"])


def test_client_audio_video_asset_has_both_targets(api):
    asset = create(api, filename="phone.mov", client_audio=True)
    assert set(asset["upload"]) == {"video", "audio"}
    for part in ("video", "audio"):
        _check_target(asset["upload"][part])
    assert asset["upload"]["video"]["url"] != asset["upload"]["audio"]["url"]


# -- processing ------------------------------------------------------------------------------------


def test_upload_and_complete_probes_the_video(service, api, clip):
    asset = create(api, filename=clip.name)
    assert put(asset["upload"]["video"], clip.read_bytes()).status_code == 200
    done = api.post(f"/v1/assets/{asset['id']}/parts/video/complete")
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "processing"
    assert done.json()["cuttable"] is False, "not cuttable until processed"
    assert done.json()["upload"] is None, "no part left to upload"

    ready = wait_state(api, asset["id"])
    assert ready["state"] == "ready", ready
    assert ready["cuttable"] is True
    assert ready["error"] is None
    assert ready["duration"] == pytest.approx(3.0, abs=0.1)
    video = ready["video"]
    assert (video["width"], video["height"]) == (640, 360)
    assert video["fps"] == pytest.approx(25, abs=0.01)
    assert video["codec"] == "h264"
    assert video["rotation"] == 0
    assert isinstance(video["bitrate_kbps"], int) and video["bitrate_kbps"] > 0
    audio = ready["audio"]
    assert audio["codec"] == "aac"
    assert (audio["channels"], audio["sample_rate"]) == (2, 48000)
    assert isinstance(audio["bitrate_kbps"], int) and 16 <= audio["bitrate_kbps"] <= 512
    # the list shows the same asset in its final state
    listed = api.get("/v1/assets").json()["data"]
    assert [(a["id"], a["state"]) for a in listed] == [(asset["id"], "ready")]
    # completing again is harmless and does not re-charge
    again = api.post(f"/v1/assets/{asset['id']}/parts/video/complete")
    assert again.status_code == 200 and again.json()["state"] == "ready"
    assert len([c for c in charges(api) if c["asset_id"] == asset["id"]]) == 1


def test_audio_asset_is_probed_and_cuttable_when_ready(api, song):
    ready = ready_asset(api, song, kind="audio")
    assert ready["state"] == "ready", ready
    assert ready["cuttable"] is True
    assert ready["video"] is None
    assert ready["duration"] == pytest.approx(3.0, abs=0.15)
    audio = ready["audio"]
    assert audio["codec"] == "mp3"
    assert (audio["channels"], audio["sample_rate"]) == (2, 48000)
    assert audio["bitrate_kbps"] and audio["bitrate_kbps"] > 0


def test_rotated_source_reports_portrait_display_size(api, rotated):
    ready = ready_asset(api, rotated)
    assert ready["state"] == "ready", ready
    video = ready["video"]
    assert (video["width"], video["height"]) == (240, 320), video
    assert video["rotation"] == 90, video


def test_complete_before_upload_is_409(api):
    asset = create(api)
    resp = api.post(f"/v1/assets/{asset['id']}/parts/video/complete")
    assert resp.status_code == 409, resp.text
    assert resp.json()["error"]["code"]
    assert get(api, asset["id"])["state"] == "uploading"
    # an asset without an audio part has no audio part to complete
    resp = api.post(f"/v1/assets/{asset['id']}/parts/audio/complete")
    assert resp.status_code == 404, resp.text
    assert api.post(f"/v1/assets/{asset['id']}/parts/subtitles/complete").status_code == 422


@pytest.mark.embedded_only("the API's own upload route; on S3 the presigned PUT is checked by S3 (tests/storage)")
def test_altered_or_expired_upload_signature_is_403(service, api, clip):
    asset = create(api)
    target = asset["upload"]["video"]
    url = target["url"]
    sig = parse_qs(urlsplit(url).query)["sig"][0]
    bad_sig = ("0" if sig[0] != "0" else "1") + sig[1:]
    later = str(int(parse_qs(urlsplit(url).query)["expires"][0]) + 3600)
    other = create(api)
    attempts = {
        "altered signature": with_query(url, sig=bad_sig),
        "extended expiry": with_query(url, expires=later),
        "no signature": url.split("?")[0],
        "another asset's path": url.replace(asset["id"], other["id"]),
        "another part": url.replace("/video?", "/audio?"),
    }
    # a correctly signed URL whose time is up
    expired, _ = service.embedded.storage.signed_url("PUT", f"assets/{asset['id']}/uploads/video", -5)
    attempts["expired"] = expired
    for what, bad in attempts.items():
        resp = put(target, clip.read_bytes(), url=bad)
        assert resp.status_code == 403, (what, resp.status_code, resp.text)
        assert resp.json()["error"]["message"], what
    assert media_files(service, asset["id"]) == [], "a refused upload leaves nothing on disk"
    assert api.post(f"/v1/assets/{asset['id']}/parts/video/complete").status_code == 409
    # the genuine URL still works
    assert put(target, clip.read_bytes()).status_code == 200


@pytest.fixture
def small_upload_service(tmp_path: Path, clip: Path):
    svc = start_service(tmp_path / "small", max_upload_bytes=clip.stat().st_size + 100)
    yield svc
    svc.stop()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_upload_over_the_limit_is_413_and_leaves_nothing(small_upload_service, clip, chunked):
    svc = small_upload_service
    too_big = clip.read_bytes() + b"\0" * 50_000
    with svc.client() as api:
        asset = create(api)
        target = asset["upload"]["video"]
        if chunked:
            content: Any = (too_big[i : i + 8192] for i in range(0, len(too_big), 8192))
        else:
            content = too_big
        try:
            resp = put(target, content)
        except httpx.HTTPError:
            resp = None  # the server may close the connection while a chunked body is still going
        if resp is not None:
            assert resp.status_code == 413, resp.text
            assert resp.json()["error"]["code"] == "payload_too_large"
        wait_for(lambda: {"files": media_files(svc, asset["id"])}, lambda d: d["files"] == [], timeout=5)
        assert api.post(f"/v1/assets/{asset['id']}/parts/video/complete").status_code == 409
        # the part can still be uploaded, within the limit
        upload_part(api, asset, "video", clip)
        ready = wait_state(api, asset["id"])
        assert ready["state"] == "ready", ready


def test_junk_bytes_fail_with_invalid_media(service, api, tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video at all " * 500)
    failed = ready_asset(api, junk)
    assert failed["state"] == "failed", failed
    assert failed["cuttable"] is False
    assert failed["error"]["code"] == "invalid_media"
    message = failed["error"]["message"]
    assert 10 < len(message) < 500 and "Traceback" not in message
    assert str(service.settings.data_dir) not in message, "no server paths in messages"
    assert [c for c in charges(api) if c["asset_id"] == failed["id"]] == [], "junk costs no credit"


def test_truncated_mp4_fails(api, clip, tmp_path):
    cut_short = truncate_file(clip, tmp_path / "short.mp4", 0.4)
    failed = ready_asset(api, cut_short)
    assert failed["state"] == "failed", failed
    assert failed["error"]["code"] == "invalid_media"
    assert failed["error"]["message"]


def test_audio_part_that_is_not_audio_fails(api, tmp_path):
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"\x00\x01" * 4000)
    failed = ready_asset(api, junk, kind="audio")
    assert failed["state"] == "failed", failed
    assert failed["error"]["code"] == "invalid_media"


# -- client audio ----------------------------------------------------------------------------------


def test_client_audio_is_cuttable_before_the_video_arrives(api, clip, short_audio):
    asset = create(api, filename="phone.mp4", client_audio=True)
    upload_part(api, asset, "audio", short_audio, complete=False)
    done = api.post(f"/v1/assets/{asset['id']}/parts/audio/complete")
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "uploading", "the video part is still to come: never `processing` yet"
    assert set(done.json()["upload"]) == {"video"}
    seen = set()

    def watch(a: dict) -> bool:
        seen.add(a["state"])
        return a["cuttable"] or a["state"] == "failed"

    early = wait_state(api, asset["id"], watch)
    assert seen == {"uploading"}, f"the state only moves forward: {seen}"
    assert early["cuttable"] is True, early
    assert early["state"] == "uploading", "the video part is still to come"
    assert set(early["upload"] or {}) == {"video"}, "only the video part awaits its upload"
    assert early["audio"]["channels"] == 1
    # a cut is accepted at once (the asset is cuttable) while the video is still uploading
    cut = api.post(f"/v1/assets/{asset['id']}/cuts", json={"segments": [{"start": 0.5, "end": 1.5}]})
    assert cut.status_code == 201, cut.text

    upload_part(api, asset, "video", clip)
    ready = wait_state(api, asset["id"])
    assert ready["state"] == "ready", ready
    assert ready["cuttable"] is True
    assert (ready["video"]["width"], ready["video"]["height"]) == (640, 360)
    assert ready["audio"]["channels"] == 1, "the client's audio part is the asset's audio"
    assert len([c for c in charges(api) if c["asset_id"] == asset["id"]]) == 1, "one charge for both parts"


# -- credits ---------------------------------------------------------------------------------------


def test_payment_required_resumes_by_itself_when_credit_is_granted(service, clip, song):
    account_id, key = new_account(service)
    with service.client(key) as api:
        assert api.get("/v1/credits").json() == {"balance": 0, "entries": []}
        waiting = ready_asset(api, clip)
        assert waiting["state"] == "payment_required", waiting
        assert waiting["cuttable"] is False
        assert api.get("/v1/credits").json()["balance"] == 0
        # it stays waiting: no charge can be paid, nothing is processed
        assert get(api, waiting["id"])["state"] == "payment_required"
        cut = api.post(f"/v1/assets/{waiting['id']}/cuts", json={"segments": [{"start": 0, "end": 1}]})
        assert cut.status_code == 409 and cut.json()["error"]["code"] == "asset_payment_required"

        grant(service, account_id, 1)
        ready = wait_state(api, waiting["id"], lambda a: a["state"] not in ("payment_required", "processing"))
        assert ready["state"] == "ready", ready
        assert ready["cuttable"] is True
        assert ready["video"]["width"] == 640

        credits = api.get("/v1/credits").json()
        assert credits["balance"] == 0
        first = [c for c in credits["entries"] if c["type"] == "charge"]
        assert len(first) == 1 and first[0]["asset_id"] == waiting["id"] and first[0]["amount"] == -1

        # a second asset, with a second credit: charged once, and the first is not charged again
        grant(service, account_id, 1)
        second = ready_asset(api, song, kind="audio")
        assert second["state"] == "ready", second
        by_asset = [c["asset_id"] for c in charges(api)]
        assert sorted(by_asset) == sorted([waiting["id"], second["id"]]), by_asset
        assert api.get("/v1/credits").json()["balance"] == 0

        # a third asset with no credit left waits, and does not touch the others
        third = ready_asset(api, song, kind="audio")
        assert third["state"] == "payment_required"
        assert get(api, waiting["id"])["state"] == "ready"
        assert len(charges(api)) == 2


# -- delete ---------------------------------------------------------------------------------------


def test_deleting_an_asset_while_it_is_processing_leaves_no_media(service, api, clip, monkeypatch):
    import threading

    from roughy.app import processing

    real_probe = processing.probe
    started, release = threading.Event(), threading.Event()

    def held_probe(path: str, *limits):  # type: ignore[no-untyped-def]
        started.set()
        release.wait(20)
        return real_probe(path, *limits)

    monkeypatch.setattr(processing, "probe", held_probe)
    asset = create(api)
    try:
        upload_part(api, asset, "video", clip)
        assert started.wait(10), "processing started"
        assert api.delete(f"/v1/assets/{asset['id']}").status_code == 204
        assert api.get(f"/v1/assets/{asset['id']}").status_code == 404
    finally:
        release.set()
    # the worker finishes its probe and audio extraction for an asset that is gone
    wait_for(lambda: {"idle": service.assets.idle}, lambda d: d["idle"], timeout=20)
    assert media_files(service, asset["id"]) == [], "nothing of a deleted asset stays on disk"
    assert api.get(f"/v1/assets/{asset['id']}").status_code == 404, "and it is not resurrected"


def test_delete_asset_removes_it_and_its_media(service, api, clip):
    ready = ready_asset(api, clip)
    assert ready["state"] == "ready"
    cut = api.post(f"/v1/assets/{ready['id']}/cuts", json={"segments": [{"start": 0, "end": 1}]})
    assert cut.status_code == 201
    files = media_files(service, ready["id"])
    assert files, "the upload and the extracted audio are on disk"

    resp = api.delete(f"/v1/assets/{ready['id']}")
    assert resp.status_code == 204 and resp.content == b""
    assert api.get(f"/v1/assets/{ready['id']}").status_code == 404
    assert api.delete(f"/v1/assets/{ready['id']}").status_code == 404
    assert api.get(f"/v1/cuts/{cut.json()['id']}").status_code == 404, "its cuts go with it"
    assert api.get("/v1/assets").json()["data"] == []
    assert media_files(service, ready["id"]) == []


@pytest.mark.embedded_only(
    "the API's own upload route refuses a deleted asset's URL; an S3 presigned PUT stays valid until it expires"
)
def test_delete_an_uploading_asset_removes_its_uploaded_part(service, api, clip):
    asset = create(api)
    assert put(asset["upload"]["video"], clip.read_bytes()).status_code == 200
    assert media_files(service, asset["id"])
    assert api.delete(f"/v1/assets/{asset['id']}").status_code == 204
    assert media_files(service, asset["id"]) == []
    # its upload URL no longer accepts anything
    resp = put(asset["upload"]["video"], clip.read_bytes())
    assert resp.status_code == 404, resp.text
    assert media_files(service, asset["id"]) == []


def test_completing_the_video_while_the_audio_part_is_processing_is_not_lost(
    service, api, clip, short_audio, monkeypatch
):
    """The client completes its video part while the worker is still busy with the audio part
    (a slow probe, as over a network): the completion must survive the worker's write-back,
    and the asset must end ready rather than stuck in `uploading`."""
    import threading

    from roughy.app import processing

    real_probe = processing.probe
    audio_started = threading.Event()

    def slow_audio_probe(path: str, *limits):  # type: ignore[no-untyped-def]
        if path.split("?")[0].endswith("/audio"):  # a path, or a presigned URL
            audio_started.set()
            threading.Event().wait(0.6)
        return real_probe(path, *limits)

    monkeypatch.setattr(processing, "probe", slow_audio_probe)
    asset = create(api, filename="phone.mp4", client_audio=True)
    assert put(asset["upload"]["video"], clip.read_bytes()).status_code == 200
    upload_part(api, asset, "audio", short_audio)
    assert audio_started.wait(10), "the audio part is being processed"
    done = api.post(f"/v1/assets/{asset['id']}/parts/video/complete")
    assert done.status_code == 200, done.text
    assert done.json()["upload"] is None

    final = wait_state(api, asset["id"], lambda a: a["state"] in ("ready", "failed"), timeout=15)
    assert final["state"] == "ready", final
    assert final["video"] is not None and final["cuttable"] is True
