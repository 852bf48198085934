"""Parse ffmpeg's `-progress` output into a monotonic fraction.

ffmpeg writes blocks of `key=value` lines, each ending with `progress=continue` (or
`progress=end` for the last). The position is `out_time_us` (microseconds); `out_time_ms` is,
despite its name, also microseconds, and `out_time` is `HH:MM:SS.micro`. Values can be `N/A`
before the first frame and can step back slightly (audio vs video): the parser clamps to
[0, 1), never goes backwards, and only `progress=end` yields 1.0.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

#: The highest fraction reported before ffmpeg says `progress=end`: a long tail (muxer,
#: faststart rewrite) must not read as finished.
MAX_RUNNING = 0.999


class ProgressParser:
    """Feed lines; a fraction comes out at the end of each block when it moved forward."""

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self.fraction = 0.0
        self._block_seconds: float | None = None

    def feed(self, line: str) -> float | None:
        """Take one line; return the new fraction when a block ends and progress advanced."""
        key, sep, value = line.strip().partition("=")
        if not sep:
            return None
        key, value = key.strip(), value.strip()
        if key == "progress":
            return self._end_block(finished=value == "end")
        seconds = _seconds(key, value)
        if seconds is not None and (key == "out_time_us" or self._block_seconds is None):
            self._block_seconds = seconds  # out_time_us wins over the other two spellings
        return None

    def feed_lines(self, lines: Iterable[str]) -> Iterator[float]:
        """Every fraction a sequence of lines (or a captured text's splitlines) produces."""
        for line in lines:
            fraction = self.feed(line)
            if fraction is not None:
                yield fraction

    def _end_block(self, *, finished: bool) -> float | None:
        seconds, self._block_seconds = self._block_seconds, None
        if finished:
            new = 1.0
        elif seconds is None:
            return None
        else:
            new = fraction_of(seconds, self.duration)
        if new <= self.fraction:
            return None
        self.fraction = new
        return new


def fraction_of(seconds: float, duration: float) -> float:
    """`seconds` of `duration`, clamped to [0, MAX_RUNNING] (0 when the duration is unknown)."""
    if duration <= 0:
        return 0.0
    return min(MAX_RUNNING, max(0.0, seconds / duration))


def _seconds(key: str, value: str) -> float | None:
    """Position in seconds from one of ffmpeg's three spellings, None for N/A or junk."""
    try:
        if key in ("out_time_us", "out_time_ms"):  # both are microseconds
            return int(value) / 1_000_000
        if key == "out_time":
            return _clock(value)
    except ValueError:
        return None
    return None


def _clock(value: str) -> float:
    """`HH:MM:SS.micro` (possibly negative at the very start) -> seconds."""
    sign = -1.0 if value.startswith("-") else 1.0
    hours, minutes, seconds = value.lstrip("-").split(":")
    return sign * (int(hours) * 3600 + int(minutes) * 60 + float(seconds))
