"""Cuts end to end (SPEC 4): explicit and silence-derived segments, validation, gates, list, delete."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Service, ready_asset, start_service, upload_part, wait_for
from tests.media import make_tones_with_silences

FINAL = ("completed", "failed")


def post_cut(api: httpx.Client, asset_id: str, body: Any) -> httpx.Response:
    return api.post(f"/v1/assets/{asset_id}/cuts", json=body)


def finished_cut(api: httpx.Client, asset_id: str, body: dict, timeout: float = 30) -> dict:
    resp = post_cut(api, asset_id, body)
    assert resp.status_code == 201, resp.text
    cut = resp.json()
    return wait_for(lambda: api.get(f"/v1/cuts/{cut['id']}").json(), lambda c: c["state"] in FINAL, timeout)


def spans(cut: dict) -> list[tuple[float, float]]:
    return [(s["start"], s["end"]) for s in cut["segments"]]


def assert_409(resp: httpx.Response, code: str) -> None:
    assert resp.status_code == 409, resp.text
    assert resp.json()["error"]["code"] == code, resp.text
    assert resp.json()["error"]["message"]


@pytest.fixture
def video(api: httpx.Client, clip: Path) -> dict:
    asset = ready_asset(api, clip)
    assert asset["state"] == "ready", asset
    return asset


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory):
    """One service and one ready 3 s clip for the checks that only read or add cuts."""
    svc = start_service(tmp_path_factory.mktemp("shared") / "data")
    yield svc
    svc.stop()


@pytest.fixture
def shared_api(shared: Service):
    with shared.client() as client:
        yield client


@pytest.fixture(scope="module")
def shared_video(shared: Service, clip: Path) -> dict:
    with shared.client() as client:
        asset = ready_asset(client, clip)
    assert asset["state"] == "ready", asset
    return asset


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tone 1 s, silence 1 s, tone 1 s, silence 1 s, tone 1 s (5 s of audio)."""
    pattern = [("tone", 1.0), ("silence", 1.0), ("tone", 1.0), ("silence", 1.0), ("tone", 1.0)]
    return make_tones_with_silences(tmp_path_factory.mktemp("tones") / "tones.wav", pattern)


@pytest.fixture(scope="module")
def tones_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pattern = [("tone", 1.0), ("silence", 1.0), ("tone", 1.0), ("silence", 1.0), ("tone", 1.0)]
    return make_tones_with_silences(tmp_path_factory.mktemp("tones") / "tones.mp4", pattern, video=True)


# -- explicit segments -----------------------------------------------------------------------------


def test_explicit_segments_complete_sorted(api, video):
    # values on the source's 25 fps grid come back as given
    created = post_cut(api, video["id"], {"segments": [{"start": 2.0, "end": 2.6}, {"start": 0.4, "end": 1}]})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"].startswith("cut_") and body["object"] == "cut"
    assert body["asset_id"] == video["id"]
    assert body["method"] == "segments"
    assert body["state"] in ("pending", "processing", "completed")
    assert body["created_at"]

    cut = wait_for(lambda: api.get(f"/v1/cuts/{body['id']}").json(), lambda c: c["state"] in FINAL)
    assert cut["state"] == "completed", cut
    assert cut["error"] is None
    assert spans(cut) == [(0.4, 1.0), (2.0, 2.6)]


def test_segments_are_snapped_to_frames_and_clamped_to_the_source(shared_api, shared_video):
    api, video = shared_api, shared_video
    # 25 fps source: 0.51 -> 0.52 (the nearest frame); an end a hair past the end is the end
    cut = finished_cut(api, video["id"], {"segments": [{"start": 0.51, "end": 1.0}, {"start": 2.0, "end": 3.01}]})
    assert cut["state"] == "completed", cut
    (s1, e1), (s2, e2) = spans(cut)
    assert s1 == pytest.approx(0.52, abs=1e-6) and e1 == pytest.approx(1.0, abs=1e-6)
    assert s2 == pytest.approx(2.0, abs=1e-6)
    assert e2 <= video["duration"] + 1e-6 and e2 == pytest.approx(3.0, abs=0.05)
    for start, end in spans(cut):
        assert end - start >= 0.04 - 1e-6, "each segment is at least one frame"


@pytest.mark.parametrize(
    "segments",
    [[{"start": 2.5, "end": 10.0}], [{"start": 5.0, "end": 6.0}], [{"start": 0, "end": 1}, {"start": 3.5, "end": 4}]],
    ids=["ends-beyond", "starts-beyond", "second-beyond"],
)
def test_segments_beyond_the_source_fail_the_cut_clearly(shared_api, shared_video, segments):
    api, video = shared_api, shared_video
    cut = finished_cut(api, video["id"], {"segments": segments})
    assert cut["state"] == "failed", cut
    assert cut["error"]["code"] == "segments_out_of_range"
    message = cut["error"]["message"]
    assert "end" in message and ("3.0" in message or "3 s" in message), message


# -- structural validation (422 at creation) -------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"segments": [{"start": 2, "end": 1}]}, "segments[0]"),
        ({"segments": [{"start": 1, "end": 1}]}, "segments[0]"),
        ({"segments": [{"start": -1, "end": 1}]}, "segments[0].start"),
        ({"segments": [{"start": 0, "end": 1}, {"start": 0.5, "end": 2}]}, "segments[1]"),
        ({"segments": [{"start": 2, "end": 3}, {"start": 0, "end": 2.5}]}, ("segments[0]", "segments[1]")),
        ({"segments": [{"start": "1.5", "end": 2}]}, "segments[0].start"),
        ({"segments": [{"start": 0, "end": "two"}]}, "segments[0].end"),
        ({"segments": [{"start": True, "end": 2}]}, "segments[0].start"),
        ({"segments": [{"start": None, "end": 2}]}, "segments[0].start"),
        ({"segments": [{"start": 0}]}, "segments[0].end"),
        ({"segments": [{"start": 0, "end": 1, "label": "x"}]}, "segments[0].label"),
        ({"segments": [[0, 1]]}, "segments[0]"),
        ({"segments": "0-1"}, "segments"),
        ({"segments": []}, "segments"),
        ({}, "segments"),
        ({"segments": None}, "segments"),
        ({"segments": [{"start": 0, "end": 1}], "method": "silence"}, "segments"),
        ({"method": "music"}, "method"),
        ({"method": "silence", "min_silence": 0}, "min_silence"),
        ({"method": "silence", "threshold_db": 5}, "threshold_db"),
        ({"method": "silence", "padding": -0.1}, "padding"),
        ({"method": "silence", "padding": "0.1"}, "padding"),
        ({"method": "silence", "colour": "red"}, "colour"),
    ],
)
def test_broken_cut_bodies_are_422_with_param(shared_api, shared_video, body, param):
    api, video = shared_api, shared_video
    before = api.get(f"/v1/assets/{video['id']}/cuts", params={"limit": 100}).json()["data"]
    resp = post_cut(api, video["id"], body)
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    assert err["code"] == "validation_error"
    assert err["param"] in (param if isinstance(param, tuple) else (param,)), err
    assert err["message"]
    after = api.get(f"/v1/assets/{video['id']}/cuts", params={"limit": 100}).json()["data"]
    assert after == before, "nothing was created"


def test_cut_body_that_is_not_an_object_is_400(shared_api, shared_video):
    api, video = shared_api, shared_video
    resp = api.post(f"/v1/assets/{video['id']}/cuts", content=b"[1, 2]", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "bad_request"


def test_cut_of_a_missing_asset_is_404(api):
    resp = post_cut(api, "ast_missing", {"segments": [{"start": 0, "end": 1}]})
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    resp = api.get("/v1/assets/ast_missing/cuts")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"


# -- silence ---------------------------------------------------------------------------------------


def _check_tones(cut: dict, duration: float, padding: float) -> None:
    assert cut["state"] == "completed", cut
    assert cut["method"] == "silence"
    got = spans(cut)
    want = [(0.0, 1.0 + padding), (2.0 - padding, 3.0 + padding), (4.0 - padding, duration)]
    assert len(got) == 3, got
    for (gs, ge), (ws, we) in zip(got, want, strict=True):
        assert gs == pytest.approx(ws, abs=0.1) and ge == pytest.approx(we, abs=0.1), (got, want)
    kept = sum(e - s for s, e in got)
    assert kept == pytest.approx(3.0 + 4 * padding, abs=0.25), "the silences are dropped, the tones kept"


def test_silence_cut_keeps_the_tones_of_an_audio_asset(api, tones):
    asset = ready_asset(api, tones, kind="audio")
    assert asset["state"] == "ready", asset
    assert asset["duration"] == pytest.approx(5.0, abs=0.05)
    cut = finished_cut(api, asset["id"], {"method": "silence", "min_silence": 0.5, "threshold_db": -35, "padding": 0.1})
    _check_tones(cut, asset["duration"], 0.1)


def test_silence_cut_of_a_video_asset_uses_its_audio_and_frame_grid(api, tones_video):
    asset = ready_asset(api, tones_video)
    assert asset["state"] == "ready", asset
    cut = finished_cut(api, asset["id"], {"method": "silence", "padding": 0.2})
    _check_tones(cut, asset["duration"], 0.2)
    for start, end in spans(cut):
        for t in (start, end):
            if t < asset["duration"] - 0.04:
                assert abs(t / 0.04 - round(t / 0.04)) < 1e-3, f"{t} is on the 25 fps frame grid"


def test_silence_at_the_start_and_end_is_dropped_without_slivers(api, tmp_path):
    """Padding keeps silence next to kept sound; at the file's edges there is no sound to pad,
    so a leading or trailing silence goes entirely (no 0.1 s segments of nothing)."""
    pattern = [("silence", 1.0), ("tone", 1.0), ("silence", 1.0), ("tone", 1.0), ("silence", 1.0)]
    path = make_tones_with_silences(tmp_path / "edges.wav", pattern)
    asset = ready_asset(api, path, kind="audio")
    cut = finished_cut(api, asset["id"], {"method": "silence", "padding": 0.1})
    assert cut["state"] == "completed", cut
    got = spans(cut)
    assert len(got) == 2, got
    for (gs, ge), (ws, we) in zip(got, [(0.9, 2.1), (2.9, 4.1)], strict=True):
        assert gs == pytest.approx(ws, abs=0.1) and ge == pytest.approx(we, abs=0.1), got


def test_silence_cut_with_defaults_and_long_min_silence_keeps_everything(api, tones):
    asset = ready_asset(api, tones, kind="audio")
    cut = finished_cut(api, asset["id"], {"method": "silence", "min_silence": 1.5})
    assert cut["state"] == "completed", cut
    assert spans(cut) == [(0.0, pytest.approx(asset["duration"], abs=1e-3))], "no silence is that long"


def test_silence_cut_of_a_silent_source_fails_clearly(api, tmp_path):
    silent = make_tones_with_silences(tmp_path / "silent.wav", [("silence", 2.0)])
    asset = ready_asset(api, silent, kind="audio")
    assert asset["state"] == "ready", asset
    cut = finished_cut(api, asset["id"], {"method": "silence"})
    assert cut["state"] == "failed", cut
    assert cut["error"]["code"] and "silent" in cut["error"]["message"]


# -- gates (409) -----------------------------------------------------------------------------------


def test_cut_while_the_asset_is_uploading_is_409_asset_processing(api):
    asset = api.post("/v1/assets", json={"kind": "video", "filename": "a.mp4"}).json()
    assert_409(post_cut(api, asset["id"], {"segments": [{"start": 0, "end": 1}]}), "asset_processing")
    assert_409(post_cut(api, asset["id"], {"method": "silence"}), "asset_processing")


def test_cut_while_the_asset_is_processing_is_409_asset_processing(api, clip, monkeypatch):
    from roughy.app import processing

    real_probe = processing.probe
    started, release = threading.Event(), threading.Event()

    def held_probe(path: str, *limits):  # type: ignore[no-untyped-def]
        started.set()
        release.wait(20)
        return real_probe(path, *limits)

    monkeypatch.setattr(processing, "probe", held_probe)
    asset = api.post("/v1/assets", json={"kind": "video", "filename": "a.mp4"}).json()
    try:
        upload_part(api, asset, "video", clip)
        assert started.wait(10)
        assert api.get(f"/v1/assets/{asset['id']}").json()["state"] == "processing"
        assert_409(post_cut(api, asset["id"], {"segments": [{"start": 0, "end": 1}]}), "asset_processing")
    finally:
        release.set()
    ready = wait_for(lambda: api.get(f"/v1/assets/{asset['id']}").json(), lambda a: a["state"] != "processing")
    assert ready["state"] == "ready"
    assert finished_cut(api, asset["id"], {"segments": [{"start": 0, "end": 1}]})["state"] == "completed"


def test_cut_of_an_asset_waiting_for_credit_is_409_payment_required(service: Service, clip):
    with service.admin() as admin:
        acct = admin.post("/v1/admin/accounts", json={"name": "broke"}).json()
        key = admin.post(f"/v1/admin/accounts/{acct['id']}/api_keys").json()["key"]
    with service.client(key) as api:
        asset = ready_asset(api, clip)
        assert asset["state"] == "payment_required", asset
        assert_409(post_cut(api, asset["id"], {"segments": [{"start": 0, "end": 1}]}), "asset_payment_required")
        assert_409(post_cut(api, asset["id"], {"method": "silence"}), "asset_payment_required")


def test_cut_of_a_failed_asset_is_409_asset_failed(api, tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"junk" * 2000)
    asset = ready_asset(api, junk)
    assert asset["state"] == "failed"
    assert_409(post_cut(api, asset["id"], {"segments": [{"start": 0, "end": 1}]}), "asset_failed")


def test_cut_of_a_client_audio_asset_completes_before_the_video_arrives(api, tones):
    asset = api.post("/v1/assets", json={"kind": "video", "filename": "p.mp4", "client_audio": True}).json()
    upload_part(api, asset, "audio", tones)
    wait_for(lambda: api.get(f"/v1/assets/{asset['id']}").json(), lambda a: a["cuttable"])
    cut = finished_cut(api, asset["id"], {"method": "silence"})
    assert cut["state"] == "completed", cut
    assert len(cut["segments"]) == 3
    assert api.get(f"/v1/assets/{asset['id']}").json()["state"] == "uploading"


# -- list and delete -------------------------------------------------------------------------------


def test_list_cuts_of_an_asset_newest_first(api, video, song):
    other = ready_asset(api, song, kind="audio")
    ids = [post_cut(api, video["id"], {"segments": [{"start": i / 10, "end": 1}]}).json()["id"] for i in range(5)]
    post_cut(api, other["id"], {"segments": [{"start": 0, "end": 1}]})
    listed = api.get(f"/v1/assets/{video['id']}/cuts").json()
    assert listed["object"] == "list" and listed["has_more"] is False
    assert [c["id"] for c in listed["data"]] == ids[::-1], "only this asset's cuts, newest first"
    page = api.get(f"/v1/assets/{video['id']}/cuts", params={"limit": 2}).json()
    assert [c["id"] for c in page["data"]] == ids[::-1][:2] and page["has_more"] is True
    rest = api.get(f"/v1/assets/{video['id']}/cuts", params={"limit": 10, "starting_after": ids[3]}).json()
    assert [c["id"] for c in rest["data"]] == ids[::-1][2:] and rest["has_more"] is False
    resp = api.get(f"/v1/assets/{video['id']}/cuts", params={"limit": 0})
    assert resp.status_code == 422 and resp.json()["error"]["param"] == "limit"


def test_delete_cut(api, video):
    cut = finished_cut(api, video["id"], {"segments": [{"start": 0, "end": 1}]})
    keep = finished_cut(api, video["id"], {"segments": [{"start": 1, "end": 2}]})
    resp = api.delete(f"/v1/cuts/{cut['id']}")
    assert resp.status_code == 204 and resp.content == b""
    gone = api.get(f"/v1/cuts/{cut['id']}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    assert api.delete(f"/v1/cuts/{cut['id']}").status_code == 404
    assert [c["id"] for c in api.get(f"/v1/assets/{video['id']}/cuts").json()["data"]] == [keep["id"]]
    assert api.get(f"/v1/assets/{video['id']}").json()["state"] == "ready", "the asset is untouched"
