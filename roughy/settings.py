"""Settings, validated once at start-up and passed in (never read at import time)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROUGHY_", extra="ignore")

    data_dir: Path = Field(Path("./roughy-data"), description="Embedded data directory (SQLite file and media).")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the store; default: SQLite in the data directory."
    )
    public_url: str | None = Field(
        None, description="Base URL that signed upload and download links point at (default: http://HOST:PORT)."
    )
    host: str = Field("127.0.0.1", description="Address `roughy serve` listens on.")
    port: int = Field(8000, description="Port `roughy serve` listens on.")
    admin_key: str | None = Field(None, description="Enables the admin API, authenticated with this key.")
    starter_credits: int = Field(10, ge=0, description="Credits granted to the first account on first start.")
    webhook_allow_private: bool = Field(
        False, description="Allow http and loopback/private webhook targets (development only)."
    )
    webhook_timeout: float = Field(10.0, gt=0, description="Seconds a webhook receiver has to answer.")
    webhook_retry_base: float = Field(5.0, gt=0, description="Seconds before the first webhook retry (doubling).")
    webhook_retry_cap: float = Field(3600.0, gt=0, description="Longest wait between webhook retries.")
    webhook_retry_window: float = Field(
        26 * 3600.0, gt=0, description="Webhook retries stop once the event is older than this (seconds)."
    )
    webhook_disable_after: int = Field(
        100, ge=1, description="Consecutive failed attempts after which an endpoint is disabled."
    )
    webhook_secret_overlap: float = Field(
        86400.0, ge=0, description="Seconds the previous secret keeps signing after a rotation."
    )
    webhook_workers: int = Field(8, ge=1, description="Webhook deliveries in flight at once.")
    download_url_ttl: int = Field(900, gt=0, description="Seconds a signed download URL stays valid.")
    upload_url_ttl: int = Field(3600, gt=0, description="Seconds a signed upload URL stays valid.")
    max_upload_bytes: int = Field(5 * 1024**3, gt=0, description="Largest accepted upload part, in bytes.")
    max_body_bytes: int = Field(1024 * 1024, gt=0, description="Largest accepted JSON request body.")
    workers: int = Field(2, ge=1, description="Renders encoded at once by the embedded runtime.")
    asset_workers: int = Field(1, ge=1, description="Assets and cuts processed at once.")
    max_active_renders: int = Field(200, ge=1, description="Pending or running renders an account may have before 429.")
    max_uploading_assets: int = Field(
        50, ge=1, description="Assets an account may have waiting for an upload (state uploading) before 429."
    )
    chunk_parallelism: int = Field(
        1,
        ge=1,
        description="Chunks of one long render encoded at once by the embedded runtime; 1: no chunking.",
    )
    chunk_seconds: float = Field(60.0, gt=0, description="Length of a chunk of a chunked render, in seconds.")
    chunk_min_seconds: float = Field(300.0, ge=0, description="Shortest render that is chunked, in seconds.")
    max_source_pixels: int = Field(8192 * 4320, gt=0, description="Largest video frame of a source, in pixels.")
    max_source_seconds: float = Field(6 * 3600.0, gt=0, description="Longest source, in seconds.")
    max_source_channels: int = Field(16, gt=0, description="Most audio channels of a source.")
    upload_expiry: int = Field(
        86400, gt=0, description="Seconds an asset may wait for its uploads; then it fails (upload_expired)."
    )
    rate_limit_per_second: float = Field(50.0, gt=0, description="Requests per second per API key (burst 2x).")
    encode_timeout_base: float = Field(120.0, gt=0, description="Time limit of an encode: base seconds...")
    encode_timeout_factor: float = Field(20.0, gt=0, description="... plus this many per output second.")
    signing_key: str | None = Field(
        None, description="HMAC key for signed URLs; default: generated once into the data directory."
    )
    s3_bucket: str | None = Field(None, description="S3 bucket that holds media in the Kubernetes runtime.")
    s3_endpoint_url: str | None = Field(
        None, description="S3 API endpoint for S3-compatible stores (MinIO, Ceph, R2); default: AWS for the region."
    )
    s3_public_endpoint_url: str | None = Field(
        None,
        description="Endpoint that client-facing presigned URLs (uploads, downloads) name, when clients reach "
        "the store at another address than the cluster does; default: s3_endpoint_url.",
    )
    s3_region: str = Field("us-east-1", description="S3 region (part of every SigV4 signature).")
    s3_access_key_id: str | None = Field(
        None, description="S3 access key; default: boto3's credential chain (pod identity/IRSA, env, profile)."
    )
    s3_secret_access_key: str | None = Field(None, repr=False, description="S3 secret key, with s3_access_key_id.")
    s3_prefix: str = Field("", description="Key prefix inside the bucket (e.g. 'roughy/'), to share a bucket.")
    s3_addressing_style: Literal["auto", "virtual", "path"] = Field(
        "auto", description="S3 bucket addressing: 'path' for MinIO and most self-hosted stores."
    )
    s3_multipart_threshold: int = Field(
        16 * 1024**2, ge=0, le=5 * 1024**3, description="Streams over this many bytes are stored as multipart uploads."
    )
    s3_multipart_part_size: int = Field(
        16 * 1024**2,
        ge=5 * 1024**2,
        le=5 * 1024**3,
        description="Bytes per multipart part (S3: 5 MiB-5 GiB; grown when needed to stay within 10,000 parts).",
    )
    s3_encoder_url_ttl: int = Field(
        24 * 3600,
        gt=0,
        le=7 * 24 * 3600,
        description="Seconds the encoder's presigned source/output URLs stay valid: longer than the longest "
        "encode (SigV4 caps it at 7 days; temporary credentials end it when they expire).",
    )
    s3_max_attempts: int = Field(5, ge=1, description="Attempts per S3 call (botocore 'standard' retries).")
    s3_timeout: float = Field(60.0, gt=0, description="Seconds to connect to, and to wait on a read from, S3.")
    runtime: Literal["embedded", "kubernetes"] = Field(
        "embedded",
        description="Where renders execute: in this process (SQLite, local disk), or as Render resources and Jobs "
        "on Kubernetes (PostgreSQL, S3).",
    )
    namespace: str | None = Field(
        None,
        description="Kubernetes namespace of Render resources and Jobs; default: the pod's own, else the "
        "kubeconfig context's.",
    )
    kube_request_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds each Kubernetes API request may take (connect and answer) before it counts as a "
        "temporary failure, for the API, the operator and `roughy drain` alike.",
    )
    kube_max_running: int = Field(
        500, gt=0, description="Renders executing on the cluster at once (Render resources); the rest wait queued."
    )
    render_retention: float = Field(
        3600.0, ge=0, description="Seconds a finished Render resource is kept (the database keeps the render)."
    )
    leader_election: bool = Field(
        False,
        description="`roughy operator` reconciles only while it holds a coordination.k8s.io Lease, so that several "
        "replicas can run with one active and the others standing by (the Helm chart turns it on).",
    )
    leader_election_lease: str = Field("roughy-operator", description="Name of the operator's leader Lease.")
    leader_election_namespace: str | None = Field(
        None, description="Namespace of the leader Lease; default: the operator's namespace."
    )
    leader_election_lease_duration: int = Field(
        15, ge=1, description="Seconds a standby waits, after the Lease last changed, before it takes it over."
    )
    leader_election_renew_deadline: float = Field(
        10.0, gt=0, description="Seconds the leader keeps leading without a successful renewal (then it exits)."
    )
    leader_election_retry_period: float = Field(
        2.0, gt=0, description="Seconds between a standby's reads of the Lease, and between renewal retries."
    )
    jobs_config: Path | None = Field(
        None,
        description="JSON file of the operator's encoder Job settings (roughy.kube.jobs.JobSettings fields; the Helm "
        "chart renders it from its values).",
    )
    encoder_image: str | None = Field(None, description="Encoder image of Jobs; overrides the jobs config's `image`.")
    encoder_api_url: str | None = Field(
        None,
        description="The API as encoder pods reach it (Kubernetes: its Service), for their presigned URLs and "
        "progress; default: the jobs config's `api_url`, else public_url.",
    )
    log_format: Literal["text", "json"] = Field("text", description="Log lines as text, or one JSON object each.")
    ffmpeg: str | None = Field(None, description="ffmpeg binary; default: the one shipped by imageio-ffmpeg.")

    def resolved_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'roughy.db').resolve()}"
