"""Sources read over HTTP, as a Kubernetes Job reads presigned URLs: range requests, reconnects,
and network failures that must stay retryable (exit 1), never "invalid media" (exit 3)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from roughy.core.models import Segment
from roughy.encoder import runner
from roughy.encoder.cli import main
from roughy.encoder.errors import EncodeFailed, InvalidMedia
from roughy.encoder.probe import probe
from roughy.encoder.tasks import render
from tests.encoder.conftest import PlanFor
from tests.encoder.http_media import MediaServer
from tests.media import ffmpeg


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 s at 3 Mbit/s (about 5 MB), keyframes every second, index (moov) at the end."""
    path = tmp_path_factory.mktemp("http-media") / "long.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=20",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=20",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25", "-b:v", "3M",
        "-c:a", "aac", str(path),
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def big_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 s (about 30 MB), index at the end: big next to what loopback socket buffers can hold
    (several MB once the kernel autotunes them), so "read only part" is measurable."""
    path = tmp_path_factory.mktemp("http-media") / "big.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=120",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=120",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25", "-b:v", "3M",
        "-c:a", "aac", str(path),
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def faststart_clip(long_clip: Path) -> Path:
    """The same, index first: a dropped connection then truncates the data, not the index."""
    path = long_clip.with_name("faststart.mp4")
    ffmpeg("-i", str(long_clip), "-c", "copy", "-movflags", "+faststart", str(path))
    return path


@pytest.fixture
def server() -> Iterator[MediaServer]:
    with MediaServer() as media_server:
        yield media_server


def test_render_from_an_http_source(tmp_path: Path, stereo_clip: Path, plan_for: PlanFor, server: MediaServer) -> None:
    url = server.serve("/stereo.mp4", stereo_clip) + "?X-Amz-Signature=secret"
    out = tmp_path / "out.mp4"
    result = render(plan_for(stereo_clip), video_src=url, audio_src=url, output=str(out))
    assert result.duration == pytest.approx(2.0, abs=0.05) and result.size_bytes == out.stat().st_size
    info = probe(str(out))
    assert info.video is not None and info.audio is not None
    assert server.served("/stereo.mp4") >= stereo_clip.stat().st_size


def test_a_short_cut_reads_only_part_of_a_long_source(
    tmp_path: Path, big_clip: Path, plan_for: PlanFor, server: MediaServer
) -> None:
    url = server.serve("/big.mp4", big_clip)
    plan = plan_for(big_clip, segments=[Segment(1.0, 2.0)])
    result = render(plan, video_src=url, audio_src=url, output=str(tmp_path / "cut.mp4"))
    assert result.duration == pytest.approx(1.0, abs=0.05)
    whole = big_clip.stat().st_size
    # Bytes written by the server include what loopback socket buffers took before ffmpeg hung
    # up (3 MB seen under load), so the bound is loose; a whole-file read fails it.
    assert server.served("/big.mp4") < whole * 0.5, (server.served("/big.mp4"), whole)
    # It seeked with range requests (to the index at the end, then back to the cut).
    assert any(rng and not rng.startswith("bytes=0-") for _, rng in server.state.ranges)


def test_a_dropped_connection_is_resumed(
    tmp_path: Path, faststart_clip: Path, plan_for: PlanFor, server: MediaServer
) -> None:
    url = server.serve("/clip.mp4", faststart_clip, cut_after=300_000, cut_times=1)
    plan = plan_for(faststart_clip, segments=[Segment(0.0, 3.0)])
    result = render(plan, video_src=url, audio_src=url, output=str(tmp_path / "out.mp4"))
    assert result.duration == pytest.approx(3.0, abs=0.05)
    assert server.state.routes["/clip.mp4"].requests >= 2  # the reconnect


def test_a_connection_lost_while_reading_the_index_is_retryable(
    tmp_path: Path, long_clip: Path, plan_for: PlanFor, server: MediaServer
) -> None:
    """ffmpeg says "moov atom not found" / "Invalid data found": about bytes it never got."""
    url = server.serve("/long.mp4", long_clip, cut_after=3000, cut_times=1, then_status=503)
    out = tmp_path / "out.mp4"
    with pytest.raises(EncodeFailed) as info:
        render(plan_for(long_clip), video_src=url, audio_src=url, output=str(out))
    assert info.value.exit_code == 1 and info.value.code == "encode_failed"
    assert "network" in info.value.message and "503" in info.value.message
    assert list(tmp_path.iterdir()) == []


def test_a_connection_lost_mid_read_fails_even_when_ffmpeg_exits_0(
    tmp_path: Path, faststart_clip: Path, plan_for: PlanFor, server: MediaServer
) -> None:
    """With the index read, ffmpeg encodes what it got and exits 0: a truncated render."""
    url = server.serve("/clip.mp4", faststart_clip, cut_after=100_000, cut_times=1, then_status=403)
    with pytest.raises(EncodeFailed, match="network.*403"):
        render(plan_for(faststart_clip), video_src=url, audio_src=url, output=str(tmp_path / "out.mp4"))
    assert list(tmp_path.iterdir()) == []


def test_http_errors_are_retryable(tmp_path: Path, stereo_clip: Path, plan_for: PlanFor, server: MediaServer) -> None:
    for status in (404, 503):
        url = server.answer(f"/{status}.mp4", status)
        with pytest.raises(EncodeFailed, match="Server returned"):
            render(plan_for(stereo_clip), video_src=url, audio_src=url, output=str(tmp_path / "out.mp4"))


def test_junk_over_http_is_still_invalid_media(tmp_path: Path, stereo_clip: Path, plan_for: PlanFor) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"definitely not a movie" * 50)
    with MediaServer() as server:
        url = server.serve("/junk.mp4", junk)
        with pytest.raises(InvalidMedia):
            render(plan_for(stereo_clip), video_src=url, audio_src=url, output=str(tmp_path / "o.mp4"))
        with pytest.raises(InvalidMedia):
            probe(url)


#: ffmpeg 9's stderr for the failures above (component prefixes shortened).
LOST_INDEX = [
    "[http @ 0x55] HTTP error 503 Service Unavailable",
    "[in#0 @ 0x55] moov atom not found",
    "[in#0 @ 0x55] Error opening input: Invalid data found when processing input",
    "Error opening input file http://127.0.0.1:43043/long.mp4.",
    "Error opening input files: Invalid data found when processing input",
]
REFUSED = [
    "[tcp @ 0x55] Connection to tcp://127.0.0.1:1 failed: Connection refused",
    "[http @ 0x55] Will reconnect at 0 in 0 second(s).",
    "[tcp @ 0x55] Connection to tcp://127.0.0.1:1 failed: Connection refused",
    "[in#0 @ 0x55] Error opening input: Connection refused",
]
RECOVERED = [
    "[http @ 0x55] Will reconnect at 1966128 in 0 second(s), error=Connection reset by peer.",
    "[h264 @ 0x55] Invalid NAL unit size (15474 > 1258).",
    "[in#0 @ 0x55] Error opening input: Invalid data found when processing input",
]


def test_classify_failure_prefers_the_network_for_url_inputs() -> None:
    assert isinstance(runner.classify_failure(1, LOST_INDEX, remote=True), EncodeFailed)
    assert isinstance(runner.classify_failure(1, LOST_INDEX), InvalidMedia)  # a local file: its bytes
    assert isinstance(runner.classify_failure(1, REFUSED, remote=True), EncodeFailed)
    # A reconnect that worked, then data that does not decode: the media's fault after all.
    assert isinstance(runner.classify_failure(1, RECOVERED, remote=True), InvalidMedia)
    assert runner.network_failures(RECOVERED) == []
    assert runner.has_remote_input(["ffmpeg", "-i", "HTTPS://x/y"]) and not runner.has_remote_input(["-i", "/a"])


def test_probe_reads_urls(long_clip: Path, server: MediaServer, capsys: pytest.CaptureFixture[str]) -> None:
    url = server.serve("/long.mp4", long_clip)
    local = probe(str(long_clip))
    assert probe(url + "?sig=1") == local
    assert server.served("/long.mp4") < long_clip.stat().st_size * 0.4  # the header and a frame
    assert main(["probe", url]) == 0
    assert '"width":320' in capsys.readouterr().out


def test_probe_network_failures_are_retryable(long_clip: Path, faststart_clip: Path, server: MediaServer) -> None:
    for status in (403, 404, 500):
        with pytest.raises(EncodeFailed, match="cannot read"):
            probe(server.answer(f"/{status}", status))
    # Cut mid-index, then 503: the first read looks like a truncated file, the second tells.
    with pytest.raises(EncodeFailed, match="5XX"):
        probe(server.serve("/cut.mp4", long_clip, cut_after=3000, cut_times=1, then_status=503))
    with pytest.raises(EncodeFailed, match="403"):
        probe(server.serve("/cut2.mp4", faststart_clip, cut_after=3000, cut_times=1, then_status=403))
    # Cut once, then fine: the second read succeeds.
    assert probe(server.serve("/cut3.mp4", faststart_clip, cut_after=3000, cut_times=1)).duration > 19


def test_a_presigned_urls_signature_never_reaches_the_log(
    tmp_path: Path, stereo_clip: Path, plan_for: PlanFor, server: MediaServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = server.serve("/clip.mp4", stereo_clip) + "?X-Amz-Credential=AKIA1234&X-Amz-Signature=deadbeef"
    with caplog.at_level("DEBUG"):
        render(plan_for(stereo_clip), video_src=url, audio_src=url, output=str(tmp_path / "out.mp4"))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "running" in logged and "/clip.mp4?..." in logged
    assert "deadbeef" not in logged and "AKIA1234" not in logged
