"""Webhook endpoints, their deliveries, and redelivery of events (SPEC 6)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from roughy.api import schemas as s
from roughy.api.deps import AccountDep, Limit, ServicesDep, StartingAfter
from roughy.api.openapi import WITH_BODY, errors
from roughy.core.errors import ErrorCode as E
from roughy.core.webhooks import Delivery, WebhookEndpoint

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
        state=d.state,
        attempts=[s.AttemptOut(**vars(a)) for a in d.history or []],
        next_retry_at=d.next_attempt_at if d.state == "pending" else None,
        created_at=d.created_at,
        completed_at=d.completed_at,
    )


@router.post(
    "/v1/webhook_endpoints",
    status_code=status.HTTP_201_CREATED,
    response_model=s.WebhookEndpointOut,
    response_model_exclude_none=False,
    responses=errors(*WITH_BODY),
)
def create_endpoint(body: s.WebhookEndpointCreate, svc: ServicesDep, account: AccountDep) -> s.WebhookEndpointOut:
    """The signing secret (`whsec_...`) is in this answer only."""
    return endpoint_out(svc.app.webhooks.create(account.id, body.url, body.events), secret=True)


@router.get(
    "/v1/webhook_endpoints", response_model=s.ListOf[s.WebhookEndpointOut], responses=errors(E.VALIDATION_ERROR)
)
def list_endpoints(
    svc: ServicesDep, account: AccountDep, limit: Limit = 20, starting_after: StartingAfter = None
) -> s.ListOf[s.WebhookEndpointOut]:
    items, more = svc.app.webhooks.page(account.id, limit, starting_after)
    return s.ListOf[s.WebhookEndpointOut](data=[endpoint_out(e) for e in items], has_more=more)


@router.get("/v1/webhook_endpoints/{endpoint_id}", response_model=s.WebhookEndpointOut, responses=errors(E.NOT_FOUND))
def get_endpoint(endpoint_id: str, svc: ServicesDep, account: AccountDep) -> s.WebhookEndpointOut:
    return endpoint_out(svc.app.webhooks.get(account.id, endpoint_id))


@router.delete(
    "/v1/webhook_endpoints/{endpoint_id}", status_code=204, response_class=Response, responses=errors(E.NOT_FOUND)
)
def delete_endpoint(endpoint_id: str, svc: ServicesDep, account: AccountDep) -> Response:
    svc.app.webhooks.delete(account.id, endpoint_id)
    return Response(status_code=204)


@router.post(
    "/v1/webhook_endpoints/{endpoint_id}/rotate_secret",
    response_model=s.WebhookEndpointOut,
    responses=errors(E.NOT_FOUND),
)
def rotate_secret(endpoint_id: str, svc: ServicesDep, account: AccountDep) -> s.WebhookEndpointOut:
    """A new secret, shown once; the old one keeps signing too until `previous_secret_expires_at`."""
    return endpoint_out(svc.app.webhooks.rotate_secret(account.id, endpoint_id), secret=True)


@router.post(
    "/v1/webhook_endpoints/{endpoint_id}/enable", response_model=s.WebhookEndpointOut, responses=errors(E.NOT_FOUND)
)
def enable_endpoint(endpoint_id: str, svc: ServicesDep, account: AccountDep) -> s.WebhookEndpointOut:
    """Re-enable an endpoint that was disabled after repeated failures; its pending deliveries resume."""
    return endpoint_out(svc.app.webhooks.enable(account.id, endpoint_id))


@router.get(
    "/v1/webhook_endpoints/{endpoint_id}/deliveries",
    response_model=s.ListOf[s.DeliveryOut],
    responses=errors(E.NOT_FOUND, E.VALIDATION_ERROR),
)
def list_deliveries(
    endpoint_id: str, svc: ServicesDep, account: AccountDep, limit: Limit = 20, starting_after: StartingAfter = None
) -> s.ListOf[s.DeliveryOut]:
    """Deliveries to this endpoint, newest first, each with its attempts and next retry."""
    items, more = svc.app.webhooks.deliveries(account.id, endpoint_id, limit, starting_after)
    return s.ListOf[s.DeliveryOut](data=[delivery_out(d) for d in items], has_more=more)


@router.post(
    "/v1/events/{event_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=s.RedeliverOut,
    responses=errors(E.NOT_FOUND),
)
def redeliver(event_id: str, svc: ServicesDep, account: AccountDep) -> s.RedeliverOut:
    """Queue the event again, with the same `evt_` id, to every endpoint that wants it
    (a disabled endpoint's copy waits until it is enabled)."""
    return s.RedeliverOut(event_id=event_id, deliveries=svc.app.webhooks.redeliver(account.id, event_id))
