"""Webhooks, the pure part: Standard Webhooks signing, retry policy, target checks (the event
types are the registry in `roughy.core.events`).

Signing follows https://www.standardwebhooks.com: the secret is `whsec_` + base64 key bytes, the
signed content is `{webhook-id}.{webhook-timestamp}.{body}`, and `webhook-signature` carries one
`v1,<base64 HMAC-SHA256>` per valid secret, space separated (two during a rotation's overlap).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    raw = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    return base64.b64decode(raw + "==")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets_: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> str:
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets_)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, for at least `window` after the event; then failed."""

    base: float = 5.0  # seconds before the first retry
    cap: float = 3600.0  # longest wait between attempts
    window: float = 26 * 3600.0  # retries stop once the event is older than this (>= 24 h)
    disable_after: int = 100  # consecutive failed attempts that disable an endpoint

    def delay(self, failures: int, jitter: float) -> float:
        """Seconds to wait after the `failures`-th failed attempt; `jitter` in [0, 1)."""
        raw = min(self.cap, self.base * 2.0 ** max(0, failures - 1))
        return raw * (0.5 + jitter)  # full range: half to one and a half times

    def next_attempt(self, first_at: datetime, now: datetime, failures: int, jitter: float) -> datetime | None:
        """When to try again, or None when the retry window is over."""
        at = now + timedelta(seconds=self.delay(failures, jitter))
        if at - first_at > timedelta(seconds=self.window):
            return None
        return at


def forbidden_address(address: str) -> bool:
    """Loopback, private, link-local (cloud metadata lives there), multicast, reserved, unspecified."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


@dataclass
class WebhookEndpoint:
    id: str
    account_id: str
    url: str
    events: list[str]
    secret: str
    created_at: datetime
    previous_secret: str | None = None
    previous_secret_expires_at: datetime | None = None
    enabled: bool = True
    disabled_reason: str | None = None
    consecutive_failures: int = 0

    def signing_secrets(self, now: datetime) -> list[str]:
        """The current secret, plus the previous one while a rotation's overlap lasts."""
        keys = [self.secret]
        if self.previous_secret and self.previous_secret_expires_at and self.previous_secret_expires_at > now:
            keys.append(self.previous_secret)
        return keys


@dataclass(frozen=True)
class Attempt:
    attempted_at: datetime
    status_code: int | None
    latency_ms: float
    error: str | None


@dataclass
class Delivery:
    id: str
    event_id: str
    endpoint_id: str
    state: str  # pending | succeeded | failed
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    completed_at: datetime | None = None
    event_type: str = ""
    history: list[Attempt] | None = None


@dataclass(frozen=True)
class Event:
    id: str
    account_id: str
    type: str
    data: dict[str, object]
    created_at: datetime
