"""Measure produced media without numpy: frame timestamps, flashes, beeps, atom order."""

from __future__ import annotations

import array
import struct
from dataclasses import dataclass
from pathlib import Path

import av
from av.audio.resampler import AudioResampler


@dataclass(frozen=True)
class StreamTimes:
    """What the decoder sees: first timestamp and duration of each stream, in seconds."""

    video_pts: list[float]
    frame_duration: float | None
    audio_start: float | None
    audio_duration: float | None

    @property
    def video_duration(self) -> float:
        if not self.video_pts or self.frame_duration is None:
            return 0.0
        return self.video_pts[-1] - self.video_pts[0] + self.frame_duration


def stream_times(path: str | Path) -> StreamTimes:
    with av.open(str(path)) as container:
        pts: list[float] = []
        frame_duration = None
        if container.streams.video:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if packet.pts is not None and packet.time_base is not None:
                    pts.append(float(packet.pts * packet.time_base))
                    if packet.duration:
                        frame_duration = float(packet.duration * packet.time_base)
            pts.sort()
    audio_start, audio_duration = _audio_extent(path)
    return StreamTimes(pts, frame_duration, audio_start, audio_duration)


def _audio_extent(path: str | Path) -> tuple[float | None, float | None]:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None, None
        stream = container.streams.audio[0]
        start = None
        samples = 0
        for frame in container.decode(stream):
            if start is None and frame.pts is not None and frame.time_base is not None:
                start = float(frame.pts * frame.time_base)
            samples += frame.samples
        return start, samples / stream.sample_rate


def flash_times(path: str | Path, *, threshold: int = 128) -> list[float]:
    """Timestamps of frames whose mean luma is above `threshold` (the white flashes)."""
    times = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            plane = frame.planes[0]
            data = bytes(plane)
            width = frame.width
            rows = [data[i * plane.line_size : i * plane.line_size + width] for i in range(frame.height)]
            mean = sum(sum(row) for row in rows) / (width * frame.height)
            if mean > threshold and frame.pts is not None and frame.time_base is not None:
                times.append(float(frame.pts * frame.time_base))
    return times


def beep_onsets(path: str | Path, *, level: float = 0.3, gap: float = 0.1) -> list[float]:
    """Times where the audio rises above `level` (of full scale) after `gap` seconds of quiet."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.sample_rate
        resampler = AudioResampler(format="s16", layout="mono", rate=rate)
        start = None
        pcm = array.array("h")
        for frame in container.decode(stream):
            if start is None and frame.pts is not None and frame.time_base is not None:
                start = float(frame.pts * frame.time_base)
            for out in resampler.resample(frame):
                pcm.frombytes(bytes(out.planes[0])[: out.samples * 2])
    limit = level * 32767
    onsets: list[float] = []
    last_loud = -(10**9)
    for i, sample in enumerate(pcm):
        if abs(sample) > limit:
            if i - last_loud > gap * rate:
                onsets.append((start or 0.0) + i / rate)
            last_loud = i
    return onsets


def top_level_atoms(path: str | Path) -> list[str]:
    """The MP4/MOV top-level box types in file order (moov before mdat = faststart)."""
    atoms = []
    with open(path, "rb") as f:
        while header := f.read(8):
            if len(header) < 8:
                break
            size, kind = struct.unpack(">I4s", header)
            if size == 1:
                size = struct.unpack(">Q", f.read(8))[0]
                f.seek(size - 16, 1)
            elif size == 0:
                atoms.append(kind.decode("latin-1"))
                break
            else:
                f.seek(size - 8, 1)
            atoms.append(kind.decode("latin-1"))
    return atoms


def rotation_of(path: str | Path) -> int:
    """The display-matrix rotation the first decoded frame carries (0 = none)."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            return int(frame.rotation)
    return 0


def max_step(path: str | Path, *, skip: float = 0.1) -> float:
    """The largest jump between consecutive (mono-mixed) samples, as a fraction of full scale,
    ignoring `skip` seconds at each end (AAC priming and the final fade): a click at a join
    shows up as a step far above what the tones themselves produce."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.sample_rate
        resampler = AudioResampler(format="s16", layout="mono", rate=rate)
        pcm = array.array("h")
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                pcm.frombytes(bytes(out.planes[0])[: out.samples * 2])
    window = pcm[int(skip * rate) : len(pcm) - int(skip * rate)]
    return max((abs(b - a) for a, b in zip(window, window[1:], strict=False)), default=0) / 32768
