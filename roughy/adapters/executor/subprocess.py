"""The embedded runtime's executor: each encode a `roughy-encode` subprocess, on a bounded
pool of worker threads.

The encoder prints one JSON object per line (`roughy.encoder.protocol`); progress and the
outcome go to the `ExecutionListener` (the render service). Each encode runs in its own process
group: cancel kills the whole group at once (the encoder and its ffmpeg), which is what keeps
the DELETE-to-gone time well under two seconds. A cancelled or shut-down encode reports nothing:
its render was deleted, or goes back to the queue.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from roughy.core.models import RenderResult
from roughy.core.ports import EncodeJob, ExecutionListener, Outcome, Storage
from roughy.encoder.errors import EncodeFailed, EncoderError, EncodeTimeout
from roughy.encoder.protocol import decode, error_from

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """The encode was stopped: its render was deleted, or this process is stopping."""


class LocalExecutor:
    def __init__(
        self,
        storage: Storage,
        *,
        workers: int = 2,
        ffmpeg: str | None = None,
        timeout_base: float = 120.0,
        timeout_factor: float = 20.0,
        on_idle: Callable[[], None] = lambda: None,
        parallel: int = 1,
    ):
        self.parallel = parallel  # chunks of a chunked render encoded at once
        self.storage = storage
        self.workers = workers
        self.listener: ExecutionListener | None = None
        self.on_idle = on_idle  # a worker is free again: the scheduler may start the next render
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="encode")
        self._jobs: dict[str, Future[None]] = {}
        # The encoder reads its Job contract (plan, source and output URLs, encoder) from these;
        # an embedded render passes everything as arguments and must never inherit them.
        job_env = {
            "ROUGHY_PLAN",
            "ROUGHY_VIDEO_URL",
            "ROUGHY_AUDIO_URL",
            "ROUGHY_OUTPUT_URL",
            "ROUGHY_OUTPUT_CONTENT_TYPE",
            "ROUGHY_ENCODER",
        }
        self._env = {k: v for k, v in os.environ.items() if k not in job_env}
        if ffmpeg:
            self._env["ROUGHY_FFMPEG"] = ffmpeg
        self._timeout = (timeout_base, timeout_factor)
        self._procs: dict[str, subprocess.Popen[str]] = {}
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()

    def bind(self, listener: ExecutionListener) -> None:
        self.listener = listener

    # -- the Executor port -----------------------------------------------------------------

    @property
    def capacity(self) -> int:
        return self.workers

    def start(self, job: EncodeJob) -> None:
        render_id = job.render.id
        with self._lock:
            if render_id in self._jobs:
                return
            self._cancelled.discard(render_id)
            self._jobs[render_id] = self._pool.submit(self._execute, job)

    def executing(self) -> set[str]:
        with self._lock:
            return set(self._jobs)

    def cancel(self, render_id: str) -> None:
        """Kill the render's whole process group and wait (briefly) until it is gone; one still
        queued never starts."""
        with self._lock:
            if render_id not in self._jobs:
                return
            self._cancelled.add(render_id)
            proc = self._procs.get(render_id)
        if proc is not None:
            self._kill(proc)
            deadline = time.monotonic() + 5
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)

    def shutdown(self) -> None:
        for render_id in self.executing():
            self.cancel(render_id)
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:  # encodes still queued were dropped with the pool: none executes here now
            self._jobs.clear()

    # -- one encode --------------------------------------------------------------------------

    def _execute(self, job: EncodeJob) -> None:
        """Run the encode and report its outcome while it still counts as executing here (a
        render missing from `executing()` is taken for lost and put back in the queue)."""
        render_id = job.render.id
        try:
            outcome = self._outcome_of(job)
            if outcome is not None and self.listener is not None:
                self.listener.finished(render_id, outcome)
        except Exception:  # e.g. the database is unreachable: the lost-claim sweep runs it again
            log.exception("render %s: its outcome could not be recorded", render_id)
        finally:
            with self._lock:
                self._jobs.pop(render_id, None)
                self._cancelled.discard(render_id)
            self.on_idle()

    def _outcome_of(self, job: EncodeJob) -> Outcome | None:
        """The encode's outcome; None when it was cancelled."""
        render_id = job.render.id

        def progress(value: float) -> None:
            if self.listener is not None:
                self.listener.progress(render_id, value)

        with self._lock:
            if render_id in self._cancelled:  # cancelled while queued: run and write nothing
                return None
        try:
            return Outcome(result=RenderResult.from_json(self.run(job, progress)))
        except Cancelled:
            return None
        except EncoderError as exc:
            return Outcome.failed(exc.code, exc.message)
        except Exception as exc:  # a bug: fail the render with a request-free message, log it
            log.exception("render %s crashed", render_id)
            return Outcome.failed("internal_error", f"the render failed: {type(exc).__name__}")

    def command(self, job: EncodeJob, plan_path: Path) -> list[str]:
        time_limit = job.plan.time_limit(*self._timeout)
        output = self.storage.output_target(job.output_key)
        argv = [
            sys.executable,
            "-m",
            "roughy.encoder",
            "render",
            "--plan",
            str(plan_path),
            "--output",
            output,
            "--time-limit",
            f"{time_limit:.3f}",
            "--parallel",
            str(self.parallel),
        ]
        if job.video_key:
            argv += ["--video", self.storage.source_url(job.video_key)]
        if job.audio_key:
            argv += ["--audio", self.storage.source_url(job.audio_key)]
        return argv

    def run(self, job: EncodeJob, on_progress: Callable[[float], None]) -> dict[str, Any]:
        """Run one encode to its end: the encoder's result, or raise EncoderError / Cancelled."""
        plan_path = Path(self.storage.output_target(job.output_key)).with_name(".plan.json")
        plan_path.parent.mkdir(parents=True, exist_ok=True)
        plan_path.write_text(json.dumps(job.plan.to_json()))
        try:
            return self._run(job, plan_path, on_progress)
        finally:
            plan_path.unlink(missing_ok=True)

    def _run(self, job: EncodeJob, plan_path: Path, on_progress: Callable[[float], None]) -> dict[str, Any]:
        with self._lock:
            if job.render.id in self._cancelled:
                raise Cancelled(job.render.id)
            proc = subprocess.Popen(
                self.command(job, plan_path),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                env=self._env,
                start_new_session=True,
            )
            self._procs[job.render.id] = proc
        # The encoder enforces the time limit itself; this is the backstop if it hangs.
        watchdog = threading.Timer(job.plan.time_limit(*self._timeout) + 30, self._kill, [proc])
        watchdog.daemon = True
        watchdog.start()
        stderr_tail: deque[str] = deque(maxlen=20)
        drain = threading.Thread(target=lambda: stderr_tail.extend(proc.stderr or []), daemon=True)
        drain.start()
        outcome: dict[str, Any] = {}
        try:
            for line in proc.stdout or []:
                outcome = self._handle_line(line, on_progress) or outcome
            proc.wait()
        finally:
            watchdog.cancel()
            drain.join(timeout=2)
            with self._lock:
                self._procs.pop(job.render.id, None)
                cancelled = job.render.id in self._cancelled
        if cancelled:
            raise Cancelled(job.render.id)
        return self._outcome(proc.returncode, outcome, stderr_tail)

    @staticmethod
    def _handle_line(line: str, on_progress: Callable[[float], None]) -> dict[str, Any] | None:
        msg = decode(line)
        if not msg:
            log.debug("encoder said: %s", line.rstrip())
            return None
        if "progress" in msg:
            on_progress(float(msg["progress"]))
            return None
        return msg

    @staticmethod
    def _outcome(returncode: int, outcome: dict[str, Any], stderr_tail: deque[str]) -> dict[str, Any]:
        if returncode == 0 and "result" in outcome:
            return dict(outcome["result"])
        if isinstance(outcome.get("error"), dict):
            raise error_from(outcome["error"])
        if returncode < 0 or returncode == 137:
            raise EncodeTimeout("the encode was killed after its time limit")
        tail = "".join(stderr_tail).strip()[-500:]
        raise EncodeFailed(f"the encoder exited with status {returncode}: {tail}")

    @staticmethod
    def _kill(proc: subprocess.Popen[str]) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
