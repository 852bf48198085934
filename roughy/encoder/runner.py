"""The one way the encoder runs ffmpeg: argv list, progress, bounded stderr, time limit.

- Argument lists only (no shell); the command is logged with `shlex.join` so it can be pasted,
  with the query strings of URLs (presigned signatures: credentials) cut out.
- stdout carries `-progress` blocks and is read in the foreground; stderr is drained by a
  thread into a bounded deque (a chatty ffmpeg cannot fill the pipe and stall, nor memory).
- A timer kills ffmpeg at the time limit: that also unblocks the foreground read, whatever
  ffmpeg was stuck on (a stalled network read included).
- Network sources: when an input is an http(s) URL, a connection problem (refused, reset, an
  HTTP error on reconnect, a body cut short) is `EncodeFailed` (retried), never `InvalidMedia`,
  even though the demuxer then usually says "moov atom not found" or "Invalid data found" about
  the bytes it did not get. ffmpeg can also exit 0 after such a failure with a truncated output:
  that is `EncodeFailed` too, not a short render.
- The ffmpeg processes of one chunked render, which run on threads, share a `Scope`: its
  `stop()` kills the ones running and refuses the ones about to start (a failed chunk, or
  SIGTERM in the main thread, must not leave another chunk encoding, not even one whose thread
  was between its start and its ffmpeg's).
- No `start_new_session`: the embedded runtime starts `roughy-encode` in its own process group
  and kills the whole group on cancel, so ffmpeg must stay in ours. Whatever unwinds this
  function (an error, a callback raising, the CLI's SIGTERM handler) kills ffmpeg first.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterable

from roughy.encoder.errors import EncodeFailed, EncodeTimeout, InvalidMedia, redact, with_tail
from roughy.encoder.progress import ProgressParser
from roughy.encoder.sources import is_remote

log = logging.getLogger(__name__)

STDERR_LINES = 200

#: stderr phrases meaning the *input* cannot be decoded: a permanent failure (exit code 3).
INVALID_INPUT_MARKERS = (
    "invalid data found when processing input",
    "moov atom not found",
    "could not find codec parameters",
    "does not contain any stream",
    "matches no streams",
    "no decoder for stream",
    "decoding requested, but no decoder found",
)

#: stderr phrases of a failed network read (ffmpeg's http/tcp/tls protocols): with an http(s)
#: input these win over the markers above, which are then about bytes that never arrived.
NETWORK_FAILURE_MARKERS = (
    "http error",  # the http protocol's "HTTP error 503 Service Unavailable"
    "server returned",  # "Server returned 403 Forbidden (access denied)", "... 5XX Server Error reply"
    "connection refused",
    "connection reset",
    "timed out",
    "broken pipe",
    "network is unreachable",
    "no route to host",
    "stream ends prematurely",
    "failed to resolve hostname",
    "name or service not known",
    "temporary failure in name resolution",
    "input/output error",
    "i/o error",
    "error in the pull function",  # tls
    "unable to read from socket",
)
#: ffmpeg's http protocol announcing a reconnect ("Will reconnect at 81920 in 0 second(s),
#: error=Connection reset by peer."): the failures logged before it are being retried.
RECONNECT_NOTICE = "will reconnect at"


class Scope:
    """ffmpeg processes that stop together: `stop()` kills those running in it (from any
    thread; each `run` then raises in its own) and makes every later `run` in it fail at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[subprocess.Popen[str]] = set()
        self._stopped = False

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            procs = list(self._live)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()

    def _admit(self, proc: subprocess.Popen[str]) -> bool:
        with self._lock:
            if self._stopped:
                return False
            self._live.add(proc)
            return True

    def _leave(self, proc: subprocess.Popen[str]) -> None:
        with self._lock:
            self._live.discard(proc)


def run(
    argv: list[str],
    *,
    duration: float,
    time_limit: float,
    on_progress: Callable[[float], None] | None = None,
    on_stderr: Callable[[str], None] | None = None,
    scope: Scope | None = None,
) -> None:
    """Run ffmpeg to completion, reporting progress; raise an `EncoderError` on failure.

    `duration` is the expected output length (for progress); `time_limit` is in seconds.
    `on_stderr`, if given, sees every stderr line (from the reader thread): silencedetect
    reports there.
    """
    log.info("running %s", redact(shlex.join(argv)))  # a presigned URL's query is a credential
    tail: deque[str] = deque(maxlen=STDERR_LINES)
    proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
    )
    if scope is not None and not scope._admit(proc):
        _kill(proc)
        raise EncodeFailed("stopped: another part of the render failed or was cancelled")
    timed_out = threading.Event()
    timer = threading.Timer(time_limit, _expire, args=(proc, timed_out))
    timer.daemon = True
    reader = threading.Thread(target=_drain, args=(proc, tail, on_stderr), daemon=True)
    try:
        timer.start()
        reader.start()
        _follow_progress(proc, duration, on_progress)
        code = proc.wait()
    finally:
        timer.cancel()
        _kill(proc)
        if scope is not None:
            scope._leave(proc)
        reader.join(timeout=5)
    if timed_out.is_set():
        raise EncodeTimeout(with_tail(f"ffmpeg did not finish within {time_limit:g} s", tail))
    remote = has_remote_input(argv)
    if code != 0:
        raise classify_failure(code, list(tail), remote=remote)
    if remote and network_failures(tail):
        # ffmpeg finished, but an input stopped early: the output is missing its end.
        raise EncodeFailed(with_tail("reading a source over the network failed", network_failures(tail)))


def classify_failure(code: int, stderr_lines: list[str], *, remote: bool = False) -> InvalidMedia | EncodeFailed:
    """A non-zero exit: bad input (permanent) or a failure worth retrying.

    `remote`: an input was an http(s) URL; a network failure in stderr then makes it
    `EncodeFailed` whatever the demuxer said about the data it did not receive.
    """
    if remote and network_failures(stderr_lines):
        return EncodeFailed(with_tail("reading a source over the network failed", stderr_lines))
    text = "\n".join(stderr_lines).lower()
    if any(marker in text for marker in INVALID_INPUT_MARKERS):
        return InvalidMedia(with_tail("the source could not be decoded", stderr_lines))
    return EncodeFailed(with_tail(f"ffmpeg exited with code {code}", stderr_lines))


def network_failures(stderr_lines: Iterable[str]) -> list[str]:
    """The stderr lines reporting a network failure that no reconnect followed: the failures
    ffmpeg gave up on. (A failure followed by "Will reconnect at ..." was retried; if the retry
    failed too, that failure is logged after the notice.)"""
    pending: list[str] = []
    for line in stderr_lines:
        lowered = line.lower()
        if RECONNECT_NOTICE in lowered:
            pending.clear()
        elif any(marker in lowered for marker in NETWORK_FAILURE_MARKERS):
            pending.append(line)
    return pending


def has_remote_input(argv: list[str]) -> bool:
    """Whether any `-i` of `argv` is an http(s) URL."""
    return any(flag == "-i" and is_remote(src) for flag, src in zip(argv, argv[1:], strict=False))


def _follow_progress(proc: subprocess.Popen[str], duration: float, on_progress: Callable[[float], None] | None) -> None:
    assert proc.stdout is not None
    parser = ProgressParser(duration)
    for line in proc.stdout:
        fraction = parser.feed(line)
        if fraction is not None and on_progress is not None:
            on_progress(fraction)


def _drain(proc: subprocess.Popen[str], tail: deque[str], on_stderr: Callable[[str], None] | None) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        tail.append(line.rstrip("\n"))
        if on_stderr is not None:
            on_stderr(line)


def _expire(proc: subprocess.Popen[str], timed_out: threading.Event) -> None:
    if proc.poll() is None:
        timed_out.set()
        log.warning("ffmpeg pid %s hit its time limit; killing it", proc.pid)
        proc.kill()


def _kill(proc: subprocess.Popen[str]) -> None:
    """Make sure ffmpeg is gone (SIGKILL: it must not finalise a half-written output)."""
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL
        log.error("ffmpeg pid %s did not exit after SIGKILL", proc.pid)
