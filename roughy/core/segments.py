"""Cut segments: structural checks at creation, final checks against the source, silence inversion.

Structural problems (start >= end, negative, overlapping) are the client's mistake and answer
422 at creation. Whether segments fit the source is known only once the asset is probed: a
segment outside the source fails the cut. Final segments are sorted, non-overlapping, inside
the source, snapped to the source's frame grid and at least one frame long.
"""

from __future__ import annotations

import math

from roughy.core.errors import ValidationFailed
from roughy.core.models import Segment

MAX_SEGMENTS = 500


class SegmentsOutOfRange(Exception):
    """A segment is outside the source: the cut fails (not a 422: the source was not known)."""


def check_structure(segments: list[Segment]) -> list[Segment]:
    """Structural validation at creation. Returns the segments sorted by start."""
    if not segments:
        raise ValidationFailed("a cut needs at least one segment", param="segments")
    if len(segments) > MAX_SEGMENTS:
        raise ValidationFailed(f"at most {MAX_SEGMENTS} segments", param="segments")
    for i, seg in enumerate(segments):
        for name in ("start", "end"):
            value = getattr(seg, name)
            if not math.isfinite(value):
                raise ValidationFailed(f"{name} must be a finite number", param=f"segments[{i}].{name}")
            if value < 0:
                raise ValidationFailed(f"{name} must not be negative", param=f"segments[{i}].{name}")
        if seg.start >= seg.end:
            raise ValidationFailed("start must be before end", param=f"segments[{i}]")
    ordered = sorted(segments, key=lambda s: s.start)
    for prev, cur in zip(ordered, ordered[1:], strict=False):
        if cur.start < prev.end:
            index = segments.index(cur)
            raise ValidationFailed("segments overlap", param=f"segments[{index}]")
    return ordered


def finalize(segments: list[Segment], *, duration: float, fps: float | None) -> list[Segment]:
    """Check segments against the source and snap them to its frame grid."""
    frame = 1.0 / fps if fps else 0.001
    result: list[Segment] = []
    for seg in segments:
        if seg.start >= duration - frame / 2:
            raise SegmentsOutOfRange(
                f"segment {seg.start:g}-{seg.end:g} starts beyond the source's end ({duration:.3f} s)"
            )
        if seg.end > duration + frame:
            raise SegmentsOutOfRange(
                f"segment {seg.start:g}-{seg.end:g} ends beyond the source's end ({duration:.3f} s)"
            )
        start = _snap(seg.start, frame)
        end = min(_snap(seg.end, frame), _floor_to(duration, frame) if fps else duration)
        if result and start < result[-1].end:
            start = result[-1].end
        if end - start < frame - 1e-9:
            raise SegmentsOutOfRange(f"segment {seg.start:g}-{seg.end:g} is shorter than one frame")
        result.append(Segment(round(start, 6), round(end, 6)))
    return result


def _snap(t: float, frame: float) -> float:
    return round(t / frame) * frame


def _floor_to(t: float, frame: float) -> float:
    return math.floor(t / frame + 1e-6) * frame


def keep_between_silences(
    silences: list[tuple[float, float]], *, duration: float, padding: float, min_length: float = 0.0
) -> list[Segment]:
    """Invert detected silences into kept segments, keeping `padding` seconds of each silence's edges.

    Pieces shorter than `min_length` (a click between two silences, shorter than a frame) are
    dropped rather than failing the cut.
    """
    kept: list[Segment] = []
    cursor = 0.0
    for s_start, s_end in sorted(silences):
        cut_from = max(cursor, s_start + padding)
        cut_to = min(duration, s_end - padding)
        if cut_to <= cut_from:
            continue  # the silence is shorter than twice the padding: keep it
        if round(cut_from, 6) > round(cursor, 6):  # no zero-length pieces once rounded
            kept.append(Segment(round(cursor, 6), round(cut_from, 6)))
        cursor = cut_to
    if round(duration, 6) > round(cursor, 6):
        kept.append(Segment(round(cursor, 6), round(duration, 6)))
    return [seg for seg in kept if seg.duration >= min_length]
