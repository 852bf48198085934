"""`roughy-encode`: the encoder as a process (a local subprocess or a Kubernetes Job's command).

stdout is the machine interface, one JSON object per line:

- `render`: `{"progress": 0.42}` lines (monotonic, at most ~4 a second), then
  `{"result": {...}}`;
- `probe`: the MediaInfo object; `extract-audio`: the AudioInfo object; `silence`: a list of
  `[start, end]` pairs;
- on failure, any subcommand: `{"error": {"code": ..., "message": ...}}` and the error's exit
  code: 3 invalid input (permanent: a Job's podFailurePolicy fails fast on it), 4 time limit,
  1 other failures, 2 an unusable plan or bad arguments, 143 terminated by SIGTERM.

stderr carries human logs (the ffmpeg command line, warnings). On SIGTERM the encoder kills its
ffmpeg child and removes its temp output before exiting 143, so a cancelled render leaves
neither a process nor a partial file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from types import FrameType
from typing import Any, TextIO

from roughy.core.plan import EncodePlan
from roughy.encoder.errors import EncoderError
from roughy.encoder.ffmpeg_args import PlanError
from roughy.encoder.probe import probe
from roughy.encoder.tasks import detect_silence, extract_audio, render

log = logging.getLogger("roughy.encoder")

EXIT_USAGE = 2
EXIT_SIGTERM = 143  # 128 + SIGTERM, what a shell reports for a process killed by it
EXIT_SIGINT = 130
PROGRESS_INTERVAL = 0.25  # seconds between progress lines (at most ~4 a second)


class Terminated(BaseException):
    """Raised in the main thread by the SIGTERM handler. A BaseException so that no
    `except Exception` swallows it: it unwinds through the runner (which kills ffmpeg) and the
    task (which removes its temp file)."""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        handler: Callable[[argparse.Namespace], None] = args.handler
        handler(args)
        return 0
    except EncoderError as exc:
        log.error("%s: %s", exc.code, exc.message)
        _emit({"error": exc.to_dict()})
        return exc.exit_code
    except PlanError as exc:
        _emit({"error": {"code": "invalid_plan", "message": str(exc)}})
        return EXIT_USAGE
    except Terminated:
        log.warning("terminated by SIGTERM; ffmpeg killed and temp output removed")
        return EXIT_SIGTERM
    except KeyboardInterrupt:
        return EXIT_SIGINT
    except Exception as exc:  # a bug: the traceback goes to the log, never to the client
        log.exception("internal encoder error")
        message = f"internal encoder error ({type(exc).__name__})"
        _emit({"error": {"code": "encode_failed", "message": message}})
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roughy-encode", description="roughy's ffmpeg encoder")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("render", help="render an encode plan")
    p.add_argument("--plan", required=True, help="plan JSON file ('-' for stdin)")
    p.add_argument("--video", help="video source path or URL")
    p.add_argument("--audio", help="audio source path or URL")
    p.add_argument("--output", required=True, help="output path (written atomically)")
    p.add_argument("--time-limit", type=float, help="seconds (default: scaled to the plan)")
    p.set_defaults(handler=_cmd_render)

    p = sub.add_parser("probe", help="describe a media file")
    p.add_argument("src")
    p.set_defaults(handler=_cmd_probe)

    p = sub.add_parser("extract-audio", help="stream-copy the audio track into .mka")
    p.add_argument("src")
    p.add_argument("output")
    p.set_defaults(handler=_cmd_extract_audio)

    p = sub.add_parser("silence", help="list silent spans as [start, end] pairs")
    p.add_argument("src")
    p.add_argument("--min-silence", type=float, required=True, help="seconds")
    p.add_argument("--threshold-db", type=float, required=True, help="dBFS, e.g. -35")
    p.set_defaults(handler=_cmd_silence)
    return parser


def exit_with_parent(interval: float = 0.5) -> None:
    """SIGTERM ourselves when the process that started us dies (it was SIGKILLed, say).

    Without this, an encoder whose service crashed keeps encoding for nobody. The SIGTERM path
    kills ffmpeg and removes the temp output. A Job's encoder is PID 1 (parent 0): no-op there.
    """
    parent = os.getppid()
    if parent <= 1:
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _cmd_render(args: argparse.Namespace) -> None:
    exit_with_parent()
    plan = _load_plan(args.plan)
    reporter = ProgressReporter(_emit)
    result = render(
        plan,
        video_src=args.video,
        audio_src=args.audio,
        output=args.output,
        on_progress=reporter,
        time_limit=args.time_limit,
    )
    reporter.finish()
    _emit({"result": dict(result)})


def _cmd_probe(args: argparse.Namespace) -> None:
    _emit(probe(args.src).to_json())


def _cmd_extract_audio(args: argparse.Namespace) -> None:
    _emit(asdict(extract_audio(args.src, args.output)))


def _cmd_silence(args: argparse.Namespace) -> None:
    spans = detect_silence(args.src, min_silence=args.min_silence, threshold_db=args.threshold_db)
    _emit([[round(start, 6), round(end, 6)] for start, end in spans])


class ProgressReporter:
    """Throttles progress to one line per PROGRESS_INTERVAL, only ever forward."""

    def __init__(self, emit: Callable[[Any], None], clock: Callable[[], float] = time.monotonic) -> None:
        self._emit = emit
        self._clock = clock
        self._last_value = 0.0
        self._last_time: float | None = None

    def __call__(self, fraction: float) -> None:
        now = self._clock()
        if fraction <= self._last_value or fraction >= 1.0:
            return  # 1.0 is said once, by finish(), after the output is in place
        if self._last_time is not None and now - self._last_time < PROGRESS_INTERVAL:
            return
        self._send(fraction, now)

    def finish(self) -> None:
        if self._last_value < 1.0:
            self._send(1.0, self._clock())

    def _send(self, fraction: float, now: float) -> None:
        self._last_value, self._last_time = fraction, now
        self._emit({"progress": round(fraction, 4)})


def _load_plan(source: str) -> EncodePlan:
    """Read and parse the plan; every way it can be unusable is a PlanError (exit 2)."""
    try:
        if source == "-":
            data = json.load(sys.stdin)
        else:
            with open(source, encoding="utf-8") as f:
                data = json.load(f)
        if not isinstance(data, dict):
            raise PlanError("the plan must be a JSON object")
        return EncodePlan.from_json(data)
    except PlanError:
        raise
    except FileNotFoundError as exc:
        raise PlanError(f"plan file not found: {exc.filename}") from None
    except json.JSONDecodeError as exc:
        raise PlanError(f"the plan is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    except KeyError as exc:
        raise PlanError(f"the plan is missing {exc}") from None
    except (ValueError, TypeError) as exc:
        raise PlanError(f"unusable plan: {exc}") from None


def _emit(obj: Any, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    out.write(json.dumps(obj, separators=(",", ":")) + "\n")
    out.flush()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one cleanup is enough
    raise Terminated()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
