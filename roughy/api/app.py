"""The FastAPI application: routes per resource, one error mapping, the request edge."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI

from roughy import __version__
from roughy.api import errors, schemas
from roughy.api.deps import Services
from roughy.api.middleware import EdgeMiddleware
from roughy.api.routes import admin, assets, credits, cuts, encoder, files, health, renders, webhooks
from roughy.core.events import EventType


def _error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Document the envelope every error actually has (and replace FastAPI's default 422 body)."""
    return {
        status: {"model": schemas.ErrorEnvelope, "description": HTTPStatus(status).phrase} for status in statuses
    }


def create_app(
    services: Services,
    *,
    on_startup: Callable[[], Any] | None = None,
    on_shutdown: Callable[[], Any] | None = None,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if on_startup:
            on_startup()
        yield
        if on_shutdown:
            on_shutdown()

    app = FastAPI(
        title="roughy",
        version=__version__,
        summary="Upload, cut and render video and audio.",
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.metrics_registry = health.store_registry(services.app.renders.counts)
    errors.install(app)
    for module in (assets, cuts, renders, credits, admin, webhooks):
        app.include_router(module.router, responses=_error_responses(400, 401, 404, 409, 413, 422, 429, 500))
    app.include_router(files.router, responses=_error_responses(403, 404, 409, 413, 422))
    app.include_router(health.router)
    app.include_router(encoder.router)
    _document_webhooks(app)
    app.add_middleware(EdgeMiddleware, authenticate=services.app.accounts.authenticate, settings=services.settings)
    return app


def _document_webhooks(app: FastAPI) -> None:
    """The OpenAPI `webhooks` section: one entry per event type of the registry, with its body."""
    for event in EventType:
        model = schemas.event_model(event)

        def receive(body: Any) -> None: ...

        receive.__annotations__ = {"body": model, "return": None}
        app.webhooks.post(
            event.value,
            summary=event.value,
            description=event.description,
            operation_id="event_" + event.value.replace(".", "_"),
            responses={
                200: {"description": "Any 2xx answer within the timeout: delivered."},
                "default": {"description": "Anything else (or no answer in time): retried with backoff."},
            },
        )(receive)
