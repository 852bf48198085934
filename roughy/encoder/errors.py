"""Encoder errors: a stable `code` for the API, an `exit_code` for the process.

The exit code is the contract with whoever started `roughy-encode`: the embedded runtime reads
it, and on Kubernetes a Job's `podFailurePolicy` fails fast on `InvalidMedia.exit_code` (3)
instead of retrying a source that will never decode. Messages are for humans: they carry the
last few lines of ffmpeg's stderr, never a Python traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: How many trailing stderr lines an error message keeps: enough for ffmpeg's reason, short
#: enough to show in an API response.
TAIL_LINES = 5
TAIL_CHARS = 600


class EncoderError(Exception):
    """Base of every error the encoder reports on purpose."""

    code: str = "encode_failed"
    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class InvalidMedia(EncoderError):
    """The input is junk, truncated or undecodable: permanent, retrying cannot help."""

    code = "invalid_media"
    exit_code = 3


class EncodeTimeout(EncoderError):
    """The encode ran past its time limit and was killed."""

    code = "encode_timeout"
    exit_code = 4


class EncodeFailed(EncoderError):
    """Anything else ffmpeg failed at (may be transient: a network read, a full disk)."""

    code = "encode_failed"
    exit_code = 1


#: ffmpeg's per-component prefixes ("[in#0 @ 0x55c4e23f3a40] "): noise to a reader.
_COMPONENT_PREFIX = re.compile(r"\[[^\]]* @ 0x[0-9a-f]+\]\s*")
#: Query strings of URLs (presigned signatures) must not end up in an API response.
_URL_QUERY = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s?]+)\?\S*", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with the query string of every URL in it replaced by `...`."""
    return _URL_QUERY.sub(r"\1?...", text)


def clean_line(line: str) -> str:
    """One stderr line as a person should see it: no component addresses, no URL secrets."""
    line = _COMPONENT_PREFIX.sub("", line)
    return _URL_QUERY.sub(r"\1?...", line).strip()


def stderr_tail(lines: Iterable[str], *, max_lines: int = TAIL_LINES, max_chars: int = TAIL_CHARS) -> str:
    """The useful end of ffmpeg's stderr: last non-empty lines, trimmed, joined with ' | '.

    ffmpeg prints the actual reason last; progress noise and blank lines are dropped so the
    message stays one readable line.
    """
    kept = [cleaned for cleaned in map(clean_line, lines) if cleaned]
    text = " | ".join(kept[-max_lines:])
    if len(text) > max_chars:
        text = "..." + text[-(max_chars - 3) :]
    return text


def with_tail(message: str, lines: Iterable[str]) -> str:
    """`message`, followed by ffmpeg's stderr tail when there is one."""
    tail = stderr_tail(lines)
    return f"{message}: {tail}" if tail else message
