"""The -progress parser, on text captured from this ffmpeg."""

from __future__ import annotations

from roughy.encoder.progress import MAX_RUNNING, ProgressParser, fraction_of

CAPTURED = """\
frame=0
fps=0.00
stream_0_0_q=0.0
bitrate=N/A
total_size=48
out_time_us=N/A
out_time_ms=N/A
out_time=N/A
dup_frames=0
drop_frames=0
speed=N/A
progress=continue
frame=62
fps=0.00
stream_0_0_q=28.0
bitrate=   0.1kbits/s
total_size=48
out_time_us=1669333
out_time_ms=1669333
out_time=00:00:01.669333
dup_frames=0
drop_frames=0
speed=  12x
progress=continue
frame=75
fps=0.00
stream_0_0_q=28.0
bitrate=   0.1kbits/s
total_size=48
out_time_us=1500000
out_time_ms=1500000
out_time=00:00:01.500000
dup_frames=0
drop_frames=0
speed=  12x
progress=continue
frame=100
fps=0.00
stream_0_0_q=-1.0
bitrate= 699.2kbits/s
total_size=349611
out_time_us=4000000
out_time_ms=4000000
out_time=00:00:04.000000
dup_frames=0
drop_frames=0
speed=9.66x
progress=continue
frame=100
out_time_us=4000000
progress=end
"""


def test_captured_blocks_give_monotonic_fractions_ending_at_one() -> None:
    fractions = list(ProgressParser(4.0).feed_lines(CAPTURED.splitlines()))
    # N/A is skipped, the step back (1.5 s after 1.67 s) is dropped, 4 s of 4 s is not "done"
    assert fractions == [1.669333 / 4.0, MAX_RUNNING, 1.0]
    assert fractions == sorted(fractions)


def test_fractions_stay_in_unit_interval_until_end() -> None:
    parser = ProgressParser(2.0)
    assert list(parser.feed_lines(["out_time_us=9000000", "progress=continue"])) == [MAX_RUNNING]
    assert list(parser.feed_lines(["out_time_us=-50000", "progress=continue"])) == []
    assert parser.fraction == MAX_RUNNING
    assert list(parser.feed_lines(["progress=end"])) == [1.0]


def test_out_time_ms_is_microseconds_and_out_time_is_a_clock() -> None:
    assert list(ProgressParser(10.0).feed_lines(["out_time_ms=2500000", "progress=continue"])) == [0.25]
    assert list(ProgressParser(10.0).feed_lines(["out_time=00:00:05.000000", "progress=continue"])) == [0.5]
    parser = ProgressParser(7200.0)
    assert list(parser.feed_lines(["out_time=01:00:00.000000", "progress=continue"])) == [0.5]


def test_out_time_us_wins_over_other_spellings() -> None:
    lines = ["out_time=00:00:09.000000", "out_time_us=1000000", "out_time_ms=9000000", "progress=continue"]
    assert list(ProgressParser(10.0).feed_lines(lines)) == [0.1]


def test_unknown_duration_reports_only_the_end() -> None:
    parser = ProgressParser(0.0)
    assert list(parser.feed_lines(["out_time_us=1000000", "progress=continue", "progress=end"])) == [1.0]


def test_junk_lines_are_ignored() -> None:
    parser = ProgressParser(1.0)
    assert parser.feed("") is None
    assert parser.feed("not a key value line") is None
    assert parser.feed("out_time_us=garbage") is None
    assert parser.feed("progress=continue") is None
    assert parser.fraction == 0.0


def test_fraction_of_clamps() -> None:
    assert fraction_of(-1.0, 10.0) == 0.0
    assert fraction_of(5.0, 10.0) == 0.5
    assert fraction_of(50.0, 10.0) == MAX_RUNNING
