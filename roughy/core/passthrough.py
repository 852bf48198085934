"""When a stream is copied instead of encoded (passthrough). Pure: probed facts in, reasons out.

A stream is copied when re-encoding it could only lose quality and time: the source's stream
already is what the output asks for. The rules (each a reason not to copy when it fails):

- video: H.264, 8-bit 4:2:0 (`yuv420p`) in a profile every player decodes (Constrained
  Baseline, Baseline, Main, High), square pixels, no rotation to apply, progressive, one
  constant frame rate (at most 60 fps, the planner's cap), SDR, its display size the output's
  (no tier below it, even dimensions), and its bitrate known and within the cap the encode would
  have (the explicit `video_bitrate`, else the Auto value of the output's size);
- audio: the output format's codec (AAC-LC for MP4/MOV/M4A, MP3 for MP3), the channel count and
  sample rate the encode would produce (mono or stereo, a rate the codec carries), and its
  bitrate known and within the cap (the explicit `audio_bitrate`, else Auto);
- a cut's audio is encoded (every kept segment's audio is faded at its edges); its video is
  copied only when every kept segment starts and ends on a keyframe of a closed GOP, which the
  encoder checks in the file itself (`VideoPlan.cut_copy`; a cut point inside a GOP cannot be
  copied frame-exactly), and is encoded otherwise.

A fact an older probe did not record (None) is a reason: nothing is copied on a guess. The
signature, credits and every SPEC rule are the same whether a stream is copied or encoded; the
render's `result.copied` says which were.
"""

from __future__ import annotations

from roughy.core.formats import Format
from roughy.core.models import AudioInfo, VideoInfo
from roughy.core.plan import AudioPlan, VideoPlan

H264_PROFILES = frozenset({"Constrained Baseline", "Baseline", "Main", "High"})
COPY_PIXEL_FORMAT = "yuv420p"
AAC_PROFILE = "LC"


def video_copy_refusals(video: VideoInfo, plan: VideoPlan, cap_kbps: int) -> list[str]:
    """Why the source's video stream cannot be the output's; empty: copy it. `cap_kbps`: the
    bitrate asked for, before the source's own lowers it (`planning.asked_video_kbps`)."""
    reasons = []
    if video.codec != "h264":
        reasons.append(f"the codec is {video.codec}, not h264")
    if video.pix_fmt != COPY_PIXEL_FORMAT:
        reasons.append(f"the pixel format is {video.pix_fmt}, not {COPY_PIXEL_FORMAT}")
    if video.profile not in H264_PROFILES:
        reasons.append(f"the profile is {video.profile}")
    if video.square_pixels is not True:
        reasons.append("the pixels are not square")
    if video.rotation:
        reasons.append(f"a {video.rotation} degree rotation is to be applied")
    if video.interlaced is not False:
        reasons.append("the video is interlaced (or not known to be progressive)")
    if video.constant_rate is not True:
        reasons.append("the frame rate is variable (or not known to be constant)")
    if round(video.fps, 3) != plan.fps:
        reasons.append(f"the frame rate {video.fps:g} becomes {plan.fps:g}")
    if video.hdr:
        reasons.append("the video is HDR (tone-mapped to SDR)")
    if (video.width, video.height) != (plan.width, plan.height):
        reasons.append(f"the size {video.width}x{video.height} becomes {plan.width}x{plan.height}")
    if video.bitrate_kbps is None or video.bitrate_kbps > cap_kbps:
        reasons.append(f"the bitrate {video.bitrate_kbps} kb/s is not within {cap_kbps} kb/s")
    return reasons


def audio_copy_refusals(fmt: Format, audio: AudioInfo, plan: AudioPlan, cap_kbps: int) -> list[str]:
    """Why the source's audio stream cannot be the output's; empty: copy it. `cap_kbps`: as
    for video (`planning.asked_audio_kbps`)."""
    reasons = []
    codec = fmt.facts.audio_codec
    if audio.codec != codec.name:
        reasons.append(f"the codec is {audio.codec}, not {codec.name}")
    elif codec.name == "aac" and audio.profile != AAC_PROFILE:
        reasons.append(f"the AAC profile is {audio.profile}, not {AAC_PROFILE}")
    if audio.channels != plan.channels:
        reasons.append(f"{audio.channels} channels become {plan.channels}")
    if audio.sample_rate != plan.sample_rate:
        reasons.append(f"{audio.sample_rate} Hz becomes {plan.sample_rate} Hz")
    if audio.bitrate_kbps is None or audio.bitrate_kbps > cap_kbps:
        reasons.append(f"the bitrate {audio.bitrate_kbps} kb/s is not within {cap_kbps} kb/s")
    return reasons


def copied_streams(fmt: Format, video: VideoPlan | None, audio: AudioPlan | None) -> list[str]:
    """What a render's `result.copied` lists for a plan."""
    streams = []
    if fmt.is_video and video is not None and video.stream_copy:
        streams.append("video")
    if audio is not None and audio.stream_copy:
        streams.append("audio")
    return streams
