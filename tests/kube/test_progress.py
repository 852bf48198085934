"""Progress without polling (issue 10, items 1 and 4), on the no-cluster stack: the encoder pod
reports to the API over HTTP with its render's token and asks the API for its URLs; the
operator reads no pod log and makes no call for a running render between its Job's events.

Requests are told apart by who made them: the stack's API and operator Kubernetes clients
send their own User-Agent, kopf sends its own (`kopf/...`), the FakeKubelet the client's default.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import httpx

from roughy.kube import crd
from roughy.kube.jobs import credentials_secret_name
from tests.conftest import ready_asset, wait_for
from tests.kube.stack import NAMESPACE, KubeService
from tests.kube.test_operator import finished, render_of, the_render_resource
from tests.media import make_video

OPERATOR_AGENTS = ("roughy-operator", "kopf")


def requests(service: KubeService, since: int = 0) -> list[Any]:
    return service.kube.call(lambda emulator: list(emulator._requests[since:]))


def by_operator(request: Any) -> bool:
    return str(request.headers.get("User-Agent", "")).startswith(OPERATOR_AGENTS)


def is_watch(request: Any) -> bool:
    return request.params.get("watch") in ("true", "1")


def long_render(service: KubeService, api: httpx.Client, tmp_path: Path) -> dict[str, Any]:
    """A 1080p render of a 60 s source: it runs for seconds here, time to watch it run."""
    source = ready_asset(api, make_video(tmp_path / "long.mp4", duration=60.0, width=1920, height=1080, fps=25))
    assert source["state"] == "ready", source
    body = {"asset_id": source["id"], "output": {"format": "mp4", "resolution": "1080p"}}
    return api.post("/v1/renders", json=body).json()  # type: ignore[no-any-return]


def test_a_running_render_costs_the_operator_nothing_and_its_progress_comes_over_http(
    kube_service: KubeService, api: httpx.Client, tmp_path: Path
) -> None:
    start = len(requests(kube_service))
    render = long_render(kube_service, api, tmp_path)
    moving = wait_for(lambda: render_of(api, render["id"]), lambda r: r["progress"] >= 0.05, timeout=90)
    assert moving["state"] == "running"
    mark = len(requests(kube_service))
    time.sleep(2.0)
    assert render_of(api, render["id"])["state"] == "running", "the render must still run: a longer source"
    window = [r for r in requests(kube_service, mark) if by_operator(r) and not is_watch(r)]
    # The sweep's one list of unfinished Renders (every 0.3 s here) is all the operator does.
    assert all(r.method.value.upper() == "GET" and r.name is None and r.resource.plural == crd.PLURAL for r in window)
    token = channel_checks(kube_service, render["id"])  # while it runs
    done = finished(api, render["id"], timeout=120)
    assert done["state"] == "completed", done
    with httpx.Client(timeout=30) as http:  # a finished render's token opens nothing any more
        late = http.post(f"{kube_service.url}/internal/v1/renders/{render['id']}/progress", json={"progress": 0.5},
                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert late.status_code == 409 and late.json()["error"]["code"] == "invalid_state"
    assert "/internal/" not in str(api.get("/openapi.json").json()["paths"])

    made = requests(kube_service, start)
    assert not [r for r in made if r.subresource == "log"], "nobody reads a pod log"
    resource = the_render_resource(kube_service, render["id"])
    assert resource is not None
    name = resource["metadata"]["name"]
    writes = [r for r in made if r.resource is not None and r.resource.plural == crd.PLURAL
              and r.name == name and r.subresource == "status" and r.method.value.upper() == "PATCH"]  # fmt: skip
    by_api = [r for r in writes if str(r.headers.get("User-Agent", "")).startswith("roughy-api")]
    # About ten progress steps (and the encoder) from the API; the operator writes transitions.
    assert 2 <= len(by_api) <= 11 and len(writes) - len(by_api) <= 5, (len(by_api), len(writes))
    percents = [r.data["status"]["progressPercent"] for r in by_api]
    assert all(p % 10 == 0 for p in percents) and percents == sorted(percents)
    assert by_api[0].data["status"]["encoder"] == "libx264"
    assert resource["status"]["progressPercent"] == 100 and resource["status"]["encoder"] == "libx264"


def channel_checks(service: KubeService, render_id: str) -> str:
    """The render's token (from its Secret, owned by its Render) opens its URLs, and only its."""
    resource = the_render_resource(service, render_id)
    assert resource is not None
    secret = service.kube.object("secrets", NAMESPACE, credentials_secret_name(resource["metadata"]["name"]))
    assert secret is not None and secret["metadata"]["ownerReferences"][0]["uid"] == resource["metadata"]["uid"]
    token = base64.b64decode(secret["data"]["token"]).decode()
    base = f"{service.url}/internal/v1/renders/{render_id}"
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=30) as http:
        assert http.post(f"{base}/inputs").status_code == 401
        wrong = http.post(f"{base}/inputs", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
        assert http.post(f"{service.url}/internal/v1/renders/rnd_other/inputs", headers=auth).status_code == 401
        inputs = http.post(f"{base}/inputs", headers=auth).json()
        assert http.get(inputs["video"], headers={"Range": "bytes=0-99"}).status_code == 206  # a working GET
        bad = http.post(f"{base}/output", json={"chunk": 3}, headers=auth)
        assert bad.status_code == 422 and bad.json()["error"]["param"] == "chunk"
    return token
