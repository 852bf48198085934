"""silencedetect's stderr -> (start, end) spans, on text captured from this ffmpeg."""

from __future__ import annotations

from roughy.encoder.tasks import parse_silencedetect

CAPTURED = """\
Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'tones.m4a':
  Duration: 00:00:03.40, start: 0.000000, bitrate: 60 kb/s
  Stream #0:0[0x1](und): Audio: aac (LC) (mp4a / 0x6134706D), 48000 Hz, mono, fltp, 55 kb/s (default)
[Parsed_silencedetect_0 @ 0x7f661c001c00] silence_start: 0.999979
[Parsed_silencedetect_0 @ 0x7f661c001c00] silence_end: 1.800042 | silence_duration: 0.800063
[Parsed_silencedetect_0 @ 0x7f661c001c00] silence_start: 2.79998
[out#0/null @ 0x55d5d1f0c4c0] video:0KiB audio:638KiB subtitle:0KiB other streams:0KiB
"""


def test_pairs_starts_and_ends_and_closes_an_open_silence_at_the_duration() -> None:
    spans = parse_silencedetect(CAPTURED.splitlines(), 3.4)
    assert spans == [(0.999979, 1.800042), (2.79998, 3.4)]


def test_no_silence() -> None:
    assert parse_silencedetect(["size=N/A time=00:00:02.00 bitrate=N/A"], 2.0) == []


def test_negative_start_is_clamped_and_scientific_notation_parses() -> None:
    lines = [
        "[silencedetect @ 0x1] silence_start: -0.00133333",
        "[silencedetect @ 0x1] silence_end: 0.5 | silence_duration: 0.501333",
        "[silencedetect @ 0x1] silence_start: 1e-05",
    ]
    assert parse_silencedetect(lines, 0.9) == [(0.0, 0.5), (1e-05, 0.9)]


def test_stray_end_without_start_is_ignored() -> None:
    assert parse_silencedetect(["silence_end: 1.0 | silence_duration: 1.0"], 2.0) == []


def test_silence_from_start_to_end_of_file() -> None:
    assert parse_silencedetect(["silence_start: 0"], 5.0) == [(0.0, 5.0)]
