"""Where the ffmpeg binary comes from.

`imageio-ffmpeg` ships a static ffmpeg in its wheel, so a plain `pip install` can encode on a
fresh machine. `ROUGHY_FFMPEG` overrides it (the encoder image installs the distribution's
ffmpeg, which may have hardware encoders the wheel lacks). `choose_video_encoder` checks that
NVENC actually works here before a render relies on it.
"""

from __future__ import annotations

import logging
import os
import subprocess

from roughy.encoder.errors import stderr_tail
from roughy.encoder.ffmpeg_args import H264_NVENC, LIBX264

log = logging.getLogger(__name__)

ENV_VAR = "ROUGHY_FFMPEG"


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


def nvenc_works(ffmpeg: str | None = None, *, timeout: float = NVENC_CHECK_TIMEOUT) -> tuple[bool, str]:
    """Run the NVENC check: (whether it encoded, ffmpeg's reason when it did not)."""
    argv = [ffmpeg or ffmpeg_path(), *NVENC_CHECK_ARGS]
    try:
        proc = subprocess.run(  # noqa: S603 - argv list, no shell
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False, f"the NVENC check did not finish within {timeout:g} s"
    except OSError as exc:
        return False, f"cannot run ffmpeg: {exc.strerror or exc}"
    if proc.returncode != 0:
        return False, stderr_tail(proc.stderr.splitlines(), max_lines=2) or f"ffmpeg exited with {proc.returncode}"
    return True, ""


def choose_video_encoder(requested: str, ffmpeg: str | None = None) -> str:
    """The encoder to use for `requested`: NVENC only if its check passes, else libx264 (with
    a warning: the render is slower, not failed)."""
    if requested != H264_NVENC:
        return requested
    ok, reason = nvenc_works(ffmpeg)
    if ok:
        return requested
    log.warning("h264_nvenc is unavailable (%s); encoding with libx264", reason)
    return LIBX264
