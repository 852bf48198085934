"""Output formats and what each is made of: the one place these facts are written (SPEC 5.1, 5.5).

Everything that depends on the output format derives from here: the API's accepted values (the
`Format` enum and the bitrate ladders, also the CLI's choices and the CRD's enum), the planner's
sample rates and Auto bitrates, the encoder's muxer and codecs, the Content-Type of uploads and
downloads, and the file extension of output keys.

Adding an output format whose codecs are known here is a `Format` member and a `FORMATS` row; a
new codec is also an `AudioCodec` (or video codec name) here and its encoder arguments in
`roughy.encoder.ffmpeg_args`. The CRD (`crds/render.yaml` and the chart's copy) is then
regenerated with `python -m roughy.kube.crd`, not edited.

The facts are data, not behaviour: how a codec is invoked (ffmpeg's argv) stays in the encoder.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Format(enum.StrEnum):
    MP4 = "mp4"
    MOV = "mov"
    M4A = "m4a"
    MP3 = "mp3"

    @property
    def facts(self) -> FormatFacts:
        return FORMATS[self]

    @property
    def is_video(self) -> bool:
        return self.facts.video_codec is not None

    @property
    def mime_type(self) -> str:
        return self.facts.content_type

    @property
    def extension(self) -> str:
        return self.facts.extension


@dataclass(frozen=True)
class AudioCodec:
    """An audio codec and the sample rates the service lets it carry.

    `sample_rates` are kept as they are; any other source rate is resampled to the smallest of
    `resample_to` at or above it (never down, when avoidable), else to the highest of them.
    """

    name: str  # as probing names the stream: what an output of this codec reports
    sample_rates: tuple[int, ...]
    resample_to: tuple[int, ...]

    def sample_rate(self, source_rate: int) -> int:
        """The output rate for a source at `source_rate` Hz (0: unknown, taken as 48 kHz)."""
        rate = source_rate or 48000
        if rate in self.sample_rates:
            return rate
        return min((r for r in self.resample_to if r >= rate), default=max(self.resample_to))


#: AAC-LC: every MPEG-4 rate up to 48 kHz (higher rates only add bytes nobody hears).
AAC = AudioCodec(
    name="aac",
    sample_rates=(8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000),
    resample_to=(8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000),
)
#: MP3 only at the MPEG-1 rates. LAME also encodes MPEG-2 (16-24 kHz) and MPEG-2.5 (8-12 kHz),
#: but those top out at 160 and 64 kbps: a 192-320 kbps ladder step would silently come out
#: lower than the render's `result` says (SPEC 5.1: the result reports the bitrates used). A
#: low-rate source is resampled up to 44.1 kHz, the rate every player expects.
MP3 = AudioCodec(name="mp3", sample_rates=(32000, 44100, 48000), resample_to=(44100, 48000))

H264 = "h264"


@dataclass(frozen=True)
class FormatFacts:
    muxer: str  # the container, as the encoder forces it (the output may be a temp name)
    video_codec: str | None  # None: an audio-only format
    audio_codec: AudioCodec
    content_type: str
    extension: str  # of output files and keys, without the dot
    index_first: bool  # index at the front, for progressive download (SPEC 5.5: MP4/MOV/M4A)


#: mp4 and mov are the same encode in two containers; m4a is the AAC alone (SPEC 5.1).
FORMATS: dict[Format, FormatFacts] = {
    Format.MP4: FormatFacts("mp4", H264, AAC, "video/mp4", "mp4", index_first=True),
    Format.MOV: FormatFacts("mov", H264, AAC, "video/quicktime", "mov", index_first=True),
    Format.M4A: FormatFacts("ipod", None, AAC, "audio/mp4", "m4a", index_first=True),
    Format.MP3: FormatFacts("mp3", None, MP3, "audio/mpeg", "mp3", index_first=False),
}

#: The ladders (SPEC 5.1): the only values an explicit bitrate may take, for every format.
VIDEO_BITRATES_MBPS: tuple[int, ...] = (5, 10, 20, 50)
AUDIO_BITRATES_KBPS: tuple[int, ...] = (128, 192, 256, 320)

#: Auto video bitrate by the output's shorter edge: (up to this edge, Mbps); above the last, the
#: last Mbps of `AUTO_VIDEO_ABOVE_MBPS`. The README documents this table.
AUTO_VIDEO_MBPS: tuple[tuple[int, int], ...] = ((720, 5), (1080, 10))
AUTO_VIDEO_ABOVE_MBPS = 20
AUTO_AUDIO_STEREO_KBPS = 192
AUTO_AUDIO_MONO_KBPS = 128


def auto_video_mbps(short_edge: int) -> int:
    """Auto video bitrate for an output whose shorter edge is `short_edge` pixels."""
    return next((mbps for edge, mbps in AUTO_VIDEO_MBPS if short_edge <= edge), AUTO_VIDEO_ABOVE_MBPS)


def auto_audio_kbps(channels: int) -> int:
    """Auto audio bitrate for an output of `channels` channels (1 or 2)."""
    return AUTO_AUDIO_MONO_KBPS if channels == 1 else AUTO_AUDIO_STEREO_KBPS


def output_sample_rate(fmt: Format, source_rate: int) -> int:
    """The sample rate of `fmt`'s audio for a source at `source_rate` Hz. Idempotent, so the
    encoder may apply it again to a plan's rate."""
    return fmt.facts.audio_codec.sample_rate(source_rate)


def format_of(name: str) -> Format | None:
    """The output format a file name or key ends in (`renders/x/output.mp4`), or None."""
    base = name.rsplit("/", 1)[-1]
    if "." not in base:
        return None
    suffix = base.rsplit(".", 1)[-1].lower()
    return next((fmt for fmt, facts in FORMATS.items() if facts.extension == suffix), None)
