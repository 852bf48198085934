"""S3 fixtures: moto's server over real HTTP on loopback (one per session), a bucket, and an
`S3Storage` built from settings the way the Kubernetes runtime builds it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest

from roughy.adapters.storage.s3 import MiB, S3Storage, client_config
from roughy.settings import Settings
from tests.storage.s3server import StrictS3Server

BUCKET = "roughy-media"
CREDENTIALS = {"testing-key": "testing-secret"}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[StrictS3Server]:
    with pytest.MonkeyPatch.context() as mp:
        # boto3's credential chain finds these dummies; no profile or proxy from the machine.
        mp.setenv("AWS_ACCESS_KEY_ID", "testing-key")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            mp.delenv(name, raising=False)
        server = StrictS3Server(CREDENTIALS)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def s3_settings(s3_server: StrictS3Server) -> Settings:
    return Settings(
        s3_bucket=BUCKET,
        s3_endpoint_url=s3_server.url,
        s3_addressing_style="path",
        s3_multipart_threshold=5 * MiB,
        s3_multipart_part_size=5 * MiB,
        s3_max_attempts=2,
    )


@pytest.fixture(scope="session")
def s3(s3_server: StrictS3Server) -> Any:
    """A plain boto3 client, to set up and to look behind the adapter's back."""
    client = boto3.client(
        "s3", endpoint_url=s3_server.url, region_name="us-east-1", config=client_config(addressing_style="path")
    )
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(scope="session")
def storage(s3_settings: Settings, s3: Any) -> S3Storage:
    return S3Storage.from_settings(s3_settings)


@pytest.fixture
def root() -> str:
    """A key folder of this test's own, so tests share the session's bucket without meeting."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=30) as client:
        yield client
