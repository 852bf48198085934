"""Cut plans as people type them: `1.5-10,20-30`."""

from __future__ import annotations

import math

from roughy.sdk.models import Segment


def parse_cut(text: str) -> list[Segment]:
    """`"1.5-10,20-30"` -> [Segment(1.5, 10.0), Segment(20.0, 30.0)].

    Raises ValueError with a sentence naming the bad piece: not START-END, not numbers, not
    finite, negative, an end not after its start, or segments out of order or overlapping.
    """
    segments: list[Segment] = []
    for piece in text.split(","):
        start_text, sep, end_text = piece.strip().partition("-")
        if not sep or not start_text.strip() or not end_text.strip():
            raise ValueError(f"{piece.strip()!r} is not START-END (seconds, e.g. 1.5-10)")
        try:
            start, end = float(start_text), float(end_text)
        except ValueError:
            raise ValueError(f"{piece.strip()!r} is not START-END in seconds (e.g. 1.5-10)") from None
        if not (math.isfinite(start) and math.isfinite(end)):
            raise ValueError(f"{piece.strip()!r}: start and end must be finite numbers of seconds")
        if end <= start:
            raise ValueError(f"{piece.strip()!r}: the end must come after the start")
        if segments and start < segments[-1].end:
            raise ValueError(f"{piece.strip()!r} starts before the previous segment ends: list them in order")
        segments.append(Segment(start=start, end=end))
    return segments


def format_segments(segments: list[Segment]) -> str:
    return ",".join(f"{s.start:g}-{s.end:g}" for s in segments)
