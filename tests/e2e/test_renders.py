"""Renders on the cluster: API -> Render -> operator -> encoder Job -> S3 -> status -> download,
what `kubectl get renders` shows, and a cancel that leaves neither Job nor output behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from tests.e2e import cluster
from tests.e2e.cluster import items, kubectl, wait_until
from tests.e2e.flow import ready_asset, render_resource, start_render, stored, wait_render

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(cluster.skip_reason() is not None, reason=str(cluster.skip_reason()))]


@pytest.mark.timeout(1200)
def test_a_render_from_upload_to_download(api: httpx.Client, s3: Any, clip: Path, tmp_path: Path) -> None:
    asset = ready_asset(api, clip)
    render = start_render(api, {"asset_id": asset["id"], "output": {"format": "mp4"}})
    done = wait_render(api, render["id"], ("completed", "failed"))
    assert done["state"] == "completed", done

    # What a platform engineer sees.
    resource = render_resource(render["id"])
    assert resource is not None, "the Render is kept for config.renderRetention after it completes"
    name = resource["metadata"]["name"]
    assert name.startswith("r-") and resource["status"]["state"] == "completed"
    table = kubectl("get", "renders")
    header, *rows = table.splitlines()
    assert "STATE" in header
    assert any(row.split()[0] == name and "completed" in row.split() for row in rows), table

    # The encoder Job that made it, in a pod that satisfied the restricted policy.
    jobs = items("jobs", "--selector", f"roughy.ai/render={render['id']}")
    assert [job["status"].get("succeeded") for job in jobs] == [1], jobs
    pod_spec = jobs[0]["spec"]["template"]["spec"]
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["serviceAccountName"] == f"{cluster.RELEASE}-encoder"

    # The output is in the bucket and downloads through the signed URL.
    assert stored(s3, resource["spec"]["outputKey"])
    fetched = httpx.get(done["download_url"], timeout=120, follow_redirects=True)
    assert fetched.status_code == 200, fetched.text[:500]
    output = tmp_path / "out.mp4"
    output.write_bytes(fetched.content)
    assert fetched.content[4:8] == b"ftyp"
    with av.open(str(output)) as container:
        assert container.streams.video and container.streams.audio
        assert abs(float(container.duration or 0) / av.time_base - 3.0) < 0.2


@pytest.mark.timeout(1200)
def test_cancel_a_running_render(api: httpx.Client, s3: Any, long_clip: Path) -> None:
    asset = ready_asset(api, long_clip)
    render = start_render(api, {"asset_id": asset["id"], "output": {"format": "mp4", "resolution": "720p"}})
    selector = f"roughy.ai/render={render['id']}"

    def encoding() -> bool:
        pods = items("pods", "--selector", selector)
        return any(pod["status"].get("phase") == "Running" for pod in pods)

    wait_until(encoding, 600, f"the encoder pod of {render['id']} to run")
    resource = render_resource(render["id"])
    assert resource is not None
    name, output_key = resource["metadata"]["name"], resource["spec"]["outputKey"]
    before = api.get(f"/v1/renders/{render['id']}").json()
    assert before["state"] not in ("completed", "failed"), "the encode ended before the cancel: lengthen long_clip"

    deleted = api.delete(f"/v1/renders/{render['id']}")
    assert deleted.status_code == 204, deleted.text
    assert api.get(f"/v1/renders/{render['id']}").status_code == 404

    def gone() -> bool:
        left = kubectl("get", "render", name, "--ignore-not-found").strip()
        return not left and not items("jobs", "--selector", selector) and not items("pods", "--selector", selector)

    wait_until(gone, 120, f"the Render {name}, its Job and its pod to be gone")
    assert not stored(s3, output_key), f"{output_key} is still in the bucket"
