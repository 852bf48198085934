"""Typed dependencies: what a route needs, resolved from the app's wiring."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import HTTPBearer

from roughy.core.models import Account
from roughy.settings import Settings

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`.")


@dataclass
class Services:
    """The ports the API runs on, wired once by `create_app`."""

    settings: Settings
    store: Any  # SqlStore
    storage: Any  # Storage port
    runtime: Any  # wake() and cancel(render_id)
    webhooks: Any = None  # check_url(url): refuses targets that could never be delivered to


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def get_account(request: Request, _key: Any = Depends(bearer)) -> Account:
    """The middleware authenticated the request; this only hands the account over (and documents auth)."""
    return request.state.account  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]
AccountDep = Annotated[Account, Depends(get_account)]
Limit = Annotated[int, Query(ge=1, le=100, description="Page size (1-100).")]
StartingAfter = Annotated[str | None, Query(description="An id: return the items after it (older).")]
