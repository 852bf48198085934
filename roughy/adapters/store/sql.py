"""The store: one SQLAlchemy implementation, SQLite (embedded) or PostgreSQL (Kubernetes).

Rows map to the dataclasses of `roughy.core.models`; nothing above this module sees SQL.
Writes that must not race (a render per signature, a charge per asset) lean on unique indexes
and on the account row lock, never on read-then-write in Python.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, create_engine, delete, event, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from roughy.adapters.store import tables as t
from roughy.adapters.store.webhooks import WebhookStore, _utc, emit
from roughy.core.errors import InsufficientCredit, NotFound, RoughyError
from roughy.core.ids import new_id, now
from roughy.core.models import (
    Account,
    Asset,
    AssetKind,
    AssetState,
    AudioInfo,
    Cut,
    CutMethod,
    CutState,
    ErrorInfo,
    Format,
    LedgerEntry,
    LedgerType,
    OutputSpec,
    PartState,
    Render,
    RenderResult,
    RenderState,
    Resolution,
    Segment,
    VideoInfo,
)
from roughy.core.ports import Announce, IdempotencyRecord


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def make_engine(url: str, *, schema: str | None = None) -> Engine:
    """`schema` (PostgreSQL only) puts every table in that schema (its search_path): test isolation."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _sqlite_pragmas(engine)
        return engine
    connect_args = {"options": f"-csearch_path={schema}"} if schema else {}
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=connect_args)


def _sqlite_pragmas(engine: Engine) -> None:
    """WAL for concurrent readers; BEGIN IMMEDIATE so writers queue instead of deadlocking."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's begin event issue BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        reading = conn.get_execution_options().get("roughy_read", False)
        conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


class SqlStore(WebhookStore):
    def __init__(self, engine: Engine):
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """A write transaction (on SQLite it takes the write lock at once: writers queue)."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction: on SQLite (WAL) it neither takes nor waits for the write lock."""
        with self.engine.connect() as conn:
            conn.execution_options(roughy_read=True)
            with conn.begin():
                yield conn

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(1))

    # -- accounts and keys ------------------------------------------------------------------

    def create_account(self, name: str) -> Account:
        account = Account(id=new_id("acct"), name=name, created_at=now())
        with self.tx() as c:
            c.execute(insert(t.accounts).values(**asdict(account)))
        return account

    def get_account(self, account_id: str) -> Account | None:
        with self.read() as c:
            row = c.execute(select(t.accounts).where(t.accounts.c.id == account_id)).mappings().first()
        return Account(**row) if row else None

    def count_accounts(self) -> int:
        with self.read() as c:
            return int(c.execute(select(func.count()).select_from(t.accounts)).scalar_one())

    def create_api_key(self, account_id: str, key: str) -> str:
        key_id = new_id("key")
        with self.tx() as c:
            c.execute(
                insert(t.api_keys).values(id=key_id, account_id=account_id, key_hash=hash_key(key), created_at=now())
            )
        return key_id

    def account_for_key(self, key: str) -> Account | None:
        query = (
            select(t.accounts)
            .join(t.api_keys, t.api_keys.c.account_id == t.accounts.c.id)
            .where(t.api_keys.c.key_hash == hash_key(key), t.api_keys.c.revoked_at.is_(None))
        )
        with self.read() as c:
            row = c.execute(query).mappings().first()
        return Account(**row) if row else None

    def revoke_api_key(self, key_id: str) -> bool:
        with self.tx() as c:
            res = c.execute(
                update(t.api_keys)
                .where(t.api_keys.c.id == key_id, t.api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now())
            )
        return res.rowcount > 0

    # -- credits ----------------------------------------------------------------------------

    def grant(self, account_id: str, amount: int, reason: str) -> LedgerEntry:
        entry = LedgerEntry(new_id("led"), account_id, LedgerType.GRANT, amount, None, reason, now())
        with self.tx() as c:
            c.execute(insert(t.ledger).values(**_ledger_row(entry)))
        return entry

    def balance(self, account_id: str, conn: Connection | None = None) -> int:
        query = select(func.coalesce(func.sum(t.ledger.c.amount), 0)).where(t.ledger.c.account_id == account_id)
        if conn is not None:
            return int(conn.execute(query).scalar_one())
        with self.read() as c:
            return int(c.execute(query).scalar_one())

    def ledger_entries(self, account_id: str) -> list[LedgerEntry]:
        query = select(t.ledger).where(t.ledger.c.account_id == account_id).order_by(t.ledger.c.seq.desc())
        with self.read() as c:
            rows = c.execute(query).mappings().all()
        return [_ledger_entry(r) for r in rows]

    def charge_asset(self, account_id: str, asset_id: str) -> None:
        """Charge the asset's one credit, once. Raises InsufficientCredit when it cannot be paid.

        The unique index on (asset_id) for charges makes a second charge impossible; the
        account row lock (PostgreSQL) or the write lock (SQLite) makes two assets unable to
        spend the same credit. An asset that is gone or failed meanwhile is not charged.
        """
        with self.tx() as c:
            if not self.is_sqlite:
                c.execute(select(t.accounts.c.id).where(t.accounts.c.id == account_id).with_for_update())
            state = c.execute(select(t.assets.c.state).where(t.assets.c.id == asset_id)).scalar()
            if state is None or state == AssetState.FAILED.value:
                return
            already = c.execute(
                select(t.ledger.c.id).where(t.ledger.c.asset_id == asset_id, t.ledger.c.type == "charge")
            ).first()
            if already is None:
                if self.balance(account_id, c) < 1:
                    raise InsufficientCredit(account_id)
                entry = LedgerEntry(
                    new_id("led"), account_id, LedgerType.CHARGE, -1, asset_id, "asset processing", now()
                )
                try:
                    with c.begin_nested():
                        c.execute(insert(t.ledger).values(**_ledger_row(entry)))
                except IntegrityError:
                    pass  # a concurrent charge of the same asset won: it is paid once
            c.execute(update(t.assets).where(t.assets.c.id == asset_id).values(charged=True))

    # -- assets -----------------------------------------------------------------------------

    def insert_asset(self, asset: Asset) -> None:
        with self.tx() as c:
            c.execute(insert(t.assets).values(**_asset_row(asset)))

    def get_asset(self, asset_id: str, account_id: str | None = None) -> Asset | None:
        query = select(t.assets).where(t.assets.c.id == asset_id)
        if account_id is not None:
            query = query.where(t.assets.c.account_id == account_id)
        with self.read() as c:
            row = c.execute(query).mappings().first()
        return _asset(row) if row else None

    def modify_asset(
        self, asset_id: str, change: Callable[[Asset], None], announce: Announce[AssetState, Asset]
    ) -> Asset | None:
        """Read, change and write the asset in one transaction; None if it is gone.

        The API (completing a part) and the processing workers (writing a part's results)
        change the same row: each applies its change to the row as it is now, under the row
        lock (PostgreSQL) or the write lock (SQLite), so neither undoes the other.
        """
        query = select(t.assets).where(t.assets.c.id == asset_id)
        if not self.is_sqlite:
            query = query.with_for_update()
        with self.tx() as c:
            row = c.execute(query).mappings().first()
            if row is None:
                return None
            asset = _asset(row)
            before = asset.state
            change(asset)
            values = _asset_row(asset)
            for key in ("id", "account_id", "created_at"):
                values.pop(key)
            c.execute(update(t.assets).where(t.assets.c.id == asset_id).values(**values))
            emit(c, announce(before, asset))
        return asset

    def list_assets(self, account_id: str, limit: int, starting_after: str | None) -> tuple[list[Asset], bool]:
        rows, more = self._page(t.assets, [t.assets.c.account_id == account_id], limit, starting_after)
        return [_asset(r) for r in rows], more

    def assets_to_process(self) -> list[Asset]:
        """Assets with an uploaded part not processed yet (including those waiting for credit)."""
        uploaded = PartState.UPLOADED.value
        query = select(t.assets).where(
            t.assets.c.state != AssetState.FAILED.value,
            (t.assets.c.video_part == uploaded) | (t.assets.c.audio_part == uploaded),
        )
        with self.read() as c:
            return [_asset(r) for r in c.execute(query.order_by(t.assets.c.seq)).mappings().all()]

    def count_assets(self, account_id: str, states: Collection[AssetState]) -> int:
        values = [s.value for s in states]
        query = select(func.count()).where(t.assets.c.account_id == account_id, t.assets.c.state.in_(values))
        with self.read() as c:
            return int(c.execute(query).scalar_one())

    def assets_created_before(self, states: Collection[AssetState], cutoff: datetime) -> list[Asset]:
        values = [s.value for s in states]
        query = select(t.assets).where(t.assets.c.state.in_(values), t.assets.c.created_at < cutoff)
        with self.read() as c:
            return [_asset(r) for r in c.execute(query.order_by(t.assets.c.seq)).mappings().all()]

    def delete_asset(self, asset_id: str) -> list[str]:
        """Delete the asset with its cuts and renders; return the renders' ids."""
        with self.tx() as c:
            ids = list(c.execute(select(t.renders.c.id).where(t.renders.c.asset_id == asset_id)).scalars())
            c.execute(delete(t.renders).where(t.renders.c.asset_id == asset_id))
            c.execute(delete(t.cuts).where(t.cuts.c.asset_id == asset_id))
            c.execute(delete(t.assets).where(t.assets.c.id == asset_id))
        return ids

    # -- idempotency keys -------------------------------------------------------------------

    def claim_idempotency_key(
        self, account_id: str, key: str, fingerprint: str, resource_id: str, *, expired_before: datetime
    ) -> IdempotencyRecord | None:
        k = t.idempotency_keys
        this = and_(k.c.account_id == account_id, k.c.key == key)
        for _ in range(3):
            try:
                with self.tx() as c:
                    c.execute(delete(k).where(this, k.c.created_at < expired_before))
                    c.execute(insert(k).values(account_id=account_id, key=key, fingerprint=fingerprint,
                                               resource_id=resource_id, finished=False, created_at=now()))  # fmt: skip
                return None
            except IntegrityError:  # the primary key: another request has the key
                with self.read() as c:
                    row = c.execute(select(k).where(this)).mappings().first()
                if row is not None:
                    created = _utc(row["created_at"])
                    return IdempotencyRecord(row["fingerprint"], row["resource_id"], created, row["finished"])
        raise RoughyError(f"the Idempotency-Key {key!r} keeps changing hands")

    def finish_idempotency_key(self, account_id: str, key: str) -> None:
        k = t.idempotency_keys
        with self.tx() as c:
            c.execute(update(k).where(k.c.account_id == account_id, k.c.key == key).values(finished=True))

    def release_idempotency_key(self, account_id: str, key: str) -> None:
        k = t.idempotency_keys
        with self.tx() as c:
            c.execute(delete(k).where(k.c.account_id == account_id, k.c.key == key))

    # -- cuts -------------------------------------------------------------------------------

    def insert_cut(self, cut: Cut) -> None:
        with self.tx() as c:
            c.execute(insert(t.cuts).values(**_cut_row(cut)))

    def get_cut(self, cut_id: str, account_id: str | None = None) -> Cut | None:
        query = select(t.cuts).where(t.cuts.c.id == cut_id)
        if account_id is not None:
            query = query.where(t.cuts.c.account_id == account_id)
        with self.read() as c:
            row = c.execute(query).mappings().first()
        return _cut(row) if row else None

    def save_cut(self, cut: Cut, announce: Announce[CutState, Cut]) -> bool:
        """Write the cut, with the events its change makes in the same transaction."""
        row = _cut_row(cut)
        for key in ("id", "account_id", "asset_id", "created_at"):
            row.pop(key)
        with self.tx() as c:
            before = c.execute(select(t.cuts.c.state).where(t.cuts.c.id == cut.id)).scalar()
            if before is None:
                return False
            c.execute(update(t.cuts).where(t.cuts.c.id == cut.id).values(**row))
            emit(c, announce(CutState(before), cut))
        return True

    def list_cuts(self, asset_id: str, limit: int, starting_after: str | None) -> tuple[list[Cut], bool]:
        rows, more = self._page(t.cuts, [t.cuts.c.asset_id == asset_id], limit, starting_after)
        return [_cut(r) for r in rows], more

    def cuts_to_process(self) -> list[Cut]:
        query = select(t.cuts).where(t.cuts.c.state.in_([CutState.PENDING.value, CutState.PROCESSING.value]))
        with self.read() as c:
            return [_cut(r) for r in c.execute(query.order_by(t.cuts.c.seq)).mappings().all()]

    def delete_cut(self, cut_id: str) -> list[str]:
        """Delete the cut and the renders made from it; return those renders' ids."""
        with self.tx() as c:
            ids = list(c.execute(select(t.renders.c.id).where(t.renders.c.cut_id == cut_id)).scalars())
            c.execute(delete(t.renders).where(t.renders.c.cut_id == cut_id))
            c.execute(delete(t.cuts).where(t.cuts.c.id == cut_id))
        return ids

    # -- renders ----------------------------------------------------------------------------

    def create_render(self, render: Render, announce: Announce[RenderState | None, Render]) -> tuple[Render, bool]:
        """Insert the render unless a live one has its signature: (render, created).

        A failed render with the same signature is replaced (deleted) in the same transaction.
        Concurrent identical requests meet at the unique index: exactly one insert wins and
        the others read the winner. An insert refused with no live render to read is either a
        winner that failed and was replaced meanwhile (try again, a few times) or an asset or
        cut deleted since the request checked it (NotFound: the render goes with them).
        """
        for _ in range(5):
            try:
                with self.tx() as c:
                    c.execute(
                        delete(t.renders).where(
                            t.renders.c.signature == render.signature,
                            t.renders.c.state == RenderState.FAILED.value,
                        )
                    )
                    c.execute(insert(t.renders).values(**_render_row(render)))
                    emit(c, announce(None, render))
                return render, True
            except IntegrityError:
                existing = self.live_render_by_signature(render.signature)
                if existing is not None:
                    return existing, False
                if self.get_asset(render.asset_id) is None or (render.cut_id and self.get_cut(render.cut_id) is None):
                    raise NotFound("the asset or cut was deleted meanwhile", param="asset_id") from None
        raise RoughyError("the render could not be created; retry")

    def live_render_by_signature(self, signature: str) -> Render | None:
        query = select(t.renders).where(
            t.renders.c.signature == signature, t.renders.c.state != RenderState.FAILED.value
        )
        with self.read() as c:
            row = c.execute(query).mappings().first()
        return _render(row) if row else None

    def get_render(self, render_id: str, account_id: str | None = None) -> Render | None:
        query = select(t.renders).where(t.renders.c.id == render_id)
        if account_id is not None:
            query = query.where(t.renders.c.account_id == account_id)
        with self.read() as c:
            row = c.execute(query).mappings().first()
        return _render(row) if row else None

    def list_renders(
        self,
        account_id: str,
        limit: int,
        starting_after: str | None,
        asset_id: str | None = None,
        state: RenderState | None = None,
    ) -> tuple[list[Render], bool]:
        where = [t.renders.c.account_id == account_id]
        if asset_id:
            where.append(t.renders.c.asset_id == asset_id)
        if state:
            where.append(t.renders.c.state == state.value)
        rows, more = self._page(t.renders, where, limit, starting_after)
        return [_render(r) for r in rows], more

    def count_active_renders(self, account_id: str) -> int:
        query = select(func.count()).where(
            t.renders.c.account_id == account_id,
            t.renders.c.state.in_([RenderState.PENDING.value, RenderState.RUNNING.value]),
        )
        with self.read() as c:
            return int(c.execute(query).scalar_one())

    def claim_next_render(self, announce: Announce[RenderState, Render]) -> Render | None:
        """Move a pending render to running, fairly across accounts; None when none is pending.

        The account with the fewest running renders goes first (the oldest waiting among
        equals), then its oldest pending render: one account with hundreds of renders queued
        no longer holds every worker while another's single render waits behind them.
        PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent claimers take different rows.
        SQLite: the transaction holds the write lock (BEGIN IMMEDIATE), so claims are serial.
        """
        with self.tx() as c:
            row_id = self._next_pending(c)
            if row_id is None:
                return None
            c.execute(
                update(t.renders)
                .where(t.renders.c.id == row_id)
                .values(state=RenderState.RUNNING.value, started_at=now(), attempts=t.renders.c.attempts + 1)
            )
            claimed = _render(c.execute(select(t.renders).where(t.renders.c.id == row_id)).mappings().one())
            emit(c, announce(RenderState.PENDING, claimed))
        return claimed

    def _next_pending(self, c: Connection) -> str | None:
        r = t.renders
        waiting = (
            select(r.c.account_id, func.min(r.c.seq).label("first"))
            .where(r.c.state == RenderState.PENDING.value)
            .group_by(r.c.account_id)
            .subquery()
        )
        busy = (
            select(r.c.account_id, func.count().label("running"))
            .where(r.c.state == RenderState.RUNNING.value)
            .group_by(r.c.account_id)
            .subquery()
        )
        turn = (
            select(waiting.c.account_id)
            .outerjoin(busy, busy.c.account_id == waiting.c.account_id)
            .order_by(func.coalesce(busy.c.running, 0), waiting.c.first)
            .limit(1)
        )
        account_id = c.execute(turn).scalar()
        if account_id is None:
            return None
        for scope in ([r.c.account_id == account_id], []):  # its oldest; else (claimed meanwhile) anyone's
            query = select(r.c.id).where(r.c.state == RenderState.PENDING.value, *scope).order_by(r.c.seq).limit(1)
            if not self.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            row_id = c.execute(query).scalar()
            if row_id is not None:
                return str(row_id)
        return None

    def set_progress(self, render_id: str, progress: float) -> None:
        """Progress only moves forward, and only while running."""
        with self.tx() as c:
            c.execute(
                update(t.renders)
                .where(
                    t.renders.c.id == render_id,
                    t.renders.c.state == RenderState.RUNNING.value,
                    t.renders.c.progress < progress,
                )
                .values(progress=min(progress, 0.999))
            )

    def finish_render(
        self,
        render_id: str,
        result: RenderResult | None,
        error: ErrorInfo | None,
        announce: Announce[RenderState, Render],
        *,
        from_pending: bool = False,
    ) -> bool:
        """Running -> completed (with result) or failed (with error). False if the render is gone
        or already finished. `from_pending`: a pending render may finish too (an executor's
        outcome is authoritative even when the row was put back in the queue meanwhile, after a
        hand-over whose result was unknown or a claim taken for lost)."""
        states = [RenderState.RUNNING.value] + ([RenderState.PENDING.value] if from_pending else [])
        values: dict[str, Any] = {"completed_at": now()}
        if result is not None:
            values |= {"state": RenderState.COMPLETED.value, "progress": 1.0, "result": result.to_json()}
        else:
            values |= {"state": RenderState.FAILED.value, "error": asdict(error) if error else None}
        with self.tx() as c:
            query = select(t.renders.c.state).where(t.renders.c.id == render_id, t.renders.c.state.in_(states))
            if not self.is_sqlite:
                query = query.with_for_update()
            before = c.execute(query).scalar()
            if before is None:
                return False
            c.execute(update(t.renders).where(t.renders.c.id == render_id).values(**values))
            render = _render(c.execute(select(t.renders).where(t.renders.c.id == render_id)).mappings().one())
            emit(c, announce(RenderState(before), render))
        return True

    def release_render(self, render_id: str, announce: Announce[RenderState, Render]) -> bool:
        """Running -> pending for one render whose hand-over to an executor failed (retry later)."""
        with self.tx() as c:
            res = c.execute(
                update(t.renders)
                .where(t.renders.c.id == render_id, t.renders.c.state == RenderState.RUNNING.value)
                .values(state=RenderState.PENDING.value, started_at=None)
            )
            if res.rowcount:
                released = _render(c.execute(select(t.renders).where(t.renders.c.id == render_id)).mappings().one())
                emit(c, announce(RenderState.RUNNING, released))
        return bool(res.rowcount > 0)

    def set_encoder_token(self, render_id: str, digest: str) -> bool:
        with self.tx() as c:
            res = c.execute(update(t.renders).where(t.renders.c.id == render_id).values(encoder_token=digest))
        return res.rowcount > 0

    def encoder_token(self, render_id: str) -> str | None:
        with self.read() as c:
            value = c.execute(select(t.renders.c.encoder_token).where(t.renders.c.id == render_id)).scalar()
        return str(value) if value else None

    def running_renders(self, started_before: datetime | None = None) -> list[Render]:
        """Renders in `running` (claimed before `started_before`, when given), oldest first."""
        query = select(t.renders).where(t.renders.c.state == RenderState.RUNNING.value).order_by(t.renders.c.seq)
        if started_before is not None:
            query = query.where(t.renders.c.started_at < started_before)
        with self.read() as c:
            return [_render(row) for row in c.execute(query).mappings()]

    def delete_render(self, render_id: str) -> bool:
        with self.tx() as c:
            res = c.execute(delete(t.renders).where(t.renders.c.id == render_id))
        return res.rowcount > 0

    def count_renders(self, state: RenderState) -> int:
        """Renders in one state: a range of the (state, seq) index, not a scan of every render."""
        query = select(func.count()).select_from(t.renders).where(t.renders.c.state == state.value)
        with self.read() as c:
            return int(c.execute(query).scalar_one())

    def render_counts(self) -> dict[str, int]:
        query = select(t.renders.c.state, func.count()).group_by(t.renders.c.state)
        with self.read() as c:
            return {state: int(n) for state, n in c.execute(query).all()}

    # -- helpers ----------------------------------------------------------------------------

    def _page(self, table: Any, where: list[Any], limit: int, starting_after: str | None) -> tuple[list[Any], bool]:
        """Newest first, `limit` rows after the row `starting_after` (an id), and has_more.

        `where[0]` is the owner scope (account or asset); the cursor is looked up in it alone, so
        a cursor stays valid after its row stops matching a filter (a pending render claimed).
        """
        query = select(table).where(and_(*where))
        with self.read() as c:
            if starting_after:
                seq = c.execute(select(table.c.seq).where(table.c.id == starting_after, where[0])).scalar()
                if seq is None:
                    return [], False
                query = query.where(table.c.seq < seq)
            rows = c.execute(query.order_by(table.c.seq.desc()).limit(limit + 1)).mappings().all()
        return list(rows[:limit]), len(rows) > limit


# -- row <-> model mapping ---------------------------------------------------------------------


def _ledger_row(e: LedgerEntry) -> dict[str, Any]:
    row = asdict(e)
    row["type"] = e.type.value
    return row


def _ledger_entry(r: Any) -> LedgerEntry:
    return LedgerEntry(
        r["id"],
        r["account_id"],
        LedgerType(r["type"]),
        r["amount"],
        r["asset_id"],
        r["reason"],
        _utc(r["created_at"]),
    )


def _asset_row(a: Asset) -> dict[str, Any]:
    return {
        "id": a.id,
        "account_id": a.account_id,
        "kind": a.kind.value,
        "filename": a.filename,
        "client_audio": a.client_audio,
        "state": a.state.value,
        "video_part": a.video_part.value if a.video_part else None,
        "audio_part": a.audio_part.value if a.audio_part else None,
        "charged": a.charged,
        "duration": a.duration,
        # The poster flag has its own column: a release before it would refuse an unknown key
        # in this JSON (a rolling update, a rollback), while it ignores a column it does not know.
        "video": _known(asdict(a.video), VideoInfo, drop=("poster",)) if a.video else None,
        "poster": bool(a.video and a.video.poster),
        "audio": asdict(a.audio) if a.audio else None,
        "error": asdict(a.error) if a.error else None,
        "created_at": a.created_at,
    }


def _known(values: dict[str, Any], cls: type, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """`values` without keys `cls` does not have (written by a newer release) nor `drop`."""
    names = {f.name for f in fields(cls)} - set(drop)
    return {k: v for k, v in values.items() if k in names}


def _asset(r: Any) -> Asset:
    return Asset(
        id=r["id"],
        account_id=r["account_id"],
        kind=AssetKind(r["kind"]),
        filename=r["filename"],
        client_audio=bool(r["client_audio"]),
        state=AssetState(r["state"]),
        video_part=PartState(r["video_part"]) if r["video_part"] else None,
        audio_part=PartState(r["audio_part"]) if r["audio_part"] else None,
        created_at=_utc(r["created_at"]),
        duration=r["duration"],
        video=VideoInfo(**_known(r["video"], VideoInfo), poster=bool(r["poster"])) if r["video"] else None,
        audio=AudioInfo(**_known(r["audio"], AudioInfo)) if r["audio"] else None,
        error=ErrorInfo(**r["error"]) if r["error"] else None,
        charged=bool(r["charged"]),
    )


def _cut_row(cut: Cut) -> dict[str, Any]:
    return {
        "id": cut.id,
        "account_id": cut.account_id,
        "asset_id": cut.asset_id,
        "state": cut.state.value,
        "method": cut.method.value,
        "segments": [[s.start, s.end] for s in cut.segments],
        "silence": cut.silence,
        "error": asdict(cut.error) if cut.error else None,
        "created_at": cut.created_at,
    }


def _cut(r: Any) -> Cut:
    return Cut(
        id=r["id"],
        account_id=r["account_id"],
        asset_id=r["asset_id"],
        state=CutState(r["state"]),
        method=CutMethod(r["method"]),
        created_at=_utc(r["created_at"]),
        segments=[Segment(a, b) for a, b in r["segments"]],
        silence=r["silence"],
        error=ErrorInfo(**r["error"]) if r["error"] else None,
    )


def _render_row(r: Render) -> dict[str, Any]:
    return {
        "id": r.id,
        "account_id": r.account_id,
        "asset_id": r.asset_id,
        "cut_id": r.cut_id,
        "signature": r.signature,
        "output": r.output.as_dict(),
        "state": r.state.value,
        "progress": r.progress,
        "error": asdict(r.error) if r.error else None,
        "result": r.result.to_json() if r.result else None,
        "attempts": r.attempts,
        "created_at": r.created_at,
        "started_at": r.started_at,
        "completed_at": r.completed_at,
    }


def _render(r: Any) -> Render:
    out = r["output"]
    result = r["result"]
    return Render(
        id=r["id"],
        account_id=r["account_id"],
        asset_id=r["asset_id"],
        cut_id=r["cut_id"],
        output=OutputSpec(
            format=Format(out["format"]),
            resolution=Resolution(out["resolution"]) if out.get("resolution") else None,
            video_bitrate=out.get("video_bitrate"),
            audio_bitrate=out.get("audio_bitrate"),
        ),
        signature=r["signature"],
        state=RenderState(r["state"]),
        created_at=_utc(r["created_at"]),
        progress=float(r["progress"]),
        error=ErrorInfo(**r["error"]) if r["error"] else None,
        result=RenderResult.from_json(result) if result else None,
        started_at=_utc(r["started_at"]),
        completed_at=_utc(r["completed_at"]),
        attempts=int(r["attempts"]),
    )
