"""The contract between `roughy-encode` and whoever runs it, read in one place.

The encoder prints one JSON object per line on stdout: `{"encoder": name}` first (video
renders), `{"progress": x}` as it goes, then `{"result": {...}}` or `{"error": {"code",
"message"}}`; on Kubernetes the last of these is also its container's termination message.
Its exit code says the same for a reader that has no output: 0 done, 2 an unusable plan,
3 invalid media (a Job's podFailurePolicy fails fast on it), 4 past its time limit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from roughy.encoder.errors import EncodeFailed, EncoderError, EncodeTimeout, InvalidMedia

#: The exit code of an unusable plan or command line (argparse's own, too).
EXIT_USAGE = 2
#: A SPEC error code for each exit code the encoder uses on purpose.
EXIT_CODES: dict[int, str] = {
    EXIT_USAGE: "invalid_plan",
    InvalidMedia.exit_code: InvalidMedia.code,
    EncodeTimeout.exit_code: EncodeTimeout.code,
}
ERRORS: dict[str, type[EncoderError]] = {cls.code: cls for cls in (InvalidMedia, EncodeTimeout, EncodeFailed)}


def decode(line: str) -> dict[str, Any]:
    """One line of the encoder's output as a message; {} for anything that is not one."""
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass
class Messages:
    """What the encoder said, folded: the newest progress, the encoder used, the outcome."""

    progress: float | None = None
    encoder: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def add(self, message: dict[str, Any]) -> None:
        progress, encoder = message.get("progress"), message.get("encoder")
        if isinstance(progress, int | float) and not isinstance(progress, bool):
            self.progress = float(progress)
        if isinstance(encoder, str):
            self.encoder = encoder
        if isinstance(message.get("result"), dict):
            self.result = message["result"]
        if isinstance(message.get("error"), dict):
            self.error = message["error"]

    @classmethod
    def read(cls, lines: Iterable[str]) -> Messages:
        messages = cls()
        for line in lines:
            messages.add(decode(line))
        return messages


def error_from(error: dict[str, Any]) -> EncoderError:
    """The encoder's `error` message as the error it reported."""
    code = str(error.get("code") or EncodeFailed.code)
    return ERRORS.get(code, EncodeFailed)(str(error.get("message") or "encode failed"))
