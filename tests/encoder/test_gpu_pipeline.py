"""Decoding and scaling on the GPU for NVENC encodes, and saying what ran.

These machines have no GPU: the decisions (which pipeline, which command line, when to fall
back) are tested as functions of what the checks found, the checks themselves against fake
ffmpeg scripts, and the real fallback (libx264, with `result.encoder` saying so) with a real
tiny encode. That the CUDA command line runs on a GPU is only checked where ffmpeg can check it
without one: its filters' and options' names.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
from pathlib import Path
from typing import Any

import av
import pytest

from roughy.core.models import Format, Segment
from roughy.core.plan import AudioPlan, EncodePlan, VideoPlan
from roughy.encoder import tasks, tools
from roughy.encoder.cli import main
from roughy.encoder.errors import EncodeFailed, EncodeTimeout, InvalidMedia
from roughy.encoder.ffmpeg_args import (
    CUDA,
    CUDA_DECODE_ARGS,
    CUDA_DEVICE_ARGS,
    H264_NVENC,
    LIBX264,
    Cut,
    PlanError,
    build_chunk_args,
    build_ffmpeg_args,
    encoder_label,
    gpu_decodable,
    gpu_hwaccel,
    plan_chunks,
)
from roughy.encoder.tools import VideoPipeline, choose_video_pipeline, pick_pipeline

VIDEO = VideoPlan(width=1920, height=1080, fps=25.0, bitrate_kbps=8000)
AUDIO = AudioPlan(bitrate_kbps=192, channels=2, sample_rate=48000)
WHOLE = EncodePlan(Format.MP4, 10.0, VIDEO, AUDIO, video_demuxer="mov")


def argv_for(plan: EncodePlan, encoder: str = H264_NVENC, hwaccel: str | None = CUDA, **kw: Any) -> list[str]:
    sources = {"video_src": "https://s3.example/src?sig=x", "audio_src": None} | kw
    return build_ffmpeg_args(plan, output="out.tmp", ffmpeg="ffmpeg", encoder=encoder, hwaccel=hwaccel, **sources)


def graph_of(argv: list[str]) -> str:
    return argv[argv.index("-filter_complex") + 1]


# --- which pipeline: a function of what the checks found --------------------------------------


@pytest.mark.parametrize(
    ("requested", "nvenc", "cuda", "expected"),
    [
        (H264_NVENC, True, True, VideoPipeline(H264_NVENC, CUDA)),
        (H264_NVENC, True, False, VideoPipeline(H264_NVENC)),
        (H264_NVENC, False, True, VideoPipeline(LIBX264)),  # no NVENC: the GPU path is moot
        (H264_NVENC, False, False, VideoPipeline(LIBX264)),
        (LIBX264, True, True, VideoPipeline(LIBX264)),  # libx264 asked for is libx264
    ],
)
def test_the_fallback_order(requested: str, nvenc: bool, cuda: bool, expected: VideoPipeline) -> None:
    assert pick_pipeline(requested, nvenc=nvenc, cuda=cuda) == expected


def test_what_ran_is_named_by_encoder_and_hwaccel() -> None:
    assert VideoPipeline(H264_NVENC, CUDA).name == encoder_label(H264_NVENC, CUDA) == "h264_nvenc+cuda"
    assert VideoPipeline(H264_NVENC).name == "h264_nvenc" and VideoPipeline(LIBX264).name == "libx264"


# --- where the plan allows it ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "allowed"),
    [
        (WHOLE, True),
        (EncodePlan(Format.MP4, 10.0, VIDEO, None), True),  # no audio
        (EncodePlan(Format.MP4, 600.0, VIDEO, AUDIO, chunks=(Segment(0, 300), Segment(300, 600))), True),
        (EncodePlan(Format.MP4, 2.0, VIDEO, AUDIO, segments=(Segment(1, 2), Segment(4, 5))), False),  # concat, fades
        (EncodePlan(Format.MP4, 1.0, VIDEO, AUDIO, segments=(Segment(1, 2),)), False),  # one cut: still a graph
        (EncodePlan(Format.MP4, 10.0, VideoPlan(1920, 1080, 25.0, 8000, hdr=True), AUDIO), False),  # zscale
        (EncodePlan(Format.MP4, 10.0, VideoPlan(1920, 1080, 25.0, 8000, stream_copy=True), AUDIO), False),
        (EncodePlan(Format.M4A, 10.0, None, AUDIO), False),
    ],
    ids=["whole", "video-only", "chunked", "cut", "one-segment", "hdr", "copy", "audio"],
)
def test_gpu_decoding_only_where_the_graph_allows_it(plan: EncodePlan, allowed: bool) -> None:
    assert gpu_decodable(plan) is allowed
    assert gpu_hwaccel(plan, H264_NVENC, CUDA) == (CUDA if allowed else None)
    assert gpu_hwaccel(plan, LIBX264, CUDA) is None, "the GPU path feeds NVENC only"
    assert gpu_hwaccel(plan, H264_NVENC, None) is None


def test_an_unknown_hwaccel_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="unknown hwaccel"):
        argv_for(WHOLE, hwaccel="vaapi")


# --- the command line --------------------------------------------------------------------------


def test_the_gpu_command_line_decodes_scales_and_encodes_on_the_gpu() -> None:
    argv = argv_for(WHOLE)
    first_input = argv.index("-i")
    device = argv.index(CUDA_DEVICE_ARGS[0])
    assert argv[device : device + len(CUDA_DEVICE_ARGS)] == list(CUDA_DEVICE_ARGS) and device < first_input
    # the decode options open the video input, before its fences and its reconnect options
    decode = argv.index(CUDA_DECODE_ARGS[0])
    assert argv[decode : decode + len(CUDA_DECODE_ARGS)] == list(CUDA_DECODE_ARGS)
    assert argv[decode + len(CUDA_DECODE_ARGS)] == "-f" and decode < first_input
    assert argv.count("-hwaccel") == 1
    assert graph_of(argv) == (
        "[0:v:0]hwupload,fps=25,scale_cuda=w=1920:h=1080:interp_algo=bicubic:format=yuv420p,setsar=1[vout]"
    )
    assert "-pix_fmt" not in argv, "a -pix_fmt would ask for a CPU conversion of GPU frames"
    assert argv[argv.index("-c:v") + 1] == H264_NVENC and argv[argv.index("-profile:v") + 1] == "high"
    assert ["-map", "0:a:0"] == argv[argv.index("[vout]") + 1 : argv.index("[vout]") + 3], "audio from the same input"


def test_a_separate_audio_input_is_not_decoded_on_the_gpu() -> None:
    plan = EncodePlan(Format.MP4, 10.0, VIDEO, AUDIO, separate_audio=True, video_demuxer="mov", audio_demuxer="mp3")
    argv = argv_for(plan, audio_src="https://s3.example/audio?sig=y")
    assert argv.count("-hwaccel") == 1 and argv.index("-hwaccel") < argv.index("https://s3.example/src?sig=x")


@pytest.mark.parametrize(
    "plan",
    [
        EncodePlan(Format.MP4, 2.0, VIDEO, AUDIO, segments=(Segment(1, 2), Segment(4, 5))),
        EncodePlan(Format.MP4, 10.0, VideoPlan(1920, 1080, 25.0, 8000, hdr=True), AUDIO),
        EncodePlan(Format.MP4, 10.0, VideoPlan(1920, 1080, 25.0, 8000, stream_copy=True), AUDIO),
    ],
    ids=["cut", "hdr", "copy"],
)
def test_where_the_gpu_cannot_take_the_graph_the_command_line_is_the_cpu_one(plan: EncodePlan) -> None:
    assert argv_for(plan, hwaccel=CUDA) == argv_for(plan, hwaccel=None)


def test_libx264_ignores_the_hwaccel() -> None:
    argv = argv_for(WHOLE, encoder=LIBX264)
    assert argv == argv_for(WHOLE, encoder=LIBX264, hwaccel=None) and "-hwaccel" not in argv


def test_the_cpu_command_line_for_nvenc_is_unchanged() -> None:
    argv = argv_for(WHOLE, hwaccel=None)
    assert "-hwaccel" not in argv and "-init_hw_device" not in argv
    assert "scale=1920:1080:flags=bicubic" in graph_of(argv) and argv[argv.index("-pix_fmt") + 1] == "yuv420p"


def test_a_chunk_on_the_gpu_seeks_its_input_and_needs_no_concat() -> None:
    plan = EncodePlan(Format.MP4, 600.0, VIDEO, AUDIO, video_demuxer="mov", chunks=(Segment(0, 300), Segment(300, 600)))
    chunk: Cut = (plan_chunks(plan) or [])[1]
    gpu = build_chunk_args(plan, chunk, video_src="src.mp4", output="c.mov", encoder=H264_NVENC, hwaccel=CUDA)
    cpu = build_chunk_args(plan, chunk, video_src="src.mp4", output="c.mov", encoder=H264_NVENC)
    seek = gpu.index("-ss")
    assert gpu[seek : seek + 4] == cpu[cpu.index("-ss") : cpu.index("-ss") + 4] == ["-ss", "300", "-t", "299.9999"]
    assert gpu[seek + 4 : seek + 4 + len(CUDA_DECODE_ARGS)] == list(CUDA_DECODE_ARGS)
    assert graph_of(gpu).startswith("[0:v:0]hwupload,") and "concat" not in graph_of(gpu)
    assert "concat=n=1" in graph_of(cpu) and "-hwaccel" not in cpu
    assert gpu[-len(cpu[-8:]) :] == cpu[-8:], "the same intermediate MOV, no audio"
    assert "-an" in gpu


# --- the checks, against fake ffmpeg binaries --------------------------------------------------


def fake_ffmpeg(tmp_path: Path, name: str, fail_when: str | None = None) -> tuple[Path, Path]:
    """A shell script standing in for ffmpeg: records each argv (one line each) and fails, with
    a message on stderr, when an argument matches `fail_when` (a grep pattern)."""
    log = tmp_path / f"{name}.calls"
    script = tmp_path / name
    check = f'if printf "%s\\n" "$@" | grep -q -- {fail_when!r}; then echo "no {fail_when} here" >&2; exit 1; fi\n'
    script.write_text(f'#!/bin/sh\necho "$*" >> {str(log)!r}\n' + (check if fail_when else "") + "exit 0\n")
    script.chmod(0o755)
    return script, log


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_both_checks_pass_and_the_cuda_one_runs_the_builders_command_line(tmp_path: Path) -> None:
    ffmpeg, log = fake_ffmpeg(tmp_path, "ffmpeg-gpu")
    assert choose_video_pipeline(H264_NVENC, str(ffmpeg)) == VideoPipeline(H264_NVENC, CUDA)
    nvenc, sample, check = calls(log)
    assert "color=c=black" in nvenc and "h264_nvenc" in nvenc
    assert "testsrc2" in sample and sample.endswith("sample.mp4")
    assert "-hwaccel cuda" in check and "scale_cuda=" in check and "-c:v h264_nvenc" in check
    assert re.search(r"-i \S*sample\.mp4", check)


def test_the_cuda_check_is_run_once_per_ffmpeg(tmp_path: Path) -> None:
    ffmpeg, log = fake_ffmpeg(tmp_path, "ffmpeg-once")
    assert tools.cuda_works(str(ffmpeg)) == tools.cuda_works(str(ffmpeg)) == (True, "")
    assert len(calls(log)) == 2  # the sample and the check, once


def test_without_scale_cuda_nvenc_decodes_on_the_cpu(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ffmpeg, _ = fake_ffmpeg(tmp_path, "ffmpeg-no-scale-cuda", fail_when="scale_cuda")
    with caplog.at_level(logging.WARNING):
        assert choose_video_pipeline(H264_NVENC, str(ffmpeg)) == VideoPipeline(H264_NVENC)
    assert "decoding and scaling on the GPU is unavailable (no scale_cuda here)" in caplog.text


def test_without_nvenc_the_cuda_check_is_not_run(tmp_path: Path) -> None:
    ffmpeg, log = fake_ffmpeg(tmp_path, "ffmpeg-no-nvenc", fail_when="h264_nvenc")
    assert choose_video_pipeline(H264_NVENC, str(ffmpeg)) == VideoPipeline(LIBX264)
    assert len(calls(log)) == 1


def test_the_cuda_check_is_skipped_for_a_plan_that_cannot_use_it_or_when_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ffmpeg, log = fake_ffmpeg(tmp_path, "ffmpeg-skip")
    assert choose_video_pipeline(H264_NVENC, str(ffmpeg), gpu_decode=False) == VideoPipeline(H264_NVENC)
    monkeypatch.setenv(tools.ENV_HWACCEL, "none")
    assert choose_video_pipeline(H264_NVENC, str(ffmpeg)) == VideoPipeline(H264_NVENC)
    assert len(calls(log)) == 2 and all("scale_cuda" not in call for call in calls(log))
    assert choose_video_pipeline(LIBX264, str(ffmpeg)) == VideoPipeline(LIBX264) and len(calls(log)) == 2


def test_the_cuda_check_on_this_machine_says_no_and_why() -> None:
    ok, reason = tools.cuda_works()
    assert not ok and reason  # no GPU here: ffmpeg says why (no libcuda, no device...)


# --- the GPU path failing on a source: encoded again, decoding on the CPU ----------------------


class FakeRuns:
    """`tasks._gpu_or_cpu`'s `run`: fails the GPU command lines with `gpu_error`."""

    def __init__(self, gpu_error: Exception | None = None, cpu_error: Exception | None = None) -> None:
        self.gpu_error, self.cpu_error = gpu_error, cpu_error
        self.argvs: list[list[str]] = []

    def __call__(self, argv: list[str]) -> None:
        self.argvs.append(argv)
        error = self.gpu_error if "-hwaccel" in argv else self.cpu_error
        if error is not None:
            raise error


def build(**kw: Any) -> list[str]:
    return argv_for(WHOLE, hwaccel=kw["hwaccel"])


def gpu_or_cpu(runs: FakeRuns, encoder: str = H264_NVENC, hwaccel: str | None = CUDA) -> str:
    return tasks._gpu_or_cpu(WHOLE, tasks._Video(encoder, hwaccel), build, runs)


def test_the_gpu_path_when_it_works() -> None:
    runs = FakeRuns()
    assert gpu_or_cpu(runs) == "h264_nvenc+cuda" and len(runs.argvs) == 1


@pytest.mark.parametrize(
    "error",
    [EncodeFailed("Impossible to convert between the formats"), InvalidMedia("Invalid data found when processing")],
    ids=["filter-graph", "hardware-decode-error"],
)
def test_a_failure_on_the_gpu_path_is_encoded_again_on_the_cpu(error: Exception) -> None:
    runs = FakeRuns(gpu_error=error)
    assert gpu_or_cpu(runs) == "h264_nvenc"
    gpu, cpu = runs.argvs
    assert "-hwaccel" in gpu and cpu == argv_for(WHOLE, hwaccel=None)


def test_a_timeout_is_not_retried_and_a_cpu_failure_is_the_renders() -> None:
    with pytest.raises(EncodeTimeout):
        gpu_or_cpu(FakeRuns(gpu_error=EncodeTimeout("late")))
    with pytest.raises(InvalidMedia):
        gpu_or_cpu(FakeRuns(gpu_error=EncodeFailed("gpu"), cpu_error=InvalidMedia("broken for real")))


def test_no_hwaccel_runs_once_on_the_cpu() -> None:
    runs = FakeRuns()
    assert gpu_or_cpu(runs, hwaccel=None) == "h264_nvenc" and gpu_or_cpu(runs, encoder=LIBX264) == "libx264"
    assert all("-hwaccel" not in argv for argv in runs.argvs)


# --- this machine, for real: the fallback is libx264 and the result says so -------------------


def test_nvenc_asked_for_here_encodes_with_libx264_and_says_so(
    tmp_path: Path, stereo_clip: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = EncodePlan(Format.MP4, 2.0, VideoPlan(160, 120, 25.0, 300), AUDIO, video_demuxer="mov")
    assert gpu_decodable(plan), "a plan the GPU path could take, were there a GPU"
    monkeypatch.setenv("ROUGHY_PLAN", json.dumps(plan.to_json()))
    out = tmp_path / "o.mp4"
    assert main(["render", "--encoder", "h264_nvenc", "--video", str(stereo_clip), "--output", str(out)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == {"encoder": "libx264"} and lines[-1]["result"]["encoder"] == "libx264"
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.codec.name == "h264"
        assert (container.streams.video[0].width, container.streams.video[0].height) == (160, 120)


def test_a_render_result_names_the_encoder_only_when_video_was_encoded(tmp_path: Path, stereo_clip: Path) -> None:
    video = EncodePlan(Format.MP4, 2.0, VideoPlan(160, 120, 25.0, 300), AUDIO, video_demuxer="mov")
    encoded = tasks.render(video, video_src=str(stereo_clip), audio_src=None, output=str(tmp_path / "v.mp4"),
                           encoder=LIBX264, hwaccel=CUDA)  # fmt: skip
    assert encoded.encoder == "libx264", "libx264 never takes the GPU path"
    audio = EncodePlan(Format.M4A, 2.0, None, AUDIO, audio_demuxer="mov")
    result = tasks.render(audio, video_src=None, audio_src=str(stereo_clip), output=str(tmp_path / "a.m4a"))
    assert result.encoder is None


# --- the names the CUDA command line uses exist in ffmpeg --------------------------------------


def ffmpeg_help(*topic: str) -> str:
    proc = subprocess.run([tools.ffmpeg_path(), "-hide_banner", "-h", *topic], capture_output=True, text=True)  # noqa: S603
    return proc.stdout


def test_the_filters_and_options_of_the_cuda_command_line_exist_in_this_ffmpeg() -> None:
    """No GPU here to run it, but a misspelt option or filter would fail on every GPU too."""
    scale_cuda = ffmpeg_help("filter=scale_cuda")
    if "Unknown filter" in scale_cuda or not scale_cuda:
        # The default ffmpeg (imageio-ffmpeg's, a declared dependency) has them: `make test` runs
        # this. Only a ROUGHY_FFMPEG of another build (a distribution's) may lack them.
        pytest.skip(f"{tools.ffmpeg_path()} was built without the CUDA filters; the default ffmpeg has them")
    options = re.search(r"scale_cuda=([^,]+)", graph_of(argv_for(WHOLE)))
    assert options is not None
    for option in options.group(1).split(":"):
        name, _, value = option.partition("=")
        assert re.search(rf"^\s+{name}\s", scale_cuda, re.M), name
        if name == "interp_algo":
            assert re.search(rf"^\s+{value}\s", scale_cuda, re.M), value
    assert "Filter hwupload" in ffmpeg_help("filter=hwupload")
    full = ffmpeg_help("full")
    for option in [*CUDA_DEVICE_ARGS[::2], *CUDA_DECODE_ARGS[::2]]:
        assert re.search(rf"^{option}(\[:<stream_spec>\])?\s", full, re.M), option
    assert "cuda" in subprocess.run([tools.ffmpeg_path(), "-hide_banner", "-hwaccels"], capture_output=True,  # noqa: S603
                                    text=True).stdout.split()  # fmt: skip
