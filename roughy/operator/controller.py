"""What the operator does for one Render: reconcile it with its Job, the database and storage.

`sync(namespace, name)` reads the Render, its Job and the Job's pods, and hands what it saw to
the pure `roughy.kube.reconcile.decide`; then it carries out the decision:

- `create_job`: build the Job (`roughy.kube.jobs.build_job`) with presigned URLs for the
  sources and the output, and create it (AlreadyExists: it is running already);
- progress: the encoder's `{"progress"}` lines, read from the running pod's log (the pod has no
  API credentials, so it cannot write the Render itself), go to the Render's status and to the
  render's row (only forward);
- `record`: the outcome, read from the pod's termination message (the encoder writes its
  `result` or `error` there), goes to the render service (`RenderService.finished`, as the
  embedded executor's do): the row and its outbox event in one transaction, a failed render's
  partial outputs deleted;
- the status is patched (status subresource) only when it changed, and state changes are
  posted as Kubernetes Events.

A Render whose render row is gone (cancelled while the cluster was unreachable) is deleted.

`finalize(namespace, name, body)` runs while a deleted Render is held by the finalizer: it
deletes the Job (foreground: the kubelet stops the encoder, SIGTERM then SIGKILL) and raises
`kopf.TemporaryError` until the Job is gone; then the database decides what happens to the
outputs: kept for a completed render, deleted otherwise (cancelled, failed, unknown). A Render
deleted by `roughy drain` puts its unfinished render back in the queue; one deleted by hand
(`kubectl delete render`) fails its render, so that it is not submitted again.

Kubernetes API calls go through `roughy.adapters.kubeapi.KubeApi`. Its `KubeTemporaryError`
(network errors, timeouts, 401, 408, 429, 5xx, an exceeded quota) becomes `kopf.TemporaryError`,
retried with a delay, in one place (`_retry_later`); its `KubePermanentError` (403, a Job the API
rejects) is permanent for this attempt and fails the render with `internal_error` when the Job
cannot be created at all.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import kopf
from pydantic import ValidationError

from roughy.adapters.executor.kube import ANNOTATION_DELETION_REASON
from roughy.adapters.executor.kube_tasks import job_pods, last_outcome, pod_log
from roughy.adapters.kubeapi import KubeApi, KubeConflict, KubeError, KubePermanentError, KubeTemporaryError
from roughy.app.renders import RenderService
from roughy.core.models import RenderResult, RenderState
from roughy.core.ports import Outcome, PresignedStorage
from roughy.encoder.protocol import Messages
from roughy.kube import crd
from roughy.kube.jobs import (
    ENV_VALUE_BUDGET,
    JobSettings,
    PresignedUrls,
    active_deadline_seconds,
    build_chunk_job,
    build_job,
    chunk_job_name,
    chunk_keys,
    chunk_prefix,
    job_name,
)
from roughy.kube.reconcile import JobObservation, decide, failed

#: What a chunked render's chunks are known to be once its join Job exists: done.
CHUNKS_DONE = JobObservation(exists=True, complete=True)

if TYPE_CHECKING:  # the client's models come through the adapter; only their types are named here
    from kubernetes import client as k8s

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 20
LOG_HEAD_BYTES = 512  # the encoder's first line names the encoder used
RETRY_DELAY = 2.0  # seconds before kopf calls again after a temporary API error
JOB_RETRY_DELAY = 10.0  # ... when the Job cannot be created yet (a quota, an overloaded API)
OUTPUT_UPLOAD_BUDGET = ENV_VALUE_BUDGET  # bytes of ROUGHY_OUTPUT_UPLOAD (one environment value)
MAX_PART_SIZE = 5 * 2**30  # S3's largest part
URL_MARGIN = 3600  # presigned URLs outlive the Job's deadline by this much
MAX_URL_TTL = 7 * 24 * 3600  # what SigV4 allows
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"  # a pod's index in an Indexed Job


@dataclass(frozen=True)
class ControllerConfig:
    namespace: str
    jobs: JobSettings
    url_ttl: int = 24 * 3600  # presigned source/output URLs: longer than the Job's deadline


class Controller:
    def __init__(
        self,
        renders: RenderService,
        storage: PresignedStorage,
        api: KubeApi,
        config: ControllerConfig,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.renders = renders
        self.store = renders.store
        self.storage = storage
        self.config = config
        self.api = api
        self.clock = clock
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    # --- reconcile ---------------------------------------------------------------------------

    def sync(self, namespace: str, name: str) -> dict[str, Any] | None:
        """Reconcile one Render; return the status it now has (None if it is gone)."""
        with self._locks[f"{namespace}/{name}"], _temporary_on_api_errors():
            render = self._get_render(namespace, name)
            if render is None or render["metadata"].get("deletionTimestamp"):
                return None
            return self._sync(render)

    def _sync(self, render: dict[str, Any]) -> dict[str, Any]:
        meta, spec = render["metadata"], render.get("spec") or {}
        namespace, name = meta["namespace"], meta["name"]
        status = dict(render.get("status") or {})
        render_id = spec.get("renderId", "")
        row = self.store.get_render(render_id)
        if row is None:
            log.info("Render %s: render %s is gone; deleting the Render", name, render_id)
            self._delete_render(namespace, name, meta.get("uid"))
            return status
        video = bool((spec.get("plan") or {}).get("video"))
        observation = self.observe(namespace, job_name(name), status, video=video)
        chunks = None
        if (spec.get("plan") or {}).get("chunks"):  # a chunked render: the chunks' Job comes first
            # Once they are done (the join exists, or the status says so: their Job may have been
            # deleted by its TTL since) the chunks' Job is not read again, nor made again.
            done = observation.exists or bool(status.get("chunksDone"))
            chunks = CHUNKS_DONE if done else self.observe(namespace, chunk_job_name(name), status, chunks=True)
        queue = self.config.jobs.queue_seconds
        decision = decide(status, int(meta.get("generation") or 1), observation, self.clock(), chunks, queue)
        new = dict(decision.status)
        if "create_chunk_job" in decision.actions:
            new |= self._create_chunk_job(render, new)
        if "create_job" in decision.actions:
            new |= self._create_job(render, new)
        if "record" in decision.actions:
            if chunks is not None and new.get("state") == RenderState.COMPLETED.value:
                # Joined: the chunks are spent. Removed before the render is seen completed, so
                # that a completed render has nothing but its output (a failed one: nothing).
                self.storage.delete_prefix(chunk_prefix(spec["outputKey"]))
            self._record(render_id, new)
        if "delete_jobs" in decision.actions:  # their pods would start some day, for nobody
            for job in (job_name(name), chunk_job_name(name)):
                self.api.delete_job(namespace, job, propagation="Background")
        if new.get("state") == RenderState.RUNNING.value and decision.progress:
            self.renders.progress(render_id, decision.progress)  # every value: the status has steps
        if new != status:
            self._patch_status(namespace, name, new, status)
            self._announce(render, status, new)
        finished = new.get("state") in (RenderState.COMPLETED.value, RenderState.FAILED.value)
        if finished and (meta.get("labels") or {}).get(crd.LABEL_FINISHED) != "true":
            self.label_finished(namespace, name)
        return new

    def observe(
        self, namespace: str, job: str, status: dict[str, Any], *, video: bool = True, chunks: bool = False
    ) -> JobObservation:
        """What the Job and its pods say: counts, conditions, the outcome, progress. `chunks`:
        the Indexed Job of a chunked render, whose progress is its count of chunks done (no pod
        log is read) and whose outcome is that of the newest pod that failed, else the newest."""
        found = self._read_job(namespace, job)
        if found is None:
            return JobObservation(exists=False)
        job_status = found.status
        conditions = {c.type: c for c in getattr(job_status, "conditions", None) or [] if c.status == "True"}
        failed = conditions.get("Failed")
        pods = job_pods(self.api, namespace, found)
        outcome, exit_code, _ = last_outcome(pods)
        if chunks:  # the error of a chunk that failed for good, not of one a retry got past
            failed_indexes = _indexes(getattr(job_status, "failed_indexes", None))
            candidates = [p for p in pods if not failed_indexes or _pod_index(p) in failed_indexes]
            errors = [(o, code) for o, code, _ in map(last_outcome, ([p] for p in candidates)) if "error" in o]
            outcome, exit_code = errors[-1] if errors else (outcome, exit_code)
        progress, encoder = None, outcome.get("encoder")
        running = [p for p in pods if p.status and p.status.phase == "Running"]
        started = bool(running) or any(p.status and p.status.phase in ("Succeeded", "Failed") for p in pods)
        if running and not conditions and not chunks:
            progress, logged_encoder = self._read_progress(namespace, running[-1].metadata.name, status, video)
            encoder = encoder or logged_encoder
        result = outcome.get("result")
        return JobObservation(
            exists=True,
            active=getattr(job_status, "active", None) or 0,
            succeeded=getattr(job_status, "succeeded", None) or 0,
            failed=getattr(job_status, "failed", None) or 0,
            complete="Complete" in conditions,
            failed_reason=(failed.reason or "Failed") if failed is not None else None,
            exit_code=exit_code,
            result=_camel_result(result) if isinstance(result, dict) else None,
            error=outcome.get("error") if isinstance(outcome.get("error"), dict) else None,
            encoder=encoder if isinstance(encoder, str) else None,
            progress=progress,
            started=started,
            completions=(found.spec.completions if found.spec else None) or 1,
            created_at=found.metadata.creation_timestamp if found.metadata else None,
        )

    def _read_progress(
        self, namespace: str, pod: str, status: dict[str, Any], video: bool
    ) -> tuple[float | None, str | None]:
        try:
            tail = pod_log(self.api, namespace, pod, tail_lines=LOG_TAIL_LINES)
            head = ""
            if video and not status.get("encoder"):  # the log's first line names the encoder used
                head = pod_log(self.api, namespace, pod, limit_bytes=LOG_HEAD_BYTES)
        except KubePermanentError as exc:
            if exc.status in (400, 404):  # not started yet, or gone: no progress to read
                return None, None
            raise
        return Messages.read(tail.splitlines()).progress, Messages.read(head.splitlines()).encoder

    def _create_job(self, render: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """Create the encoder Job; the status fields to add (jobName, or a failure)."""
        meta, spec = render["metadata"], render["spec"]
        sources = spec.get("sources") or {}
        target: dict[str, Any] | None = None
        try:
            ttl = self._url_ttl(render)
            target = self._output_target(spec["outputKey"], _max_output_bytes(render), ttl)
            single = str(target["method"]).upper() == "PUT"
            urls = PresignedUrls(
                output=str(target["url"]) if single else None,
                output_upload=None if single else target,
                video=self.storage.source_url(sources["video"], ttl=ttl) if sources.get("video") else None,
                audio=self.storage.source_url(sources["audio"], ttl=ttl) if sources.get("audio") else None,
                chunks=self._chunk_sources(render, ttl),
            )
            job = build_job(render, self.config.jobs, urls)
        except (ValidationError, ValueError, KeyError) as exc:
            if target is not None and str(target["method"]).upper() != "PUT":  # opened for nothing
                self.storage.abort_multipart(spec["outputKey"], str(target["upload_id"]))
            log.error("Render %s: no Job can be built for it: %s", meta["name"], exc)
            return self._fail_now(spec.get("renderId", ""), status, f"the render's Job could not be built: {exc}")
        created, refused = False, None
        try:
            created, refused = self._submit(render, job)
        finally:
            if not created and not single:  # this Job's upload will not be used: do not leave it open
                self.storage.abort_multipart(spec["outputKey"], str(target["upload_id"]))
        if refused is not None:
            return self._fail_now(spec.get("renderId", ""), status, f"the encode Job was refused ({refused.reason})")
        return {"jobName": job["metadata"]["name"]}

    def _create_chunk_job(self, render: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """Create the Indexed Job of a chunked render's chunks, each pod with a presigned PUT for
        its chunk; the status fields to add (none, or a failure)."""
        meta, spec = render["metadata"], render["spec"]
        try:
            ttl = self._url_ttl(render)
            plan = crd.RenderSpec.model_validate(spec).plan.to_plan()
            keys = chunk_keys(spec["outputKey"], len(plan.chunks or ()))
            urls = tuple(self.storage.output_target(key, ttl=ttl) for key in keys)
            video = self.storage.source_url(spec["sources"]["video"], ttl=ttl)
            job = build_chunk_job(render, self.config.jobs, video_url=video, chunk_urls=urls)
        except (ValidationError, ValueError, KeyError, TypeError) as exc:
            log.error("Render %s: no chunk Job can be built for it: %s", meta["name"], exc)
            return self._fail_now(spec.get("renderId", ""), status, f"the render's chunk Job could not be built: {exc}")
        _, refused = self._submit(render, job)
        if refused is not None:
            return self._fail_now(spec.get("renderId", ""), status, f"the chunk Job was refused ({refused.reason})")
        return {}

    def _submit(self, render: dict[str, Any], job: dict[str, Any]) -> tuple[bool, KubeError | None]:
        """Create `job`: (True, None) when this call created it, (False, None) when it exists
        already (an earlier attempt made it: it runs), (False, error) when the API refuses it for
        good. A temporary error is retried later (kopf.TemporaryError)."""
        try:
            self.api.create_job(render["metadata"]["namespace"], job)
        except KubeConflict:
            return False, None
        except KubeTemporaryError as exc:
            raise _retry_later(exc, "the Job cannot be created yet", delay=JOB_RETRY_DELAY) from exc
        except KubeError as exc:
            log.error("Render %s: the API refused Job %s: %s", render["metadata"]["name"], job["metadata"]["name"], exc)
            return False, exc
        log.info("Render %s: created Job %s", render["metadata"]["name"], job["metadata"]["name"])
        return True, None

    def _output_target(self, key: str, max_size: int, ttl: int) -> dict[str, Any]:
        """The output's upload: one presigned PUT, or a multipart upload whose part URLs fit in
        one environment variable (Linux caps one at 128 KiB; URLs signed with a session token
        are several KiB each): with long URLs, fewer and bigger parts."""
        part_size: int | None = None
        for _ in range(4):
            target: dict[str, Any] = self.storage.output_upload(key, max_size, part_size=part_size, ttl=ttl)
            if str(target["method"]).upper() == "PUT":
                return target
            size = len(json.dumps(target, default=str))
            if size <= OUTPUT_UPLOAD_BUDGET:
                return target
            self.storage.abort_multipart(key, str(target["upload_id"]))
            parts = max(1, int(len(target["parts"]) * OUTPUT_UPLOAD_BUDGET / size) - 1)
            part_size = -(-max_size // parts)
            if part_size > MAX_PART_SIZE:
                break
        raise ValueError("the output's upload URLs do not fit in the encoder's environment")

    def _chunk_sources(self, render: dict[str, Any], ttl: int) -> tuple[str, ...]:
        """GETs of a chunked render's chunks, for its join (none for a render not chunked)."""
        plan = crd.RenderSpec.model_validate(render["spec"]).plan.to_plan()
        keys = chunk_keys(render["spec"]["outputKey"], len(plan.chunks or ()))
        return tuple(self.storage.source_url(key, ttl=ttl) for key in keys)

    def _url_ttl(self, render: dict[str, Any]) -> int:
        """Presigned URLs must outlive every attempt of the Job: its whole deadline, plus a margin
        (a retry late in the deadline reads the same URLs), within what SigV4 allows."""
        plan = crd.RenderSpec.model_validate(render["spec"]).plan.to_plan()
        deadline = active_deadline_seconds(plan, self.config.jobs)
        if deadline + URL_MARGIN > MAX_URL_TTL:
            raise ValueError(f"the encode's deadline ({deadline} s) is longer than a presigned URL can live")
        return max(self.config.url_ttl, deadline + URL_MARGIN)

    def _fail_now(self, render_id: str, status: dict[str, Any], message: str) -> dict[str, Any]:
        new = failed(status, {"code": "internal_error", "message": message}, _stamp(self.clock()))
        self._record(render_id, new)
        return {key: value for key, value in new.items() if status.get(key) != value}

    def _record(self, render_id: str, status: dict[str, Any]) -> None:
        """The outcome, through the render service (the same path as the embedded runtime's)."""
        if status.get("state") == RenderState.COMPLETED.value:
            self.renders.finished(render_id, Outcome(result=_render_result(status["result"])))
        else:
            error = status.get("error") or {}
            code, message = str(error.get("code") or "encode_failed"), str(error.get("message") or "")
            self.renders.finished(render_id, Outcome.failed(code, message))

    def label_finished(self, namespace: str, name: str) -> None:
        """Label a recorded Render finished: lists of what still runs leave it out from now on,
        and pruning finds it (also run on resume for one finished before the label existed)."""
        with _temporary_on_api_errors():
            self.api.patch_render(namespace, name, {"metadata": {"labels": {crd.LABEL_FINISHED: "true"}}})

    # --- finalize ----------------------------------------------------------------------------

    def finalize(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        """Stop the Job, then settle the render and its outputs. Raises kopf.TemporaryError
        while the Job is still there (kopf calls again; the finalizer holds the Render)."""
        with self._locks[f"{namespace}/{name}"], _temporary_on_api_errors():  # no sync creates a Job meanwhile
            waiting = []
            for job_name_ in (job_name(name), chunk_job_name(name)):  # a chunked render has both
                job = self._read_job(namespace, job_name_)
                if job is None:
                    continue
                if job.metadata.deletion_timestamp is None:
                    self.api.delete_job(namespace, job_name_, propagation="Foreground")  # False: gone
                    log.info("Render %s deleted: stopping Job %s", name, job_name_)
                waiting.append(job_name_)
            if waiting:
                raise kopf.TemporaryError(f"waiting for Job {', '.join(waiting)} to be gone", delay=1)
        spec = body.get("spec") or {}
        meta = body.get("metadata") or {}
        reason = (meta.get("annotations") or {}).get(ANNOTATION_DELETION_REASON)
        render_id = spec.get("renderId", "")
        if render_id:
            self.renders.execution_removed(render_id, requeue=reason == "drain")
        self._locks.pop(f"{namespace}/{name}", None)
        log.info("Render %s finalized (%s)", name, reason or "deleted")

    # --- API calls ---------------------------------------------------------------------------

    def _get_render(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.api.get_render(namespace, name)

    def _read_job(self, namespace: str, name: str) -> k8s.V1Job | None:
        return self.api.read_job(namespace, name)

    def _patch_status(self, namespace: str, name: str, new: dict[str, Any], old: dict[str, Any]) -> None:
        patch: dict[str, Any] = {key: value for key, value in new.items() if old.get(key) != value}
        patch |= {key: None for key in old if key not in new}
        self.api.patch_render_status(namespace, name, patch)

    def _delete_render(self, namespace: str, name: str, uid: str | None) -> None:
        try:
            self.api.delete_render(namespace, name, uid=uid, propagation="Foreground")  # False: gone already
        except KubeConflict:
            pass  # another object of that name now: not the one whose render is gone

    def _announce(self, render: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> None:
        """A Kubernetes Event per state change (what `kubectl describe render` shows)."""
        before, after = old.get("state"), new.get("state")
        if before == after:
            return
        if after == "failed":
            error = new.get("error") or {}
            _post(render, "Warning", "Failed", f"{error.get('code')}: {error.get('message')}")
        elif after == "completed":
            result = new.get("result") or {}
            _post(render, "Normal", "Completed", f"{result.get('sizeBytes')} bytes, {result.get('duration')} s")
        elif after == "running":
            _post(render, "Normal", "Started", f"encoding with {new.get('encoder') or 'the encoder'}")
        elif after == "pending" and new.get("jobName"):
            _post(render, "Normal", "JobCreated", f"created Job {new['jobName']}")


class _temporary_on_api_errors:  # noqa: N801 - used as a context manager, like contextlib's
    """Kubernetes API errors that will pass (KubeTemporaryError) become kopf.TemporaryError,
    which kopf retries after a delay. Permanent ones leave as they are."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, KubeTemporaryError):
            raise _retry_later(exc, "the Kubernetes API is not available") from exc


def _retry_later(exc: KubeTemporaryError, what: str, *, delay: float = RETRY_DELAY) -> kopf.TemporaryError:
    """The one place a temporary Kubernetes error becomes kopf's: retried after `delay`, or
    after the wait the API asked for when that is longer."""
    return kopf.TemporaryError(f"{what}: {exc}", delay=max(delay, exc.retry_after or 0))


def _post(render: dict[str, Any], type_: str, reason: str, message: str) -> None:
    try:
        kopf.event(render, type=type_, reason=reason, message=message[:1024])  # type: ignore[arg-type]
    except LookupError:  # outside kopf's handlers (no event queue): nothing to post to
        log.debug("no kopf event queue for %s %s", reason, message)


def _max_output_bytes(render: dict[str, Any]) -> int:
    """An upper bound of the output's size from its plan: the bitrates over the duration, twice
    over (an average bitrate is a target, not a cap), plus rate-control buffers and room for
    the container."""
    plan = crd.RenderSpec.model_validate(render["spec"]).plan.to_plan()
    kbps = (plan.video.bitrate_kbps if plan.video else 0) + (plan.audio.bitrate_kbps if plan.audio else 0)
    bytes_per_second = kbps * 1000 / 8
    # x264's rate control allows peaks (maxrate 1.5x, a 2x buffer): room for a short output's
    # whole buffer on top of twice the average.
    return int(plan.duration * bytes_per_second * 2 + bytes_per_second * 4) + 2**20


def _indexes(text: str | None) -> set[int]:
    """A Job status' compressed index list ("1,3-5") as a set."""
    indexes: set[int] = set()
    for part in (text or "").split(","):
        first, _, last = part.partition("-")
        if first.strip().isdigit():
            indexes.update(range(int(first), int(last or first) + 1))
    return indexes


def _pod_index(pod: k8s.V1Pod) -> int | None:
    value = ((pod.metadata.annotations if pod.metadata else None) or {}).get(COMPLETION_INDEX)
    return int(value) if value is not None and str(value).isdigit() else None


def _camel_result(result: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return crd.dump_resource(crd.ResultStatus.from_result(RenderResult.from_json(result)))
    except (KeyError, TypeError, ValueError):  # pydantic's ValidationError is a ValueError
        return None


def _render_result(status_result: dict[str, Any]) -> RenderResult:
    return crd.ResultStatus.model_validate(status_result).to_result()


def _stamp(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")
