"""Encoder tokens: what an encoder pod proves it works for one render with.

On Kubernetes the encoder has no API credentials and no S3 credentials. The operator gives each
render's Jobs one random token (in a Secret mounted as a file, never in the environment); the
database keeps only its SHA-256. With it the encoder asks the API for presigned URLs when it
needs them (sources at start, the output's upload once encoded: never a URL that waited hours
for a node) and reports progress. A token opens one render's URLs and nothing else, and stops
working once the render is finished or deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_BYTES = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    """What the database keeps (hex SHA-256): a 256-bit random token needs no slow hash."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str | None, digest: str | None) -> bool:
    """Whether `token` is the one whose digest is kept, compared in constant time."""
    if not token or not digest:
        return False
    return hmac.compare_digest(token_digest(token), digest)
