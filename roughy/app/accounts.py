"""Accounts, API keys and credits (SPEC 3 and 7): the admin's use cases and an account's balance.

A grant wakes the scheduler: assets waiting in `payment_required` resume by themselves.
"""

from __future__ import annotations

from collections.abc import Callable

from roughy.core.accounts import new_api_key
from roughy.core.errors import NotFound
from roughy.core.models import Account, LedgerEntry
from roughy.core.ports import Store


class AccountService:
    def __init__(self, store: Store, *, wake: Callable[[], None] = lambda: None):
        self.store = store
        self.wake = wake

    def create_account(self, name: str) -> Account:
        return self.store.create_account(name)

    def create_api_key(self, account_id: str) -> tuple[str, str]:
        """(key id, the key itself: shown once)."""
        self._require(account_id)
        key = new_api_key()
        return self.store.create_api_key(account_id, key), key

    def revoke_api_key(self, key_id: str) -> None:
        if not self.store.revoke_api_key(key_id):
            raise NotFound(f"no such active API key: {key_id}")

    def authenticate(self, key: str) -> Account | None:
        return self.store.account_for_key(key)

    def grant(self, account_id: str, amount: int, reason: str | None) -> LedgerEntry:
        self._require(account_id)
        entry = self.store.grant(account_id, amount, reason or "admin grant")
        self.wake()
        return entry

    def credits(self, account_id: str) -> tuple[int, list[LedgerEntry]]:
        """The balance and the ledger, newest first."""
        return self.store.balance(account_id), self.store.ledger_entries(account_id)

    def first_start(self, starter_credits: int) -> tuple[str, str] | None:
        """On an empty database: a first account, its API key (returned once) and starter credits."""
        if self.store.count_accounts() > 0:
            return None
        account = self.store.create_account("default")
        key = new_api_key()
        self.store.create_api_key(account.id, key)
        if starter_credits:
            self.store.grant(account.id, starter_credits, "starter credits")
        return account.id, key

    def _require(self, account_id: str) -> None:
        if self.store.get_account(account_id) is None:
            raise NotFound(f"no such account: {account_id}")
