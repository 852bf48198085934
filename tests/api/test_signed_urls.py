"""Signed URLs served by the API itself (embedded runtime): a signature covers the storage key
the route parsed from its own parameters, so no rewriting of the path, no encoded `#` and no
Host header makes one signed URL read or write another key (issue: another account's source
was served with `%23/../../../assets/<id>/video` and a Host-header trick)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.conftest import Service, finished_render, ready_asset, wait_for

pytestmark = pytest.mark.embedded_only("the API serves its own signed URLs only on local storage")


def victim_and_url(service: Service, clip) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    """Another account's asset id, and this account's own render download URL and upload URL."""
    with service.admin() as admin:
        acct = admin.post("/v1/admin/accounts", json={"name": "victim"}).json()
        key = admin.post(f"/v1/admin/accounts/{acct['id']}/api_keys").json()["key"]
        admin.post(f"/v1/admin/accounts/{acct['id']}/credits", json={"amount": 5})
    with service.client(key) as victim:
        secret = ready_asset(victim, clip)
    with service.client() as api:
        mine = ready_asset(api, clip)
        render = finished_render(api, {"asset_id": mine["id"], "output": {"format": "m4a"}})
        download = api.get(f"/v1/renders/{render['id']}").json()["download_url"]
        pending = api.post("/v1/assets", json={"kind": "video", "filename": "x.mp4"}).json()
    return secret["id"], download, pending["upload"]["video"]["url"]


def with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def test_a_download_url_reads_only_its_own_key(service: Service, clip) -> None:  # type: ignore[no-untyped-def]
    victim_asset, download, _upload = victim_and_url(service, clip)
    path = urlsplit(download).path
    assert httpx.get(download).status_code == 200
    for bad in (
        path + f"%23/../../../assets/{victim_asset}/video",
        path.rsplit("/", 3)[0] + f"/assets/{victim_asset}/video",
        f"/v1/files/assets/{victim_asset}/video",
        path + "/../../../../signing.key",
    ):
        resp = httpx.get(with_path(download, bad))
        assert resp.status_code in (401, 403, 404), (bad, resp.status_code)
        assert resp.status_code != 200 and b"ftyp" not in resp.content[:64]


def test_a_host_header_cannot_lend_a_signed_path_to_another_key(service: Service, clip) -> None:  # type: ignore[no-untyped-def]
    victim_asset, download, _upload = victim_and_url(service, clip)
    parts = urlsplit(download)
    victim_url = with_path(download, f"/v1/files/assets/{victim_asset}/video")
    # The request's path is the victim's key; a Host header ending in the signed path would make
    # a URL rebuilt from it (request.url) look like the signed one.
    resp = httpx.get(victim_url, headers={"Host": f"{parts.netloc}{parts.path}?{parts.query}#"})
    assert resp.status_code in (400, 403, 404), resp.status_code


def test_an_upload_url_writes_only_its_own_part(service: Service, clip) -> None:  # type: ignore[no-untyped-def]
    victim_asset, _download, upload = victim_and_url(service, clip)
    path = urlsplit(upload).path
    for bad in (
        path + f"%23/../../{victim_asset}/video",
        f"/v1/uploads/assets/{victim_asset}/video",
        path.replace("/video", "/audio"),
    ):
        resp = httpx.put(with_path(upload, bad), content=b"not a video")
        assert resp.status_code in (403, 404, 422), (bad, resp.status_code)
    media = service.stored_keys(f"assets/{victim_asset}")
    assert service.read_media(f"assets/{victim_asset}/video") != b"not a video" and media


def test_a_completed_part_cannot_be_replaced_by_an_upload_still_streaming(service: Service, clip, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Upload, start a second (slow) PUT, complete while it streams: the second is refused with
    409 when it ends, nothing of it is kept, and the asset is what the first upload was."""
    import threading

    from tests.media import make_video

    other = make_video(tmp_path / "other.mp4", duration=1.0, width=320, height=180, fps=25)
    with service.client() as api:
        asset = api.post("/v1/assets", json={"kind": "video", "filename": "a.mp4"}).json()
        target = asset["upload"]["video"]
        assert httpx.put(target["url"], content=clip.read_bytes()).status_code == 200
        sent_some, go_on = threading.Event(), threading.Event()
        replacement = other.read_bytes()

        def slow_body():  # type: ignore[no-untyped-def]
            yield replacement[:4096]
            sent_some.set()
            go_on.wait(20)
            yield replacement[4096:]

        answer: dict[str, httpx.Response] = {}
        putter = threading.Thread(target=lambda: answer.update(r=httpx.put(target["url"], content=slow_body())))
        putter.start()
        assert sent_some.wait(10)
        assert api.post(f"/v1/assets/{asset['id']}/parts/video/complete").status_code == 200
        go_on.set()
        putter.join(20)
        assert answer["r"].status_code == 409, answer["r"].text
        assert service.read_media(f"assets/{asset['id']}/video") == clip.read_bytes()
        assert not [k for k in service.stored_keys(f"assets/{asset['id']}") if k.endswith(".part")]
        ready = wait_for(lambda: api.get(f"/v1/assets/{asset['id']}").json(), lambda a: a["state"] != "processing")
        assert ready["state"] == "ready" and ready["video"]["width"] == 640, "the first upload, as probed"
