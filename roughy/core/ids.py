"""Opaque, prefixed identifiers and the clock. Kept here so tests can reason about them."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

PREFIXES = ("acct", "key", "ast", "cut", "rnd", "led", "whe", "evt", "dlv")


def new_id(prefix: str) -> str:
    assert prefix in PREFIXES, prefix
    return f"{prefix}_{secrets.token_urlsafe(12).replace('-', 'x').replace('_', 'y')}"


def now() -> datetime:
    return datetime.now(UTC)
