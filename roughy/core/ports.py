"""Ports: what the application needs from the outside world, as Protocols.

Adapters implement them (`roughy.adapters`): the embedded runtime plugs in SQLite, local disk
and local encoder processes, the Kubernetes runtime PostgreSQL, S3 and Render resources. The
in-memory fakes in `roughy.testing` implement them too, so the application's rules are tested
without a database, a disk or ffmpeg.

- `Store`: the system of record, split by aggregate. Every write that changes a resource's
  state takes an `Announce` from the application: the store calls it inside the change's
  transaction and writes the events it returns to the outbox, so the rule of which change
  makes which event lives in the application (`roughy.core.events`), never in the adapter.
- `Storage`: media by key. `ServedFiles` is the extra a storage has when the API itself serves
  its signed URLs (local disk); `PresignedStorage` the extra object storage has for Jobs.
- `Executor`: the one execution seam. `start` hands a render's encode over, `executing`
  observes what is being executed, `cancel` stops one, and each encode's outcome (and its
  progress) reaches an `ExecutionListener`: from the executor itself when it runs the encode
  (embedded), from the operator that watches the Job (Kubernetes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from roughy.core.events import NewEvent
from roughy.core.models import (
    Account,
    Asset,
    AssetState,
    AudioInfo,
    Cut,
    CutState,
    ErrorInfo,
    LedgerEntry,
    Render,
    RenderResult,
    RenderState,
)
from roughy.core.plan import EncodePlan
from roughy.core.webhooks import Attempt, Delivery, Event, WebhookEndpoint

S = TypeVar("S", contravariant=True)
R = TypeVar("R", contravariant=True)


class Announce(Protocol[S, R]):
    """(the state before the change, the resource after it) -> the events the change makes."""

    def __call__(self, before: S, after: R, /) -> Sequence[NewEvent]: ...


# -- the store, by aggregate -------------------------------------------------------------------


class AccountStore(Protocol):
    def create_account(self, name: str) -> Account: ...
    def get_account(self, account_id: str) -> Account | None: ...
    def count_accounts(self) -> int: ...
    def create_api_key(self, account_id: str, key: str) -> str: ...
    def account_for_key(self, key: str) -> Account | None: ...
    def revoke_api_key(self, key_id: str) -> bool: ...


class CreditStore(Protocol):
    def grant(self, account_id: str, amount: int, reason: str) -> LedgerEntry: ...
    def balance(self, account_id: str) -> int: ...
    def ledger_entries(self, account_id: str) -> list[LedgerEntry]: ...

    def charge_asset(self, account_id: str, asset_id: str) -> None:
        """One credit, once per asset; raises InsufficientCredit when it cannot be paid. An asset
        that is gone or failed is not charged."""
        ...


class AssetStore(Protocol):
    def insert_asset(self, asset: Asset) -> None: ...
    def get_asset(self, asset_id: str, account_id: str | None = None) -> Asset | None: ...
    def list_assets(self, account_id: str, limit: int, starting_after: str | None) -> tuple[list[Asset], bool]: ...

    def modify_asset(
        self, asset_id: str, change: Callable[[Asset], None], announce: Announce[AssetState, Asset]
    ) -> Asset | None:
        """Apply `change` to the row as it is now, in one transaction with its events; None if gone."""
        ...

    def assets_to_process(self) -> list[Asset]: ...

    def count_assets(self, account_id: str, states: Collection[AssetState]) -> int: ...

    def assets_created_before(self, states: Collection[AssetState], cutoff: datetime) -> list[Asset]:
        """Assets in one of `states` created before `cutoff`, oldest first."""
        ...

    def delete_asset(self, asset_id: str) -> list[str]:
        """Delete the asset with its cuts and renders; return the renders' ids."""
        ...


class CutStore(Protocol):
    def insert_cut(self, cut: Cut) -> None: ...
    def get_cut(self, cut_id: str, account_id: str | None = None) -> Cut | None: ...
    def list_cuts(self, asset_id: str, limit: int, starting_after: str | None) -> tuple[list[Cut], bool]: ...

    def save_cut(self, cut: Cut, announce: Announce[CutState, Cut]) -> bool:
        """Write the cut with the events its change makes; False if it is gone."""
        ...

    def cuts_to_process(self) -> list[Cut]: ...

    def delete_cut(self, cut_id: str) -> list[str]:
        """Delete the cut and the renders made from it; return those renders' ids."""
        ...


class RenderStore(Protocol):
    def create_render(self, render: Render, announce: Announce[RenderState | None, Render]) -> tuple[Render, bool]:
        """Insert unless a live render has the signature (a failed one is replaced): (render, created)."""
        ...

    def live_render_by_signature(self, signature: str) -> Render | None: ...
    def get_render(self, render_id: str, account_id: str | None = None) -> Render | None: ...

    def list_renders(
        self,
        account_id: str,
        limit: int,
        starting_after: str | None,
        asset_id: str | None = None,
        state: RenderState | None = None,
    ) -> tuple[list[Render], bool]: ...

    def count_active_renders(self, account_id: str) -> int: ...

    def claim_next_render(self, announce: Announce[RenderState, Render]) -> Render | None:
        """Oldest pending -> running, atomically (one claimer wins); None when none is pending."""
        ...

    def set_progress(self, render_id: str, progress: float) -> None:
        """Only forward, only while running."""
        ...

    def finish_render(
        self,
        render_id: str,
        result: RenderResult | None,
        error: ErrorInfo | None,
        announce: Announce[RenderState, Render],
        *,
        from_pending: bool = False,
    ) -> bool:
        """Running (or pending, with `from_pending`) -> completed or failed; False if gone or settled."""
        ...

    def release_render(self, render_id: str, announce: Announce[RenderState, Render]) -> bool:
        """Running -> pending (its hand-over failed, or its execution was lost)."""
        ...

    def set_encoder_token(self, render_id: str, digest: str) -> bool:
        """Keep the digest of the token the render's encoder pods hold; False if the row is gone."""
        ...

    def encoder_token(self, render_id: str) -> str | None:
        """The digest `set_encoder_token` kept, None if none (or no such render)."""
        ...

    def running_renders(self, started_before: datetime | None = None) -> list[Render]: ...
    def delete_render(self, render_id: str) -> bool: ...
    def count_renders(self, state: RenderState) -> int: ...
    def render_counts(self) -> dict[str, int]: ...


class WebhookStore(Protocol):
    def insert_endpoint(self, endpoint: WebhookEndpoint) -> None: ...
    def get_endpoint(self, endpoint_id: str, account_id: str | None = None) -> WebhookEndpoint | None: ...

    def list_endpoints(
        self, account_id: str, limit: int, starting_after: str | None
    ) -> tuple[list[WebhookEndpoint], bool]: ...

    def delete_endpoint(self, endpoint_id: str) -> bool: ...
    def rotate_secret(self, endpoint_id: str, secret: str, overlap: float) -> WebhookEndpoint | None: ...
    def set_endpoint_enabled(self, endpoint_id: str, enabled: bool, reason: str | None = None) -> None: ...
    def get_event(self, event_id: str, account_id: str | None = None) -> Event | None: ...
    def redeliver(self, event: Event) -> list[str]: ...

    def claim_due_deliveries(
        self, limit: int, lease: float, exclude_endpoints: list[str] | None = None
    ) -> list[tuple[Delivery, Event, WebhookEndpoint]]: ...

    def release_deliveries(self, released: list[Delivery]) -> None: ...

    def record_attempt(
        self, delivery: Delivery, attempt: Attempt, *, next_attempt_at: datetime | None, disable_after: int
    ) -> bool: ...

    def list_deliveries(
        self, endpoint_id: str, limit: int, starting_after: str | None
    ) -> tuple[list[Delivery], bool]: ...


@dataclass(frozen=True)
class IdempotencyRecord:
    """What an `Idempotency-Key` made: the request's fingerprint and the resource's id."""

    fingerprint: str
    resource_id: str
    created_at: datetime
    finished: bool  # the resource was created (it may have been deleted since)


class IdempotencyStore(Protocol):
    def claim_idempotency_key(
        self, account_id: str, key: str, fingerprint: str, resource_id: str, *, expired_before: datetime
    ) -> IdempotencyRecord | None:
        """Record that this account's `key` makes `resource_id` and answer None, atomically;
        unless a record of the key newer than `expired_before` exists: then answer it, unchanged."""
        ...

    def finish_idempotency_key(self, account_id: str, key: str) -> None:
        """Its resource is created: a retry answers it from now on."""
        ...

    def release_idempotency_key(self, account_id: str, key: str) -> None:
        """Forget the key (its request failed: a retry runs it again)."""
        ...


class Store(AccountStore, CreditStore, AssetStore, CutStore, RenderStore, WebhookStore, IdempotencyStore, Protocol):
    """The whole system of record (one database)."""

    def ping(self) -> None:
        """Raise if the database does not answer (readiness)."""
        ...


# -- media -------------------------------------------------------------------------------------


class Storage(Protocol):
    """Media by key (`assets/<id>/video`, `renders/<id>/output.mp4`)."""

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def delete_prefix(self, prefix: str) -> None: ...

    def move(self, source: str, target: str) -> None:
        """`source`'s bytes become `target` (replacing it), and `source` is gone."""
        ...

    def source_url(self, key: str) -> str:
        """Where an encoder reads the object: a local path, or a presigned URL."""
        ...

    def output_target(self, key: str) -> str:
        """Where an encoder writes the object: a local path, or a presigned upload."""
        ...

    def upload_target(self, key: str, ttl: int) -> dict[str, object]:
        """A client's upload target: {url, method, headers, expires_at}."""
        ...

    def download_url(self, key: str, filename: str, ttl: int) -> tuple[str, datetime]:
        """A signed download URL that names the file, and when it expires."""
        ...


class ServedFiles(Protocol):
    """A storage whose signed URLs point back at the API, which serves them (local disk)."""

    def verify(self, method: str, key: str, expires: str | None, sig: str | None, filename: str = "") -> None:
        """Raise Forbidden unless the signature is valid and unexpired for exactly this storage
        key: the one the route parsed from its own parameters, and reads or writes."""
        ...

    def path(self, key: str) -> Path: ...

    async def stage(self, key: str, chunks: AsyncIterator[bytes], *, limit: int) -> tuple[Path, int]:
        """Write a stream to a temporary place beside `key`: (where, bytes). Raise
        PayloadTooLarge past `limit` bytes, leaving nothing."""
        ...

    def promote(self, staged: Path, key: str) -> None:
        """The staged bytes become `key`, atomically."""
        ...

    def discard(self, staged: Path) -> None:
        """Drop staged bytes (nothing if they were promoted)."""
        ...


class PresignedStorage(Storage, Protocol):
    """Object storage, as the operator needs it for encoder Jobs that have no credentials."""

    def source_url(self, key: str, ttl: int | None = None) -> str: ...

    def output_target(self, key: str, ttl: int | None = None) -> str:
        """One presigned PUT (up to 5 GiB): a chunk of a chunked render, say."""
        ...

    def output_upload(
        self, key: str, max_size: int, *, part_size: int | None = None, ttl: int | None = None
    ) -> dict[str, Any]:
        """One presigned PUT, or a presigned multipart upload, for an output of at most `max_size`."""
        ...

    def abort_multipart(self, key: str, upload_id: str) -> None: ...


# -- execution ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncodeJob:
    """One render's encode: the plan, and its media by storage key (the executor resolves them)."""

    render: Render
    plan: EncodePlan
    video_key: str | None
    audio_key: str | None
    output_key: str


@dataclass(frozen=True)
class Outcome:
    """How an encode ended: a result, or an error (a SPEC error code and a message)."""

    result: RenderResult | None = None
    error: ErrorInfo | None = None

    @classmethod
    def failed(cls, code: str, message: str) -> Outcome:
        return cls(error=ErrorInfo(code, message))


class ExecutionListener(Protocol):
    """Where progress and outcomes go (the application's render service)."""

    def progress(self, render_id: str, progress: float) -> None: ...

    def finished(self, render_id: str, outcome: Outcome) -> None: ...


class Executor(Protocol):
    """Runs encodes: on this machine, or as Render resources on a cluster."""

    @property
    def capacity(self) -> int:
        """How many renders may be handed over at once; the rest wait pending in the store."""
        ...

    def start(self, job: EncodeJob) -> None:
        """Hand the encode over and return. Raises ExecutorUnavailable when it cannot be taken
        now (the render goes back to pending) and ExecutorFailed when it never can."""
        ...

    def executing(self) -> set[str]:
        """The render ids being executed now (a claimed render missing here was lost)."""
        ...

    def cancel(self, render_id: str) -> None:
        """Stop the render's encode, whatever it is doing; nothing if it is not executing."""
        ...

    def shutdown(self) -> None:
        """This process stops: stop what it executes itself (executions it only handed over go on)."""
        ...


class AssetTasks(Protocol):
    """The heavy steps of asset and cut processing: in this process, or as Jobs on a cluster."""

    def extract_audio(
        self, src: str, target: str, *, subject: str, duration: float, labels: dict[str, str]
    ) -> AudioInfo | None:
        """The source's audio track, copied to `target`; None when it has none. `subject`,
        `duration` and `labels` name and size the work (a Job's name, deadline and labels)."""
        ...

    def detect_silence(
        self,
        src: str,
        *,
        min_silence: float,
        threshold_db: float,
        subject: str,
        duration: float,
        labels: dict[str, str],
    ) -> list[tuple[float, float]]: ...


class WebhookTargets(Protocol):
    """Which URLs webhooks may be sent to."""

    def check_url(self, url: str) -> None:
        """Raise ValidationFailed for a target that could never be delivered to."""
        ...


class WebhookTransport(WebhookTargets, Protocol):
    """Sends one signed attempt of an event to an endpoint."""

    @property
    def timeout(self) -> float:
        """Seconds one attempt may take in all."""
        ...

    def send(self, endpoint: WebhookEndpoint, event: Event) -> Attempt:
        """One attempt: never raises for the receiver's failures, which the Attempt records."""
        ...
