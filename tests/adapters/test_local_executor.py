"""The embedded executor's bookkeeping (LocalExecutor), with its encode replaced by a stand-in
that waits to be told how it ends: no ffmpeg, so the races are driven exactly. Real encodes
through the same executor run in tests/api and tests/test_recovery.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from roughy.adapters.executor.subprocess import Cancelled, LocalExecutor
from roughy.core.ids import new_id, now
from roughy.core.models import Format, OutputSpec, Render, RenderState
from roughy.core.plan import EncodePlan
from roughy.core.ports import EncodeJob, Outcome
from roughy.testing import MemoryStorage


class HeldExecutor(LocalExecutor):
    """Each encode blocks until released; a cancel releases it as cancelled."""

    def __init__(self, workers: int = 1) -> None:
        super().__init__(MemoryStorage(), workers=workers)  # type: ignore[arg-type]
        self.release: dict[str, threading.Event] = {}
        self.ran: list[str] = []

    def run(self, job: EncodeJob, on_progress: Callable[[float], None]) -> dict[str, Any]:
        gate = self.release.setdefault(job.render.id, threading.Event())
        self.ran.append(job.render.id)
        gate.wait(10)
        with self._lock:
            if job.render.id in self._cancelled:
                raise Cancelled(job.render.id)
        return {"format": "mp3", "duration": 1.0, "size_bytes": 10, "audio_bitrate_kbps": 128}

    def cancel(self, render_id: str) -> None:
        super().cancel(render_id)
        self.release.setdefault(render_id, threading.Event()).set()


class Recorder:
    def __init__(self) -> None:
        self.outcomes: dict[str, Outcome] = {}

    def progress(self, render_id: str, progress: float) -> None: ...

    def finished(self, render_id: str, outcome: Outcome) -> None:
        self.outcomes[render_id] = outcome


def job() -> EncodeJob:
    spec = OutputSpec(Format.MP3)
    render_id = new_id("rnd")
    render = Render(render_id, "acct", "ast", None, spec, f"sig-{render_id}", RenderState.RUNNING, now())
    plan = EncodePlan.from_json({"format": "mp3", "duration": 1.0, "segments": None, "video": None,
                                 "audio": {"bitrate_kbps": 128, "channels": 2, "sample_rate": 44100}})  # fmt: skip
    return EncodeJob(render, plan, None, "assets/a/audio", f"renders/{render.id}/output.mp3")


def wait(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_an_outcome_is_reported_while_the_encode_still_counts_as_executing() -> None:
    executor, seen = HeldExecutor(), []
    recorder = Recorder()

    class Watching(Recorder):
        def finished(self, render_id: str, outcome: Outcome) -> None:
            seen.append(render_id in executor.executing())
            recorder.finished(render_id, outcome)

    executor.bind(Watching())
    one = job()
    executor.start(one)
    wait(lambda: one.render.id in executor.ran)
    executor.release[one.render.id].set()
    wait(lambda: one.render.id not in executor.executing())
    assert seen == [True], "a sweep in between would take a finishing encode for lost"
    assert recorder.outcomes[one.render.id].result is not None
    executor.shutdown()


def test_a_cancelled_encode_reports_nothing_and_a_queued_one_never_runs() -> None:
    executor, recorder = HeldExecutor(workers=1), Recorder()
    executor.bind(recorder)
    running, queued = job(), job()
    executor.start(running)
    executor.start(queued)
    wait(lambda: running.render.id in executor.ran)
    executor.cancel(queued.render.id)
    executor.cancel(running.render.id)
    wait(lambda: not executor.executing())
    assert executor.ran == [running.render.id] and recorder.outcomes == {}
    executor.shutdown()


def test_shutdown_leaves_nothing_counted_as_executing() -> None:
    """Encodes still queued when the pool shuts down must not look executing: the stop's sweep
    puts every render it does not see executing back in the queue."""
    executor, recorder = HeldExecutor(workers=1), Recorder()
    executor.bind(recorder)
    first, second = job(), job()
    executor.start(first)
    executor.start(second)
    wait(lambda: first.render.id in executor.ran)
    executor.shutdown()
    assert executor.executing() == set() and recorder.outcomes == {}
