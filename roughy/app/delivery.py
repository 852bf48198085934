"""Delivers the outbox: claims due deliveries, sends them on a pool, records every attempt.

It runs beside the embedded runtime (and, on Kubernetes, in the operator). Each delivery is
sent on its own pool thread, so a slow or dead receiver holds one thread for at most the
timeout and never blocks renders, other endpoints or other deliveries.
"""

from __future__ import annotations

import logging
import random
import threading
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import Counter

from roughy.app.signal import Ticker
from roughy.core.ids import now
from roughy.core.ports import WebhookStore, WebhookTransport
from roughy.core.webhooks import Delivery, Event, RetryPolicy, WebhookEndpoint

log = logging.getLogger(__name__)

ATTEMPTS = Counter("roughy_webhook_attempts_total", "Webhook delivery attempts", ["outcome"])
GAVE_UP = Counter("roughy_webhook_deliveries_failed_total", "Deliveries that ran out of retries")
DISABLED = Counter("roughy_webhook_endpoints_disabled_total", "Endpoints disabled after repeated failures")


class WebhookDispatcher:
    def __init__(
        self,
        store: WebhookStore,
        sender: WebhookTransport,
        policy: RetryPolicy,
        *,
        workers: int = 8,
        poll_interval: float = 0.25,
        rng: random.Random | None = None,
    ):
        self.store = store
        self.sender = sender
        self.policy = policy
        self.workers = workers
        self.poll_interval = poll_interval
        self.lease = sender.timeout + 10.0
        self._rng = rng or random.Random()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="webhook")
        self._busy = 0
        # One endpoint may hold at most half the pool: a slow or dead receiver delays only itself.
        self.max_per_endpoint = max(1, workers // 2)
        self._per_endpoint: dict[str, int] = {}
        self._lock = threading.Lock()
        self._loop = Ticker("webhooks", self._tick, interval=poll_interval)

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def wake(self) -> None:
        self._loop.signal.wake()

    def _tick(self) -> None:
        if self.tick():
            self.wake()  # there may be more due at once: no wait before the next claim

    def tick(self) -> int:
        with self._lock:
            free = self.workers - self._busy
        if free <= 0:
            return 0
        with self._lock:
            full = [e for e, n in self._per_endpoint.items() if n >= self.max_per_endpoint]
        claimed = self.store.claim_due_deliveries(free, self.lease, exclude_endpoints=full)
        postponed = []
        for delivery, event, endpoint in claimed:
            with self._lock:
                if self._per_endpoint.get(endpoint.id, 0) >= self.max_per_endpoint:
                    postponed.append(delivery)
                    continue
                self._busy += 1
                self._per_endpoint[endpoint.id] = self._per_endpoint.get(endpoint.id, 0) + 1
            self._pool.submit(self._deliver, delivery, event, endpoint)
        if postponed:  # their endpoint already holds its share of the pool: hand them back
            self.store.release_deliveries(postponed)
        return len(claimed) - len(postponed)

    def _deliver(self, delivery: Delivery, event: Event, endpoint: WebhookEndpoint) -> None:
        try:
            self.attempt(delivery, event, endpoint)
        except Exception:
            log.exception("delivery %s crashed; its lease will expire and it is retried", delivery.id)
        finally:
            with self._lock:
                self._busy -= 1
                self._per_endpoint[endpoint.id] -= 1
                if not self._per_endpoint[endpoint.id]:
                    del self._per_endpoint[endpoint.id]
            self.wake()

    def attempt(self, delivery: Delivery, event: Event, endpoint: WebhookEndpoint) -> None:
        """One attempt, recorded; a failure is scheduled again with backoff or given up."""
        result = self.sender.send(endpoint, event)
        ok = result.error is None
        ATTEMPTS.labels("success" if ok else "failure").inc()
        next_at = None
        if not ok:
            next_at = self.policy.next_attempt(delivery.created_at, now(), delivery.attempts + 1, self._rng.random())
            if next_at is None:
                GAVE_UP.inc()
                log.warning("delivery %s of %s to %s failed for good", delivery.id, event.id, endpoint.url)
        disabled = self.store.record_attempt(
            delivery, result, next_attempt_at=next_at, disable_after=self.policy.disable_after
        )
        if disabled:
            DISABLED.inc()
            log.warning("endpoint %s disabled after repeated failures", endpoint.id)
