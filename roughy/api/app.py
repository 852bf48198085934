"""The FastAPI application: routes per resource, one error mapping, the request edge."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from roughy import __version__
from roughy.api import errors, openapi, schemas
from roughy.api.deps import Services
from roughy.api.middleware import EdgeMiddleware
from roughy.api.routes import admin, assets, console, credits, cuts, docs, encoder, files, health, renders, webhooks
from roughy.core.events import EventType

DESCRIPTION = """\
Upload a source asset, optionally derive a cut (the kept time segments), and ask for renders:
asynchronous jobs that each produce one downloadable file.

**Authentication:** `Authorization: Bearer <api key>` (the admin routes take the admin key).
**Errors:** `{"error": {"code", "message", "param", "request_id", "doc_url"}}`, with the codes each
operation lists; every code is explained at [/docs/errors](/docs/errors).
**Retries:** 429 and 503 carry `Retry-After`. `POST /v1/renders` is idempotent on its content;
`POST /v1/assets` and `POST /v1/assets/{asset_id}/cuts` take an `Idempotency-Key` header.
**Lists:** `limit` (1-100) and `starting_after`, newest first, `has_more`.
"""


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
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by routes/docs.py, with local assets
        redoc_url=None,
        generate_unique_id_function=openapi.operation_id,
    )
    app.state.services = services
    app.state.metrics_registry = health.store_registry(services.app.renders.counts)
    errors.install(app)
    for module in (assets, cuts, renders, credits, admin, webhooks):
        app.include_router(module.router, responses=openapi.errors(*openapi.AUTHENTICATED))
    app.include_router(files.router)
    app.include_router(health.router)
    app.include_router(docs.router)
    app.include_router(console.router)
    app.include_router(encoder.router)
    _document_webhooks(app)
    openapi.install(app)
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
