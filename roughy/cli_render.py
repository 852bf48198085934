"""`roughy render FILE`: check, upload (or reuse), cut, render and download, with progress bars.

Everything that can be known from the file is checked here first, by probing it locally (PyAV),
so that a mistake costs neither an upload nor a credit: the format against the file's tracks,
options that apply to video formats only, a tier above the source, a video bitrate above the
source's, a cut that is malformed or runs past the end. Each is a `UsageProblem`: a sentence that
names the option, exit status 2.

Reuse: the file's SHA-256 (streamed) is remembered with the asset it became, per API URL and key
(`AssetCache`, a JSON file in the user's cache directory). A second render of the same file
asks the service for that asset; while it exists (ready, or still processing) it is used again
instead of being uploaded and paid for again. `--no-reuse` uploads anyway.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TaskProgressColumn, TextColumn

from roughy.core.errors import ValidationFailed
from roughy.core.formats import Format
from roughy.core.models import Resolution
from roughy.core.models import Segment as CoreSegment
from roughy.core.segments import SegmentsOutOfRange, check_structure, finalize
from roughy.encoder.errors import EncoderError
from roughy.encoder.probe import MediaInfo, probe
from roughy.encoder.sources import SourceLimits
from roughy.sdk import Asset, Client, NotFound, Render, Segment, parse_cut

HASH_CHUNK = 1 << 20


class UsageProblem(Exception):
    """A mistake in the command line or the file, found before anything is sent: exit 2."""


class Failed(Exception):
    """The service did its part and the outcome is a failure (asset, cut or render failed): exit 1."""


@dataclass(frozen=True)
class RenderRequest:
    file: Path
    format: Format
    resolution: Resolution | None = None
    video_bitrate: int | None = None
    audio_bitrate: int | None = None
    cut: str | None = None
    output: Path | None = None
    reuse: bool = True


#: The local probe reads what the file is; whether the service takes a source that long, that
#: large or with that many channels is its own configured rule (ROUGHY_MAX_SOURCE_*).
NO_LIMITS = SourceLimits(max_pixels=2**62, max_seconds=float("inf"), max_channels=2**31)


# -- checks before anything is sent --------------------------------------------------------------


def precheck(request: RenderRequest) -> tuple[MediaInfo, list[Segment] | None]:
    """The local probe of the file and the parsed cut, or the first problem found."""
    path = request.file
    if not path.is_file():
        raise UsageProblem(f"no such file: {path}")
    if request.output is not None and not request.output.is_dir():
        folder = request.output.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise UsageProblem(f"-o {request.output}: {folder} is not a folder this user can write to")
    try:
        info = probe(str(path), NO_LIMITS)  # the service's own limits are its to apply
    except EncoderError as exc:
        raise UsageProblem(f"{path.name} is not a video or audio file roughy can read ({exc})") from None
    check_output(request, info)
    fps = info.video.fps if info.video is not None else None
    segments = check_cut(request.cut, info.duration, fps) if request.cut is not None else None
    return info, segments


def check_output(request: RenderRequest, info: MediaInfo) -> None:
    fmt, name = request.format, request.file.name
    if fmt.is_video:
        if info.video is None:
            raise UsageProblem(
                f"--format {fmt.value} is a video format, but {name} has no video track: use --format m4a or mp3"
            )
    else:
        for option, value in (("--resolution", request.resolution), ("--video-bitrate", request.video_bitrate)):
            if value is not None:
                raise UsageProblem(f"{option} applies to video formats (mp4, mov), not to --format {fmt.value}")
        if info.audio is None:
            raise UsageProblem(f"--format {fmt.value} is an audio format, but {name} has no audio track")
    video = info.video
    if not fmt.is_video or video is None:
        return
    short = min(video.width, video.height)
    if request.resolution is not None and request.resolution.short_edge > short:
        fits = [r.value for r in Resolution if r.short_edge <= short]
        hint = f"choose {' or '.join(fits)}, or" if fits else "leave"
        raise UsageProblem(
            f"--resolution {request.resolution.value} is above the source: {name} is {video.width}x{video.height} "
            f"({short}p) and renders never upscale; {hint} leave --resolution out to keep its size"
        )
    if request.video_bitrate is not None and video.bitrate_kbps and request.video_bitrate * 1000 > video.bitrate_kbps:
        raise UsageProblem(
            f"--video-bitrate {request.video_bitrate} (Mbps) is above the source's video bitrate "
            f"({video.bitrate_kbps / 1000:.1f} Mbps); leave --video-bitrate out for Auto"
        )


def check_cut(text: str, duration: float, fps: float | None) -> list[Segment]:
    """The cut parsed and checked by the service's own rules (`roughy.core.segments`): its
    structure, then against the file's duration and frame grid, as the cut would be checked
    once the upload is processed."""
    try:
        segments = parse_cut(text)
    except ValueError as exc:
        raise UsageProblem(f"--cut {text!r}: {exc}") from None
    plan = [CoreSegment(s.start, s.end) for s in segments]
    try:
        finalize(check_structure(plan), duration=duration, fps=fps)
    except ValidationFailed as exc:
        raise UsageProblem(f"--cut {text!r}: {exc.message}") from None
    except SegmentsOutOfRange as exc:
        raise UsageProblem(f"--cut: {exc} (the file is {duration:.2f} s long)") from None
    return segments


# -- reuse of uploaded assets --------------------------------------------------------------------


def file_sha256(path: Path, progress: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
            if progress is not None:
                progress(len(chunk))
    return digest.hexdigest()


def cache_dir() -> Path:
    if explicit := os.environ.get("ROUGHY_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "roughy"


class AssetCache:
    """sha256 of a file -> the asset it was uploaded as, per service and key (`uploads.json`).

    Only a fingerprint of the key is stored (the first 16 hex digits of its SHA-256), never the key.
    """

    def __init__(self, api_url: str, api_key: str, directory: Path | None = None):
        self.path = (directory or cache_dir()) / "uploads.json"
        fingerprint = hashlib.sha256(api_key.encode()).hexdigest()[:16]
        self.scope = f"{api_url.rstrip('/')}|{fingerprint}"

    def get(self, sha256: str) -> str | None:
        entry = self._load().get(f"{self.scope}|{sha256}")
        return str(entry["asset_id"]) if isinstance(entry, dict) and "asset_id" in entry else None

    def put(self, sha256: str, asset_id: str, filename: str) -> None:
        entries = self._load()
        entries[f"{self.scope}|{sha256}"] = {"asset_id": asset_id, "filename": filename, "saved_at": int(time.time())}
        self._save(entries)

    def forget(self, sha256: str) -> None:
        entries = self._load()
        if entries.pop(f"{self.scope}|{sha256}", None) is not None:
            self._save(entries)

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # none yet, or unreadable: reuse is an optimisation, never a failure
        return data if isinstance(data, dict) else {}

    def _save(self, entries: dict[str, Any]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=".uploads.", suffix=".json")
            with os.fdopen(fd, "w") as fh:
                json.dump(entries, fh, indent=1, sort_keys=True)
            os.replace(temp, self.path)
        except OSError:
            pass


# -- the run -------------------------------------------------------------------------------------


class Bars:
    """One rich progress display on stderr, a line per phase."""

    def __init__(self, console: Console):
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<10}", markup=False),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[detail]}", markup=False),
            console=console,
        )

    @contextmanager
    def shown(self) -> Iterator[Bars]:
        with self.progress:
            yield self

    def add(self, name: str, total: float | None = None) -> TaskID:
        return self.progress.add_task(name, total=total, detail="")

    def bytes(self, task: TaskID) -> Callable[[int, int | None], None]:
        def update(done: int, total: int | None) -> None:
            detail = _size(done) + (f" / {_size(total)}" if total else "")
            self.progress.update(task, completed=done, total=total, detail=detail)

        return update

    def done(self, task: TaskID, detail: str = "") -> None:
        total = self.progress.tasks[task].total or 1
        self.progress.update(task, total=total, completed=total, detail=detail)


class RenderRun:
    """One `roughy render`: what it has made so far is kept for the Ctrl-C message."""

    def __init__(self, client: Client, request: RenderRequest, cache: AssetCache, console: Console):
        self.client = client
        self.request = request
        self.cache = cache
        self.console = console
        self.asset_id: str | None = None
        self.render_id: str | None = None

    def run(self) -> Path:
        info, segments = precheck(self.request)
        with Bars(self.console).shown() as bars:
            asset = self._asset(bars, "video" if info.video is not None else "audio")
            cut_id = self._cut(bars, asset, segments) if segments else None
            render = self._render(bars, asset, cut_id)
            task = bars.add("download")
            return self.client.renders.download(render, self.request.output, progress=bars.bytes(task))

    def _asset(self, bars: Bars, kind: str) -> Asset:
        path = self.request.file
        task = bars.add("checking", path.stat().st_size)
        sha = file_sha256(path, lambda n: bars.progress.advance(task, n))
        bars.done(task, "sha256 " + sha[:12])
        asset = self._reusable(sha) if self.request.reuse else None
        if asset is None:
            upload = bars.add("upload")
            asset = self.client.assets.upload(path, kind=kind, progress=bars.bytes(upload))
            self.cache.put(sha, asset.id, path.name)
        else:
            self.console.print(
                f"reusing asset {asset.id} (the same file was uploaded before; --no-reuse uploads it again)"
            )
        self.asset_id = asset.id
        task = bars.add("processing")
        asset = self.client.assets.wait(asset.id, progress=lambda a: bars.progress.update(task, detail=a.state))
        if asset.state != "ready":
            reason = asset.error.message if asset.error else "it waits for credit (ask the operator for a grant)"
            raise Failed(f"asset {asset.id} is {asset.state}: {reason}")
        bars.done(task, asset.id)
        return asset

    def _reusable(self, sha: str) -> Asset | None:
        asset_id = self.cache.get(sha)
        if asset_id is None:
            return None
        try:
            asset = self.client.assets.get(asset_id)
        except NotFound:
            self.cache.forget(sha)
            return None
        return asset if asset.state in ("ready", "processing", "payment_required") else None

    def _cut(self, bars: Bars, asset: Asset, segments: list[Segment]) -> str:
        task = bars.add("cut")
        cut = self.client.cuts.create(asset.id, segments=segments)
        cut = self.client.cuts.wait(cut.id, progress=lambda c: bars.progress.update(task, detail=c.state))
        if cut.state != "completed":
            raise Failed(f"cut {cut.id} failed: {cut.error.message if cut.error else 'no reason given'}")
        bars.done(task, cut.id)
        return cut.id

    def _render(self, bars: Bars, asset: Asset, cut_id: str | None) -> Render:
        request = self.request
        render = self.client.renders.create(
            asset.id,
            request.format.value,
            cut_id=cut_id,
            resolution=request.resolution.value if request.resolution else None,
            video_bitrate=request.video_bitrate,
            audio_bitrate=request.audio_bitrate,
        )
        self.render_id = render.id
        task = bars.add("render", 1.0)

        def show(r: Render) -> None:
            bars.progress.update(task, completed=r.progress, detail=f"{r.id} {r.state}")

        render = self.client.renders.wait(render.id, progress=show)
        if render.state != "completed":
            reason = f"{render.error.message} ({render.error.code})" if render.error else "no reason given"
            raise Failed(f"render {render.id} failed: {reason}")
        return render


def interrupted(client: Client, render_id: str | None, console: Console, asset_id: str | None = None) -> None:
    """After Ctrl-C: say what is left on the server, and offer to cancel a render (on a TTY)."""
    if render_id is None:
        kept = f"; asset {asset_id} is uploaded (the next `roughy render` of this file reuses it)" if asset_id else ""
        console.print(f"interrupted: no render was started{kept}")
        return
    console.print(f"interrupted: render {render_id} continues on the server")
    if sys.stdin.isatty():
        # The question goes to stderr with the rest of the talk: stdout may be a file (`> out.txt`).
        sys.stderr.write(f"cancel render {render_id}? [y/N] ")
        sys.stderr.flush()
        try:
            answer = sys.stdin.readline().strip().lower()
        except KeyboardInterrupt:
            answer = ""
        if answer in ("y", "yes"):
            client.renders.cancel(render_id)
            console.print(f"cancelled render {render_id}")
            return
    console.print(f"cancel it with: roughy renders cancel {render_id}")
    console.print(f"or fetch it later with: roughy renders download {render_id}")


def _size(n: int | None) -> str:
    value = float(n or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
