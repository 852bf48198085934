"""Where the ffmpeg binary comes from.

`imageio-ffmpeg` ships a static ffmpeg in its wheel, so a plain `pip install` can encode on a
fresh machine. `ROUGHY_FFMPEG` overrides it (the encoder image installs the distribution's
ffmpeg, which may have hardware encoders the wheel lacks).
"""

from __future__ import annotations

import os

ENV_VAR = "ROUGHY_FFMPEG"


def ffmpeg_path() -> str:
    """The ffmpeg executable to run: `$ROUGHY_FFMPEG` if set, else imageio-ffmpeg's binary."""
    override = os.environ.get(ENV_VAR)
    if override:
        return override
    import imageio_ffmpeg  # imported lazily: only needed when no override is given

    path: str = imageio_ffmpeg.get_ffmpeg_exe()
    return path
