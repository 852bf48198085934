"""Webhook endpoints, their deliveries, and redelivery of events (SPEC 6)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from roughy.api import schemas as s
from roughy.api.deps import AccountDep, Limit, ServicesDep, StartingAfter
from roughy.core.errors import NotFound
from roughy.core.ids import new_id, now
from roughy.core.webhooks import Delivery, WebhookEndpoint, new_secret

router = APIRouter(tags=["webhooks"])


def endpoint_out(e: WebhookEndpoint, *, secret: bool = False) -> s.WebhookEndpointOut:
    return s.WebhookEndpointOut(
        id=e.id,
        url=e.url,
        events=e.events,
        enabled=e.enabled,
        disabled_reason=e.disabled_reason,
        created_at=e.created_at,
        secret=e.secret if secret else None,
        previous_secret_expires_at=e.previous_secret_expires_at if secret else None,
    )


def delivery_out(d: Delivery) -> s.DeliveryOut:
    return s.DeliveryOut(
        id=d.id,
        event_id=d.event_id,
        event_type=d.event_type,
        state=d.state,  # type: ignore[arg-type]
        attempts=[s.AttemptOut(**vars(a)) for a in d.history or []],
        next_retry_at=d.next_attempt_at if d.state == "pending" else None,
        created_at=d.created_at,
        completed_at=d.completed_at,
    )


def load_endpoint(svc: ServicesDep, account: AccountDep, endpoint_id: str) -> WebhookEndpoint:
    endpoint = svc.store.get_endpoint(endpoint_id, account.id)
    if endpoint is None:
        raise NotFound(f"no such webhook endpoint: {endpoint_id}")
    return endpoint


@router.post(
    "/v1/webhook_endpoints", status_code=status.HTTP_201_CREATED, response_model=s.WebhookEndpointOut,
    response_model_exclude_none=False,
)
def create_endpoint(body: s.WebhookEndpointCreate, svc: ServicesDep, account: AccountDep) -> s.WebhookEndpointOut:
    """The signing secret (`whsec_...`) is in this answer only."""
    svc.webhooks.check_url(body.url)
    endpoint = WebhookEndpoint(
        id=new_id("whe"),
        account_id=account.id,
        url=body.url,
        events=sorted(set(body.events)),
        secret=new_secret(),
        created_at=now(),
    )
    svc.store.insert_endpoint(endpoint)
    return endpoint_out(endpoint, secret=True)


@router.get("/v1/webhook_endpoints", response_model=s.ListOf[s.WebhookEndpointOut])
def list_endpoints(
    svc: ServicesDep, account: AccountDep, limit: Limit = 20, starting_after: StartingAfter = None
) -> s.ListOf[s.WebhookEndpointOut]:
    items, more = svc.store.list_endpoints(account.id, limit, starting_after)
    return s.ListOf[s.WebhookEndpointOut](data=[endpoint_out(e) for e in items], has_more=more)


@router.get("/v1/webhook_endpoints/{endpoint_id}", response_model=s.WebhookEndpointOut)
def get_endpoint(endpoint_id: str, svc: ServicesDep, account: AccountDep) -> s.WebhookEndpointOut:
    return endpoint_out(load_endpoint(svc, account, endpoint_id))


@router.delete("/v1/webhook_endpoints/{endpoint_id}", status_code=204, response_class=Response)
def delete_endpoint(endpoint_id: str, svc: ServicesDep, account: AccountDep) -> Response:
    svc.store.delete_endpoint(load_endpoint(svc, account, endpoint_id).id)
    return Response(status_code=204)


@router.post("/v1/webhook_endpoints/{endpoint_id}/rotate_secret", response_model=s.WebhookEndpointOut)
def rotate_secret(endpoint_id: str, svc: ServicesDep, account: AccountDep) -> s.WebhookEndpointOut:
    """A new secret, shown once; the old one keeps signing too until `previous_secret_expires_at`."""
    endpoint = load_endpoint(svc, account, endpoint_id)
    rotated = svc.store.rotate_secret(endpoint.id, new_secret(), svc.settings.webhook_secret_overlap)
    if rotated is None:
        raise NotFound(f"no such webhook endpoint: {endpoint_id}")
    return endpoint_out(rotated, secret=True)


@router.post("/v1/webhook_endpoints/{endpoint_id}/enable", response_model=s.WebhookEndpointOut)
def enable_endpoint(endpoint_id: str, svc: ServicesDep, account: AccountDep) -> s.WebhookEndpointOut:
    """Re-enable an endpoint that was disabled after repeated failures; its pending deliveries resume."""
    endpoint = load_endpoint(svc, account, endpoint_id)
    svc.webhooks.check_url(endpoint.url)
    svc.store.set_endpoint_enabled(endpoint.id, True)
    return endpoint_out(load_endpoint(svc, account, endpoint_id))


@router.get("/v1/webhook_endpoints/{endpoint_id}/deliveries", response_model=s.ListOf[s.DeliveryOut])
def list_deliveries(
    endpoint_id: str, svc: ServicesDep, account: AccountDep, limit: Limit = 20, starting_after: StartingAfter = None
) -> s.ListOf[s.DeliveryOut]:
    """Deliveries to this endpoint, newest first, each with its attempts and next retry."""
    endpoint = load_endpoint(svc, account, endpoint_id)
    items, more = svc.store.list_deliveries(endpoint.id, limit, starting_after)
    return s.ListOf[s.DeliveryOut](data=[delivery_out(d) for d in items], has_more=more)


@router.post("/v1/events/{event_id}/redeliver", status_code=status.HTTP_202_ACCEPTED, response_model=s.RedeliverOut)
def redeliver(event_id: str, svc: ServicesDep, account: AccountDep) -> s.RedeliverOut:
    """Queue the event again, with the same `evt_` id, to every endpoint that wants it
    (a disabled endpoint's copy waits until it is enabled)."""
    event = svc.store.get_event(event_id, account.id)
    if event is None:
        raise NotFound(f"no such event: {event_id}")
    return s.RedeliverOut(event_id=event.id, deliveries=svc.store.redeliver(event))
