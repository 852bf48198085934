"""Fixtures of the kind suite: port-forwards to the API and to S3, an account with credit, media.

Every module of the suite is marked `e2e` and skipped, with the reason, unless ROUGHY_E2E=1 and
kind, kubectl, helm and docker are on PATH (tests/e2e/cluster.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import cluster
from tests.media import ffmpeg, tone_source

API_URL = cluster.VALUES["config"]["publicUrl"]
S3_URL = cluster.VALUES["s3"]["publicEndpointUrl"]
ADMIN_KEY = cluster.VALUES["adminKey"]["value"]


@pytest.fixture(scope="session")
def api_forward() -> Iterator[cluster.PortForward]:
    forward = cluster.PortForward(cluster.NAMESPACE, f"{cluster.RELEASE}-api", cluster.local_port(API_URL), 8000)
    yield forward.start()
    forward.stop()


@pytest.fixture(scope="session")
def s3_forward() -> Iterator[cluster.PortForward]:
    forward = cluster.PortForward(cluster.DEPS_NAMESPACE, "moto", cluster.local_port(S3_URL), 5000)
    yield forward.start()
    forward.stop()


@pytest.fixture(scope="session")
def s3(s3_forward: cluster.PortForward) -> Any:
    """boto3 at the public endpoint, with the release's credentials: to look at what is stored."""
    import boto3
    from botocore.config import Config

    values = cluster.VALUES["s3"]
    return boto3.client(
        "s3",
        endpoint_url=S3_URL,
        region_name=values["region"],
        aws_access_key_id=values["accessKeyId"],
        aws_secret_access_key=values["secretAccessKey"],
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture(scope="session")
def api(api_forward: cluster.PortForward, s3_forward: cluster.PortForward) -> Iterator[httpx.Client]:
    """A client of a new account with 20 credits, made through the admin API."""
    with httpx.Client(base_url=API_URL, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60) as admin:
        account = admin.post("/v1/admin/accounts", json={"name": "e2e"})
        assert account.status_code == 201, account.text
        account_id = account.json()["id"]
        key = admin.post(f"/v1/admin/accounts/{account_id}/api_keys")
        assert key.status_code == 201, key.text
        grant = admin.post(f"/v1/admin/accounts/{account_id}/credits", json={"amount": 20, "reason": "e2e"})
        assert grant.status_code == 201, grant.text
    with httpx.Client(base_url=API_URL, headers={"Authorization": f"Bearer {key.json()['key']}"}, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def long_clip(media_dir: Path) -> Path:
    """150 s of 720p30 that is ~4 MB to upload (testsrc, high CRF) but a real encode (~50 s on
    two cores here): the render to cancel is still running when it is cancelled."""
    path = media_dir / "long.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=1280x720:rate=30:duration=150",
        "-f", "lavfi", "-i", tone_source(2, 150),
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "40", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
        str(path),
    )  # fmt: skip
    return path
