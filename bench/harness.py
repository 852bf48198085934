"""Driving the real service over HTTP, and the bare-ffmpeg side of the comparisons.

The service is started in-process with `tests.conftest.start_service` (uvicorn on a loopback
port, SQLite file, local disk, the subprocess encoder: what `roughy serve` wires). Everything
the benchmark measures on the service side goes through HTTP; the service object is only read
for what HTTP does not expose (an asset's probe and the encoder's pids).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from roughy.core.keys import audio_key, part_key
from roughy.core.models import AssetKind, Format, OutputSpec, PartName, Resolution, Segment
from roughy.core.plan import EncodePlan
from roughy.core.planning import plan_render
from roughy.encoder.ffmpeg_args import build_ffmpeg_args
from roughy.encoder.tools import ffmpeg_path
from tests.conftest import Service

POLL = 0.05  # seconds between GETs while waiting for a render (20/s: under the 50/s rate limit)


class BenchError(RuntimeError):
    """The service did something the benchmark cannot measure around (a failed render...)."""


@dataclass
class Timed:
    """One render, POST -> `completed` as seen over HTTP."""

    wall: float  # seconds, client side
    render: dict[str, Any]
    queued: float | None = None  # server: created_at -> started_at
    encoding: float | None = None  # server: started_at -> completed_at
    extra: dict[str, Any] = field(default_factory=dict)


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


class Driver:
    def __init__(self, service: Service, log=print):  # type: ignore[no-untyped-def]
        self.service = service
        self.client = service.client()
        self.client.timeout = httpx.Timeout(120)
        self.log = log

    def close(self) -> None:
        self.client.close()

    # -- assets and cuts ------------------------------------------------------------------------

    def ready_asset(self, path: Path, timeout: float = 1800) -> dict[str, Any]:
        """Create a video asset, stream the file to its signed upload URL, wait until ready."""
        resp = self.client.post("/v1/assets", json={"kind": "video", "filename": path.name})
        _expect(resp, 201)
        asset = resp.json()
        target = asset["upload"]["video"]
        started = time.perf_counter()
        with path.open("rb") as f:  # streamed: the 10-minute source is over a gigabyte
            headers = {**target["headers"], "Content-Length": str(path.stat().st_size)}
            up = httpx.put(target["url"], content=f, headers=headers, timeout=600)
        _expect(up, 200)
        _expect(self.client.post(f"/v1/assets/{asset['id']}/parts/video/complete"), 200)
        done = self._wait(
            f"/v1/assets/{asset['id']}",
            lambda a: a["state"] in ("ready", "failed", "payment_required"),
            timeout,
            poll=0.2,
        )
        if done["state"] != "ready":
            raise BenchError(f"asset {path.name} ended {done['state']}: {done.get('error')}")
        self.log(f"  asset {path.name}: uploaded and processed in {time.perf_counter() - started:.1f} s")
        return done

    def completed_cut(self, asset_id: str, segments: list[tuple[float, float]], timeout: float = 300) -> dict[str, Any]:
        body = {"segments": [{"start": s, "end": e} for s, e in segments]}
        resp = self.client.post(f"/v1/assets/{asset_id}/cuts", json=body)
        _expect(resp, 201)
        cut = self._wait(f"/v1/cuts/{resp.json()['id']}", lambda c: c["state"] in ("completed", "failed"), timeout)
        if cut["state"] != "completed":
            raise BenchError(f"cut ended {cut['state']}: {cut.get('error')}")
        return cut

    # -- renders --------------------------------------------------------------------------------

    def timed_render(self, body: dict[str, Any], timeout: float = 1800) -> Timed:
        """POST a render (must be a new one: 201) and wait until it completes."""
        t0 = time.perf_counter()
        resp = self.client.post("/v1/renders", json=body)
        _expect(resp, 201)
        rid = resp.json()["id"]
        render = self._wait(f"/v1/renders/{rid}", lambda r: r["state"] in ("completed", "failed"), timeout)
        wall = time.perf_counter() - t0
        if render["state"] != "completed":
            raise BenchError(f"render {rid} failed: {render.get('error')}")
        created, started, completed = (_ts(render.get(k)) for k in ("created_at", "started_at", "completed_at"))
        queued = (started - created).total_seconds() if created and started else None
        encoding = (completed - started).total_seconds() if started and completed else None
        return Timed(wall, render, queued, encoding)

    def delete_render(self, render_id: str) -> None:
        resp = self.client.delete(f"/v1/renders/{render_id}")
        if resp.status_code not in (204, 404):
            raise BenchError(f"DELETE {render_id}: {resp.status_code} {resp.text}")

    def _wait(self, path: str, done, timeout: float, poll: float = POLL) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while True:
            resp = self.client.get(path)
            if resp.status_code == 429:
                time.sleep(float(resp.headers.get("Retry-After", "1")))
                continue
            _expect(resp, 200)
            obj = resp.json()
            if done(obj):
                return obj
            if time.monotonic() > deadline:
                raise BenchError(f"timed out waiting on {path}; last seen: {obj}")
            time.sleep(poll)

    # -- the bare side --------------------------------------------------------------------------

    def plan_for(
        self, asset_id: str, spec: OutputSpec, cut_id: str | None = None
    ) -> tuple[EncodePlan, str, str | None]:
        """The plan and sources the service uses for this render, built the way the runtime does
        (`RenderService.job`): `plan_render` on the asset's stored probe and the cut's segments."""
        store, storage = self.service.embedded.store, self.service.embedded.storage
        asset = store.get_asset(asset_id)
        segments: list[Segment] | None = None
        if cut_id is not None:
            cut = store.get_cut(cut_id)
            segments = cut.segments
        separate = asset.kind is AssetKind.VIDEO and asset.client_audio and asset.audio is not None
        plan = plan_render(
            spec,
            duration=asset.duration or 0.0,
            video=asset.video,
            audio=asset.audio,
            segments=segments,
            separate_audio=separate,
        )
        video_src = storage.source_url(part_key(asset.id, PartName.VIDEO))
        audio_src = storage.source_url(audio_key(asset)) if separate else None
        return plan, video_src, audio_src

    def same_plan_as_service(self, render_id: str, plan: EncodePlan) -> bool | None:
        """Cross-check: the plan the runtime itself would build for this render (None: cannot tell)."""
        try:
            render = self.service.embedded.store.get_render(render_id)
            job = self.service.embedded.application.renders.job(render)
            return bool(job is not None and job.plan == plan)
        except Exception:  # a private API: the check is a courtesy, not part of the measurement
            return None


def spec_of(body: dict[str, Any]) -> OutputSpec:
    out = body["output"]
    return OutputSpec(
        format=Format(out["format"]),
        resolution=Resolution(out["resolution"]) if out.get("resolution") else None,
        video_bitrate=out.get("video_bitrate"),
        audio_bitrate=out.get("audio_bitrate"),
    )


def bare_argv(plan: EncodePlan, video_src: str, audio_src: str | None, output: Path) -> list[str]:
    return build_ffmpeg_args(plan, video_src=video_src, audio_src=audio_src, output=str(output), ffmpeg=ffmpeg_path())


def run_bare(argv: list[str], output: Path) -> float:
    """Wall time of the ffmpeg command, run directly (no encoder process, no service)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise BenchError(f"bare ffmpeg failed ({proc.returncode}): {proc.stderr[-1500:]}")
    output.unlink(missing_ok=True)
    return wall


def _expect(resp: httpx.Response, status: int) -> None:
    if resp.status_code != status:
        raise BenchError(
            f"{resp.request.method} {resp.request.url.path}: expected {status}, "
            f"got {resp.status_code}: {resp.text[:500]}"
        )


# -- processes ------------------------------------------------------------------------------------


def proc_state(pid: int) -> str | None:
    """The /proc state letter (R, S, D, Z...), or None when the pid does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def alive(pid: int) -> bool:
    """A zombie (Z) or dead (X) process runs no more code: it counts as gone."""
    return proc_state(pid) not in (None, "Z", "X")


def children(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.update(int(x) for x in f.read().split())
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def pids_mentioning(text: str) -> set[int]:
    """Processes whose command line contains `text` (the render's output directory)."""
    found: set[int] = set()
    needle = text.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if needle in f.read():
                    found.add(int(entry))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def encoder_pids(service: Service, render_id: str) -> dict[int, str]:
    """The render's encoder process and its ffmpeg: {pid: role}."""
    pids: dict[int, str] = {}
    proc = service.embedded.runtime.executor._procs.get(render_id)
    if proc is not None:
        pids[proc.pid] = "encoder"
        for child in children(proc.pid):
            pids[child] = "ffmpeg" if b"ffmpeg" in _cmdline(child) else "child"
    for pid in pids_mentioning(f"renders/{render_id}/"):
        if pid != os.getpid() and pid not in pids:
            pids[pid] = "ffmpeg" if b"ffmpeg" in _cmdline(pid) else "encoder"
    return pids


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError):
        return b""
