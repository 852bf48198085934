"""Run each encode as a `roughy-encode` subprocess in its own process group.

The encoder prints one JSON object per line (`{"encoder": name}`, `{"progress": x}`, then
`{"result": {...}}` or `{"error": {...}}`). Cancel kills the whole group at once (the encoder and its ffmpeg), which
is what keeps the DELETE-to-gone time well under two seconds.
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
from pathlib import Path
from typing import Any

from roughy.core.ports import Cancelled, EncodeJob
from roughy.encoder.errors import EncodeFailed, EncoderError, EncodeTimeout, InvalidMedia

log = logging.getLogger(__name__)

ERRORS_BY_CODE: dict[str, type[EncoderError]] = {
    "invalid_media": InvalidMedia,
    "encode_timeout": EncodeTimeout,
}


class SubprocessExecutor:
    def __init__(self, *, ffmpeg: str | None = None, timeout_base: float = 120.0, timeout_factor: float = 20.0):
        # The encoder reads its Job contract (plan, source and output URLs, encoder) from these;
        # an embedded render passes everything as arguments and must never inherit them.
        job_env = {"ROUGHY_PLAN", "ROUGHY_VIDEO_URL", "ROUGHY_AUDIO_URL", "ROUGHY_OUTPUT_URL",
                   "ROUGHY_OUTPUT_CONTENT_TYPE", "ROUGHY_ENCODER"}
        self._env = {k: v for k, v in os.environ.items() if k not in job_env}
        if ffmpeg:
            self._env["ROUGHY_FFMPEG"] = ffmpeg
        self._timeout = (timeout_base, timeout_factor)
        self._procs: dict[str, subprocess.Popen[str]] = {}
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()

    def command(self, job: EncodeJob, plan_path: Path) -> list[str]:
        time_limit = job.plan.time_limit(*self._timeout)
        argv = [sys.executable, "-m", "roughy.encoder", "render", "--plan", str(plan_path), "--output", job.output,
                "--time-limit", f"{time_limit:.3f}"]
        if job.video_src:
            argv += ["--video", job.video_src]
        if job.audio_src:
            argv += ["--audio", job.audio_src]
        return argv

    def run(self, job: EncodeJob, on_progress: Callable[[float], None]) -> dict[str, Any]:
        plan_path = Path(job.output).with_name(".plan.json")
        plan_path.parent.mkdir(parents=True, exist_ok=True)
        plan_path.write_text(json.dumps(job.plan.to_json()))
        try:
            return self._run(job, plan_path, on_progress)
        finally:
            plan_path.unlink(missing_ok=True)

    def _run(self, job: EncodeJob, plan_path: Path, on_progress: Callable[[float], None]) -> dict[str, Any]:
        with self._lock:
            if job.render_id in self._cancelled:
                self._cancelled.discard(job.render_id)
                raise Cancelled(job.render_id)
            proc = subprocess.Popen(
                self.command(job, plan_path),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                env=self._env,
                start_new_session=True,
            )
            self._procs[job.render_id] = proc
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
                self._procs.pop(job.render_id, None)
                cancelled = job.render_id in self._cancelled
                self._cancelled.discard(job.render_id)
        if cancelled:
            raise Cancelled(job.render_id)
        return self._outcome(proc.returncode, outcome, stderr_tail)

    @staticmethod
    def _handle_line(line: str, on_progress: Callable[[float], None]) -> dict[str, Any] | None:
        try:
            msg = json.loads(line)
        except ValueError:
            log.debug("encoder said: %s", line.rstrip())
            return None
        if "progress" in msg:
            on_progress(float(msg["progress"]))
            return None
        return msg if isinstance(msg, dict) else None

    @staticmethod
    def _outcome(returncode: int, outcome: dict[str, Any], stderr_tail: deque[str]) -> dict[str, Any]:
        if returncode == 0 and "result" in outcome:
            return dict(outcome["result"])
        if "error" in outcome:
            err = outcome["error"]
            raise ERRORS_BY_CODE.get(err.get("code"), EncodeFailed)(err.get("message", "encode failed"))
        if returncode < 0 or returncode == 137:
            raise EncodeTimeout("the encode was killed after its time limit")
        tail = "".join(stderr_tail).strip()[-500:]
        raise EncodeFailed(f"the encoder exited with status {returncode}: {tail}")

    def stop(self, render_id: str) -> bool:
        """Kill the render's whole process group; wait (briefly) until it is gone."""
        with self._lock:
            self._cancelled.add(render_id)
            proc = self._procs.get(render_id)
        if proc is None:
            return False
        self._kill(proc)
        deadline = time.monotonic() + 5
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return True

    def forget(self, render_id: str) -> None:
        """Drop a cancel mark for a render that never started here."""
        with self._lock:
            self._cancelled.discard(render_id)

    @staticmethod
    def _kill(proc: subprocess.Popen[str]) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
