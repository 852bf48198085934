"""API keys: shown once, stored as a SHA-256 hash (the store hashes; this makes them)."""

from __future__ import annotations

import secrets

KEY_PREFIX = "rk_"


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)
