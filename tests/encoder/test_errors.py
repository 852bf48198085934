"""Error codes, exit codes, and the human stderr tail."""

from __future__ import annotations

import pytest

from roughy.encoder.errors import (
    EncodeFailed,
    EncoderError,
    EncodeTimeout,
    InvalidMedia,
    clean_line,
    stderr_tail,
    with_tail,
)
from roughy.encoder.runner import classify_failure


@pytest.mark.parametrize(
    ("cls", "code", "exit_code"),
    [
        (InvalidMedia, "invalid_media", 3),
        (EncodeTimeout, "encode_timeout", 4),
        (EncodeFailed, "encode_failed", 1),
    ],
)
def test_codes(cls: type[EncoderError], code: str, exit_code: int) -> None:
    err = cls("boom")
    assert isinstance(err, EncoderError)
    assert (err.code, err.exit_code, err.message) == (code, exit_code, "boom")
    assert err.to_dict() == {"code": code, "message": "boom"}


def test_tail_keeps_the_last_lines_without_addresses_or_url_secrets() -> None:
    lines = [
        "first line that scrolls away",
        "",
        "[in#0 @ 0x55c4e23f3a40] moov atom not found",
        "Error opening input file https://bucket.s3/a/b.mp4?X-Amz-Signature=secret&X-Amz-Date=1.",
        "   ",
        "[aac @ 0xdeadbeef] Too many bits",
        "Error opening input files: Invalid data found when processing input",
        "Conversion failed!",
    ]
    tail = stderr_tail(lines, max_lines=4)
    assert "first line" not in tail and "0x55c4" not in tail and "secret" not in tail
    assert tail.startswith("Error opening input file https://bucket.s3/a/b.mp4?...")
    assert tail.endswith("Conversion failed!")
    assert clean_line("[aac @ 0xdeadbeef] Too many bits") == "Too many bits"


def test_tail_is_bounded() -> None:
    assert len(stderr_tail(["x" * 5000])) <= 600
    assert with_tail("ffmpeg failed", []) == "ffmpeg failed"


def test_classify_failure() -> None:
    junk = classify_failure(1, ["[in#0 @ 0x1] moov atom not found", "Error opening input files: Invalid data"])
    assert isinstance(junk, InvalidMedia) and "moov atom not found" in junk.message
    other = classify_failure(1, ["No space left on device"])
    assert isinstance(other, EncodeFailed) and "code 1" in other.message
    assert "Traceback" not in other.message
