"""`FakeKubelet`: a Job controller, a TTL controller and a kubelet that run Jobs as local processes.

The emulator (tests/kube/emulator.py) stores objects but runs no controller. `FakeKubelet`
plays, in one background thread, the parts of a cluster that turn a batch/v1 Job into a
running encoder and back into status, talking to the emulator over HTTP with the official
`kubernetes` client like a real controller (it polls lists every `poll` seconds rather than
watching). The only shortcut is the pod log: the container's output goes straight into the
emulator's log storage (`EmulatorServer.append_log`), which `GET .../pods/NAME/log` serves.

    with FakeKubelet(server, workdir=tmp_path) as kubelet:
        batch.create_namespaced_job("roughy", job)
        ...
        kubelet.processes()          # {pod name: pid} of the containers running now
        assert kubelet.wait_idle(5)  # no process left and no Job left to run

What is emulated:

- **Job controller**: for a Job that is not finished, not suspended and not being deleted,
  pods up to `parallelism` (default 1) until `completions` (default 1) succeeded, each named
  `<job>-<5 random characters>` (generateName, as the controller does) with the template's
  labels and annotations plus `job-name`, `controller-uid` and their `batch.kubernetes.io/`
  forms, a controller ownerReference to the Job (`blockOwnerDeletion`), the
  `batch.kubernetes.io/job-tracking` finalizer (removed once the pod has ended and before the
  Job's status counts it, so a finished Job's pods are free to go and a deleted pod stays
  visible, terminating, until its process is gone), the template's spec and `nodeName`.
  Job status, written through `/status`: `startTime` (first pod), `active`,
  `ready`, `succeeded`, `failed` (omitted when 0, as the API does), `completionTime`, and
  conditions (type, status, reason, message, lastProbeTime, lastTransitionTime):
  `SuccessCriteriaMet` + `Complete` (reason `CompletionsReached`) on success; on failure
  `FailureTarget` at once, then `Failed` once no pod is active, with reason
  `PodFailurePolicy`, `BackoffLimitExceeded` (failed pods > `backoffLimit`, default 6) or
  `DeadlineExceeded` (`activeDeadlineSeconds` since `startTime`: the active pods are deleted).
  A failed pod under the limit is replaced by a new pod at once.
- **Indexed Jobs** (`completionMode: Indexed`): one pod per index not yet succeeded or failed,
  up to `parallelism` at once, named `<job>-<index>-<5 random characters>`, with the index in
  the `batch.kubernetes.io/job-completion-index` annotation and label and in the container's
  `JOB_COMPLETION_INDEX` (set as a plain value: the controller's downward-API reference is not
  emulated); the Job succeeds when every index has; status `completedIndexes` ("0-2,4").
  `backoffLimitPerIndex`: an index fails once its pods failed more than that many times (or a
  `FailIndex` rule matched); `failedIndexes`; more failed indexes than `maxFailedIndexes` fail
  the Job at once (`MaxFailedIndexesExceeded`, the active pods deleted), else it fails once
  every index is done (`FailedIndexes`); `backoffLimit` then defaults to 2147483647.
- **podFailurePolicy**: rules in order, the first match wins; `onExitCodes` (`In`/`NotIn`,
  optional `containerName`, exit code 0 never matches) and `onPodConditions` (type, status,
  default "True"; the pod's conditions as last read from the API, e.g. a `DisruptionTarget`
  a test patched in); actions `FailJob`, `Ignore` (the pod is not counted at all) and `Count`.
- **TTL controller**: a finished Job is deleted (propagation Background, with a uid
  precondition) `ttlSecondsAfterFinished` after it finished.
- **kubelet**, for the single container: `command + args` as an argument list (never a
  shell), `$(VAR)` references expanded from the container's env (`$$` escapes);
  `command[0]` is looked up in the directory of `sys.executable` (the venv's bin, where
  `roughy-encode` is), then on PATH (an absolute path is used as is when it exists locally).
  The environment is PATH (venv bin first), LANG and ROUGHY_FFMPEG from the test process,
  HOSTNAME (the pod's name), then the container's `env` name/value pairs. Each
  `volumeMounts[].mountPath` is a fresh directory per pod and volume under `workdir`
  (`<ns>/<pod>/volumes/<volume>`; mounts of the same volume share it), and the
  `terminationMessagePath` (default /dev/termination-log) a per-pod file: arguments, env values
  and `workingDir` equal to one of these paths or under a mount are rewritten to the local
  path. The working directory is otherwise `<ns>/<pod>/cwd`. The process runs in its own
  process group; stdout and stderr go to the pod log line by line as they arrive. Pod
  status, through `/status`: `Pending` (container waiting, `ContainerCreating`), `Running`
  (`state.running.startedAt`), then `Succeeded`/`Failed` with `state.terminated` (exitCode,
  128 + N for a signal; reason `Completed`/`Error`; startedAt, finishedAt; message: the
  termination file, at most 4096 bytes, or, when that is empty, the exit code non-zero and
  `terminationMessagePolicy: FallbackToLogsOnError`, the last 80 log lines cut to 2048 bytes).
  A command that cannot be started ends as exit code 128, reason `StartError`. When the main
  process exits, whatever is left in its process group is killed (a container's processes
  die with its PID 1).
- **termination**: a pod that gets a `deletionTimestamp` or disappears has its main process
  (the container's PID 1) sent SIGTERM, as the container runtime does: passing it on to its
  children (ffmpeg) is the command's job. SIGKILL to the whole process group follows after
  min(`terminationGracePeriodSeconds` (default 30), `grace_cap`), or as soon as the main
  process exits. So deleting a Job with Foreground or Background propagation (the emulator's
  GC deletes its pods) stops the process; deleting it with Orphan, the API's default for
  Jobs, leaves the pod running to its end, as on a cluster. A pod whose process was stopped
  counts as failed (exit code 143 or 137), like any other failure.
- `stop()` kills every process the kubelet started (SIGKILL to the process group) and, if
  the API server is still up, removes the tracking finalizer from the pods it leaves behind.

Not emulated: the scheduler, nodes and resources (requests, limits, GPUs: every pod runs at
once on one node, `fake-node`), images (`image` is recorded, never pulled; a container without
`command` cannot run, as the image's entrypoint is unknown), init and sidecar containers and
more than one container (only the first runs), `restartPolicy: OnFailure` (taken as Never:
no restart in place), the retry back-off delay (10 s doubling on a cluster: a retry starts at
once), `successPolicy`, `suspend`
beyond not starting pods (active pods are not stopped, no `Suspended` condition),
`podReplacementPolicy` and the `terminating` count, `uncountedTerminatedPods`, Events, pod
conditions (none is written: `PodScheduled`, `Ready` and the rest), the pod-level
`activeDeadlineSeconds`, probes, `env[].valueFrom` and `envFrom` (skipped), `subPath`,
volume contents (`emptyDir.sizeLimit`, ConfigMaps: every volume is an empty directory,
but a `secret` volume holds the Secret's keys as files, written once at start; a pod whose
Secret does not exist fails to start, where a real kubelet would wait for it), the
security context (the process runs as the test user, the root filesystem is the test
machine's), the service-account token, the `KUBERNETES_SERVICE_*` and service-link
variables, PID 1's signal semantics (a process without a SIGTERM handler dies of SIGTERM
here; as a container's PID 1 it would ignore it until the SIGKILL), and the grace period of
a delete request (the pod's own grace applies). State
lives in memory: a new FakeKubelet does not adopt the pods or processes of an earlier one, it
only picks up the Jobs' counts and startTime from their status.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.kube.emulator import now_rfc3339
from tests.kube.harness import EmulatorServer

log = logging.getLogger(__name__)

NODE_NAME = "fake-node"
HOST_IP = "127.0.0.1"
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
DEFAULT_GRACE_SECONDS = 30
DEFAULT_BACKOFF_LIMIT = 6
PER_INDEX_BACKOFF_LIMIT = 2147483647  # backoffLimit's default beside backoffLimitPerIndex
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
MESSAGE_LIMIT = 4096  # bytes of the termination file the kubelet keeps
FALLBACK_LINES, FALLBACK_BYTES = 80, 2048  # FallbackToLogsOnError: the log's tail, cut
EXIT_START_ERROR = 128  # what containerd reports for a container whose process could not start
GENERATED_NAME_PREFIX = 58  # 63 minus the 5 random characters the API server appends
REQUEST_TIMEOUT = 5.0
FINISHED = frozenset({"Complete", "Failed"})
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


@dataclass
class _Run:
    """One pod this kubelet created, and the process running its (only) container."""

    namespace: str
    name: str
    uid: str
    job_uid: str
    image: str
    container: dict[str, Any]
    directory: Path
    grace: float
    created_at: str = field(default_factory=now_rfc3339)
    process: subprocess.Popen[bytes] | None = None
    readers: list[threading.Thread] = field(default_factory=list)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=FALLBACK_LINES))
    termination_file: Path | None = None
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    term_sent: float | None = None  # monotonic time of the SIGTERM
    delete_requested: bool = False  # the controller deleted the pod (deadline)
    pod: dict[str, Any] | None = None  # as last read from the API
    gone: bool = False  # no longer in the API
    written: dict[str, Any] | None = None  # the pod status last written
    counted: bool = False  # the Job controller has counted its outcome
    released: bool = False  # the tracking finalizer is gone
    index: int | None = None  # its completion index, in an Indexed Job

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def terminal_written(self) -> bool:
        return self.written is not None and self.written.get("phase") in {"Succeeded", "Failed"}


@dataclass
class _Job:
    """What the Job controller knows of one Job (by uid)."""

    namespace: str
    name: str
    uid: str
    obj: dict[str, Any]
    start_time: str | None = None
    started: float | None = None  # epoch seconds of start_time (precise when this kubelet set it)
    succeeded: int = 0
    failed: int = 0
    conditions: list[dict[str, Any]] = field(default_factory=list)
    completion_time: str | None = None
    finished: float | None = None  # epoch seconds when Complete or Failed was set
    failure: tuple[str, str] | None = None  # reason, message of the FailureTarget
    runs: list[_Run] = field(default_factory=list)
    written: dict[str, Any] | None = None
    ttl_deleted: bool = False
    gone: bool = False
    completed_indexes: set[int] = field(default_factory=set)
    failed_indexes: set[int] = field(default_factory=set)
    index_failures: dict[int, int] = field(default_factory=dict)

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self.obj.get("spec") or {})

    @property
    def indexed(self) -> bool:
        return self.spec.get("completionMode") == "Indexed"

    @property
    def per_index(self) -> bool:
        return self.indexed and self.spec.get("backoffLimitPerIndex") is not None

    @property
    def active(self) -> list[_Run]:
        return [run for run in self.runs if not run.counted]


class FakeKubelet:
    """Runs the Jobs of `namespaces` on `server` as local processes (see the module docstring).

    `workdir` holds one directory per pod (`<namespace>/<pod>/`: volumes, termination file,
    working directory). `grace_cap` caps the pod's termination grace period (SIGTERM to
    SIGKILL), `poll` is the interval of the control loop.
    """

    def __init__(
        self,
        server: EmulatorServer,
        *,
        namespaces: Iterable[str] = ("roughy",),
        workdir: Path,
        grace_cap: float = 2.0,
        poll: float = 0.05,
        executables: Mapping[str, str] | None = None,
    ) -> None:
        """`executables`: a command's program by its name, instead of the venv's (a bench's
        stand-in for `roughy-encode`)."""
        self.executables = dict(executables or {})
        self.server = server
        self.namespaces = tuple(namespaces)
        self.workdir = Path(workdir)
        self.grace_cap = grace_cap
        self.poll = poll
        #: Unexpected exceptions of the control loop (API errors are retried, not kept here).
        self.errors: list[BaseException] = []
        self._api: k8s.ApiClient | None = None
        self._jobs: dict[str, _Job] = {}
        self._runs: dict[str, _Run] = {}  # by pod uid
        self._lock = threading.Lock()  # guards _runs, _ticks, _busy against the helpers
        self._ticks = 0
        self._busy = True
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle and helpers for tests ------------------------------------------------------

    def start(self) -> FakeKubelet:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._api = self.server.api_client()
        self._thread = threading.Thread(target=self._loop, name="fake-kubelet", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the loop, kill every process this kubelet started, release the pods it leaves."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            if run.process is not None:
                _signal_group(run.process.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    run.process.wait(timeout=5)
            for reader in run.readers:
                reader.join(timeout=2)
        if self._api is not None:
            if self.server.running:
                for run in runs:
                    if not run.gone and not run.released:
                        with contextlib.suppress(Exception):
                            self._release(run)
            self._api.close()
            self._api = None

    def __enter__(self) -> FakeKubelet:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def processes(self) -> dict[str, int]:
        """{pod name: pid} of the container processes running now."""
        with self._lock:
            runs = list(self._runs.values())
        return {run.name: run.process.pid for run in runs if run.process is not None and run.alive}

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until a full pass of the loop finds no live process, no Job left to run and no
        outcome left to write. False if that did not happen within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            first = self._ticks + 2  # a pass that started after this call
        while time.monotonic() < deadline:
            with self._lock:
                if self._ticks >= first and not self._busy:
                    return True
            time.sleep(self.poll / 2)
        return False

    # --- the control loop ---------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                busy = self._tick()
            except ApiException as exc:
                log.warning("fake kubelet: API error, retrying: %s %s", exc.status, exc.reason)
                busy = True
            except Exception as exc:  # kept for the tests to see; the loop goes on
                self._record(exc)
                busy = True
            with self._lock:
                self._ticks += 1
                self._busy = busy
            self._stopping.wait(self.poll)

    def _tick(self) -> bool:
        jobs: dict[str, dict[str, Any]] = {}
        pods: dict[str, dict[str, Any]] = {}
        for namespace in self.namespaces:
            for job in self._call(self._batch.list_namespaced_job, namespace)["items"]:
                jobs[job["metadata"]["uid"]] = job
            for pod in self._call(self._core.list_namespaced_pod, namespace)["items"]:
                pods[pod["metadata"]["uid"]] = pod
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            self._guard(self._sync_run, run, pods.get(run.uid))
        for job in jobs.values():
            self._guard(self._sync_job, job)
        for uid, state in list(self._jobs.items()):
            if uid not in jobs:
                state.gone = True
                if all(run.released or run.gone for run in state.runs):
                    del self._jobs[uid]
        return self._is_busy(jobs)

    def _is_busy(self, jobs: dict[str, dict[str, Any]]) -> bool:
        with self._lock:
            runs = list(self._runs.values())
        if any(run.alive or (not run.gone and not run.released) for run in runs):
            return True
        for uid, job in jobs.items():
            state = self._jobs.get(uid)
            if state is not None and state.finished is not None:
                continue
            if not job["metadata"].get("deletionTimestamp") and not job["spec"].get("suspend"):
                return True
        return False

    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        """Run one object's step; an API error leaves it for the next pass, and no error stops
        the other objects' steps."""
        try:
            fn(*args)
        except ApiException as exc:
            log.warning("fake kubelet: %s failed (%s %s), retrying", fn.__name__, exc.status, exc.reason)
        except Exception as exc:
            self._record(exc)

    def _record(self, exc: Exception) -> None:
        """Keep an unexpected error for the tests (`errors`), once per distinct message."""
        if all(repr(seen) != repr(exc) for seen in self.errors):
            log.exception("fake kubelet: unexpected error")
            self.errors.append(exc)

    # --- API access (raw JSON, as the API server sends it) -------------------------------------

    @property
    def _batch(self) -> k8s.BatchV1Api:
        return k8s.BatchV1Api(self._api)

    @property
    def _core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self._api)

    @staticmethod
    def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        response = fn(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        try:
            data = response.data
        finally:
            response.release_conn()
        return dict(json.loads(data)) if data else {}

    # --- kubelet: one pod and its process ----------------------------------------------------------

    def _sync_run(self, run: _Run, pod: dict[str, Any] | None) -> None:
        if pod is None:
            run.gone = True
        else:
            run.pod = pod
        if run.gone or (pod is not None and pod["metadata"].get("deletionTimestamp")):
            self._terminate(run)
        if run.term_sent is not None and run.alive and time.monotonic() - run.term_sent >= run.grace:
            assert run.process is not None
            _signal_group(run.process.pid, signal.SIGKILL)
        self._reap(run)
        if not run.gone:
            self._write_pod_status(run)
        state = self._jobs.get(run.job_uid)
        if (state is None or state.gone) and run.terminal_written and not run.released and not run.gone:
            self._release(run)  # an orphan (its Job deleted with Orphan): nobody else will count it

    def _spawn(self, run: _Run) -> None:
        """Start the container's process; a command that cannot start ends the run at once."""
        container = run.container
        run.directory.mkdir(parents=True, exist_ok=True)
        mounts: dict[str, Path] = {}
        volumes = {str(v.get("name")): v for v in ((run.pod or {}).get("spec") or {}).get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            local = run.directory / "volumes" / str(mount.get("name") or len(mounts))
            local.mkdir(parents=True, exist_ok=True)
            mounts[str(mount["mountPath"]).rstrip("/") or "/"] = local
            secret = (volumes.get(str(mount.get("name"))) or {}).get("secret")
            if secret and not self._project_secret(run, secret, local):
                return self._start_failed(run, f'secret "{secret.get("secretName")}" not found')
        run.termination_file = run.directory / "termination-log"
        run.termination_file.touch()
        termination_path = container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH

        def localize(value: str) -> str:
            if value == termination_path:
                return str(run.termination_file)
            for path in sorted(mounts, key=len, reverse=True):
                if value == path or value.startswith(path.rstrip("/") + "/"):
                    return str(mounts[path]) + value[len(path) :]
            return value

        env = _base_env(run.name)
        declared: dict[str, str] = {}
        for var in container.get("env") or []:
            if "value" in var or "valueFrom" not in var:
                declared[var["name"]] = _expand(str(var.get("value") or ""), declared)
        env.update({name: localize(value) for name, value in declared.items()})
        argv = [localize(_expand(str(arg), declared)) for arg in [*(container.get("command") or []),
                                                                   *(container.get("args") or [])]]  # fmt: skip
        cwd = run.directory / "cwd"
        cwd.mkdir(exist_ok=True)
        working_dir = container.get("workingDir")
        if working_dir and localize(working_dir) != working_dir:
            cwd = Path(localize(working_dir))
            cwd.mkdir(parents=True, exist_ok=True)
        if not container.get("command"):
            return self._start_failed(run, "no command: the image's entrypoint is not emulated")
        executable = self.executables.get(argv[0]) or _resolve(argv[0])
        if executable is None:
            return self._start_failed(run, f'exec: "{argv[0]}": executable file not found in $PATH')
        try:
            run.process = subprocess.Popen(
                [executable, *argv[1:]], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            return self._start_failed(run, f"exec: {argv[0]!r}: {exc}")
        run.started_at = now_rfc3339()
        for stream in (run.process.stdout, run.process.stderr):
            assert stream is not None
            reader = threading.Thread(target=self._read, args=(run, stream), name=f"log-{run.name}", daemon=True)
            reader.start()
            run.readers.append(reader)

    def _project_secret(self, run: _Run, volume: dict[str, Any], directory: Path) -> bool:
        """A `secret` volume: each key of the Secret's `data` as a file (decoded, `defaultMode`).
        False when the Secret does not exist (a real kubelet keeps the pod waiting for it)."""
        try:
            secret = self._call(self._core.read_namespaced_secret, volume["secretName"], run.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        for key, value in (secret.get("data") or {}).items():
            path = directory / key
            path.write_bytes(base64.b64decode(value))
            path.chmod(int(volume.get("defaultMode", 0o644)))
        return True

    def _start_failed(self, run: _Run, message: str) -> None:
        run.started_at = run.finished_at = now_rfc3339()
        run.exit_code, run.reason = EXIT_START_ERROR, "StartError"
        run.message = f"failed to start the container process: {message}"[:MESSAGE_LIMIT]

    def _read(self, run: _Run, stream: Any) -> None:
        """Copy one output stream to the pod log, a line at a time, as it arrives."""
        with stream:
            for raw in iter(stream.readline, b""):
                text = raw.decode("utf-8", "replace")
                self.server.append_log(run.namespace, run.name, text)
                run.tail.append(text)

    def _terminate(self, run: _Run) -> None:
        if run.term_sent is None and run.alive:
            assert run.process is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(run.process.pid, signal.SIGTERM)
            run.term_sent = time.monotonic()

    def _reap(self, run: _Run) -> None:
        """Once the main process has exited: kill what is left of it, read the outcome."""
        if run.process is None or run.exit_code is not None or run.process.poll() is None:
            return
        _signal_group(run.process.pid, signal.SIGKILL)  # the container's other processes die with it
        for reader in run.readers:
            reader.join(timeout=2)
        code = run.process.returncode
        run.exit_code = 128 - code if code < 0 else code
        run.finished_at = now_rfc3339()
        run.reason = "Completed" if run.exit_code == 0 else "Error"
        assert run.termination_file is not None
        with contextlib.suppress(OSError):
            with run.termination_file.open("rb") as file:
                run.message = file.read(MESSAGE_LIMIT).decode("utf-8", "replace")
        policy = run.container.get("terminationMessagePolicy") or "File"
        if not run.message and run.exit_code != 0 and policy == "FallbackToLogsOnError":
            tail = "".join(list(run.tail)[-FALLBACK_LINES:]).encode()
            run.message = tail[:FALLBACK_BYTES].decode("utf-8", "ignore")

    def _pod_status(self, run: _Run) -> dict[str, Any]:
        state: dict[str, Any]
        if run.exit_code is not None:
            phase = "Succeeded" if run.exit_code == 0 else "Failed"
            state = {"terminated": {
                "exitCode": run.exit_code, "reason": run.reason, "message": run.message or None,
                "startedAt": run.started_at, "finishedAt": run.finished_at,
                "containerID": f"fake://{run.uid}",
            }}  # fmt: skip
        elif run.process is not None:
            phase, state = "Running", {"running": {"startedAt": run.started_at}}
        else:
            phase, state = "Pending", {"waiting": {"reason": "ContainerCreating"}}
        running = "running" in state
        status = {
            "name": run.container.get("name"), "image": run.image, "imageID": f"fake://{run.image}",
            "containerID": f"fake://{run.uid}" if run.started_at else None, "ready": running,
            "started": running, "restartCount": 0, "state": state,
        }  # fmt: skip
        return {
            "phase": phase,
            "hostIP": HOST_IP,
            "startTime": run.created_at,
            "containerStatuses": [{key: value for key, value in status.items() if value is not None}],
        }

    def _write_pod_status(self, run: _Run) -> None:
        status = self._pod_status(run)
        if status == run.written:
            return
        body = {"metadata": {"uid": run.uid}, "status": status}
        try:
            self._call(self._core.patch_namespaced_pod_status, run.name, run.namespace, body)
        except ApiException as exc:
            if exc.status in (404, 409):  # gone, or another pod under the same name now
                run.gone = True
                return
            raise
        run.written = status

    def _release(self, run: _Run) -> None:
        """Remove the Job-tracking finalizer (the pod is counted, or nobody will count it)."""
        try:
            pod = self._call(self._core.read_namespaced_pod, run.name, run.namespace)
            if pod["metadata"]["uid"] != run.uid:
                run.gone = True
                return
            finalizers = pod["metadata"].get("finalizers") or []
            if TRACKING_FINALIZER in finalizers:
                rest = [name for name in finalizers if name != TRACKING_FINALIZER]
                meta = {"finalizers": rest or None, "resourceVersion": pod["metadata"]["resourceVersion"]}
                self._call(self._core.patch_namespaced_pod, run.name, run.namespace, {"metadata": meta})
        except ApiException as exc:
            if exc.status != 404:
                raise  # 409: changed meanwhile, try again on the next pass
            run.gone = True
        run.released = True

    # --- Job controller and TTL controller ----------------------------------------------------------

    def _state(self, job: dict[str, Any]) -> _Job:
        meta = job["metadata"]
        state = self._jobs.get(meta["uid"])
        if state is None:
            status = job.get("status") or {}
            state = _Job(
                namespace=meta["namespace"], name=meta["name"], uid=meta["uid"], obj=job,
                start_time=status.get("startTime"), started=_epoch(status.get("startTime")),
                succeeded=int(status.get("succeeded") or 0), failed=int(status.get("failed") or 0),
                conditions=list(status.get("conditions") or []), completion_time=status.get("completionTime"),
            )  # fmt: skip
            done = [c for c in state.conditions if c.get("type") in FINISHED and c.get("status") == "True"]
            if done:
                state.finished = _epoch(state.completion_time or done[0].get("lastTransitionTime")) or time.time()
            target = next((c for c in state.conditions if c.get("type") == "FailureTarget"), None)
            if target is not None:
                state.failure = (target.get("reason") or "", target.get("message") or "")
            state.completed_indexes = _parse_indexes(status.get("completedIndexes"))
            state.failed_indexes = _parse_indexes(status.get("failedIndexes"))
            state.written = _job_status(state)
            self._jobs[state.uid] = state
        state.obj = job
        return state

    def _sync_job(self, job: dict[str, Any]) -> None:
        state = self._state(job)
        spec = job.get("spec") or {}
        if state.finished is None:
            for run in state.active:
                if run.exit_code is not None and (run.terminal_written or run.gone):
                    self._count(state, run)
            self._decide(state, spec)
        for run in state.runs:  # as the controller does: finalizers off first, then the counts
            if run.counted and not run.released and not run.gone:
                self._release(run)  # an API error here leaves the status for the next pass
        self._write_job_status(state)
        self._expire(state, spec)

    def _decide(self, state: _Job, spec: dict[str, Any]) -> None:
        """Success, failure (with its reason) or more pods."""
        deadline = spec.get("activeDeadlineSeconds")
        completions = int(spec.get("completions") or 1)
        if state.failure is None:
            done = len(state.completed_indexes) if state.indexed else state.succeeded
            if done >= completions:
                message = "Reached expected number of succeeded pods"
                state.conditions += [
                    _condition("SuccessCriteriaMet", "CompletionsReached", message),
                    _condition("Complete", "CompletionsReached", message),
                ]
                state.completion_time, state.finished = now_rfc3339(), time.time()
                return
            backoff_limit = spec.get("backoffLimit")
            default_limit = PER_INDEX_BACKOFF_LIMIT if state.per_index else DEFAULT_BACKOFF_LIMIT
            max_failed = spec.get("maxFailedIndexes")
            settled = state.completed_indexes | state.failed_indexes
            if state.per_index and max_failed is not None and len(state.failed_indexes) > int(max_failed):
                state.failure = ("MaxFailedIndexesExceeded", "Job has exceeded the specified maximal number of "
                                 "failed indexes")  # fmt: skip
            elif state.failed_indexes and len(settled) >= completions and not state.active:
                state.failure = ("FailedIndexes", "Job has failed indexes")
            elif state.failed > (default_limit if backoff_limit is None else int(backoff_limit)):
                state.failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
            elif deadline is not None and state.started is not None and time.time() - state.started >= deadline:
                state.failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
        if state.failure is not None:
            reason, message = state.failure
            if not any(c.get("type") == "FailureTarget" for c in state.conditions):
                state.conditions.append(_condition("FailureTarget", reason, message))
            for run in state.active:
                self._delete_pod(run)
            if not state.active:
                state.conditions.append(_condition("Failed", reason, message))
                state.finished = time.time()
            return
        if spec.get("suspend") or state.obj["metadata"].get("deletionTimestamp"):
            return
        parallelism = int(spec.get("parallelism") or 1) if spec.get("parallelism") != 0 else 0
        if state.indexed:
            running = {run.index for run in state.active}
            settled = state.completed_indexes | state.failed_indexes | running
            waiting = [index for index in range(completions) if index not in settled]
        else:
            waiting = [None] * max(0, completions - state.succeeded - len(state.active))
        for index in waiting[: max(0, parallelism - len(state.active))]:
            self._create_pod(state, index)

    def _count(self, state: _Job, run: _Run) -> None:
        run.counted = True
        if run.exit_code == 0:
            state.succeeded += 1
            if run.index is not None:
                state.completed_indexes.add(run.index)
            return
        rules = ((state.obj.get("spec") or {}).get("podFailurePolicy") or {}).get("rules") or []
        fail_index = False
        for index, rule in enumerate(rules):
            matched = _match_rule(rule, run)
            if matched is None:
                continue
            action = rule.get("action")
            if action == "Ignore":
                return
            if action == "FailJob" and state.failure is None:
                state.failure = ("PodFailurePolicy", f"{matched} matching FailJob rule at index {index}")
            fail_index = action == "FailIndex"
            break  # Count, FailJob and FailIndex count the failure
        state.failed += 1
        if state.per_index and run.index is not None:
            failures = state.index_failures[run.index] = state.index_failures.get(run.index, 0) + 1
            if fail_index or failures > int(state.spec["backoffLimitPerIndex"]):
                state.failed_indexes.add(run.index)

    def _create_pod(self, state: _Job, index: int | None = None) -> None:
        job = state.obj
        template = (job.get("spec") or {}).get("template") or {}
        template_meta, pod_spec = template.get("metadata") or {}, dict(template.get("spec") or {})
        containers = [dict(c) for c in pod_spec.get("containers") or []]
        if not containers:
            raise ValueError(f"job {state.namespace}/{state.name} has no container to run")
        labels = {
            **(template_meta.get("labels") or {}),
            "job-name": state.name, "batch.kubernetes.io/job-name": state.name,
            "controller-uid": state.uid, "batch.kubernetes.io/controller-uid": state.uid,
        }  # fmt: skip
        annotations = dict(template_meta.get("annotations") or {})
        prefix = f"{state.name}-"
        if index is not None:
            labels[INDEX_KEY] = annotations[INDEX_KEY] = str(index)
            prefix = f"{state.name}-{index}-"
            for container in containers:
                env = [var for var in container.get("env") or [] if var.get("name") != "JOB_COMPLETION_INDEX"]
                container["env"] = [{"name": "JOB_COMPLETION_INDEX", "value": str(index)}, *env]
            pod_spec["containers"] = containers
        metadata: dict[str, Any] = {
            "generateName": prefix[:GENERATED_NAME_PREFIX],
            "namespace": state.namespace,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "batch/v1", "kind": "Job", "name": state.name, "uid": state.uid,
                "controller": True, "blockOwnerDeletion": True,
            }],
            "finalizers": [TRACKING_FINALIZER],
        }  # fmt: skip
        if annotations:
            metadata["annotations"] = annotations
        pod_spec["nodeName"] = NODE_NAME
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}
        pod = self._call(self._core.create_namespaced_pod, state.namespace, body)
        grace = pod_spec.get("terminationGracePeriodSeconds")
        run = _Run(
            namespace=state.namespace, name=pod["metadata"]["name"], uid=pod["metadata"]["uid"], job_uid=state.uid,
            image=str(containers[0].get("image") or ""), container=containers[0], pod=pod,
            directory=self.workdir / state.namespace / pod["metadata"]["name"],
            grace=min(float(DEFAULT_GRACE_SECONDS if grace is None else grace), self.grace_cap), index=index,
        )  # fmt: skip
        with self._lock:
            self._runs[run.uid] = run
        state.runs.append(run)
        if state.start_time is None:
            state.start_time, state.started = now_rfc3339(), time.time()
        self._guard(self._write_pod_status, run)  # Pending
        self._guard(self._write_job_status, state)  # active: 1
        try:
            self._spawn(run)
        except Exception as exc:  # e.g. the workdir: the pod fails rather than staying Pending for ever
            log.exception("fake kubelet: could not start pod %s/%s", run.namespace, run.name)
            self._start_failed(run, repr(exc))
        self._guard(self._write_pod_status, run)  # Running (or the start error)

    def _delete_pod(self, run: _Run) -> None:
        """What the controller does to an active pod of a failed Job: delete it (and so stop it)."""
        if run.delete_requested or run.gone:
            return
        body = {"propagationPolicy": "Background", "preconditions": {"uid": run.uid}}
        try:
            self._call(self._core.delete_namespaced_pod, run.name, run.namespace, body=body)
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise
        run.delete_requested = True
        self._terminate(run)

    def _write_job_status(self, state: _Job) -> None:
        status = _job_status(state)
        if status == state.written or state.gone:
            return
        body = {"metadata": {"uid": state.uid}, "status": status}
        try:
            self._call(self._batch.patch_namespaced_job_status, state.name, state.namespace, body)
        except ApiException as exc:
            if exc.status in (404, 409):  # deleted, or recreated under the same name
                state.gone = True
                return
            raise
        state.written = status

    def _expire(self, state: _Job, spec: dict[str, Any]) -> None:
        """The TTL controller: delete a finished Job `ttlSecondsAfterFinished` after it finished."""
        ttl = spec.get("ttlSecondsAfterFinished")
        if ttl is None or state.finished is None or state.ttl_deleted or time.time() - state.finished < ttl:
            return
        body = {"propagationPolicy": "Background", "preconditions": {"uid": state.uid}}
        try:
            self._call(self._batch.delete_namespaced_job, state.name, state.namespace, body=body)
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise
        state.ttl_deleted = True


def _job_status(state: _Job) -> dict[str, Any]:
    """The Job's status as the controller writes it (zero counts omitted, as the API does)."""
    active = state.active
    ready = sum(1 for run in active if run.alive)
    status = {
        "startTime": state.start_time,
        "active": len(active) or None,
        "ready": ready,
        "succeeded": state.succeeded or None,
        "failed": state.failed or None,
        "completionTime": state.completion_time,
        "conditions": [dict(c) for c in state.conditions] or None,
    }
    if state.indexed:
        status["completedIndexes"] = _format_indexes(state.completed_indexes) or None
    if state.per_index:
        status["failedIndexes"] = _format_indexes(state.failed_indexes)
    return status


def _format_indexes(indexes: set[int]) -> str:
    """The API's compressed form: "1,3-5,7"."""
    ranges: list[list[int]] = []
    for index in sorted(indexes):
        if ranges and index == ranges[-1][1] + 1:
            ranges[-1][1] = index
        else:
            ranges.append([index, index])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def _parse_indexes(text: str | None) -> set[int]:
    indexes: set[int] = set()
    for part in (text or "").split(","):
        if part:
            first, _, last = part.partition("-")
            indexes.update(range(int(first), int(last or first) + 1))
    return indexes


def _condition(kind: str, reason: str, message: str) -> dict[str, Any]:
    now = now_rfc3339()
    return {
        "type": kind, "status": "True", "reason": reason, "message": message,
        "lastProbeTime": now, "lastTransitionTime": now,
    }  # fmt: skip


def _match_rule(rule: dict[str, Any], run: _Run) -> str | None:
    """Why a failed pod matches a podFailurePolicy rule (the controller's message), or None."""
    pod_name = f"{run.namespace}/{run.name}"
    on_codes = rule.get("onExitCodes")
    if on_codes is not None:
        wanted = on_codes.get("containerName")
        name = run.container.get("name")
        if wanted is not None and wanted != name:
            return None
        code, values = run.exit_code, {int(v) for v in on_codes.get("values") or []}
        if code is None or code == 0:
            return None
        inside = code in values
        if inside == (on_codes.get("operator") == "In"):
            return f"Container {name} for pod {pod_name} failed with exit code {code}"
        return None
    conditions = ((run.pod or {}).get("status") or {}).get("conditions") or []
    for pattern in rule.get("onPodConditions") or []:
        for condition in conditions:
            if condition.get("type") == pattern.get("type") and condition.get("status") == pattern.get(
                "status", "True"
            ):
                return f"Pod {pod_name} has condition {condition['type']}"
    return None


def _expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined variables are replaced, `$$` is a literal `$`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR_REF.sub(replace, value)


def _base_env(pod_name: str) -> dict[str, str]:
    """What every container gets before its own `env`: nothing else of the test's environment."""
    bin_dir = os.path.dirname(sys.executable)
    env = {"PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", os.defpath)]), "HOSTNAME": pod_name}
    for name in ("LANG", "ROUGHY_FFMPEG"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def _resolve(command: str) -> str | None:
    """command[0]: in the venv's bin first (where the project's entry points are), then PATH."""
    if os.path.isabs(command) and os.access(command, os.X_OK):
        return command
    name = os.path.basename(command)
    local = os.path.join(os.path.dirname(sys.executable), name)
    if os.access(local, os.X_OK) and not os.path.isdir(local):
        return local
    return shutil.which(name)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _epoch(timestamp: str | None) -> float | None:
    if not timestamp:
        return None
    parsed = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
