"""Where the ffmpeg binary comes from, and what it can do on this machine.

`imageio-ffmpeg` ships a static ffmpeg in its wheel, so a plain `pip install` can encode on a
fresh machine. `ROUGHY_FFMPEG` overrides it (the encoder image installs the distribution's
ffmpeg, which may have hardware encoders the wheel lacks). `choose_video_encoder` checks that
NVENC actually works here before a render relies on it; `choose_video_pipeline` also checks
whether the GPU can decode and scale for it.

The fallback order, each step taken only when the one before it fails its check:

1. `h264_nvenc+cuda`: NVDEC decodes, `scale_cuda` resizes, NVENC encodes; the frames stay on the
   GPU. Checked by encoding a fifth of a second of H.264 with the argument builder's own
   command line (`ffmpeg_args.build_ffmpeg_args(..., hwaccel="cuda")`). Not tried for a plan
   whose filters need CPU frames (`ffmpeg_args.gpu_decodable`), nor with `ROUGHY_HWACCEL=none`.
2. `h264_nvenc`: CPU decoding and filters, NVENC encoding.
3. `libx264`: no usable encode unit (no GPU, no driver, a GPU without NVENC such as A100, H100,
   H200 or B200, or no free NVENC session).

A source that fails on the GPU path although the check passed is encoded again with CPU
decoding (`tasks`): the check proves the machine, not every source.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from roughy.core.formats import Format
from roughy.core.plan import EncodePlan, VideoPlan
from roughy.encoder.errors import stderr_tail
from roughy.encoder.ffmpeg_args import CUDA, H264_NVENC, LIBX264, build_ffmpeg_args, encoder_label

log = logging.getLogger(__name__)

ENV_VAR = "ROUGHY_FFMPEG"
#: `none` keeps decoding and scaling on the CPU for NVENC encodes (the Job sets it when the
#: operator's `gpu_decode` is off); unset or `cuda`: use the GPU when its check passes.
ENV_HWACCEL = "ROUGHY_HWACCEL"


def ffmpeg_path() -> str:
    """The ffmpeg executable to run: `$ROUGHY_FFMPEG` if set, else imageio-ffmpeg's binary."""
    override = os.environ.get(ENV_VAR)
    if override:
        return override
    import imageio_ffmpeg  # imported lazily: only needed when no override is given

    path: str = imageio_ffmpeg.get_ffmpeg_exe()
    return path


#: The NVENC check: a fifth of a second of black through the encoder. It fails fast without a
#: GPU, a driver (libcuda), an encode unit (A100/H100 have none) or a free NVENC session.
NVENC_CHECK_ARGS = (
    "-hide_banner", "-nostdin", "-loglevel", "error",
    "-f", "lavfi", "-i", "color=c=black:s=256x256:r=25:d=0.2",
    "-c:v", H264_NVENC, "-f", "null", "-",
)  # fmt: skip
NVENC_CHECK_TIMEOUT = 20.0

#: The GPU pipeline check's source: a fifth of a second of H.264 in MP4, encoded with NVENC
#: (which has passed its own check by then), for NVDEC to decode.
CUDA_SAMPLE_ARGS = (
    "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
    "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=0.2",  # NVENC refuses frames under ~145 px
    "-c:v", H264_NVENC, "-pix_fmt", "yuv420p", "-f", "mp4",
)  # fmt: skip
#: ... and the plan it is rendered with: the same command line as a real render's.
CUDA_CHECK_PLAN = EncodePlan(Format.MP4, 0.2, VideoPlan(width=256, height=192, fps=25.0, bitrate_kbps=500), None,
                             video_demuxer="mov")  # fmt: skip
CUDA_CHECK_TIMEOUT = 20.0


@dataclass(frozen=True)
class VideoPipeline:
    """How a render's video is made: `encoder` (`ffmpeg_args.ENCODERS`) and `hwaccel` (`cuda`:
    decoded and scaled on the GPU, where the plan allows it) or None."""

    encoder: str
    hwaccel: str | None = None

    @property
    def name(self) -> str:
        return encoder_label(self.encoder, self.hwaccel)


def pick_pipeline(requested: str, *, nvenc: bool, cuda: bool) -> VideoPipeline:
    """The fallback order as a function of what the checks found: NVENC asked for runs with the
    GPU decoding when both checks passed, with the CPU decoding when only NVENC's did, and
    becomes libx264 when NVENC's failed. Anything else asked for is used as asked."""
    if requested != H264_NVENC:
        return VideoPipeline(requested)
    if not nvenc:
        return VideoPipeline(LIBX264)
    return VideoPipeline(H264_NVENC, CUDA if cuda else None)


def _check(argv: list[str], what: str, timeout: float) -> tuple[bool, str]:
    """Run one check: (whether ffmpeg succeeded, its reason when it did not)."""
    try:
        proc = subprocess.run(  # noqa: S603 - argv list, no shell
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False, f"the {what} check did not finish within {timeout:g} s"
    except OSError as exc:
        return False, f"cannot run ffmpeg: {exc.strerror or exc}"
    if proc.returncode != 0:
        return False, stderr_tail(proc.stderr.splitlines(), max_lines=2) or f"ffmpeg exited with {proc.returncode}"
    return True, ""


def nvenc_works(ffmpeg: str | None = None, *, timeout: float = NVENC_CHECK_TIMEOUT) -> tuple[bool, str]:
    """Run the NVENC check: (whether it encoded, ffmpeg's reason when it did not)."""
    return _check([ffmpeg or ffmpeg_path(), *NVENC_CHECK_ARGS], "NVENC", timeout)


def cuda_works(ffmpeg: str | None = None, *, timeout: float = CUDA_CHECK_TIMEOUT) -> tuple[bool, str]:
    """Run the GPU pipeline check (NVDEC, `scale_cuda`, NVENC), once per ffmpeg binary: (whether
    it encoded, ffmpeg's reason when it did not)."""
    return _cuda_check(ffmpeg or ffmpeg_path(), timeout)


@functools.lru_cache(maxsize=8)
def _cuda_check(ffmpeg: str, timeout: float) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="roughy-cuda-check-") as scratch:
        sample = str(Path(scratch) / "sample.mp4")
        made = _check([ffmpeg, *CUDA_SAMPLE_ARGS, sample], "CUDA", timeout)
        if not made[0]:
            return made
        argv = build_ffmpeg_args(
            CUDA_CHECK_PLAN, video_src=sample, audio_src=None, output=str(Path(scratch) / "out.mp4"),
            ffmpeg=ffmpeg, encoder=H264_NVENC, hwaccel=CUDA,
        )  # fmt: skip
        return _check(argv, "CUDA", timeout)


def choose_video_encoder(requested: str, ffmpeg: str | None = None) -> str:
    """The encoder to use for `requested`: NVENC only if its check passes, else libx264 (with
    a warning: the render is slower, not failed)."""
    return choose_video_pipeline(requested, ffmpeg, gpu_decode=False).encoder


def choose_video_pipeline(requested: str, ffmpeg: str | None = None, *, gpu_decode: bool = True) -> VideoPipeline:
    """The pipeline to use for `requested` (the fallback order in the module docstring), with a
    warning for each step down. `gpu_decode`: whether the plan could use the GPU's decoding and
    scaling at all (`ffmpeg_args.gpu_decodable`); its check is not run otherwise."""
    if requested != H264_NVENC:
        return pick_pipeline(requested, nvenc=False, cuda=False)
    ok, reason = nvenc_works(ffmpeg)
    if not ok:
        log.warning("h264_nvenc is unavailable (%s); encoding with libx264", reason)
        return pick_pipeline(requested, nvenc=False, cuda=False)
    cuda = False
    if gpu_decode and _hwaccel_allowed():
        cuda, reason = cuda_works(ffmpeg)
        if not cuda:
            log.warning("decoding and scaling on the GPU is unavailable (%s); decoding on the CPU for NVENC", reason)
    return pick_pipeline(requested, nvenc=True, cuda=cuda)


def _hwaccel_allowed() -> bool:
    value = (os.environ.get(ENV_HWACCEL) or CUDA).strip().lower()
    if value not in (CUDA, "none"):
        log.warning("%s=%r is neither %r nor 'none'; trying %s", ENV_HWACCEL, value, CUDA, CUDA)
    return value != "none"
