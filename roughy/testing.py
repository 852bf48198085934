"""In-memory fakes of the ports, shipped with the package (as procrastinate ships its
in-memory connector): the application's rules run on them in milliseconds, with no database,
no disk, no ffmpeg and no web server.

- `MemoryStore`: the whole `Store`, with the same rules the SQL store enforces with indexes and
  locks (one live render per signature, one charge per asset, the outbox written with the
  change that made it, pages newest first). Rows are copied in and out, as a database would.
- `MemoryStorage`: media as bytes by key.
- `MemoryExecutor`: remembers what it was handed; a test finishes, fails or loses encodes.
- `MemoryTasks`, `probe_from`: asset processing's heavy steps, answered from tables.
- `AllowTargets`: webhook targets, refusing what the test says.

They are fakes of the ports, not of the adapters' internals: `tests/app` holds the application
to them, and the store's contract tests run the same cases on `MemoryStore` and `SqlStore`.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from roughy.core.errors import (
    ExecutorFailed,
    ExecutorUnavailable,
    InsufficientCredit,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)
from roughy.core.events import NewEvent
from roughy.core.ids import new_id, now
from roughy.core.models import (
    Account,
    Asset,
    AssetState,
    AudioInfo,
    Cut,
    CutState,
    ErrorInfo,
    LedgerEntry,
    LedgerType,
    PartState,
    Render,
    RenderResult,
    RenderState,
    VideoInfo,
)
from roughy.core.passthrough import copied_streams
from roughy.core.ports import Announce, EncodeJob, ExecutionListener, IdempotencyRecord, Outcome
from roughy.core.webhooks import Attempt, Delivery, Event, WebhookEndpoint

T = TypeVar("T")


def _page(items: list[T], limit: int, starting_after: str | None, key: Callable[[T], str]) -> tuple[list[T], bool]:
    """Newest first (`items` are oldest first), `limit` after the item `starting_after`."""
    newest = list(reversed(items))
    if starting_after is not None:
        ids = [key(item) for item in newest]
        if starting_after not in ids:
            return [], False
        newest = newest[ids.index(starting_after) + 1 :]
    return [copy.deepcopy(i) for i in newest[:limit]], len(newest) > limit


@dataclass
class _Key:
    id: str
    account_id: str
    key: str
    revoked: bool = False


@dataclass
class _Tables:
    accounts: dict[str, Account] = field(default_factory=dict)
    keys: dict[str, _Key] = field(default_factory=dict)
    ledger: list[LedgerEntry] = field(default_factory=list)
    assets: dict[str, Asset] = field(default_factory=dict)
    cuts: dict[str, Cut] = field(default_factory=dict)
    renders: dict[str, Render] = field(default_factory=dict)
    encoder_tokens: dict[str, str] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], IdempotencyRecord] = field(default_factory=dict)
    endpoints: dict[str, WebhookEndpoint] = field(default_factory=dict)
    events: dict[str, Event] = field(default_factory=dict)
    deliveries: dict[str, Delivery] = field(default_factory=dict)


class MemoryStore:
    """The `Store` port in memory; one lock stands for the database's transactions."""

    def __init__(self) -> None:
        self.t = _Tables()
        self._lock = threading.RLock()

    def ping(self) -> None:
        return None

    # -- accounts ----------------------------------------------------------------------------

    def create_account(self, name: str) -> Account:
        account = Account(new_id("acct"), name, now())
        with self._lock:
            self.t.accounts[account.id] = account
        return copy.copy(account)

    def get_account(self, account_id: str) -> Account | None:
        with self._lock:
            return copy.copy(self.t.accounts.get(account_id))

    def count_accounts(self) -> int:
        return len(self.t.accounts)

    def create_api_key(self, account_id: str, key: str) -> str:
        key_id = new_id("key")
        with self._lock:
            self.t.keys[key_id] = _Key(key_id, account_id, key)
        return key_id

    def account_for_key(self, key: str) -> Account | None:
        with self._lock:
            for k in self.t.keys.values():
                if k.key == key and not k.revoked:
                    return copy.copy(self.t.accounts.get(k.account_id))
        return None

    def revoke_api_key(self, key_id: str) -> bool:
        with self._lock:
            k = self.t.keys.get(key_id)
            if k is None or k.revoked:
                return False
            k.revoked = True
            return True

    # -- credits -----------------------------------------------------------------------------

    def grant(self, account_id: str, amount: int, reason: str) -> LedgerEntry:
        entry = LedgerEntry(new_id("led"), account_id, LedgerType.GRANT, amount, None, reason, now())
        with self._lock:
            self.t.ledger.append(entry)
        return entry

    def balance(self, account_id: str) -> int:
        with self._lock:
            return sum(e.amount for e in self.t.ledger if e.account_id == account_id)

    def ledger_entries(self, account_id: str) -> list[LedgerEntry]:
        with self._lock:
            return [e for e in reversed(self.t.ledger) if e.account_id == account_id]

    def charge_asset(self, account_id: str, asset_id: str) -> None:
        with self._lock:
            asset = self.t.assets.get(asset_id)
            if asset is None or asset.state is AssetState.FAILED:
                return  # gone or failed meanwhile: not charged
            charged = any(e.asset_id == asset_id and e.type is LedgerType.CHARGE for e in self.t.ledger)
            if not charged:
                if self.balance(account_id) < 1:
                    raise InsufficientCredit(account_id)
                entry = LedgerEntry(
                    new_id("led"), account_id, LedgerType.CHARGE, -1, asset_id, "asset processing", now()
                )
                self.t.ledger.append(entry)
            if asset_id in self.t.assets:
                self.t.assets[asset_id].charged = True

    # -- assets ------------------------------------------------------------------------------

    def insert_asset(self, asset: Asset) -> None:
        with self._lock:
            self.t.assets[asset.id] = copy.deepcopy(asset)

    def get_asset(self, asset_id: str, account_id: str | None = None) -> Asset | None:
        with self._lock:
            asset = self.t.assets.get(asset_id)
            if asset is None or (account_id is not None and asset.account_id != account_id):
                return None
            return copy.deepcopy(asset)

    def list_assets(self, account_id: str, limit: int, starting_after: str | None) -> tuple[list[Asset], bool]:
        with self._lock:
            mine = [a for a in self.t.assets.values() if a.account_id == account_id]
            return _page(mine, limit, starting_after, lambda a: a.id)

    def modify_asset(
        self, asset_id: str, change: Callable[[Asset], None], announce: Announce[AssetState, Asset]
    ) -> Asset | None:
        with self._lock:
            current = self.t.assets.get(asset_id)
            if current is None:
                return None
            asset = copy.deepcopy(current)
            before = asset.state
            change(asset)
            asset.id, asset.account_id, asset.created_at = current.id, current.account_id, current.created_at
            self.t.assets[asset_id] = copy.deepcopy(asset)
            self._emit(announce(before, asset))
            return asset

    def assets_to_process(self) -> list[Asset]:
        with self._lock:
            return [
                copy.deepcopy(a)
                for a in self.t.assets.values()
                if a.state is not AssetState.FAILED and PartState.UPLOADED in (a.video_part, a.audio_part)
            ]

    def count_assets(self, account_id: str, states: Collection[AssetState]) -> int:
        with self._lock:
            return sum(1 for a in self.t.assets.values() if a.account_id == account_id and a.state in states)

    def assets_created_before(self, states: Collection[AssetState], cutoff: datetime) -> list[Asset]:
        with self._lock:
            return [copy.deepcopy(a) for a in self.t.assets.values() if a.state in states and a.created_at < cutoff]

    def delete_asset(self, asset_id: str) -> list[str]:
        with self._lock:
            ids = [r.id for r in self.t.renders.values() if r.asset_id == asset_id]
            for render_id in ids:
                del self.t.renders[render_id]
            for cut_id in [c.id for c in self.t.cuts.values() if c.asset_id == asset_id]:
                del self.t.cuts[cut_id]
            self.t.assets.pop(asset_id, None)
            return ids

    # -- idempotency keys ----------------------------------------------------------------------

    def claim_idempotency_key(
        self, account_id: str, key: str, fingerprint: str, resource_id: str, *, expired_before: datetime
    ) -> IdempotencyRecord | None:
        with self._lock:
            record = self.t.idempotency.get((account_id, key))
            if record is not None and record.created_at >= expired_before:
                return record
            self.t.idempotency[(account_id, key)] = IdempotencyRecord(fingerprint, resource_id, now(), False)
            return None

    def finish_idempotency_key(self, account_id: str, key: str) -> None:
        with self._lock:
            if (record := self.t.idempotency.get((account_id, key))) is not None:
                self.t.idempotency[(account_id, key)] = replace(record, finished=True)

    def release_idempotency_key(self, account_id: str, key: str) -> None:
        with self._lock:
            self.t.idempotency.pop((account_id, key), None)

    # -- cuts --------------------------------------------------------------------------------

    def insert_cut(self, cut: Cut) -> None:
        with self._lock:
            self.t.cuts[cut.id] = copy.deepcopy(cut)

    def get_cut(self, cut_id: str, account_id: str | None = None) -> Cut | None:
        with self._lock:
            cut = self.t.cuts.get(cut_id)
            if cut is None or (account_id is not None and cut.account_id != account_id):
                return None
            return copy.deepcopy(cut)

    def list_cuts(self, asset_id: str, limit: int, starting_after: str | None) -> tuple[list[Cut], bool]:
        with self._lock:
            return _page([c for c in self.t.cuts.values() if c.asset_id == asset_id], limit, starting_after,
                         lambda c: c.id)  # fmt: skip

    def save_cut(self, cut: Cut, announce: Announce[CutState, Cut]) -> bool:
        with self._lock:
            current = self.t.cuts.get(cut.id)
            if current is None:
                return False
            saved = copy.deepcopy(cut)
            saved.account_id, saved.asset_id = current.account_id, current.asset_id  # as the SQL store keeps them
            saved.created_at = current.created_at
            self.t.cuts[cut.id] = saved
            self._emit(announce(current.state, copy.deepcopy(saved)))
            return True

    def cuts_to_process(self) -> list[Cut]:
        with self._lock:
            waiting = (CutState.PENDING, CutState.PROCESSING)
            return [copy.deepcopy(c) for c in self.t.cuts.values() if c.state in waiting]

    def delete_cut(self, cut_id: str) -> list[str]:
        with self._lock:
            ids = [r.id for r in self.t.renders.values() if r.cut_id == cut_id]
            for render_id in ids:
                del self.t.renders[render_id]
            self.t.cuts.pop(cut_id, None)
            return ids

    # -- renders -----------------------------------------------------------------------------

    def create_render(self, render: Render, announce: Announce[RenderState | None, Render]) -> tuple[Render, bool]:
        with self._lock:
            existing = self.live_render_by_signature(render.signature)
            if existing is not None:
                return existing, False
            if render.asset_id not in self.t.assets or (render.cut_id and render.cut_id not in self.t.cuts):
                raise NotFound("the asset or cut was deleted meanwhile", param="asset_id")
            for old in [r for r in self.t.renders.values() if r.signature == render.signature]:
                del self.t.renders[old.id]  # a failed render with the signature is replaced
            self.t.renders[render.id] = copy.deepcopy(render)
            self._emit(announce(None, copy.deepcopy(render)))
            return copy.deepcopy(render), True

    def live_render_by_signature(self, signature: str) -> Render | None:
        with self._lock:
            for r in self.t.renders.values():
                if r.signature == signature and r.state is not RenderState.FAILED:
                    return copy.deepcopy(r)
        return None

    def get_render(self, render_id: str, account_id: str | None = None) -> Render | None:
        with self._lock:
            render = self.t.renders.get(render_id)
            if render is None or (account_id is not None and render.account_id != account_id):
                return None
            return copy.deepcopy(render)

    def list_renders(
        self,
        account_id: str,
        limit: int,
        starting_after: str | None,
        asset_id: str | None = None,
        state: RenderState | None = None,
    ) -> tuple[list[Render], bool]:
        with self._lock:
            mine = [r for r in self.t.renders.values() if r.account_id == account_id]
            if starting_after is not None and starting_after not in {r.id for r in mine}:
                return [], False
            matching = [
                r
                for r in mine
                if r.id == starting_after
                or ((not asset_id or r.asset_id == asset_id) and (not state or r.state is state))
            ]
            return _page(matching, limit, starting_after, lambda r: r.id)

    def count_active_renders(self, account_id: str) -> int:
        active = (RenderState.PENDING, RenderState.RUNNING)
        with self._lock:
            return sum(1 for r in self.t.renders.values() if r.account_id == account_id and r.state in active)

    def claim_next_render(self, announce: Announce[RenderState, Render]) -> Render | None:
        """Fair across accounts, as the SQL store: fewest running first, then oldest."""
        with self._lock:
            running: dict[str, int] = {}
            for r in self.t.renders.values():
                if r.state is RenderState.RUNNING:
                    running[r.account_id] = running.get(r.account_id, 0) + 1
            order = sorted(  # dicts keep insertion order: the position is the age
                (running.get(r.account_id, 0), i, r)
                for i, r in enumerate(self.t.renders.values())
                if r.state is RenderState.PENDING
            )
            for _n, _i, render in order[:1]:
                if render.state is RenderState.PENDING:
                    render.state, render.started_at = RenderState.RUNNING, now()
                    render.attempts += 1
                    self._emit(announce(RenderState.PENDING, copy.deepcopy(render)))
                    return copy.deepcopy(render)
        return None

    def set_progress(self, render_id: str, progress: float) -> None:
        with self._lock:
            render = self.t.renders.get(render_id)
            if render is not None and render.state is RenderState.RUNNING and render.progress < progress:
                render.progress = min(progress, 0.999)

    def finish_render(
        self,
        render_id: str,
        result: RenderResult | None,
        error: ErrorInfo | None,
        announce: Announce[RenderState, Render],
        *,
        from_pending: bool = False,
    ) -> bool:
        states = (RenderState.RUNNING, RenderState.PENDING) if from_pending else (RenderState.RUNNING,)
        with self._lock:
            render = self.t.renders.get(render_id)
            if render is None or render.state not in states:
                return False
            before = render.state
            render.completed_at = now()
            if result is not None:
                render.state, render.progress, render.result = RenderState.COMPLETED, 1.0, result
            else:
                render.state, render.error = RenderState.FAILED, error
            self._emit(announce(before, copy.deepcopy(render)))
            return True

    def release_render(self, render_id: str, announce: Announce[RenderState, Render]) -> bool:
        with self._lock:
            render = self.t.renders.get(render_id)
            if render is None or render.state is not RenderState.RUNNING:
                return False
            render.state, render.started_at = RenderState.PENDING, None
            self._emit(announce(RenderState.RUNNING, copy.deepcopy(render)))
            return True

    def running_renders(self, started_before: datetime | None = None) -> list[Render]:
        with self._lock:
            return [
                copy.deepcopy(r)
                for r in self.t.renders.values()
                if r.state is RenderState.RUNNING
                and (started_before is None or (r.started_at is not None and r.started_at < started_before))
            ]

    def delete_render(self, render_id: str) -> bool:
        with self._lock:
            self.t.encoder_tokens.pop(render_id, None)
            return self.t.renders.pop(render_id, None) is not None

    def set_encoder_token(self, render_id: str, digest: str) -> bool:
        with self._lock:
            if render_id not in self.t.renders:
                return False
            self.t.encoder_tokens[render_id] = digest
            return True

    def encoder_token(self, render_id: str) -> str | None:
        with self._lock:
            return self.t.encoder_tokens.get(render_id) if render_id in self.t.renders else None

    def count_renders(self, state: RenderState) -> int:
        with self._lock:
            return sum(1 for r in self.t.renders.values() if r.state is state)

    def render_counts(self) -> dict[str, int]:
        with self._lock:
            counts: dict[str, int] = {}
            for r in self.t.renders.values():
                counts[r.state.value] = counts.get(r.state.value, 0) + 1
            return counts

    # -- webhooks ----------------------------------------------------------------------------

    def _emit(self, events: Iterable[NewEvent]) -> None:
        for new in events:
            event = Event(new_id("evt"), new.account_id, new.type.value, copy.deepcopy(new.data), now())
            self.t.events[event.id] = event
            self._queue_everywhere(event)

    def _queue_everywhere(self, event: Event) -> list[str]:
        wanted = [e for e in self.t.endpoints.values() if e.account_id == event.account_id and event.type in e.events]
        return [self._queue(event, e.id) for e in wanted]

    def _queue(self, event: Event, endpoint_id: str) -> str:
        at = now()
        delivery = Delivery(new_id("dlv"), event.id, endpoint_id, "pending", 0, at, at, event_type=event.type,
                            history=[])  # fmt: skip
        self.t.deliveries[delivery.id] = delivery
        return delivery.id

    def events_of(self, account_id: str) -> list[Event]:
        """The outbox of one account, oldest first (for tests)."""
        with self._lock:
            return [e for e in self.t.events.values() if e.account_id == account_id]

    def insert_endpoint(self, endpoint: WebhookEndpoint) -> None:
        with self._lock:
            self.t.endpoints[endpoint.id] = copy.deepcopy(endpoint)

    def get_endpoint(self, endpoint_id: str, account_id: str | None = None) -> WebhookEndpoint | None:
        with self._lock:
            endpoint = self.t.endpoints.get(endpoint_id)
            if endpoint is None or (account_id is not None and endpoint.account_id != account_id):
                return None
            return copy.deepcopy(endpoint)

    def list_endpoints(
        self, account_id: str, limit: int, starting_after: str | None
    ) -> tuple[list[WebhookEndpoint], bool]:
        with self._lock:
            mine = [e for e in self.t.endpoints.values() if e.account_id == account_id]
            return _page(mine, limit, starting_after, lambda e: e.id)

    def delete_endpoint(self, endpoint_id: str) -> bool:
        with self._lock:
            for d in [d for d in self.t.deliveries.values() if d.endpoint_id == endpoint_id]:
                del self.t.deliveries[d.id]
            return self.t.endpoints.pop(endpoint_id, None) is not None

    def rotate_secret(self, endpoint_id: str, secret: str, overlap: float) -> WebhookEndpoint | None:
        with self._lock:
            endpoint = self.t.endpoints.get(endpoint_id)
            if endpoint is None:
                return None
            endpoint.previous_secret, endpoint.secret = endpoint.secret, secret
            endpoint.previous_secret_expires_at = now() + timedelta(seconds=overlap)
            return copy.deepcopy(endpoint)

    def set_endpoint_enabled(self, endpoint_id: str, enabled: bool, reason: str | None = None) -> None:
        with self._lock:
            endpoint = self.t.endpoints.get(endpoint_id)
            if endpoint is None:
                return
            endpoint.enabled, endpoint.disabled_reason = enabled, reason
            if enabled:
                endpoint.consecutive_failures = 0
                for d in self.t.deliveries.values():
                    if d.endpoint_id == endpoint_id and d.state == "pending":
                        d.next_attempt_at = now()

    def get_event(self, event_id: str, account_id: str | None = None) -> Event | None:
        with self._lock:
            event = self.t.events.get(event_id)
            if event is None or (account_id is not None and event.account_id != account_id):
                return None
            return copy.deepcopy(event)

    def redeliver(self, event: Event) -> list[str]:
        with self._lock:
            return self._queue_everywhere(event)

    def claim_due_deliveries(
        self, limit: int, lease: float, exclude_endpoints: list[str] | None = None
    ) -> list[tuple[Delivery, Event, WebhookEndpoint]]:
        at = now()
        with self._lock:
            due = sorted(
                (
                    d
                    for d in self.t.deliveries.values()
                    if d.state == "pending"
                    and d.next_attempt_at is not None
                    and d.next_attempt_at <= at
                    and self.t.endpoints[d.endpoint_id].enabled
                    and d.endpoint_id not in (exclude_endpoints or [])
                ),
                key=lambda d: d.next_attempt_at or at,
            )[:limit]
            claimed = []
            for d in due:
                endpoint = copy.deepcopy(self.t.endpoints[d.endpoint_id])
                claimed.append((copy.deepcopy(d), self.t.events[d.event_id], endpoint))
                d.next_attempt_at = at + timedelta(seconds=lease)
            return claimed

    def release_deliveries(self, released: list[Delivery]) -> None:
        with self._lock:
            for delivery in released:
                current = self.t.deliveries.get(delivery.id)
                if current is not None and current.state == "pending":
                    current.next_attempt_at = delivery.next_attempt_at

    def record_attempt(
        self, delivery: Delivery, attempt: Attempt, *, next_attempt_at: datetime | None, disable_after: int
    ) -> bool:
        ok = attempt.status_code is not None and 200 <= attempt.status_code < 300 and attempt.error is None
        with self._lock:
            current = self.t.deliveries.get(delivery.id)
            endpoint = self.t.endpoints.get(delivery.endpoint_id)
            if current is None or endpoint is None:  # deleted with its endpoint meanwhile
                return False
            current.attempts += 1
            (current.history or []).append(attempt)
            if ok or next_attempt_at is None:
                current.state = "succeeded" if ok else "failed"
                current.completed_at, current.next_attempt_at = attempt.attempted_at, None
            else:
                current.next_attempt_at = next_attempt_at
            endpoint.consecutive_failures = 0 if ok else endpoint.consecutive_failures + 1
            if not ok and endpoint.enabled and endpoint.consecutive_failures >= disable_after:
                endpoint.enabled = False
                endpoint.disabled_reason = f"{endpoint.consecutive_failures} consecutive failed attempts"
                return True
            return False

    def list_deliveries(self, endpoint_id: str, limit: int, starting_after: str | None) -> tuple[list[Delivery], bool]:
        with self._lock:
            mine = [d for d in self.t.deliveries.values() if d.endpoint_id == endpoint_id]
            return _page(mine, limit, starting_after, lambda d: d.id)


# -- media ---------------------------------------------------------------------------------------


class MemoryStorage:
    """The `Storage` port in memory: objects are bytes by key; URLs are `memory://` names."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.staged: dict[Path, bytes] = {}

    def put(self, key: str, data: bytes) -> None:
        self.objects[key] = data

    def exists(self, key: str) -> bool:
        return key in self.objects

    def size(self, key: str) -> int:
        return len(self.objects[key])

    def move(self, source: str, target: str) -> None:
        self.objects[target] = self.objects.pop(source)

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def delete_prefix(self, prefix: str) -> None:
        """The object `prefix` names, or everything under it as a folder (never `renders/r_12/`
        for `renders/r_1`), as the local and S3 adapters do."""
        base = prefix.rstrip("/")
        for key in [k for k in self.objects if k == base or k.startswith(base + "/")]:
            del self.objects[key]

    def source_url(self, key: str) -> str:
        return f"memory://{key}"

    def output_target(self, key: str) -> str:
        return f"memory://{key}"

    def upload_target(self, key: str, ttl: int) -> dict[str, object]:
        expires = now() + timedelta(seconds=ttl)
        return {"url": f"memory://upload/{key}", "method": "PUT", "headers": {}, "expires_at": expires}

    def download_url(self, key: str, filename: str, ttl: int) -> tuple[str, datetime]:
        return f"memory://download/{key}?filename={filename}", now() + timedelta(seconds=ttl)

    async def stage(self, key: str, chunks: AsyncIterator[bytes], *, limit: int) -> tuple[Path, int]:
        data = b""
        async for chunk in chunks:
            data += chunk
            if len(data) > limit:
                raise PayloadTooLarge(f"upload is over the limit of {limit} bytes")
        staged = Path(f"staged/{new_id('dlv')}")
        self.staged[staged] = data
        return staged, len(data)

    def promote(self, staged: Path, key: str) -> None:
        self.objects[key] = self.staged.pop(staged)

    def discard(self, staged: Path) -> None:
        self.staged.pop(staged, None)

    def verify(self, method: str, key: str, expires: str | None, sig: str | None, filename: str = "") -> None:
        return None  # the fake signs nothing: every URL it hands out is good

    def path(self, key: str) -> Path:
        return Path("memory") / key


# -- execution -----------------------------------------------------------------------------------


class MemoryExecutor:
    """The `Executor` port: it takes encodes and holds them until the test decides how they end."""

    def __init__(self, capacity: int = 2) -> None:
        self._capacity = capacity
        self.listener: ExecutionListener | None = None
        self.jobs: dict[str, EncodeJob] = {}
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.unavailable = False  # start/executing/cancel raise ExecutorUnavailable
        self.refuse = False  # start raises ExecutorFailed
        self.crash: Exception | None = None  # start raises this (a bug, or a driver's own error)

    @property
    def capacity(self) -> int:
        return self._capacity

    def bind(self, listener: ExecutionListener) -> None:
        self.listener = listener

    def start(self, job: EncodeJob) -> None:
        if self.unavailable:
            raise ExecutorUnavailable("the executor is unavailable (test)")
        if self.refuse:
            raise ExecutorFailed("the executor refused the encode (test)")
        if self.crash is not None:
            raise self.crash
        self.jobs[job.render.id] = job
        self.started.append(job.render.id)

    def executing(self) -> set[str]:
        if self.unavailable:
            raise ExecutorUnavailable("the executor is unavailable (test)")
        return set(self.jobs)

    def cancel(self, render_id: str) -> None:
        if self.unavailable:
            raise ExecutorUnavailable("the executor is unavailable (test)")
        if self.jobs.pop(render_id, None) is not None:
            self.cancelled.append(render_id)

    def shutdown(self) -> None:
        self.jobs.clear()

    def progress(self, render_id: str, value: float) -> None:
        assert self.listener is not None
        self.listener.progress(render_id, value)

    def finish(self, render_id: str, outcome: Outcome) -> None:
        """The encode ends with `outcome`, reported as a real executor (or the operator) would:
        while it still counts as executing."""
        assert self.listener is not None, "bind() the executor to the render service first"
        self.listener.finished(render_id, outcome)
        self.jobs.pop(render_id, None)

    def lose(self, render_id: str) -> None:
        """The encode vanishes without an outcome (its process or its Job died with a node)."""
        self.jobs.pop(render_id, None)


def result_for(job: EncodeJob, *, size_bytes: int = 1000) -> RenderResult:
    """A plausible result of the job's plan (its format and duration)."""
    video = job.plan.video
    return RenderResult(
        format=job.plan.format,
        width=video.width if video else None,
        height=video.height if video else None,
        duration=job.plan.duration,
        size_bytes=size_bytes,
        video_bitrate_kbps=video.bitrate_kbps if video else None,
        audio_bitrate_kbps=job.plan.audio.bitrate_kbps if job.plan.audio else None,
        copied=copied_streams(job.plan.format, job.plan.video, job.plan.audio),
    )


# -- asset processing ----------------------------------------------------------------------------


@dataclass
class MediaFacts:
    """What a fake probe finds in a source."""

    duration: float
    video: VideoInfo | None = None
    audio: AudioInfo | None = None


HD_VIDEO = VideoInfo(width=1280, height=720, fps=25.0, codec="h264", bitrate_kbps=2000)
STEREO_AAC = AudioInfo(codec="aac", bitrate_kbps=128, sample_rate=48000, channels=2)


def probe_from(storage: MemoryStorage, facts: Callable[[bytes], MediaFacts | None]) -> Callable[[str], Any]:
    """A probe reading `memory://` objects: `facts(data)` says what the bytes are (None: junk)."""
    from roughy.encoder.errors import InvalidMedia
    from roughy.encoder.probe import MediaInfo

    def probe(url: str) -> MediaInfo:
        key = url.removeprefix("memory://")
        found = facts(storage.objects.get(key, b""))
        if found is None:
            raise InvalidMedia("the file is not a media file this service can read")
        return MediaInfo(found.duration, found.video, found.audio, format_name="memory", size_bytes=len(key))

    return probe


class MemoryTasks:
    """Audio extraction and silence detection answered from fixed facts."""

    def __init__(self, storage: MemoryStorage, *, silences: list[tuple[float, float]] | None = None):
        self.storage = storage
        self.silences = silences or []
        self.extracted: list[str] = []
        self.while_extracting: Callable[[], None] = lambda: None  # e.g. the client deletes the asset

    def extract_audio(
        self, src: str, target: str, *, subject: str, duration: float, labels: dict[str, str]
    ) -> AudioInfo | None:
        self.while_extracting()
        self.storage.put(target.removeprefix("memory://"), b"audio")
        self.extracted.append(subject)
        return STEREO_AAC

    def detect_silence(
        self,
        src: str,
        *,
        min_silence: float,
        threshold_db: float,
        subject: str,
        duration: float,
        labels: dict[str, str],
    ) -> list[tuple[float, float]]:
        return list(self.silences)


class AllowTargets:
    """Webhook targets: everything but the URLs in `refused`."""

    def __init__(self, refused: Iterable[str] = ()) -> None:
        self.refused = set(refused)

    def check_url(self, url: str) -> None:
        if url in self.refused:
            raise ValidationFailed("this target is refused (test)", param="url")
