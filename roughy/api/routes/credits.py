"""Credits (SPEC 3): the account's balance and ledger. Granting is the operator's (admin API)."""

from __future__ import annotations

from fastapi import APIRouter

from roughy.api import schemas as s
from roughy.api.deps import AccountDep, ServicesDep
from roughy.api.views import ledger_out

router = APIRouter(prefix="/v1/credits", tags=["credits"])


@router.get("", response_model=s.CreditsOut)
def get_credits(svc: ServicesDep, account: AccountDep) -> s.CreditsOut:
    balance, entries = svc.app.accounts.credits(account.id)
    return s.CreditsOut(balance=balance, entries=[ledger_out(e) for e in entries])
