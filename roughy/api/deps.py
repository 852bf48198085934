"""Typed dependencies: what a route needs, resolved from the app's wiring."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPBearer

from roughy.app import Application
from roughy.app.encoding import EncoderGateway
from roughy.core.models import Account
from roughy.core.ports import ServedFiles
from roughy.settings import Settings

bearer = HTTPBearer(auto_error=False, scheme_name="ApiKey", description="An API key: `Authorization: Bearer <key>`.")
admin_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="AdminKey",
    description="The service's admin key (`ROUGHY_ADMIN_KEY`): `Authorization: Bearer <admin key>`.",
)


@dataclass
class Services:
    """What the API runs on, wired once by the composition root (`roughy.bootstrap`)."""

    settings: Settings
    app: Application
    files: ServedFiles | None = None  # the storage, when the API serves its signed URLs itself
    encoder: EncoderGateway | None = None  # the encoder pods' channel (Kubernetes runtime)


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def get_account(request: Request, _key: Any = Depends(bearer)) -> Account:
    """The middleware authenticated the request; this only hands the account over (and documents auth)."""
    return request.state.account  # type: ignore[no-any-return]


def admin_key(_key: Any = Depends(admin_bearer)) -> None:
    """The middleware checked the admin key; this only documents it."""


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Any unique string (a UUID) per logical request, the same on each of its retries: a retry "
        "then answers the first try's resource instead of creating (and charging for) another. Remembered 24 h; "
        "reusing a key for another request is a 422.",
    ),
]
ServicesDep = Annotated[Services, Depends(get_services)]
AccountDep = Annotated[Account, Depends(get_account)]
Limit = Annotated[int, Query(ge=1, le=100, description="Page size (1-100).")]
StartingAfter = Annotated[str | None, Query(description="An id: return the items after it (older).")]
