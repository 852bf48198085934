"""`Idempotency-Key` for creations that are not idempotent by content (assets, cuts).

A client (the SDK, a proxy's retry) sends the same key with each try of one logical request:
- the first try claims the key for the id the new resource gets, then creates it;
- a retry with the same key and the same request answers that resource as it is now, so a
  timeout after the server created it makes no second asset and no second charge;
- the same key with another request (another body, another path) is a 422: keys are not reused;
- a retry that arrives while the first try is still creating answers 409
  `idempotency_key_in_use` with `Retry-After`;
- a key is remembered for 24 hours; a failed try forgets it, so its retry runs again.

The key is scoped to the account. Concurrent tries with one key create one resource: the
store's claim is atomic (a primary key in SQL).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from roughy.core.errors import IdempotencyKeyInUse, NotFound, ValidationFailed
from roughy.core.ids import now
from roughy.core.ports import IdempotencyStore

T = TypeVar("T")

HEADER = "Idempotency-Key"
TTL = timedelta(hours=24)
#: A claimed key whose resource is not created yet is "in progress" this long (then its process
#: is taken for dead: the key answers 404, and a new key makes a new resource).
IN_PROGRESS = timedelta(seconds=30)
MAX_LENGTH = 255


def fingerprint(operation: str, request: dict[str, Any]) -> str:
    """The request a key stands for: the operation (with its path ids) and the parsed body."""
    text = json.dumps([operation, request], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def check_key(key: str) -> str:
    if not key or len(key) > MAX_LENGTH or not key.isascii() or not key.isprintable():
        raise ValidationFailed(
            f"{HEADER} must be 1-{MAX_LENGTH} printable ASCII characters (a UUID is a good key)", param=HEADER
        )
    return key


class Idempotency:
    def __init__(self, store: IdempotencyStore):
        self.store = store

    def once(
        self,
        account_id: str,
        key: str | None,
        request: str,
        new_id: str,
        create: Callable[[str], T],
        find: Callable[[str], T | None],
    ) -> T:
        """`create(new_id)`, unless `key` already made a resource for this `request`
        (`fingerprint`): then that resource, as `find` reads it now."""
        if key is None:
            return create(new_id)
        key = check_key(key)
        record = self.store.claim_idempotency_key(account_id, key, request, new_id, expired_before=now() - TTL)
        if record is None:
            try:
                created = create(new_id)
            except BaseException:
                self.store.release_idempotency_key(account_id, key)
                raise
            self.store.finish_idempotency_key(account_id, key)
            return created
        if record.fingerprint != request:
            raise ValidationFailed(f"this {HEADER} was already used for another request; use a new key", param=HEADER)
        if not record.finished and now() - record.created_at < IN_PROGRESS:
            raise IdempotencyKeyInUse(f"a request with this {HEADER} is still being answered; retry in a moment")
        existing = find(record.resource_id)
        if existing is not None:
            return existing
        raise NotFound(f"{record.resource_id}, made by this {HEADER}, was deleted; use a new key for a new one")
