"""Webhook endpoints, their deliveries, and redelivery of events (SPEC 6). Delivering the
outbox is `roughy.app.delivery`."""

from __future__ import annotations

from roughy.core.errors import NotFound
from roughy.core.events import EventType
from roughy.core.ids import new_id, now
from roughy.core.ports import Store, WebhookTargets
from roughy.core.webhooks import Delivery, WebhookEndpoint, new_secret


class WebhookService:
    def __init__(self, store: Store, targets: WebhookTargets, *, secret_overlap: float = 86400.0):
        self.store = store
        self.targets = targets
        self.secret_overlap = secret_overlap

    def create(self, account_id: str, url: str, events: list[EventType]) -> WebhookEndpoint:
        """The signing secret (`whsec_...`) is shown in this answer only."""
        self.targets.check_url(url)
        endpoint = WebhookEndpoint(
            id=new_id("whe"),
            account_id=account_id,
            url=url,
            events=sorted({EventType(e).value for e in events}),
            secret=new_secret(),
            created_at=now(),
        )
        self.store.insert_endpoint(endpoint)
        return endpoint

    def get(self, account_id: str, endpoint_id: str) -> WebhookEndpoint:
        endpoint = self.store.get_endpoint(endpoint_id, account_id)
        if endpoint is None:
            raise NotFound(f"no such webhook endpoint: {endpoint_id}")
        return endpoint

    def page(self, account_id: str, limit: int, starting_after: str | None) -> tuple[list[WebhookEndpoint], bool]:
        return self.store.list_endpoints(account_id, limit, starting_after)

    def delete(self, account_id: str, endpoint_id: str) -> None:
        self.store.delete_endpoint(self.get(account_id, endpoint_id).id)

    def rotate_secret(self, account_id: str, endpoint_id: str) -> WebhookEndpoint:
        """A new secret, shown once; the old one keeps signing too until the overlap ends."""
        endpoint = self.get(account_id, endpoint_id)
        rotated = self.store.rotate_secret(endpoint.id, new_secret(), self.secret_overlap)
        if rotated is None:
            raise NotFound(f"no such webhook endpoint: {endpoint_id}")
        return rotated

    def enable(self, account_id: str, endpoint_id: str) -> WebhookEndpoint:
        """Re-enable an endpoint disabled after repeated failures; its pending deliveries resume."""
        endpoint = self.get(account_id, endpoint_id)
        self.targets.check_url(endpoint.url)
        self.store.set_endpoint_enabled(endpoint.id, True)
        return self.get(account_id, endpoint_id)

    def deliveries(
        self, account_id: str, endpoint_id: str, limit: int, starting_after: str | None
    ) -> tuple[list[Delivery], bool]:
        endpoint = self.get(account_id, endpoint_id)
        return self.store.list_deliveries(endpoint.id, limit, starting_after)

    def redeliver(self, account_id: str, event_id: str) -> list[str]:
        """Queue the event again, with the same `evt_` id, to every endpoint that wants it."""
        event = self.store.get_event(event_id, account_id)
        if event is None:
            raise NotFound(f"no such event: {event_id}")
        return self.store.redeliver(event)
