"""The argv builder, without running ffmpeg: every rule of SPEC 5.5 visible in the arguments."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest

from roughy.core.formats import FORMATS
from roughy.core.models import Format, Segment
from roughy.core.plan import AudioPlan, EncodePlan, VideoPlan
from roughy.encoder.ffmpeg_args import (
    CUT_GUARD,
    Cut,
    PlanError,
    batches,
    build_batch_args,
    build_chunk_args,
    build_chunk_join_args,
    build_ffmpeg_args,
    build_join_args,
    ffconcat_text,
    fps_expr,
    fps_fraction,
    max_rate_kbps,
    plan_chunks,
    plan_cuts,
    snap_segments,
)
from roughy.encoder.sources import FORMAT_WHITELIST

VIDEO = VideoPlan(width=1280, height=720, fps=25.0, bitrate_kbps=5000)
AUDIO = AudioPlan(bitrate_kbps=192, channels=2, sample_rate=48000)
SEGMENTS = (Segment(1.0, 2.0), Segment(3.0, 4.48), Segment(6.0, 6.4))


def plan(fmt: Format = Format.MP4, **kw: object) -> EncodePlan:
    defaults: dict[str, object] = {
        "duration": 10.0,
        "video": VIDEO if fmt.is_video else None,
        "audio": AUDIO,
    }
    defaults.update(kw)
    return EncodePlan(format=fmt, **defaults)  # type: ignore[arg-type]


def args_for(p: EncodePlan, *, video: str | None = "in.mp4", audio: str | None = "in.mp4") -> list[str]:
    return build_ffmpeg_args(p, video_src=video, audio_src=audio, output="out.tmp", ffmpeg="ffmpeg")


def input_options(argv: list[str]) -> list[tuple[str, list[str]]]:
    """Each `-i` source with its input options: the arguments since the previous input's source
    (for the first, since the global options of the head)."""
    found, start = [], argv.index("-y") + 1
    for i, arg in enumerate(argv):
        if arg == "-i":
            found.append((argv[i + 1], argv[start:i]))
            start = i + 2
    return found


def value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def graph(argv: list[str]) -> str:
    return value(argv, "-filter_complex")


def test_video_encode_basics() -> None:
    argv = args_for(plan())
    assert argv[0] == "ffmpeg" and argv[-1] == "out.tmp"
    assert value(argv, "-c:v") == "libx264"
    assert value(argv, "-preset") == "veryfast"
    assert value(argv, "-pix_fmt") == "yuv420p"
    assert value(argv, "-crf") == "20" and "-b:v" not in argv  # constant quality ...
    assert value(argv, "-maxrate") == "5000k"  # ... capped at the plan's bitrate
    assert value(argv, "-bufsize") == "10000k"  # two seconds of it
    assert "fps=25,scale=1280:720:flags=bicubic,setsar=1,format=yuv420p" in graph(argv)
    assert "-y" in argv and "-nostdin" in argv
    assert value(argv, "-progress") == "pipe:1" and "-nostats" in argv


@pytest.mark.parametrize(
    ("size", "kbps", "cap"),
    [
        ((1280, 720), 4, 230),  # a near-static source's own rate: raised to 720p's floor
        ((1920, 1080), 20, 518),
        ((640, 360), 5, 100),  # the absolute floor
        ((3840, 2160), 300, 2074),
        ((1280, 720), 1206, 1206),  # above the floor: the plan's bitrate is the cap
        ((1920, 1080), 10_000, 10_000),
    ],
)
def test_the_cap_has_a_floor_an_i_frame_fits_in(size: tuple[int, int], kbps: int, cap: int) -> None:
    video = VideoPlan(*size, fps=30.0, bitrate_kbps=kbps)
    assert max_rate_kbps(video) == cap
    argv = args_for(plan(video=video))
    assert (value(argv, "-maxrate"), value(argv, "-bufsize")) == (f"{cap}k", f"{2 * cap}k")


@pytest.mark.parametrize(
    ("fmt", "muxer", "faststart"),
    [
        (Format.MP4, "mp4", True),
        (Format.MOV, "mov", True),
        (Format.M4A, "ipod", True),
        (Format.MP3, "mp3", False),
    ],
)
def test_container_is_forced_and_indexed_first(fmt: Format, muxer: str, faststart: bool) -> None:
    argv = args_for(plan(fmt))
    assert value(argv, "-f") == muxer
    assert ("-movflags" in argv and value(argv, "-movflags") == "+faststart") is faststart


def test_audio_codecs_per_format() -> None:
    for fmt in (Format.MP4, Format.MOV, Format.M4A):
        argv = args_for(plan(fmt))
        assert value(argv, "-c:a") == "aac"
        assert value(argv, "-profile:a") == "aac_low"
    argv = args_for(plan(Format.MP3))
    assert value(argv, "-c:a") == "libmp3lame"
    assert value(argv, "-b:a") == "192k"


@pytest.mark.parametrize("channels", [1, 2])
def test_channels_and_rate(channels: int) -> None:
    argv = args_for(plan(audio=AudioPlan(128, channels, 44100)))
    assert value(argv, "-ac") == str(channels)
    assert value(argv, "-ar") == "44100"


@pytest.mark.parametrize(
    ("rate", "expected"),
    [(96000, 48000), (88200, 48000), (44100, 44100), (32000, 32000), (22050, 44100), (8000, 44100)],
)
def test_mp3_keeps_a_rate_mp3_supports(rate: int, expected: int) -> None:
    """Only MPEG-1 rates: at 22.05 kHz LAME caps MP3 at 160 kbps, below the plan's bitrate."""
    argv = args_for(plan(Format.MP3, audio=AudioPlan(192, 2, rate)))
    assert value(argv, "-ar") == str(expected)


def test_audio_formats_read_the_audio_source_only() -> None:
    argv = args_for(plan(Format.M4A), video="video.mp4", audio="audio.mka")
    assert values(argv, "-i") == ["audio.mka"]
    assert values(argv, "-map") == ["0:a:0"]
    assert "-vn" in argv and "-filter_complex" not in argv


def test_video_without_audio_plan_has_no_audio() -> None:
    argv = args_for(plan(audio=None))
    assert "-an" in argv
    assert values(argv, "-map") == ["[vout]"]
    assert "-c:a" not in argv


def test_separate_audio_opens_a_second_input() -> None:
    argv = args_for(plan(separate_audio=True), video="video.mp4", audio="voice.mka")
    assert values(argv, "-i") == ["video.mp4", "voice.mka"]
    assert values(argv, "-map") == ["[vout]", "1:a:0"]


def test_own_audio_maps_the_video_file() -> None:
    argv = args_for(plan(), video="video.mp4", audio="ignored.mka")
    assert values(argv, "-i") == ["video.mp4"]
    assert values(argv, "-map") == ["[vout]", "0:a:0"]


def test_hdr_chain_only_for_hdr() -> None:
    sdr = args_for(plan())
    assert "tonemap" not in graph(sdr) and "zscale" not in graph(sdr)
    assert "-color_trc" not in sdr
    hdr = args_for(plan(video=VideoPlan(1280, 720, 25.0, 5000, hdr=True)))
    chain = graph(hdr)
    assert "zscale=w=1280:h=720:pin=bt2020:min=bt2020nc:t=linear" in chain
    assert "tonemap=tonemap=hable" in chain
    assert "zscale=t=bt709:m=bt709:r=tv" in chain
    assert chain.index("tonemap") < chain.index("format=yuv420p")
    assert "scale=1280:720:flags" not in chain
    for flag in ("-color_primaries", "-color_trc", "-colorspace"):
        assert value(hdr, flag) == "bt709"


def test_cut_uses_one_input_per_segment_and_one_concat() -> None:
    argv = args_for(plan(segments=SEGMENTS, duration=2.9))
    assert values(argv, "-i") == ["in.mp4"] * 3
    assert values(argv, "-ss") == ["1", "3", "6"]
    assert values(argv, "-t") == [f"{d - CUT_GUARD:g}" for d in (1.0, 1.48, 0.4)]
    # every -ss/-t is among its own -i's input options, and each input is fenced in
    for _src, options in input_options(argv):
        assert options[0] == "-ss" and options[2] == "-t"
        assert value(options, "-format_whitelist") == FORMAT_WHITELIST
        assert value(options, "-protocol_whitelist") == "file"
    chain = graph(argv)
    assert chain.count("concat=") == 1
    assert "[0:v:0][a0][1:v:0][a1][2:v:0][a2]concat=n=3:v=1:a=1[vcat][aout]" in chain
    assert chain.count("fps=") == 1 and chain.count("scale=") == 1
    assert values(argv, "-map") == ["[vout]", "[aout]"]
    assert values(argv, "-c:v") == ["libx264"]


def test_cut_audio_segments_fade_in_and_out() -> None:
    chain = graph(args_for(plan(segments=SEGMENTS, duration=2.9)))
    assert chain.count("afade=t=in:st=0:d=0.005") == 3
    assert chain.count("afade=t=out:") == 3
    assert "[2:a:0]afade=t=in:st=0:d=0.005,afade=t=out:st=0.3949:d=0.005[a2]" in chain


def test_cut_with_separate_audio_opens_two_inputs_per_segment() -> None:
    argv = args_for(plan(segments=SEGMENTS, separate_audio=True), video="v.mp4", audio="a.mka")
    assert values(argv, "-i") == ["v.mp4", "a.mka"] * 3
    assert values(argv, "-ss") == ["1", "1", "3", "3", "6", "6"]
    assert "[0:v:0][a0][2:v:0][a1][4:v:0][a2]concat=n=3:v=1:a=1" in graph(argv)


def test_audio_only_cut_concats_audio_with_exact_times() -> None:
    segments = (Segment(0.5, 1.23), Segment(2.0, 2.5))
    argv = args_for(plan(Format.MP3, segments=segments), audio="a.mka")
    assert values(argv, "-ss") == ["0.5", "2"]
    assert values(argv, "-t") == ["0.73", "0.5"]  # not snapped to any frame grid
    assert "[a0][a1]concat=n=2:v=0:a=1[aout]" in graph(argv)
    assert "fps=" not in graph(argv)


def test_video_cut_without_audio() -> None:
    argv = args_for(plan(segments=SEGMENTS, audio=None))
    assert "concat=n=3:v=1:a=0[vcat]" in graph(argv)
    assert "afade" not in graph(argv)
    assert "-an" in argv


def test_snapping_keeps_whole_frames_and_the_total() -> None:
    segments = [Segment(0.21, 1.0), Segment(1.33, 2.05), Segment(2.9, 3.5)]
    cuts = snap_segments(segments, 25.0)
    frame = 0.04
    for start, duration, length in cuts:
        assert abs(start / frame - round(start / frame)) < 1e-3
        assert abs(length / frame - round(length / frame)) < 1e-9
        assert duration == pytest.approx(length - CUT_GUARD)
    total = sum(cut.length for cut in cuts)
    assert abs(total - sum(s.duration for s in segments)) <= frame / 2 + 1e-9
    assert [round(cut.start, 6) for cut in cuts] == [0.2, 1.32, 2.92]


def test_snapping_keeps_tiny_segments() -> None:
    cuts = snap_segments([Segment(1.0, 1.01), Segment(2.0, 2.01)], 25.0)
    assert all(cut.duration > 0 and cut.length == pytest.approx(0.04) for cut in cuts)


def test_ntsc_rates_are_exact() -> None:
    assert fps_fraction(29.97) == Fraction(30000, 1001)
    assert fps_fraction(59.94) == Fraction(60000, 1001)
    assert fps_fraction(23.976) == Fraction(24000, 1001)
    assert fps_expr(25.0) == "25"
    assert fps_expr(29.97) == "30000/1001"
    assert fps_fraction(21.0) == 21
    with pytest.raises(PlanError):
        fps_fraction(0)


@pytest.mark.parametrize(
    ("p", "video", "audio"),
    [
        (plan(Format.MP4), None, "a.mp4"),
        (plan(Format.MP3), "v.mp4", None),
        (plan(Format.MP4, separate_audio=True), "v.mp4", None),
        (plan(Format.MP4, video=None), "v.mp4", "v.mp4"),
    ],
)
def test_mismatched_sources_are_a_plan_error(p: EncodePlan, video: str | None, audio: str | None) -> None:
    with pytest.raises(PlanError):
        args_for(p, video=video, audio=audio)


def test_batches_are_even_and_keep_order() -> None:
    cuts = [Cut(float(i), 1.0, 1.0) for i in range(21)]
    groups = batches(cuts, 16)
    assert [len(g) for g in groups] == [11, 10]
    assert [c for g in groups for c in g] == cuts
    assert batches(cuts[:3], 16) == [cuts[:3]]
    assert [len(g) for g in batches(cuts, 5)] == [5, 4, 4, 4, 4]


def test_batch_encodes_final_video_with_pcm_audio_padded_to_the_batch_length() -> None:
    p = plan(segments=SEGMENTS)
    cuts = plan_cuts(p)
    assert cuts is not None
    argv = build_batch_args(p, cuts[:2], video_src="in.mp4", audio_src=None, output="b0.mov")
    assert values(argv, "-i") == ["in.mp4"] * 2
    assert value(argv, "-c:v") == "libx264" and value(argv, "-maxrate") == "5000k"
    assert value(argv, "-c:a") == "pcm_s24le" and value(argv, "-ac") == "2"
    assert value(argv, "-f") == "mov" and "-movflags" not in argv
    assert "[acat]apad=whole_dur=2.48,atrim=duration=2.48[aout]" in graph(argv)


def test_join_copies_video_and_encodes_audio_once() -> None:
    argv = build_join_args(plan(segments=SEGMENTS), concat_list="list.ffconcat", output="out.tmp")
    assert argv[argv.index("-i") - 4 : argv.index("-i") + 2] == [
        "-f", "concat", "-safe", "0", "-i", "list.ffconcat",
    ]  # fmt: skip
    assert value(argv, "-c:v") == "copy"
    assert value(argv, "-c:a") == "aac"
    assert values(argv, "-f")[-1] == "mp4" and value(argv, "-movflags") == "+faststart"
    mp3 = build_join_args(plan(Format.MP3, segments=SEGMENTS), concat_list="l", output="o")
    assert "-c:v" not in mp3 and value(mp3, "-c:a") == "libmp3lame" and "-vn" in mp3


def test_ffconcat_lists_exact_lengths_and_quotes_paths() -> None:
    text = ffconcat_text([("/tmp/a.mov", 2.48), ("/tmp/it's.mov", 0.4)])
    assert text.splitlines() == [
        "ffconcat version 1.0",
        "file '/tmp/a.mov'",
        "duration 2.48",
        "file '/tmp/it'\\''s.mov'",
        "duration 0.4",
    ]


# --- network sources and the encoder choice (the Kubernetes Job's encoder) ---

RECONNECT = ["-reconnect", "1", "-reconnect_on_network_error", "1", "-reconnect_delay_max", "10"]


def options_before_inputs(argv: list[str]) -> dict[str, list[str]]:
    """Each `-i` source -> the six arguments just before its `-i` (where input options go)."""
    return {argv[i + 1]: argv[i - 6 : i] for i, a in enumerate(argv) if a == "-i"}


def test_every_input_is_fenced_to_media_containers_and_its_own_protocol() -> None:
    """No playlist, manifest, concat list or image sequence demuxer, and no protocol but the
    one the service gave the source by (issue 8: a DASH manifest read file:///...)."""
    https, http, local = "https://b.s3/v.mp4?X-Amz-Signature=s", "http://minio:9000/b/a.mka", "/data/v.mp4"
    argv = args_for(plan(separate_audio=True), video=https, audio=http)
    fences = {src: (value(o, "-format_whitelist"), value(o, "-protocol_whitelist")) for src, o in input_options(argv)}
    assert fences == {https: (FORMAT_WHITELIST, "https,tls,tcp"), http: (FORMAT_WHITELIST, "http,tcp")}
    [(_, options)] = input_options(args_for(plan(), video=local))
    assert value(options, "-protocol_whitelist") == "file"
    for refused in ("hls", "dash", "concat", "image2", "sdp", "rtsp", "ffconcat", "lavfi"):
        assert refused not in FORMAT_WHITELIST.split(",")


def test_every_open_forces_the_demuxer_probing_found() -> None:
    """The encode reads each file as what the probe found it to be, not as what another
    libavformat build guesses (issue 8)."""
    whole = args_for(plan(separate_audio=True, video_demuxer="mov", audio_demuxer="matroska"), audio="a.mka")
    assert {src: value(o, "-f") for src, o in input_options(whole)} == {"in.mp4": "mov", "a.mka": "matroska"}
    own = args_for(plan(video_demuxer="mov", audio_demuxer="matroska"))  # the audio is the video file's
    assert [value(o, "-f") for _, o in input_options(own)] == ["mov"]
    cut = args_for(plan(Format.M4A, segments=SEGMENTS, audio_demuxer="mp3"), video=None, audio="a.mp3")
    assert [value(o, "-f") for _, o in input_options(cut)] == ["mp3"] * 3
    cuts = plan_cuts(plan(segments=SEGMENTS)) or []
    batch = build_batch_args(plan(segments=SEGMENTS, video_demuxer="matroska"), cuts, video_src="v.mkv",
                             audio_src=None, output="b")  # fmt: skip
    assert [value(o, "-f") for _, o in input_options(batch)] == ["matroska"] * 3
    assert "-f" not in input_options(args_for(plan()))[0][1]  # not known (an older asset): guessed, fenced


@pytest.mark.parametrize("demuxer", ["hls", "concat", "image2", "lavfi", "mov,mp4", "-i"])
def test_a_plan_naming_another_demuxer_is_refused(demuxer: str) -> None:
    with pytest.raises(PlanError, match="not an accepted source demuxer"):
        args_for(plan(video_demuxer=demuxer))


def test_a_stream_copy_maps_the_source_stream_and_encodes_nothing() -> None:
    copy_video = dataclasses.replace(VIDEO, stream_copy=True)
    copy_audio = dataclasses.replace(AUDIO, stream_copy=True)
    both = args_for(plan(video=copy_video, audio=copy_audio))
    assert "-filter_complex" not in both and values(both, "-map") == ["0:v:0", "0:a:0"]
    assert (value(both, "-c:v"), value(both, "-c:a")) == ("copy", "copy")
    assert "-b:v" not in both and "-b:a" not in both and value(both, "-movflags") == "+faststart"
    video_only = args_for(plan(video=copy_video))  # the audio is encoded alone
    assert value(video_only, "-c:v") == "copy" and value(video_only, "-c:a") == "aac"
    assert "-filter_complex" not in video_only
    audio_only = args_for(plan(audio=copy_audio))  # the video is encoded, the audio copied
    assert value(audio_only, "-c:v") == "libx264" and value(audio_only, "-c:a") == "copy"
    m4a = args_for(plan(Format.M4A, audio=copy_audio), video=None, audio="a.mka")
    assert value(m4a, "-c:a") == "copy" and value(m4a, "-f") == "ipod"


def test_a_cut_is_never_a_stream_copy() -> None:
    with pytest.raises(PlanError, match="a cut is encoded"):
        args_for(plan(video=dataclasses.replace(VIDEO, stream_copy=True), segments=SEGMENTS))


def test_a_chunk_is_video_alone_and_the_join_encodes_the_audio_once() -> None:
    whole = plan(chunks=(Segment(0.0, 4.0), Segment(4.0, 8.0), Segment(8.0, 10.0)), video_demuxer="mov")
    cuts = plan_chunks(whole) or []
    assert [c.length for c in cuts] == [4.0, 4.0, 2.0]
    chunk = build_chunk_args(whole, cuts[1], video_src="https://b/v.mp4?sig=s", output="c1.mov")
    [(_, options)] = input_options(chunk)  # one input, seeked to the chunk, the probed demuxer forced
    assert (options[0:3], float(options[3]), value(options, "-f")) == (["-ss", "4", "-t"], pytest.approx(4.0, abs=0.01),
                                                                       "mov")  # fmt: skip
    assert "-an" in chunk and value(chunk, "-c:v") == "libx264" and value(chunk, "-maxrate") == "5000k"
    assert values(chunk, "-f")[-1] == "mov"  # an intermediate
    join = build_chunk_join_args(whole, concat_list="list.ffconcat", video_src="v.mp4", audio_src=None,
                                 output="out.mp4")  # fmt: skip
    assert values(join, "-i") == ["list.ffconcat", "v.mp4"]
    assert values(join, "-map") == ["0:v:0", "1:a:0"] and value(join, "-c:v") == "copy"
    assert value(join, "-c:a") == "aac" and value(join, "-movflags") == "+faststart"
    separate = build_chunk_join_args(dataclasses.replace(whole, separate_audio=True, audio_demuxer="matroska"),
                                     concat_list="l", video_src="v.mp4", audio_src="a.mka", output="o.mp4")  # fmt: skip
    assert values(separate, "-i") == ["l", "a.mka"] and "matroska" in values(separate, "-f")
    with pytest.raises(PlanError, match="only an encoded video"):
        build_chunk_args(plan(Format.M4A), cuts[0], video_src="v.mp4", output="c.mov")


def test_url_inputs_reconnect_and_local_paths_do_not() -> None:
    video, audio = "https://bucket.s3/v.mp4?X-Amz-Signature=s", "/data/voice.mka"
    argv = args_for(plan(separate_audio=True), video=video, audio=audio)
    before = options_before_inputs(argv)
    assert values(argv, "-i") == [video, audio]
    assert before[video] == RECONNECT
    assert before[audio] != RECONNECT and argv.count("-reconnect") == 1  # the local file has none

    cut = args_for(plan(segments=SEGMENTS), video="http://minio:9000/b/v.mp4")
    assert len(values(cut, "-i")) == 3 and cut.count("-reconnect") == 3
    for _src, options in input_options(cut):
        assert options[0] == "-ss" and options[-6:] == RECONNECT  # -ss -t, fences, reconnect, -i

    cuts = plan_cuts(plan(segments=SEGMENTS)) or []
    batch = build_batch_args(plan(segments=SEGMENTS), cuts, video_src="HTTPS://h/v.mp4", audio_src=None, output="b")
    assert batch.count("-reconnect") == 3
    assert "-reconnect" not in args_for(plan(segments=SEGMENTS), video="/local/v.mp4")


def test_nvenc_argv_shape() -> None:
    argv = build_ffmpeg_args(plan(), video_src="in.mp4", audio_src=None, output="o.mp4", encoder="h264_nvenc")
    start = argv.index("-c:v")
    assert argv[start : start + 20] == [
        "-c:v", "h264_nvenc", "-preset", "p4", "-tune", "hq", "-rc", "vbr",
        "-cq", "23", "-b:v", "0", "-maxrate", "5000k", "-bufsize", "10000k",
        "-profile:v", "high", "-pix_fmt", "yuv420p",
    ]  # fmt: skip
    assert "libx264" not in argv and "veryfast" not in argv
    # The same filters and colour tags as libx264: only the encoder changes.
    hdr = plan(video=VideoPlan(1280, 720, 25.0, 5000, hdr=True))
    nvenc = build_ffmpeg_args(hdr, video_src="in.mp4", audio_src=None, output="o.mp4", encoder="h264_nvenc")
    x264 = build_ffmpeg_args(hdr, video_src="in.mp4", audio_src=None, output="o.mp4")
    assert graph(nvenc) == graph(x264)
    for flag in ("-color_primaries", "-color_trc", "-colorspace"):
        assert value(nvenc, flag) == "bt709"
    assert value(nvenc, "-color_range") == "tv"


def test_libx264_is_the_default_and_batches_take_the_encoder() -> None:
    p = plan(segments=SEGMENTS)
    cuts = plan_cuts(p) or []
    assert build_ffmpeg_args(p, video_src="v", audio_src=None, output="o") == build_ffmpeg_args(
        p, video_src="v", audio_src=None, output="o", encoder="libx264"
    )
    batch = build_batch_args(p, cuts, video_src="v", audio_src=None, output="b.mov", encoder="h264_nvenc")
    assert value(batch, "-c:v") == "h264_nvenc" and value(batch, "-rc") == "vbr"
    assert value(build_batch_args(p, cuts, video_src="v", audio_src=None, output="b.mov"), "-c:v") == "libx264"
    with pytest.raises(PlanError, match="unknown video encoder"):
        build_ffmpeg_args(p, video_src="v", audio_src=None, output="o", encoder="hevc_nvenc")


def test_a_video_codec_without_an_encoder_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A format row naming a video codec the encoder has no arguments for fails loudly rather
    than coming out as H.264."""
    monkeypatch.setitem(FORMATS, Format.MOV, dataclasses.replace(FORMATS[Format.MOV], video_codec="vp9"))
    with pytest.raises(PlanError, match="vp9"):
        args_for(plan(Format.MOV))
