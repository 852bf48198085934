"""`roughy-encode`: the encoder as a process (a local subprocess or a Kubernetes Job's command).

`render` takes its inputs from flags, each defaulting to an environment variable (a Job passes
them in its environment, out of `ps` and of its logs):

- `--plan FILE` ('-': stdin), else the plan's JSON itself in `ROUGHY_PLAN`;
- `--video` / `--audio` (paths or http(s) URLs), else `ROUGHY_VIDEO_URL` / `ROUGHY_AUDIO_URL`;
- `--output PATH` (required): where the render is written, atomically;
- `--upload-to URL`, else `ROUGHY_OUTPUT_URL`: PUT the finished output there, then delete the
  local file; else `ROUGHY_OUTPUT_UPLOAD`, a presigned multipart upload as JSON (parts PUT in
  turn, then completed: outputs past S3's 5 GiB single PUT); `--content-type`, else
  `ROUGHY_OUTPUT_CONTENT_TYPE`, else the format's MIME type;
- `--encoder libx264|h264_nvenc`, else `ROUGHY_ENCODER`, else libx264. NVENC is checked with a
  tiny test encode first and replaced by libx264 (with a warning) when it does not work; with
  NVENC, decoding and scaling on the GPU is checked too and used where the plan allows it
  (`roughy.encoder.tools`; `ROUGHY_HWACCEL=none` keeps them on the CPU);
- `--time-limit S`: seconds for the encode (default: scaled to the plan);
- `--parallel N`, else `ROUGHY_ENCODE_PARALLEL`, else 1: chunks of a chunked plan encoded at once.

`chunk` and `join` are the two steps of a chunked plan (`roughy.core.chunks`) on Kubernetes:
`chunk --index I` (else `$JOB_COMPLETION_INDEX`, which an Indexed Job sets) encodes chunk I's
video alone and PUTs it to the I-th URL of `ROUGHY_CHUNK_URLS` (a JSON list), its result
`{"chunk": I, "size_bytes": N, "encoder": E}`; `join` GETs the chunks from the URLs of
`ROUGHY_CHUNK_URLS` (or takes `--chunk PATH` in order), copies their video end to end with the
audio encoded once, and stores the output as `render` does, its result the render's (with no
`encoder`: the chunks were encoded in other pods).

On Kubernetes a Job gives none of those URLs: `ROUGHY_API_URL`, `ROUGHY_RENDER_ID` and
`ROUGHY_TOKEN_FILE` name the channel to the API (`roughy.encoder.channel`). `render`, `chunk` and
`join` then ask it for their sources when they start and for where to store their output once it
is encoded (so no URL is older than its step), and report progress to it (not `chunk`: a chunked
render's progress is its Indexed Job's count of chunks done; a join's is scaled after theirs).

stdout is the machine interface, one JSON object per line:

- `render`: `{"encoder": "libx264"}` first (the video encoder actually used, null for an audio
  format), then `{"progress": 0.42}` lines (monotonic, at most ~4 a second; 1.0 once the output
  is in place, uploaded when asked), then `{"result": {...}}`, whose `encoder` says what encoded
  the video: `libx264`, `h264_nvenc`, or `h264_nvenc+cuda` (decoded and scaled on the GPU too);
- `probe`: the MediaInfo object; `extract-audio`: the AudioInfo object (`--upload-to URL`, else
  `ROUGHY_OUTPUT_URL`: PUT the .mka there); `silence`: a list of `[start, end]` pairs; for
  these two, the termination log gets `{"result": <the same>}`;
- on failure, any subcommand: `{"error": {"code": ..., "message": ...}}` and the error's exit
  code: 3 invalid input (permanent: a Job's podFailurePolicy fails fast on it), 4 time limit,
  1 other failures (a failed upload, a network error reading a source: worth a retry), 2 an
  unusable plan or bad arguments, 143 terminated by SIGTERM.

With `ROUGHY_TERMINATION_LOG` set (a Job sets it to the container's terminationMessagePath),
the outcome is also written there at exit as one JSON object, `{"encoder": ..., "result": ...}`
or `{"encoder": ..., "error": ...}`: the kubelet copies it into the pod's status, where the
operator reads it without parsing logs. A result too long for a termination message (4 KiB: a
long list of silences) is replaced by `"result_in_log": true`; the last stdout line has it.

stderr carries human logs (the ffmpeg command line, warnings). On SIGTERM the encoder kills its
ffmpeg child and removes its temp output before exiting 143, so a cancelled render leaves
neither a process nor a partial file (nor, once rendered, the local output it was uploading).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from roughy.core.chunks import CHUNK_SHARE
from roughy.core.plan import EncodePlan
from roughy.encoder.channel import Channel, ProgressSender
from roughy.encoder.errors import EncoderError
from roughy.encoder.ffmpeg_args import ENCODERS, LIBX264, PlanError, gpu_decodable
from roughy.encoder.probe import probe
from roughy.encoder.protocol import EXIT_USAGE
from roughy.encoder.tasks import detect_silence, extract_audio, join_chunks, render, render_chunk
from roughy.encoder.tools import choose_video_pipeline
from roughy.encoder.upload import download, upload, upload_to_target

log = logging.getLogger("roughy.encoder")

EXIT_SIGTERM = 143  # 128 + SIGTERM, what a shell reports for a process killed by it
EXIT_SIGINT = 130
PROGRESS_INTERVAL = 0.25  # seconds between progress lines (at most ~4 a second)

#: `render`'s environment defaults (the contract with `roughy.kube.jobs.encoder_env`).
ENV_PLAN = "ROUGHY_PLAN"
ENV_VIDEO = "ROUGHY_VIDEO_URL"
ENV_AUDIO = "ROUGHY_AUDIO_URL"
ENV_OUTPUT_URL = "ROUGHY_OUTPUT_URL"
ENV_CONTENT_TYPE = "ROUGHY_OUTPUT_CONTENT_TYPE"
ENV_ENCODER = "ROUGHY_ENCODER"
ENV_PARALLEL = "ROUGHY_ENCODE_PARALLEL"
ENV_TERMINATION_LOG = "ROUGHY_TERMINATION_LOG"
ENV_OUTPUT_UPLOAD = "ROUGHY_OUTPUT_UPLOAD"  # a presigned multipart upload (JSON), for big outputs
ENV_CHUNK_URLS = "ROUGHY_CHUNK_URLS"  # chunk: PUT URLs by index; join: GET URLs in order (JSON lists)
ENV_CHUNK_INDEX = "JOB_COMPLETION_INDEX"  # what Kubernetes sets in each pod of an Indexed Job
CHUNK_CONTENT_TYPE = "video/quicktime"
ENV_SOURCE = "ROUGHY_SOURCE_URL"  # extract-audio's and silence's source (a Job passes it so)
AUDIO_CONTENT_TYPE = "audio/x-matroska"  # what extract-audio writes
TERMINATION_MESSAGE_LIMIT = 4096  # what the kubelet keeps of a termination message
_OUTCOME_KEYS = ("encoder", "result", "error")

#: The lines of the outcome (encoder, result or error) emitted so far, for the termination log.
_outcome: dict[str, Any] = {}


class Terminated(BaseException):
    """Raised in the main thread by the SIGTERM handler. A BaseException so that no
    `except Exception` swallows it: it unwinds through the runner (which kills ffmpeg) and the
    task (which removes its temp file)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in ("render", "chunk") and args.encoder not in ENCODERS:  # from $ROUGHY_ENCODER
        parser.error(f"{ENV_ENCODER}={args.encoder!r} is not one of {', '.join(ENCODERS)}")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    _outcome.clear()
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)
        _write_termination_log()


def _run(args: argparse.Namespace) -> int:
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


def _write_termination_log() -> None:
    """The outcome, as one JSON object, where `ROUGHY_TERMINATION_LOG` says (best effort)."""
    path = _env(ENV_TERMINATION_LOG)
    if not path or not _outcome:
        return
    outcome = dict(_outcome)
    text = json.dumps(outcome, separators=(",", ":"))
    if len(text.encode()) > TERMINATION_MESSAGE_LIMIT and "error" in outcome:
        error = dict(outcome["error"])
        error["message"] = str(error.get("message", ""))[:1000]
        text = json.dumps(outcome | {"error": error}, separators=(",", ":"))
    elif len(text.encode()) > TERMINATION_MESSAGE_LIMIT:  # a long silence list: stdout's last line has it
        text = json.dumps({key: value for key, value in outcome.items() if key != "result"} | {"result_in_log": True})
    try:
        Path(path).write_text(text)
    except OSError as exc:
        log.warning("could not write the termination log %s: %s", path, exc)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roughy-encode", description="roughy's ffmpeg encoder")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("render", help="render an encode plan")
    p.add_argument("--plan", help=f"plan JSON file ('-' for stdin); default: the JSON in ${ENV_PLAN}")
    p.add_argument("--video", default=_env(ENV_VIDEO), help=f"video source path or URL (default: ${ENV_VIDEO})")
    p.add_argument("--audio", default=_env(ENV_AUDIO), help=f"audio source path or URL (default: ${ENV_AUDIO})")
    p.add_argument("--output", required=True, help="output path (written atomically)")
    p.add_argument("--time-limit", type=float, help="seconds (default: scaled to the plan)")
    p.add_argument(
        "--upload-to",
        metavar="URL",
        default=_env(ENV_OUTPUT_URL),
        help=f"PUT the output to this URL, then delete the local file (default: ${ENV_OUTPUT_URL})",
    )
    p.add_argument(
        "--content-type",
        default=_env(ENV_CONTENT_TYPE),
        help=f"Content-Type of the upload (default: ${ENV_CONTENT_TYPE}, else the format's)",
    )
    p.add_argument(
        "--encoder",
        choices=ENCODERS,
        default=_env(ENV_ENCODER) or LIBX264,
        help=f"video encoder; h264_nvenc falls back to libx264 if it does not work (default: ${ENV_ENCODER})",
    )
    p.add_argument(
        "--parallel",
        type=int,  # argparse converts a string default too: a bad $ROUGHY_ENCODE_PARALLEL is a usage error
        default=_env(ENV_PARALLEL) or "1",
        help=f"chunks of a chunked plan encoded at once (default: ${ENV_PARALLEL}, else 1)",
    )
    p.set_defaults(handler=_cmd_render)

    p = sub.add_parser("chunk", help="encode one chunk of a chunked plan (a pod of an Indexed Job)")
    p.add_argument("--plan", help=f"plan JSON file ('-' for stdin); default: the JSON in ${ENV_PLAN}")
    p.add_argument("--video", default=_env(ENV_VIDEO), help=f"video source path or URL (default: ${ENV_VIDEO})")
    p.add_argument(
        "--index", type=int, default=_env(ENV_CHUNK_INDEX), help=f"the chunk, from 0 (default: ${ENV_CHUNK_INDEX})"
    )
    p.add_argument("--output", required=True, help="the chunk's file (written atomically)")
    p.add_argument("--time-limit", type=float, help="seconds (default: scaled to the plan)")
    p.add_argument(
        "--upload-to", metavar="URL", help=f"PUT the chunk here (default: its entry in ${ENV_CHUNK_URLS}, if set)"
    )
    p.add_argument("--encoder", choices=ENCODERS, default=_env(ENV_ENCODER) or LIBX264, help="video encoder")
    p.set_defaults(handler=_cmd_chunk)

    p = sub.add_parser("join", help="join the chunks of a chunked plan into the render")
    p.add_argument("--plan", help=f"plan JSON file ('-' for stdin); default: the JSON in ${ENV_PLAN}")
    p.add_argument("--video", default=_env(ENV_VIDEO), help=f"video source path or URL (default: ${ENV_VIDEO})")
    p.add_argument("--audio", default=_env(ENV_AUDIO), help=f"audio source path or URL (default: ${ENV_AUDIO})")
    p.add_argument(
        "--chunk", action="append", help=f"a chunk's path or URL, in order (default: the list in ${ENV_CHUNK_URLS})"
    )
    p.add_argument("--output", required=True, help="output path (written atomically)")
    p.add_argument("--time-limit", type=float, help="seconds (default: scaled to the plan)")
    p.add_argument("--upload-to", metavar="URL", default=_env(ENV_OUTPUT_URL), help="as for render")
    p.add_argument("--content-type", default=_env(ENV_CONTENT_TYPE), help="as for render")
    p.set_defaults(handler=_cmd_join)

    p = sub.add_parser("probe", help="describe a media file")
    p.add_argument("src")
    p.set_defaults(handler=_cmd_probe)

    p = sub.add_parser("extract-audio", help="stream-copy the audio track into .mka")
    p.add_argument("src", nargs="?", default=_env(ENV_SOURCE), help=f"path or URL (default: ${ENV_SOURCE})")
    p.add_argument("output")
    p.add_argument(
        "--upload-to",
        default=_env(ENV_OUTPUT_URL),
        help=f"PUT the .mka to this URL, then delete the local file (default: ${ENV_OUTPUT_URL})",
    )
    p.set_defaults(handler=_cmd_extract_audio)

    p = sub.add_parser("silence", help="list silent spans as [start, end] pairs")
    p.add_argument("src", nargs="?", default=_env(ENV_SOURCE), help=f"path or URL (default: ${ENV_SOURCE})")
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
    channel = _channel_inputs(args)
    # The encoder line names the codec (what a Render's status.encoder accepts); the result's
    # `encoder` says whether the GPU also decoded and scaled (`h264_nvenc+cuda`).
    pipeline = choose_video_pipeline(args.encoder, gpu_decode=gpu_decodable(plan)) if plan.video is not None else None
    encoder = pipeline.encoder if pipeline is not None else None
    _emit({"encoder": encoder})
    with _reporting(channel, encoder) as reporter:
        result = render(
            plan,
            video_src=args.video,
            audio_src=args.audio,
            output=args.output,
            on_progress=reporter,
            time_limit=args.time_limit,
            encoder=encoder or LIBX264,
            parallel=max(1, args.parallel),
            hwaccel=pipeline.hwaccel if pipeline is not None else None,
        )
        _store_output(args, plan, channel)
        reporter.finish()
    _emit({"result": result.to_json()})


def _channel_inputs(args: argparse.Namespace, *, chunks: bool = False) -> Channel | None:
    """On Kubernetes (`ROUGHY_API_URL`): the sources' URLs, signed now, where no flag gave one."""
    channel = Channel.from_environment()
    if channel is None:
        return None
    inputs = channel.inputs()
    for part in ("video", "audio"):
        if hasattr(args, part) and getattr(args, part) is None:
            setattr(args, part, inputs.get(part))
    if chunks and not args.chunk:
        args.chunk = list(inputs.get("chunks") or [])
    return channel


@contextlib.contextmanager
def _reporting(
    channel: Channel | None, encoder: str | None, scale: tuple[float, float] = (0.0, 1.0)
) -> Iterator[ProgressReporter]:
    """Progress lines on stdout and, on Kubernetes, reports to the API (scaled: a join's
    progress comes after its chunks')."""
    sender = ProgressSender(channel, encoder, scale=scale) if channel is not None else None

    def emit(line: Any) -> None:
        _emit(line)
        if sender is not None and isinstance(line, dict) and "progress" in line:
            sender.update(float(line["progress"]))

    try:
        yield ProgressReporter(emit)
    finally:
        if sender is not None:
            sender.close()


def _store_output(args: argparse.Namespace, plan: EncodePlan, channel: Channel | None = None) -> None:
    """PUT the finished output where `--upload-to` or `$ROUGHY_OUTPUT_UPLOAD` says, or where the
    API says now (on Kubernetes), if anywhere."""
    multipart = _env(ENV_OUTPUT_UPLOAD)
    if args.upload_to or multipart or channel is not None:
        content_type = args.content_type or plan.format.mime_type
        try:
            if args.upload_to:
                upload(args.output, args.upload_to, content_type)
            elif multipart:
                upload_to_target(args.output, _upload_target(multipart), content_type)
            else:
                assert channel is not None
                upload_to_target(args.output, channel.output(), content_type, abort_on_failure=True)
        finally:
            Path(args.output).unlink(missing_ok=True)  # uploaded, or a retry renders it again


def _cmd_chunk(args: argparse.Namespace) -> None:
    exit_with_parent()
    plan = _load_plan(args.plan)
    if args.index is None:
        raise PlanError(f"no chunk index: give --index or set {ENV_CHUNK_INDEX}")
    url = args.upload_to
    if url is None and _env(ENV_CHUNK_URLS):
        urls = _chunk_urls()
        if not 0 <= args.index < len(urls):
            raise PlanError(f"{ENV_CHUNK_URLS} has no URL for chunk {args.index}")
        url = urls[args.index]
    channel = _channel_inputs(args)  # a chunk's progress is its Job's count of chunks done
    pipeline = choose_video_pipeline(args.encoder, gpu_decode=gpu_decodable(plan))
    _emit({"encoder": pipeline.encoder})
    reporter = ProgressReporter(_emit)
    chunk = render_chunk(
        plan, args.index, video_src=args.video, output=args.output, on_progress=reporter,
        time_limit=args.time_limit, encoder=pipeline.encoder, hwaccel=pipeline.hwaccel,
    )  # fmt: skip
    if url is None and channel is not None:
        url = str(channel.output(chunk=args.index)["url"])  # signed now, not when the pod started
    if url:
        try:
            upload(args.output, url, CHUNK_CONTENT_TYPE)
        finally:
            Path(args.output).unlink(missing_ok=True)
    reporter.finish()
    _emit({"result": {"chunk": args.index, "size_bytes": chunk.size_bytes, "encoder": chunk.encoder}})


def _cmd_join(args: argparse.Namespace) -> None:
    exit_with_parent()
    plan = _load_plan(args.plan)
    channel = _channel_inputs(args, chunks=True)
    sources = list(args.chunk or []) or _chunk_urls()
    scratch = Path(args.output).parent
    scratch.mkdir(parents=True, exist_ok=True)
    fetched: list[Path] = []
    with _reporting(channel, None, (CHUNK_SHARE, 1 - CHUNK_SHARE)) as reporter:
        _join(args, plan, sources, scratch, fetched, reporter, channel)


def _join(
    args: argparse.Namespace,
    plan: EncodePlan,
    sources: list[str],
    scratch: Path,
    fetched: list[Path],
    reporter: ProgressReporter,
    channel: Channel | None,
) -> None:
    try:
        parts: list[str] = []
        for index, source in enumerate(sources):
            if source.lower().startswith(("http://", "https://")):
                local = scratch / f".chunk-{index:04d}.mov"
                fetched.append(local)
                download(source, str(local))
                parts.append(str(local))
            else:
                parts.append(source)
        result = join_chunks(
            plan, parts, video_src=args.video, audio_src=args.audio, output=args.output,
            on_progress=reporter, time_limit=args.time_limit,
        )  # fmt: skip
    finally:
        for local in fetched:
            local.unlink(missing_ok=True)
    _store_output(args, plan, channel)
    reporter.finish()
    _emit({"result": result.to_json()})


def _chunk_urls() -> list[str]:
    try:
        urls = json.loads(_env(ENV_CHUNK_URLS) or "")
    except ValueError:
        urls = None
    if not isinstance(urls, list) or not urls or not all(isinstance(url, str) for url in urls):
        raise PlanError(f"{ENV_CHUNK_URLS} is not a JSON list of URLs")
    return urls


def _upload_target(text: str | None) -> dict[str, Any]:
    try:
        target = json.loads(text or "")
    except ValueError:
        target = None
    if not isinstance(target, dict):
        raise PlanError(f"{ENV_OUTPUT_UPLOAD} is not a JSON object")
    return target


def _cmd_probe(args: argparse.Namespace) -> None:
    _emit(probe(args.src).to_json())


def _need_source(args: argparse.Namespace) -> None:
    if not args.src:
        raise PlanError(f"no source: give SRC or set {ENV_SOURCE}")


def _cmd_extract_audio(args: argparse.Namespace) -> None:
    _need_source(args)
    exit_with_parent()
    info = asdict(extract_audio(args.src, args.output))
    if args.upload_to:
        try:
            upload(args.output, args.upload_to, AUDIO_CONTENT_TYPE)
        finally:
            Path(args.output).unlink(missing_ok=True)
    _outcome["result"] = info
    _emit(info)


def _cmd_silence(args: argparse.Namespace) -> None:
    _need_source(args)
    exit_with_parent()
    spans = detect_silence(args.src, min_silence=args.min_silence, threshold_db=args.threshold_db)
    _outcome["result"] = [[round(start, 6), round(end, 6)] for start, end in spans]
    _emit(_outcome["result"])


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


def _load_plan(source: str | None) -> EncodePlan:
    """Read and parse the plan (a file, stdin, or `$ROUGHY_PLAN` when `source` is None); every
    way it can be unusable is a PlanError (exit 2)."""
    try:
        if source is None:
            text = os.environ.get(ENV_PLAN, "")
            if not text.strip():
                raise PlanError(f"no plan: give --plan FILE or set {ENV_PLAN} to the plan's JSON")
            data = json.loads(text)
        elif source == "-":
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


def _env(name: str) -> str | None:
    """An environment default: unset and empty are both "not given"."""
    return os.environ.get(name) or None


def _emit(obj: Any, stream: TextIO | None = None) -> None:
    if isinstance(obj, dict) and len(obj) == 1 and next(iter(obj)) in _OUTCOME_KEYS:
        _outcome.update(obj)
    out = stream or sys.stdout
    out.write(json.dumps(obj, separators=(",", ":")) + "\n")
    out.flush()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one cleanup is enough
    raise Terminated()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
