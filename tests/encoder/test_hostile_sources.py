"""Sources that name other resources (playlists, manifests, concat lists) are refused by the
probe and by the encoder: neither follows them to a file on this machine or a URL elsewhere.
Real ffmpeg and PyAV on real files; the "secret" is a media file outside the source's place."""

from __future__ import annotations

from pathlib import Path

import pytest

from roughy.core.models import Format
from roughy.core.plan import EncodePlan, VideoPlan
from roughy.encoder.errors import EncoderError, InvalidMedia
from roughy.encoder.probe import probe
from roughy.encoder.tasks import render
from tests.encoder.conftest import PlanFor
from tests.encoder.http_media import MediaServer
from tests.media import make_video


def hls_playlist(path: Path, segment: str) -> Path:
    path.write_text(f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXTINF:2.0,\n{segment}\n#EXT-X-ENDLIST\n")
    return path


def dash_manifest(path: Path, base_url: str) -> Path:
    path.write_text(
        '<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" '
        'mediaPresentationDuration="PT2S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">'
        f"<BaseURL>{base_url}</BaseURL><Period><AdaptationSet><Representation id=\"1\" bandwidth=\"1\" "
        'mimeType="video/mp4" codecs="avc1"><SegmentBase/></Representation></AdaptationSet></Period></MPD>'
    )
    return path


@pytest.fixture
def sources(tmp_path: Path, stereo_clip: Path) -> dict[str, Path]:
    secret = stereo_clip.resolve()  # a media file elsewhere on this machine
    return {
        "hls (file path)": hls_playlist(tmp_path / "a.m3u8", str(secret)),
        "hls (file url)": hls_playlist(tmp_path / "b.m3u8", f"file://{secret}"),
        "hls (http url)": hls_playlist(tmp_path / "c.m3u8", "http://127.0.0.1:9/segment.ts"),
        "dash": dash_manifest(tmp_path / "d.mpd", f"file://{secret}"),
        "concat": _write(tmp_path / "e.ffconcat", f"ffconcat version 1.0\nfile '{secret}'\n"),
    }


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_probe_refuses_what_names_other_resources(sources: dict[str, Path]) -> None:
    for what, src in sources.items():
        with pytest.raises(InvalidMedia):
            probe(str(src))
        assert what


def test_the_encoder_refuses_them_too(sources: dict[str, Path], stereo_clip: Path, plan_for: PlanFor,
                                      tmp_path: Path) -> None:  # fmt: skip
    """A source replaced after its probe (or a plan pointed elsewhere) fails the encode: it
    never becomes an output made of another file."""
    plan = plan_for(stereo_clip, Format.MP4)
    for what, src in sources.items():
        out = tmp_path / f"{src.stem}.mp4"
        with pytest.raises(EncoderError):
            render(plan, video_src=str(src), audio_src=None, output=str(out))
        assert not out.exists(), what


def test_plain_media_still_opens(stereo_clip: Path) -> None:
    info = probe(str(stereo_clip))
    assert info.video is not None and info.audio is not None


def test_a_playlist_from_a_url_is_not_followed_to_other_urls(tmp_path: Path) -> None:
    """From an encoder pod a source is an http(s) URL; a playlist there named any other URL
    (the cloud's metadata service, an internal API) and ffmpeg fetched it. Now the playlist is
    refused and the other URL is never requested."""
    secret = make_video(tmp_path / "internal.ts", duration=2.0, width=320, height=180, fps=25)
    with MediaServer() as server:
        internal = server.serve("/internal/secret.ts", secret)
        playlist = hls_playlist(tmp_path / "p.m3u8", internal)
        # An S3 object takes the Content-Type its uploader sends: an HLS one makes ffmpeg read it
        # as a playlist whatever its key (here, the path ending .m3u8 does the same).
        source = server.serve("/uploads/video.m3u8", playlist)
        with pytest.raises(InvalidMedia):
            probe(source)
        out = tmp_path / "out.mp4"
        plan = EncodePlan(Format.MP4, 2.0, VideoPlan(320, 180, 25.0, 500), None)
        with pytest.raises(EncoderError):
            render(plan, video_src=source, audio_src=None, output=str(out))
        assert server.served("/internal/secret.ts") == 0, "the other URL was never fetched"
        assert not out.exists()


def test_the_encode_reads_the_file_as_what_was_probed(tmp_path: Path, stereo_clip: Path, plan_for: PlanFor) -> None:
    """The plan forces the demuxer probing found: bytes that another build (or a swapped file)
    would read as another container are not decoded as that container."""
    plan = plan_for(stereo_clip, Format.MP4)
    assert plan.video_demuxer == "mov"
    other = make_video(tmp_path / "other.ts", duration=2.0)  # valid media, another container
    out = tmp_path / "out.mp4"
    with pytest.raises(EncoderError):
        render(plan, video_src=str(other), audio_src=None, output=str(out))
    assert not out.exists()
    render(plan, video_src=str(stereo_clip), audio_src=None, output=str(out))  # what was probed opens
    assert probe(str(out)).video is not None
