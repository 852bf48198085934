"""When and where a render is split into chunks encoded apart (issue 9). Pure.

A long whole-source video render is cut into chunks of about `Chunking.seconds` on the output
frame grid; each chunk is encoded by its own process (in parallel where there are idle cores,
on Kubernetes each by its own pod), video only, with the final settings, then one join copies
the chunks' video end to end and encodes the audio once over the whole timeline (audio
encoded per chunk would add the codec's priming delay at every seam). Each chunk reads the
source with input seeking, which decodes from the keyframe before the chunk's start, so chunk
boundaries need no knowledge of the source's GOPs and land on exact output frames.

Nothing is chunked when the output is short (under `min_seconds`, or under two chunks), when
the video is copied, or for a cut (a cut is already one input per segment, batched).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from roughy.core.models import Segment

#: The most chunks of one render: a longer render gets longer chunks. It bounds what one render
#: asks of a cluster at once (pods of its Indexed Job, chunk objects, the join's downloads).
MAX_CHUNKS = 32
#: The share of a chunked render's progress that its chunks take; the join has the rest.
CHUNK_SHARE = 0.95


@dataclass(frozen=True)
class Chunking:
    """Split a render into chunks of `seconds` once it lasts `min_seconds`; into `max_chunks`
    longer ones when `seconds` would make more."""

    seconds: float = 60.0
    min_seconds: float = 300.0
    max_chunks: int = MAX_CHUNKS

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.min_seconds < 0:
            raise ValueError("chunk length must be positive and the minimum duration not negative")
        if not 2 <= self.max_chunks <= MAX_CHUNKS:
            raise ValueError(f"max_chunks must be 2 to {MAX_CHUNKS}")


def chunk_segments(duration: float, fps: float, policy: Chunking | None) -> tuple[Segment, ...] | None:
    """The chunks of a `duration`-second output at `fps`: whole numbers of frames each, the
    last one taking the remainder (merged into the one before when under half a chunk).
    None: not worth splitting."""
    if policy is None or fps <= 0 or duration < max(policy.min_seconds, 2 * policy.seconds):
        return None
    total = round(duration * fps)
    per_chunk = max(1, round(policy.seconds * fps), math.ceil(total / policy.max_chunks))  # frames
    starts = list(range(0, total, per_chunk))
    if len(starts) > 1 and total - starts[-1] < per_chunk / 2:
        starts.pop()
    bounds = [*starts, total]
    chunks = [Segment(round(a / fps, 6), round(b / fps, 6)) for a, b in zip(bounds, bounds[1:], strict=False)]
    chunks[-1] = Segment(chunks[-1].start, round(duration, 6))  # the last one ends where the source does
    return tuple(chunks) if len(chunks) > 1 else None
