"""The encoder: encode plan -> ffmpeg argv (pure), PyAV probing, one ffmpeg runner.

`roughy-encode` (`roughy.encoder.cli`) is both the embedded runtime's subprocess and the
Kubernetes Job's entrypoint. This package imports only `roughy.core` from the project.
"""

from roughy.encoder.errors import EncodeFailed, EncoderError, EncodeTimeout, InvalidMedia
from roughy.encoder.ffmpeg_args import build_ffmpeg_args
from roughy.encoder.probe import MediaInfo, probe
from roughy.encoder.tasks import detect_silence, extract_audio, render
from roughy.encoder.tools import ffmpeg_path

__all__ = [
    "EncodeFailed",
    "EncodeTimeout",
    "EncoderError",
    "InvalidMedia",
    "MediaInfo",
    "build_ffmpeg_args",
    "detect_silence",
    "extract_audio",
    "ffmpeg_path",
    "probe",
    "render",
]
