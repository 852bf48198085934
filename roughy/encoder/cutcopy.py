"""A cut's video copied from its source, when every kept segment starts and ends on a keyframe.

The plan says when this may be tried (`VideoPlan.cut_copy`: the source's video already is the
output, `roughy.core.passthrough`); only the file can say whether the cut points are keyframes.
`copy_cut_video` reads the packets with PyAV and writes the kept ones, byte for byte, into a MOV
with the segments end to end:

- a segment is copied GOP by GOP: a GOP (a keyframe and the packets after it, in decode order)
  is kept when its keyframe lies in the segment, so the segment must start on a keyframe and
  end on one (or at the end of the stream); otherwise `NotAligned`;
- an open GOP (a packet after the keyframe in decode order shown before it: a leading picture
  that needs the GOP before) is `NotAligned` too: copied alone, it would not decode;
- timestamps are shifted so each segment follows the one before without a gap.

`NotAligned` is not a failure: the caller encodes the cut instead (`tasks._render_to`). The
check costs a seek per segment and the reading of the packets kept (range requests on a URL):
nothing is decoded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction

import av
import av.error

from roughy.encoder.errors import EncodeFailed, InvalidMedia
from roughy.encoder.ffmpeg_args import Cut
from roughy.encoder.probe import OPEN_TIMEOUT, READ_TIMEOUT, URL_OPTIONS
from roughy.encoder.sources import check_demuxer, is_remote, open_options


class NotAligned(Exception):
    """The cut cannot be copied frame-exactly: encode it."""


def copy_cut_video(src: str, demuxer: str | None, cuts: Sequence[Cut], fps: float, output: str) -> int:
    """The kept segments' video packets of `src`, end to end, into the MOV `output`; the number
    of packets. Raises NotAligned (and leaves no `output`) when a cut point is not a keyframe of
    a closed GOP. `fps`: the stream's frame rate (half a frame is the tolerance of a match)."""
    tolerance = 0.5 / fps if fps > 0 else 0.001
    options = open_options(src) | (URL_OPTIONS if is_remote(src) else {})
    try:
        source = av.open(src, mode="r", format=check_demuxer(demuxer) if demuxer else None,
                         timeout=(OPEN_TIMEOUT, READ_TIMEOUT), container_options=options)  # fmt: skip
    except av.error.FFmpegError as exc:
        raise EncodeFailed(f"cannot open the video source to copy the cut: {exc}") from None
    try:
        with source, av.open(output, mode="w", format="mov") as target:
            return _copy(source, target, cuts, tolerance)
    except av.error.FFmpegError as exc:  # a read or a mux that failed: the encode reads it again, and says
        _remove(output)
        raise NotAligned(f"the copy failed ({exc}): encoding instead") from None
    except BaseException:
        _remove(output)
        raise


def _remove(path: str) -> None:
    if os.path.exists(path):
        os.unlink(path)


def _copy(source: av.container.InputContainer, target: av.container.OutputContainer, cuts: Sequence[Cut],
          tolerance: float) -> int:  # fmt: skip
    if not source.streams.video:
        raise InvalidMedia("the source has no video stream")
    stream = source.streams.video[0]
    time_base = stream.time_base
    if time_base is None:
        raise NotAligned("the video stream has no time base")
    origin = stream.start_time or 0
    out = target.add_stream_from_template(stream)
    packets = 0
    offset = 0.0  # where this segment starts in the output, seconds
    for cut in cuts:
        start, end = cut.start, cut.start + cut.length
        packets += _copy_segment(source, stream, target, out, origin, time_base, start, end, offset, tolerance)
        offset += cut.length
    return packets


def _copy_segment(
    source: av.container.InputContainer,
    stream: av.VideoStream,
    target: av.container.OutputContainer,
    out: av.VideoStream,
    origin: int,
    time_base: Fraction,
    start: float,
    end: float,
    offset: float,
    tolerance: float,
) -> int:
    def seconds(ts: int) -> float:
        return float((ts - origin) * time_base)

    source.seek(origin + round(start / time_base), stream=stream, backward=True, any_frame=False)
    shift = round((offset - start) / time_base)
    kept = 0
    gop: float | None = None  # the pts of the current GOP's keyframe, once inside the segment
    last = start  # the end of the last frame kept
    for packet in source.demux(stream):
        if packet.pts is None or packet.dts is None:
            if packet.size == 0:
                continue  # a flush packet at the end of the stream
            raise NotAligned("a packet without timestamps")
        at = seconds(packet.pts)
        if packet.is_keyframe:
            if gop is None and abs(at - start) > tolerance:
                raise NotAligned(f"the segment at {start:g} s does not start on a keyframe ({at:g} s is)")
            if at >= end - tolerance:
                if abs(at - end) > tolerance:
                    raise NotAligned(f"the segment ending at {end:g} s does not end on a keyframe")
                return kept
            gop = at
        elif gop is None:
            continue  # before the seek target's keyframe (a demuxer that lands early)
        if at < gop - tolerance:
            raise NotAligned("an open GOP: a picture shown before its keyframe")
        if at >= end + tolerance:
            raise NotAligned(f"the segment ending at {end:g} s ends inside a GOP")
        packet.pts += shift
        packet.dts += shift
        packet.stream = out
        target.mux(packet)
        kept += 1
        duration = float(packet.duration * time_base) if packet.duration else 0.0
        last = max(last, at + duration)
    if abs(last - end) > tolerance:  # the stream ended: the segment must end with it
        raise NotAligned(f"the segment ending at {end:g} s runs past the stream's end ({last:g} s)")
    return kept
