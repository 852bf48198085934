"""The admin API (SPEC 7): only when ROUGHY_ADMIN_KEY is set; the middleware checks that key."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from roughy.api import schemas as s
from roughy.api.deps import ServicesDep
from roughy.api.views import ledger_out
from roughy.core.accounts import new_api_key
from roughy.core.errors import NotFound

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post("/accounts", status_code=status.HTTP_201_CREATED, response_model=s.AccountOut)
def create_account(body: s.AccountCreate, svc: ServicesDep) -> s.AccountOut:
    account = svc.store.create_account(body.name)
    return s.AccountOut(id=account.id, name=account.name)


@router.post("/accounts/{account_id}/api_keys", status_code=status.HTTP_201_CREATED, response_model=s.ApiKeyOut)
def create_api_key(account_id: str, svc: ServicesDep) -> s.ApiKeyOut:
    if svc.store.get_account(account_id) is None:
        raise NotFound(f"no such account: {account_id}")
    key = new_api_key()
    return s.ApiKeyOut(id=svc.store.create_api_key(account_id, key), key=key)


@router.delete("/api_keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def revoke_api_key(key_id: str, svc: ServicesDep) -> Response:
    if not svc.store.revoke_api_key(key_id):
        raise NotFound(f"no such active API key: {key_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/accounts/{account_id}/credits", status_code=status.HTTP_201_CREATED, response_model=s.LedgerEntryOut)
def grant_credits(account_id: str, body: s.CreditGrant, svc: ServicesDep) -> s.LedgerEntryOut:
    """A grant wakes the runtime: assets waiting in payment_required resume by themselves."""
    if svc.store.get_account(account_id) is None:
        raise NotFound(f"no such account: {account_id}")
    entry = svc.store.grant(account_id, body.amount, body.reason or "admin grant")
    svc.runtime.wake()
    return ledger_out(entry)
