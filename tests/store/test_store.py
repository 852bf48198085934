"""The SqlStore's promises, on SQLite and PostgreSQL: idempotency and credit under concurrency,
render lifecycle rules, pagination, and keys."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select, update

from roughy.adapters.store import SqlStore
from roughy.adapters.store import tables as t
from roughy.app.renders import RenderService
from roughy.core.errors import InsufficientCredit, NotFound
from roughy.core.events import render_events
from roughy.core.ids import new_id, now
from roughy.core.models import (
    Asset,
    AssetKind,
    AssetState,
    Cut,
    CutMethod,
    CutState,
    ErrorInfo,
    Format,
    LedgerType,
    OutputSpec,
    PartState,
    Render,
    RenderResult,
    RenderState,
    Resolution,
    Segment,
)
from roughy.core.signature import render_signature
from roughy.testing import MemoryExecutor, MemoryStorage

T = TypeVar("T")


def at_once(n: int, fn: Callable[[int], T]) -> list[T | BaseException]:
    """Run fn(0..n-1) on n threads released together; return each result or exception."""
    barrier = threading.Barrier(n, timeout=30)

    def run(i: int) -> T | BaseException:
        barrier.wait()
        try:
            return fn(i)
        except Exception as exc:  # collected and asserted on by the caller
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def account(store: SqlStore, credits: int = 0) -> str:
    acct = store.create_account("test")
    if credits:
        store.grant(acct.id, credits, "test credit")
    return acct.id


def asset(store: SqlStore, account_id: str, **kw: Any) -> Asset:
    a = Asset(
        id=new_id("ast"),
        account_id=account_id,
        kind=AssetKind.VIDEO,
        filename="talk.mp4",
        client_audio=False,
        state=kw.pop("state", AssetState.READY),
        video_part=PartState.PROCESSED,
        audio_part=None,
        created_at=now(),
        duration=10.0,
        **kw,
    )
    store.insert_asset(a)
    return a


def cut(store: SqlStore, a: Asset) -> Cut:
    c = Cut(
        id=new_id("cut"),
        account_id=a.account_id,
        asset_id=a.id,
        state=CutState.COMPLETED,
        method=CutMethod.SEGMENTS,
        created_at=now(),
        segments=[Segment(0.0, 1.0), Segment(2.0, 3.5)],
    )
    store.insert_cut(c)
    return c


def render(a: Asset, spec: OutputSpec | None = None, cut_id: str | None = None) -> Render:
    spec = spec or OutputSpec(Format.MP4)
    return Render(
        id=new_id("rnd"),
        account_id=a.account_id,
        asset_id=a.id,
        cut_id=cut_id,
        output=spec,
        signature=render_signature(a.id, cut_id, spec),
        state=RenderState.PENDING,
        created_at=now(),
    )


def result() -> RenderResult:
    return RenderResult(Format.MP4, 1280, 720, 3.0, 123_456, 5000, 192)


def rows(store: SqlStore, table: Any, *where: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def running(store: SqlStore, a: Asset, spec: OutputSpec | None = None) -> Render:
    r, _ = store.create_render(render(a, spec), render_events)
    claimed = store.claim_next_render(render_events)
    assert claimed is not None and claimed.id == r.id
    return claimed


# -- render idempotency -----------------------------------------------------------------------------


@pytest.mark.sql_only("it counts rows in the renders table")
def test_identical_concurrent_creates_make_one_render(store: SqlStore) -> None:
    a = asset(store, account(store))
    spec = OutputSpec(Format.MP4, resolution=Resolution.P720)
    attempts = [render(a, spec) for _ in range(32)]
    assert len({r.id for r in attempts}) == 32 and len({r.signature for r in attempts}) == 1

    outcomes = at_once(32, lambda i: store.create_render(attempts[i], render_events))

    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert errors == []
    got = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len({r.id for r, _ in got}) == 1, "every caller gets the same render"
    assert sum(created for _, created in got) == 1, "exactly one caller created it"
    winner = next(r for r, created in got if created)
    assert all(r.id == winner.id for r, _ in got)
    assert rows(store, t.renders, t.renders.c.signature == winner.signature) == 1


def test_a_live_render_is_returned_not_duplicated(store: SqlStore) -> None:
    a = asset(store, account(store))
    first, created = store.create_render(render(a), render_events)
    assert created
    for state_change in (
        lambda: None,
        lambda: store.claim_next_render(render_events),
        lambda: store.finish_render(first.id, result(), None, render_events),
    ):
        state_change()
        again, created = store.create_render(render(a), render_events)
        assert not created and again.id == first.id
    assert store.get_render(first.id).state is RenderState.COMPLETED  # type: ignore[union-attr]


def test_a_different_output_or_cut_is_another_render(store: SqlStore) -> None:
    a = asset(store, account(store))
    c = cut(store, a)
    made = [
        store.create_render(render(a, OutputSpec(Format.MP4, resolution=Resolution.P720)), render_events),
        store.create_render(render(a, OutputSpec(Format.MP4, resolution=Resolution.P1080)), render_events),
        store.create_render(render(a, OutputSpec(Format.MP4)), render_events),
        store.create_render(render(a, OutputSpec(Format.MP3)), render_events),
        store.create_render(render(a, OutputSpec(Format.MP4), cut_id=c.id), render_events),
    ]
    assert all(created for _, created in made)
    assert len({r.id for r, _ in made}) == 5


def test_a_failed_render_is_replaced_by_a_fresh_one(store: SqlStore) -> None:
    a = asset(store, account(store))
    old = running(store, a)
    assert store.finish_render(old.id, None, ErrorInfo("encoder_failed", "boom"), render_events)
    assert store.get_render(old.id).state is RenderState.FAILED  # type: ignore[union-attr]

    fresh, created = store.create_render(render(a), render_events)
    assert created and fresh.id != old.id
    assert store.get_render(old.id) is None, "the failed render is gone"
    got = store.get_render(fresh.id)
    assert got is not None and got.state is RenderState.PENDING and got.error is None
    assert store.live_render_by_signature(fresh.signature).id == fresh.id  # type: ignore[union-attr]
    if isinstance(store, SqlStore):
        assert rows(store, t.renders, t.renders.c.signature == fresh.signature) == 1


@pytest.mark.sql_only("it counts rows in the renders table")
def test_concurrent_retries_of_a_failed_render_make_one_fresh_render(store: SqlStore) -> None:
    a = asset(store, account(store))
    old = running(store, a)
    store.finish_render(old.id, None, ErrorInfo("encoder_failed", "boom"), render_events)
    attempts = [render(a) for _ in range(8)]
    outcomes = at_once(8, lambda i: store.create_render(attempts[i], render_events))
    got = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(got) == 8, outcomes
    assert sum(created for _, created in got) == 1 and len({r.id for r, _ in got}) == 1
    assert store.get_render(old.id) is None


# -- credits --------------------------------------------------------------------------------------------


def test_an_asset_is_charged_once_under_concurrency(store: SqlStore) -> None:
    acct = account(store, credits=5)
    a = asset(store, acct, state=AssetState.PROCESSING)
    outcomes = at_once(16, lambda i: store.charge_asset(acct, a.id))
    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    assert store.balance(acct) == 4
    charges = [e for e in store.ledger_entries(acct) if e.type is LedgerType.CHARGE]
    assert len(charges) == 1 and charges[0].asset_id == a.id and charges[0].amount == -1
    assert store.get_asset(a.id).charged  # type: ignore[union-attr]


@pytest.mark.sql_only("it counts rows in the ledger table")
def test_credits_are_never_overspent(store: SqlStore) -> None:
    acct = account(store, credits=3)
    assets = [asset(store, acct, state=AssetState.PROCESSING) for _ in range(10)]
    outcomes = at_once(10, lambda i: store.charge_asset(acct, assets[i].id))
    paid = [a for a, o in zip(assets, outcomes, strict=True) if o is None]
    refused = [o for o in outcomes if o is not None]
    assert len(paid) == 3
    assert len(refused) == 7 and all(isinstance(o, InsufficientCredit) for o in refused), refused
    assert store.balance(acct) == 0
    charged = {a.id for a in assets if store.get_asset(a.id).charged}  # type: ignore[union-attr]
    assert charged == {a.id for a in paid}, "only the paid assets are marked charged"
    assert rows(store, t.ledger, t.ledger.c.type == "charge", t.ledger.c.account_id == acct) == 3


def test_a_grant_lets_a_waiting_asset_be_charged(store: SqlStore) -> None:
    acct = account(store)
    a = asset(store, acct, state=AssetState.PAYMENT_REQUIRED)
    with pytest.raises(InsufficientCredit):
        store.charge_asset(acct, a.id)
    assert not store.get_asset(a.id).charged and store.balance(acct) == 0  # type: ignore[union-attr]
    store.grant(acct, 2, "top-up")
    store.charge_asset(acct, a.id)
    store.charge_asset(acct, a.id)  # a retry is not a second charge
    assert store.balance(acct) == 1
    entries = store.ledger_entries(acct)
    assert [e.type for e in entries] == [LedgerType.CHARGE, LedgerType.GRANT], "newest first"


def test_credit_is_per_account(store: SqlStore) -> None:
    rich, poor = account(store, credits=10), account(store)
    a = asset(store, poor)
    with pytest.raises(InsufficientCredit):
        store.charge_asset(poor, a.id)
    assert store.balance(rich) == 10 and store.balance(poor) == 0


# -- the render lifecycle ----------------------------------------------------------------------------


def test_concurrent_workers_claim_each_render_exactly_once(store: SqlStore) -> None:
    a = asset(store, account(store))
    specs = [OutputSpec(Format.MP4, audio_bitrate=b) for b in (None, 128, 192, 256, 320)]
    ids = {store.create_render(render(a, s), render_events)[0].id for s in specs}

    outcomes = at_once(8, lambda i: store.claim_next_render(render_events))

    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    claimed = [o.id for o in outcomes if isinstance(o, Render)]
    assert sorted(claimed) == sorted(ids), "each pending render claimed once, none left behind"
    assert outcomes.count(None) == 3
    for rid in ids:
        r = store.get_render(rid)
        assert r is not None and r.state is RenderState.RUNNING and r.attempts == 1 and r.started_at
    assert store.claim_next_render(render_events) is None


def test_claims_go_oldest_first(store: SqlStore) -> None:
    a = asset(store, account(store))
    first = store.create_render(render(a, OutputSpec(Format.MP3)), render_events)[0]
    second = store.create_render(render(a, OutputSpec(Format.M4A)), render_events)[0]
    assert store.claim_next_render(render_events).id == first.id  # type: ignore[union-attr]
    assert store.claim_next_render(render_events).id == second.id  # type: ignore[union-attr]


def test_progress_never_goes_backwards_and_only_moves_while_running(store: SqlStore) -> None:
    a = asset(store, account(store))
    r = running(store, a, OutputSpec(Format.MP4))
    pending, _ = store.create_render(render(a, OutputSpec(Format.MP3)), render_events)
    store.set_progress(pending.id, 0.4)
    assert store.get_render(pending.id).progress == 0.0, "a pending render has no progress"  # type: ignore[union-attr]

    seen = []
    for p in (0.2, 0.5, 0.3, 0.5, 0.1, 0.8):
        store.set_progress(r.id, p)
        seen.append(store.get_render(r.id).progress)  # type: ignore[union-attr]
    assert seen == [0.2, 0.5, 0.5, 0.5, 0.5, 0.8]
    store.set_progress(r.id, 1.0)
    assert 0.8 < store.get_render(r.id).progress < 1.0, "1.0 only when completed"  # type: ignore[union-attr]

    assert store.finish_render(r.id, result(), None, render_events)
    done = store.get_render(r.id)
    assert done is not None and done.state is RenderState.COMPLETED and done.progress == 1.0
    assert done.result == result() and done.completed_at is not None
    store.set_progress(r.id, 0.3)
    assert store.get_render(r.id).progress == 1.0  # type: ignore[union-attr]


def test_a_failed_render_carries_its_error(store: SqlStore) -> None:
    a = asset(store, account(store))
    r = running(store, a)
    assert store.finish_render(r.id, None, ErrorInfo("invalid_media", "the source is damaged"), render_events)
    got = store.get_render(r.id)
    assert got is not None and got.state is RenderState.FAILED
    assert got.error == ErrorInfo("invalid_media", "the source is damaged") and got.result is None


def test_finishing_a_deleted_render_reports_it_is_gone(store: SqlStore) -> None:
    a = asset(store, account(store))
    r = running(store, a)
    assert store.delete_render(r.id)
    assert store.finish_render(r.id, result(), None, render_events) is False
    assert store.finish_render(r.id, None, ErrorInfo("encoder_failed", "x"), render_events) is False
    assert store.get_render(r.id) is None
    assert store.delete_render(r.id) is False


def test_the_operator_may_finish_a_render_the_api_put_back_in_the_queue(store: SqlStore) -> None:
    a = asset(store, account(store))
    r, _ = store.create_render(render(a), render_events)
    assert store.finish_render(r.id, result(), None, render_events, from_pending=True)
    assert store.get_render(r.id).state is RenderState.COMPLETED  # type: ignore[union-attr]
    assert store.finish_render(r.id, None, ErrorInfo("late", "x"), render_events, from_pending=True) is False


def test_renders_are_counted_by_state(store: SqlStore) -> None:
    a = asset(store, account(store))
    first, _ = store.create_render(render(a), render_events)
    assert store.count_renders(RenderState.PENDING) == 1 and store.count_renders(RenderState.RUNNING) == 0
    store.claim_next_render(render_events)
    assert store.count_renders(RenderState.PENDING) == 0 and store.count_renders(RenderState.RUNNING) == 1
    assert store.render_counts() == {"running": 1}
    assert first.id


def test_only_a_running_render_can_finish(store: SqlStore) -> None:
    a = asset(store, account(store))
    r, _ = store.create_render(render(a), render_events)
    assert store.finish_render(r.id, result(), None, render_events) is False
    assert store.get_render(r.id).state is RenderState.PENDING  # type: ignore[union-attr]
    store.claim_next_render(render_events)
    assert store.finish_render(r.id, result(), None, render_events)
    assert store.finish_render(r.id, None, ErrorInfo("late", "a late failure"), render_events) is False
    assert store.get_render(r.id).state is RenderState.COMPLETED  # type: ignore[union-attr]


def test_lost_running_renders_go_back_to_pending(store: SqlStore) -> None:
    """What a restart does (RenderService.requeue_lost over this store): renders claimed and not
    executing go back to pending, with their progress kept; finished and pending ones stay."""
    a = asset(store, account(store))
    done = running(store, a, OutputSpec(Format.MP3))
    store.finish_render(done.id, result(), None, render_events)
    r1 = running(store, a, OutputSpec(Format.MP4))
    r2 = running(store, a, OutputSpec(Format.MOV))
    waiting, _ = store.create_render(render(a, OutputSpec(Format.M4A)), render_events)
    store.set_progress(r1.id, 0.6)
    renders = RenderService(store, MemoryStorage(), MemoryExecutor())
    later = now() + timedelta(seconds=1)

    assert sorted(renders.requeue_lost({r2.id}, later)) == [r1.id], "r2 is still executing"
    assert sorted(renders.requeue_lost(set(), later)) == [r2.id]

    for rid in (r1.id, r2.id):
        assert store.get_render(rid).state is RenderState.PENDING  # type: ignore[union-attr]
    assert store.get_render(r1.id).progress == 0.6  # type: ignore[union-attr]
    assert store.get_render(done.id).state is RenderState.COMPLETED  # type: ignore[union-attr]
    assert store.get_render(waiting.id).state is RenderState.PENDING  # type: ignore[union-attr]
    assert renders.requeue_lost(set(), later) == []
    again = [store.claim_next_render(render_events) for _ in range(3)]
    assert {x.id for x in again if x} == {r1.id, r2.id, waiting.id}


def test_timestamps_come_back_as_utc(store: SqlStore) -> None:
    a = asset(store, account(store))
    r = running(store, a)
    got = store.get_render(r.id)
    assert got is not None and got.created_at.utcoffset() == timedelta(0)
    assert abs(got.created_at - r.created_at) < timedelta(milliseconds=1)
    assert got.started_at is not None and got.started_at.utcoffset() == timedelta(0)


# -- deleting ------------------------------------------------------------------------------------------


def test_deleting_an_asset_removes_its_cuts_and_renders(store: SqlStore) -> None:
    acct = account(store)
    a, other = asset(store, acct), asset(store, acct)
    c = cut(store, a)
    first, _ = store.create_render(render(a), render_events)
    second, _ = store.create_render(render(a, cut_id=c.id), render_events)
    kept, _ = store.create_render(render(other), render_events)
    assert sorted(store.delete_asset(a.id)) == sorted([first.id, second.id]), "the renders to stop"
    assert store.get_asset(a.id) is None and store.get_cut(c.id) is None
    assert store.get_render(first.id) is None and store.get_render(second.id) is None
    assert store.get_render(kept.id) is not None


def test_deleting_a_cut_removes_the_renders_made_from_it(store: SqlStore) -> None:
    a = asset(store, account(store))
    c = cut(store, a)
    whole, _ = store.create_render(render(a), render_events)
    trimmed, _ = store.create_render(render(a, cut_id=c.id), render_events)
    assert store.delete_cut(c.id) == [trimmed.id]
    assert store.get_render(trimmed.id) is None and store.get_render(whole.id) is not None


# -- reading: ownership and pagination ---------------------------------------------------------------


def test_another_accounts_resources_read_as_missing(store: SqlStore) -> None:
    mine, theirs = account(store), account(store)
    a = asset(store, theirs)
    c = cut(store, a)
    r, _ = store.create_render(render(a), render_events)
    assert store.get_asset(a.id, mine) is None and store.get_asset(a.id, theirs) is not None
    assert store.get_cut(c.id, mine) is None and store.get_cut(c.id, theirs) is not None
    assert store.get_render(r.id, mine) is None and store.get_render(r.id, theirs) is not None
    assert store.list_assets(mine, 10, None) == ([], False)
    assert store.list_renders(mine, 10, None) == ([], False)
    # a cursor naming another account's asset reveals nothing
    asset(store, mine)
    assert store.list_assets(mine, 10, a.id) == ([], False)


def test_lists_are_newest_first_with_limit_cursor_and_has_more(store: SqlStore) -> None:
    acct = account(store)
    made = [asset(store, acct).id for _ in range(5)]
    asset(store, account(store))  # another account's
    newest_first = made[::-1]

    page, more = store.list_assets(acct, 2, None)
    assert [x.id for x in page] == newest_first[:2] and more
    page, more = store.list_assets(acct, 2, page[-1].id)
    assert [x.id for x in page] == newest_first[2:4] and more
    page, more = store.list_assets(acct, 2, page[-1].id)
    assert [x.id for x in page] == newest_first[4:] and not more
    page, more = store.list_assets(acct, 5, None)
    assert [x.id for x in page] == newest_first and not more
    page, more = store.list_assets(acct, 100, None)
    assert len(page) == 5 and not more


def test_render_lists_filter_by_asset_and_state(store: SqlStore) -> None:
    acct = account(store)
    a, b = asset(store, acct), asset(store, acct)
    ra = [store.create_render(render(a, OutputSpec(f)), render_events)[0].id for f in Format]
    rb = [store.create_render(render(b, OutputSpec(f)), render_events)[0].id for f in Format]
    first = store.claim_next_render(render_events)  # the oldest: ra[0]
    assert first is not None and first.id == ra[0]

    page, more = store.list_renders(acct, 3, None, asset_id=a.id)
    assert [r.id for r in page] == ra[::-1][:3] and more
    page, more = store.list_renders(acct, 3, page[-1].id, asset_id=a.id)
    assert [r.id for r in page] == [ra[0]] and not more
    page, _ = store.list_renders(acct, 100, None, state=RenderState.RUNNING)
    assert [r.id for r in page] == [ra[0]]
    page, _ = store.list_renders(acct, 100, None, asset_id=b.id, state=RenderState.PENDING)
    assert [r.id for r in page] == rb[::-1]


@pytest.mark.sql_only("it changes a row behind the store")
def test_a_cursor_stays_valid_when_its_render_leaves_the_filtered_state(store: SqlStore) -> None:
    """Paging through pending renders while a worker claims one must not end the listing early."""
    acct = account(store)
    a = asset(store, acct)
    ids = [
        store.create_render(render(a, OutputSpec(Format.MP4, audio_bitrate=b)), render_events)[0].id
        for b in (None, 128, 192, 256, 320)
    ]
    page, more = store.list_renders(acct, 4, None, state=RenderState.PENDING)
    assert [r.id for r in page] == ids[::-1][:4] and more
    # meanwhile the render the cursor names leaves the filter (a worker claims it)
    with store.tx() as conn:
        conn.execute(update(t.renders).where(t.renders.c.id == page[-1].id).values(state="running"))
    page, more = store.list_renders(acct, 4, page[-1].id, state=RenderState.PENDING)
    assert [r.id for r in page] == [ids[0]] and not more


def test_cut_lists_page_by_asset(store: SqlStore) -> None:
    acct = account(store)
    a, b = asset(store, acct), asset(store, acct)
    cuts = [cut(store, a).id for _ in range(3)]
    cut(store, b)
    page, more = store.list_cuts(a.id, 2, None)
    assert [c.id for c in page] == cuts[::-1][:2] and more
    page, more = store.list_cuts(a.id, 2, page[-1].id)
    assert [c.id for c in page] == [cuts[0]] and not more


# -- api keys --------------------------------------------------------------------------------------------


def test_keys_authenticate_until_revoked(store: SqlStore) -> None:
    acct = account(store)
    key1, key2 = "rk_" + "a" * 43, "rk_" + "b" * 43
    id1, _ = store.create_api_key(acct, key1), store.create_api_key(acct, key2)
    assert store.account_for_key(key1).id == acct  # type: ignore[union-attr]
    assert store.account_for_key("rk_" + "c" * 43) is None
    assert store.revoke_api_key(id1)
    assert store.account_for_key(key1) is None, "revoked at once"
    assert store.account_for_key(key2).id == acct, "other keys keep working"  # type: ignore[union-attr]
    assert store.revoke_api_key(id1) is False
    assert store.revoke_api_key("key_nosuchkey") is False


@pytest.mark.sql_only("it reads the api_keys table")
def test_keys_are_stored_hashed(store: SqlStore) -> None:
    acct = account(store)
    key = "rk_plaintext-secret-value-1234567890"
    store.create_api_key(acct, key)
    with store.engine.connect() as conn:
        stored = conn.execute(select(t.api_keys)).mappings().all()
    assert len(stored) == 1
    for value in stored[0].values():
        assert key not in str(value)
        assert "plaintext-secret" not in str(value)


def test_a_render_of_an_asset_deleted_meanwhile_is_not_found(store: SqlStore) -> None:
    """The API checked the asset, then it was deleted before the insert: a clear 404, not a
    foreign-key violation read as a signature conflict (which recursed into a 500)."""
    a = asset(store, account(store))
    store.delete_asset(a.id)
    with pytest.raises(NotFound):
        store.create_render(render(a), render_events)
    c_asset = asset(store, account(store))
    c = cut(store, c_asset)
    store.delete_cut(c.id)
    with pytest.raises(NotFound):
        store.create_render(render(c_asset, cut_id=c.id), render_events)


def test_assets_are_counted_by_state_and_found_by_age(store: SqlStore) -> None:
    acct = account(store)
    old = asset(store, acct, state=AssetState.UPLOADING)
    asset(store, acct, state=AssetState.READY)
    later = now() + timedelta(seconds=1)
    young = asset(store, account(store), state=AssetState.UPLOADING)
    assert store.count_assets(acct, [AssetState.UPLOADING]) == 1
    assert store.count_assets(acct, [AssetState.READY, AssetState.FAILED]) == 1
    found = store.assets_created_before([AssetState.UPLOADING], later)
    assert [a.id for a in found] == [old.id, young.id]
    assert store.assets_created_before([AssetState.UPLOADING], old.created_at) == []


def test_claims_are_fair_across_accounts(store: SqlStore) -> None:
    """One account with many renders queued does not hold every worker: the account with the
    fewest running renders goes first, the oldest waiting among equals."""
    busy, quiet = asset(store, account(store)), asset(store, account(store))
    heavy = [store.create_render(render(busy, spec), render_events)[0]
             for spec in (OutputSpec(Format.MP4), OutputSpec(Format.MOV), OutputSpec(Format.M4A))]  # fmt: skip
    light, _ = store.create_render(render(quiet, OutputSpec(Format.MP3)), render_events)
    order = [store.claim_next_render(render_events) for _ in range(4)]
    assert [r.id for r in order if r] == [heavy[0].id, light.id, heavy[1].id, heavy[2].id]
    assert store.claim_next_render(render_events) is None


# -- idempotency keys ------------------------------------------------------------------------


def test_an_idempotency_key_is_claimed_once_per_account_until_it_expires(store: SqlStore) -> None:
    a, b = store.create_account("a").id, store.create_account("b").id
    fresh = now() - timedelta(hours=24)
    assert store.claim_idempotency_key(a, "k", "fp1", "ast_1", expired_before=fresh) is None
    record = store.claim_idempotency_key(a, "k", "fp2", "ast_2", expired_before=fresh)
    assert record is not None and (record.fingerprint, record.resource_id, record.finished) == ("fp1", "ast_1", False)
    store.finish_idempotency_key(a, "k")
    assert store.claim_idempotency_key(a, "k", "fp1", "ast_3", expired_before=fresh).finished  # type: ignore[union-attr]
    assert store.claim_idempotency_key(b, "k", "fp1", "ast_4", expired_before=fresh) is None, "per account"
    # Expired (claimed before `expired_before`): the key is free again.
    assert store.claim_idempotency_key(a, "k", "fp9", "ast_5", expired_before=now() + timedelta(seconds=1)) is None
    assert store.claim_idempotency_key(a, "k", "x", "x", expired_before=fresh).resource_id == "ast_5"  # type: ignore[union-attr]
    store.release_idempotency_key(a, "k")
    assert store.claim_idempotency_key(a, "k", "fp1", "ast_6", expired_before=fresh) is None, "released"


def test_concurrent_claims_of_one_key_have_one_winner(store: SqlStore) -> None:
    account = store.create_account("a").id
    fresh = now() - timedelta(hours=24)
    with ThreadPoolExecutor(8) as pool:
        records = list(
            pool.map(
                lambda i: store.claim_idempotency_key(account, "k", "fp", f"ast_{i}", expired_before=fresh), range(8)
            )
        )
    winners = [i for i, r in enumerate(records) if r is None]
    assert len(winners) == 1
    assert {r.resource_id for r in records if r is not None} == {f"ast_{winners[0]}"}


@pytest.mark.sql_only("it reads and writes the assets table's JSON")
def test_the_video_json_stays_readable_across_releases(store: SqlStore) -> None:
    """The poster flag is a column, not a key in the `video` JSON: the release before it reads
    `VideoInfo(**video)` and would refuse a key it does not know (a rolling update, a rollback).
    And a key a newer release adds to that JSON does not break this one."""
    from roughy.core.models import VideoInfo

    video = VideoInfo(width=640, height=360, fps=30.0, codec="h264", bitrate_kbps=900, rotation=0, poster=True)
    a = asset(store, account(store), video=video)
    with store.engine.connect() as c:
        row = c.execute(select(t.assets.c.video, t.assets.c.poster).where(t.assets.c.id == a.id)).one()
    assert "poster" not in row.video and row.poster is True
    back = store.get_asset(a.id)
    assert back is not None and back.video == video
    with store.engine.begin() as c:
        c.execute(update(t.assets).where(t.assets.c.id == a.id).values(video={**row.video, "hdr_kind": "pq"}))
    assert store.get_asset(a.id).video == video  # type: ignore[union-attr]
