"""The admin API (SPEC 7): only when ROUGHY_ADMIN_KEY is set; the middleware checks that key."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response, status

from roughy.api import schemas as s
from roughy.api.deps import ServicesDep, admin_key
from roughy.api.openapi import WITH_BODY, errors
from roughy.api.views import ledger_out
from roughy.core.errors import ErrorCode as E

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[Depends(admin_key)],
    responses=errors(E.NOT_FOUND),  # also: the admin API is not enabled
)


@router.post(
    "/accounts", status_code=status.HTTP_201_CREATED, response_model=s.AccountOut, responses=errors(*WITH_BODY)
)
def create_account(body: s.AccountCreate, svc: ServicesDep) -> s.AccountOut:
    account = svc.app.accounts.create_account(body.name)
    return s.AccountOut(id=account.id, name=account.name)


@router.post("/accounts/{account_id}/api_keys", status_code=status.HTTP_201_CREATED, response_model=s.ApiKeyOut)
def create_api_key(account_id: str, svc: ServicesDep) -> s.ApiKeyOut:
    key_id, key = svc.app.accounts.create_api_key(account_id)
    return s.ApiKeyOut(id=key_id, key=key)


@router.delete("/api_keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def revoke_api_key(key_id: str, svc: ServicesDep) -> Response:
    svc.app.accounts.revoke_api_key(key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/accounts/{account_id}/credits",
    status_code=status.HTTP_201_CREATED,
    response_model=s.LedgerEntryOut,
    responses=errors(*WITH_BODY),
)
def grant_credits(account_id: str, body: s.CreditGrant, svc: ServicesDep) -> s.LedgerEntryOut:
    """A grant wakes the runtime: assets waiting in payment_required resume by themselves."""
    return ledger_out(svc.app.accounts.grant(account_id, body.amount, body.reason))
