"""Typed dependencies: what a route needs, resolved from the app's wiring."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import HTTPBearer

from roughy.app import Application
from roughy.app.encoding import EncoderGateway
from roughy.core.models import Account
from roughy.core.ports import ServedFiles
from roughy.settings import Settings

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`.")


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


ServicesDep = Annotated[Services, Depends(get_services)]
AccountDep = Annotated[Account, Depends(get_account)]
Limit = Annotated[int, Query(ge=1, le=100, description="Page size (1-100).")]
StartingAfter = Annotated[str | None, Query(description="An id: return the items after it (older).")]
