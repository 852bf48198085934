"""`helm uninstall`: the pre-delete hook drains every Render while the operator still runs, so
nothing is left behind with a finalizer nobody will remove, and finished outputs are kept (the
database still lists those renders). Runs last (file order): it removes the release, and
deploy.sh installs it again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import cluster
from tests.e2e.cluster import NAMESPACE, RELEASE, items, kubectl, run, wait_until
from tests.e2e.flow import ready_asset, render_resource, start_render, stored, wait_render

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(cluster.skip_reason() is not None, reason=str(cluster.skip_reason()))]


@pytest.mark.timeout(1500)
def test_uninstall_drains_every_render_and_keeps_finished_outputs(api: httpx.Client, s3: Any, clip: Path) -> None:
    asset = ready_asset(api, clip)
    finished = start_render(api, {"asset_id": asset["id"], "output": {"format": "m4a"}})
    assert wait_render(api, finished["id"], ("completed", "failed"))["state"] == "completed"
    resource = render_resource(finished["id"])
    assert resource is not None
    output_key = resource["spec"]["outputKey"]
    start_render(api, {"asset_id": asset["id"], "output": {"format": "mp3"}})  # likely still in flight

    run("helm", "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", "15m", timeout=1000)

    assert items("renders") == [], "the drain hook deleted every Render and the operator finalized them"
    wait_until(lambda: not items("jobs"), 120, "every Job (encoders, hooks) to be gone")
    wait_until(lambda: not items("pods"), 180, "every pod of the release to be gone")
    assert stored(s3, output_key), "a drain keeps the outputs of finished renders"
    assert kubectl("get", "serviceaccount", f"{RELEASE}-drain", "--ignore-not-found").strip() == ""
    assert kubectl("get", "crd", "renders.roughy.ai", "--ignore-not-found").strip(), "Helm never deletes crds/"
