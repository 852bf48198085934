"""Webhook rows: endpoints, the event outbox, deliveries and attempts.

`emit` is called inside the transaction that changes a resource's state, so the event (and
one pending delivery per subscribed endpoint) commits or rolls back with that change: a crash
can neither lose an event nor invent one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from roughy.adapters.store import tables as t
from roughy.core.events import NewEvent
from roughy.core.ids import new_id, now
from roughy.core.webhooks import Attempt, Delivery, Event, WebhookEndpoint

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"


def emit(conn: Connection, events: Sequence[NewEvent]) -> list[str]:
    """Write each event and a pending delivery to each endpoint that wants it (deliveries to a
    disabled endpoint wait until it is enabled again: disabling pauses delivery, drops nothing)."""
    return [_emit_one(conn, event) for event in events]


def _emit_one(conn: Connection, event: NewEvent) -> str:
    event_id = new_id("evt")
    at = now()
    type_ = event.type.value
    conn.execute(
        insert(t.events).values(id=event_id, account_id=event.account_id, type=type_, data=event.data, created_at=at)
    )
    endpoints = conn.execute(
        select(t.webhook_endpoints.c.id, t.webhook_endpoints.c.events).where(
            t.webhook_endpoints.c.account_id == event.account_id
        )
    ).all()
    for endpoint_id, wanted in endpoints:
        if type_ in wanted:
            _queue(conn, event_id, endpoint_id, at)
    return event_id


def _queue(conn: Connection, event_id: str, endpoint_id: str, at: datetime) -> str:
    delivery_id = new_id("dlv")
    conn.execute(
        insert(t.deliveries).values(
            id=delivery_id,
            event_id=event_id,
            endpoint_id=endpoint_id,
            state=PENDING,
            attempts=0,
            next_attempt_at=at,
            created_at=at,
        )
    )
    return delivery_id


class WebhookStore:
    """Mixed into SqlStore: needs `self.tx()`, `self.is_sqlite` and `self._page()`."""

    tx: Any
    read: Any
    is_sqlite: bool
    _page: Any

    # -- endpoints --------------------------------------------------------------------------

    def insert_endpoint(self, endpoint: WebhookEndpoint) -> None:
        with self.tx() as c:
            c.execute(insert(t.webhook_endpoints).values(**_endpoint_row(endpoint)))

    def get_endpoint(self, endpoint_id: str, account_id: str | None = None) -> WebhookEndpoint | None:
        query = select(t.webhook_endpoints).where(t.webhook_endpoints.c.id == endpoint_id)
        if account_id is not None:
            query = query.where(t.webhook_endpoints.c.account_id == account_id)
        with self.read() as c:
            row = c.execute(query).mappings().first()
        return _endpoint(row) if row else None

    def list_endpoints(
        self, account_id: str, limit: int, starting_after: str | None
    ) -> tuple[list[WebhookEndpoint], bool]:
        rows, more = self._page(
            t.webhook_endpoints, [t.webhook_endpoints.c.account_id == account_id], limit, starting_after
        )
        return [_endpoint(r) for r in rows], more

    def delete_endpoint(self, endpoint_id: str) -> bool:
        with self.tx() as c:
            res = c.execute(delete(t.webhook_endpoints).where(t.webhook_endpoints.c.id == endpoint_id))
        return bool(res.rowcount > 0)

    def rotate_secret(self, endpoint_id: str, secret: str, overlap: float) -> WebhookEndpoint | None:
        """The new secret signs from now on; the old one too, for `overlap` seconds."""
        with self.tx() as c:
            row = c.execute(select(t.webhook_endpoints.c.secret).where(t.webhook_endpoints.c.id == endpoint_id)).first()
            if row is None:
                return None
            c.execute(
                update(t.webhook_endpoints)
                .where(t.webhook_endpoints.c.id == endpoint_id)
                .values(
                    secret=secret,
                    previous_secret=row.secret,
                    previous_secret_expires_at=now() + timedelta(seconds=overlap),
                )
            )
        return self.get_endpoint(endpoint_id)

    def set_endpoint_enabled(self, endpoint_id: str, enabled: bool, reason: str | None = None) -> None:
        """Enabling resumes the endpoint's waiting deliveries now, not at their backed-off retry time."""
        values: dict[str, Any] = {"enabled": enabled, "disabled_reason": reason}
        if enabled:
            values["consecutive_failures"] = 0
        with self.tx() as c:
            c.execute(update(t.webhook_endpoints).where(t.webhook_endpoints.c.id == endpoint_id).values(**values))
            if enabled:
                c.execute(
                    update(t.deliveries)
                    .where(t.deliveries.c.endpoint_id == endpoint_id, t.deliveries.c.state == PENDING)
                    .values(next_attempt_at=now())
                )

    # -- events and deliveries --------------------------------------------------------------

    def get_event(self, event_id: str, account_id: str | None = None) -> Event | None:
        query = select(t.events).where(t.events.c.id == event_id)
        if account_id is not None:
            query = query.where(t.events.c.account_id == account_id)
        with self.read() as c:
            row = c.execute(query).mappings().first()
        return Event(row["id"], row["account_id"], row["type"], row["data"], _utc(row["created_at"])) if row else None

    def redeliver(self, event: Event) -> list[str]:
        """A fresh pending delivery of the event to each endpoint that wants it (to a disabled
        one, it waits until the endpoint is enabled)."""
        with self.tx() as c:
            endpoints = c.execute(
                select(t.webhook_endpoints.c.id, t.webhook_endpoints.c.events).where(
                    t.webhook_endpoints.c.account_id == event.account_id,
                )
            ).all()
            return [_queue(c, event.id, eid, now()) for eid, wanted in endpoints if event.type in wanted]

    def claim_due_deliveries(
        self, limit: int, lease: float, exclude_endpoints: list[str] | None = None
    ) -> list[tuple[Delivery, Event, WebhookEndpoint]]:
        """Take due deliveries, pushing their next attempt `lease` seconds out so nobody else does.

        If this process dies mid-attempt, the lease runs out and the delivery is tried again:
        at least once, never lost.
        """
        at = now()
        query = (
            select(t.deliveries.c.id, t.deliveries.c.next_attempt_at)
            .join(t.webhook_endpoints, t.webhook_endpoints.c.id == t.deliveries.c.endpoint_id)
            .where(
                t.deliveries.c.state == PENDING,
                t.deliveries.c.next_attempt_at <= at,
                t.webhook_endpoints.c.enabled.is_(True),  # a disabled endpoint's deliveries wait
            )
            .order_by(t.deliveries.c.next_attempt_at)
            .limit(limit)
        )
        if exclude_endpoints:  # endpoints already using their share of the sender threads
            query = query.where(t.deliveries.c.endpoint_id.not_in(exclude_endpoints))
        if not self.is_sqlite:
            query = query.with_for_update(of=t.deliveries, skip_locked=True)
        with self.tx() as c:
            due = {row.id: _utc(row.next_attempt_at) for row in c.execute(query)}
            ids = list(due)
            if not ids:
                return []
            c.execute(
                update(t.deliveries)
                .where(t.deliveries.c.id.in_(ids))
                .values(next_attempt_at=at + timedelta(seconds=lease))
            )
            rows = c.execute(
                select(t.deliveries, t.events, t.webhook_endpoints)
                .join(t.events, t.events.c.id == t.deliveries.c.event_id)
                .join(t.webhook_endpoints, t.webhook_endpoints.c.id == t.deliveries.c.endpoint_id)
                .where(t.deliveries.c.id.in_(ids))
            ).all()
        claimed = [_claimed(row) for row in rows]
        for delivery, _event, _endpoint in claimed:
            delivery.next_attempt_at = due[delivery.id]  # when it was due, not the lease
        return sorted(claimed, key=lambda item: item[0].next_attempt_at or at)

    def release_deliveries(self, released: list[Delivery]) -> None:
        """Hand claimed deliveries back unattempted, due when they were (keeping their turn)."""
        with self.tx() as c:
            for delivery in released:
                c.execute(
                    update(t.deliveries)
                    .where(t.deliveries.c.id == delivery.id, t.deliveries.c.state == PENDING)
                    .values(next_attempt_at=delivery.next_attempt_at)
                )

    def record_attempt(
        self, delivery: Delivery, attempt: Attempt, *, next_attempt_at: datetime | None, disable_after: int
    ) -> bool:
        """Record an attempt. Success ends the delivery; a failure schedules the next attempt,
        or ends it as failed when `next_attempt_at` is None. Returns True if this failure
        disabled the endpoint (`disable_after` consecutive failed attempts)."""
        ok = attempt.status_code is not None and 200 <= attempt.status_code < 300 and attempt.error is None
        disabled = False
        with self.tx() as c:
            c.execute(insert(t.delivery_attempts).values(delivery_id=delivery.id, **_attempt_row(attempt)))
            values: dict[str, Any] = {"attempts": t.deliveries.c.attempts + 1}
            if ok:
                values |= {"state": SUCCEEDED, "completed_at": attempt.attempted_at, "next_attempt_at": None}
            elif next_attempt_at is None:
                values |= {"state": FAILED, "completed_at": attempt.attempted_at, "next_attempt_at": None}
            else:
                values |= {"next_attempt_at": next_attempt_at}
            c.execute(update(t.deliveries).where(t.deliveries.c.id == delivery.id).values(**values))
            ep = t.webhook_endpoints
            if ok:
                c.execute(update(ep).where(ep.c.id == delivery.endpoint_id).values(consecutive_failures=0))
            else:
                c.execute(
                    update(ep)
                    .where(ep.c.id == delivery.endpoint_id)
                    .values(consecutive_failures=ep.c.consecutive_failures + 1)
                )
                failures = c.execute(select(ep.c.consecutive_failures).where(ep.c.id == delivery.endpoint_id)).scalar()
                if failures is not None and failures >= disable_after:
                    res = c.execute(
                        update(ep)
                        .where(ep.c.id == delivery.endpoint_id, ep.c.enabled.is_(True))
                        .values(enabled=False, disabled_reason=f"{failures} consecutive failed attempts")
                    )
                    disabled = res.rowcount > 0
        return disabled

    def list_deliveries(self, endpoint_id: str, limit: int, starting_after: str | None) -> tuple[list[Delivery], bool]:
        rows, more = self._page(t.deliveries, [t.deliveries.c.endpoint_id == endpoint_id], limit, starting_after)
        if not rows:
            return [], more
        ids = [r["id"] for r in rows]
        with self.read() as c:
            types = dict(
                c.execute(
                    select(t.deliveries.c.id, t.events.c.type)
                    .join(t.events, t.events.c.id == t.deliveries.c.event_id)
                    .where(t.deliveries.c.id.in_(ids))
                ).all()
            )
            history: dict[str, list[Attempt]] = {i: [] for i in ids}
            for a in c.execute(
                select(t.delivery_attempts)
                .where(t.delivery_attempts.c.delivery_id.in_(ids))
                .order_by(t.delivery_attempts.c.seq)
            ).mappings():
                history[a["delivery_id"]].append(_attempt(a))
        deliveries = [_delivery(r) for r in rows]
        for d in deliveries:
            d.event_type = types.get(d.id, "")
            d.history = history[d.id]
        return deliveries, more


# -- mapping -------------------------------------------------------------------------------------


def _utc(value: datetime | None) -> Any:
    """SQLite hands back naive datetimes: they were written as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _endpoint_row(e: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": e.id,
        "account_id": e.account_id,
        "url": e.url,
        "events": list(e.events),
        "secret": e.secret,
        "previous_secret": e.previous_secret,
        "previous_secret_expires_at": e.previous_secret_expires_at,
        "enabled": e.enabled,
        "disabled_reason": e.disabled_reason,
        "consecutive_failures": e.consecutive_failures,
        "created_at": e.created_at,
    }


def _endpoint(r: Any) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=r["id"],
        account_id=r["account_id"],
        url=r["url"],
        events=list(r["events"]),
        secret=r["secret"],
        created_at=_utc(r["created_at"]),
        previous_secret=r["previous_secret"],
        previous_secret_expires_at=_utc(r["previous_secret_expires_at"]),
        enabled=bool(r["enabled"]),
        disabled_reason=r["disabled_reason"],
        consecutive_failures=int(r["consecutive_failures"]),
    )


def _delivery(r: Any) -> Delivery:
    return Delivery(
        id=r["id"],
        event_id=r["event_id"],
        endpoint_id=r["endpoint_id"],
        state=r["state"],
        attempts=int(r["attempts"]),
        next_attempt_at=_utc(r["next_attempt_at"]),
        created_at=_utc(r["created_at"]),
        completed_at=_utc(r["completed_at"]),
    )


def _attempt_row(a: Attempt) -> dict[str, Any]:
    return {
        "attempted_at": a.attempted_at,
        "status_code": a.status_code,
        "latency_ms": a.latency_ms,
        "error": a.error,
    }


def _attempt(r: Any) -> Attempt:
    return Attempt(_utc(r["attempted_at"]), r["status_code"], float(r["latency_ms"]), r["error"])


def _claimed(row: Any) -> tuple[Delivery, Event, WebhookEndpoint]:
    m = row._mapping
    delivery = Delivery(
        id=m[t.deliveries.c.id],
        event_id=m[t.deliveries.c.event_id],
        endpoint_id=m[t.deliveries.c.endpoint_id],
        state=m[t.deliveries.c.state],
        attempts=int(m[t.deliveries.c.attempts]),
        next_attempt_at=_utc(m[t.deliveries.c.next_attempt_at]),
        created_at=_utc(m[t.deliveries.c.created_at]),
    )
    event = Event(
        m[t.events.c.id],
        m[t.events.c.account_id],
        m[t.events.c.type],
        m[t.events.c.data],
        _utc(m[t.events.c.created_at]),
    )
    endpoint = _endpoint({c.name: m[c] for c in t.webhook_endpoints.c})
    return delivery, event, endpoint
