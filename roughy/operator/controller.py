"""What the operator does for one Render: reconcile it with its Job, the database and storage.

`sync(namespace, name)` reads the Render, its Job and the Job's pods, and hands what it saw to
the pure `roughy.kube.reconcile.decide`; then it carries out the decision:

- `create_job`: build the Job (`roughy.kube.jobs.build_job`) with presigned URLs for the
  sources and the output, and create it (AlreadyExists: it is running already);
- progress: the encoder's `{"progress"}` lines, read from the running pod's log (the pod has no
  API credentials, so it cannot write the Render itself), go to the Render's status and to the
  render's row (only forward);
- `record`: the outcome, read from the pod's termination message (the encoder writes its
  `result` or `error` there), is written to the render's row with its outbox event in one
  transaction (`store.finish_render`); a failed render's partial outputs are deleted;
- the status is patched (status subresource) only when it changed, and state changes are
  posted as Kubernetes Events.

A Render whose render row is gone (cancelled while the cluster was unreachable) is deleted.

`finalize(namespace, name, body)` runs while a deleted Render is held by the finalizer: it
deletes the Job (foreground: the kubelet stops the encoder, SIGTERM then SIGKILL) and raises
`kopf.TemporaryError` until the Job is gone; then the database decides what happens to the
outputs: kept for a completed render, deleted otherwise (cancelled, failed, unknown). A Render
deleted by `roughy drain` puts its unfinished render back in the queue; one deleted by hand
(`kubectl delete render`) fails its render, so that it is not submitted again.

Kubernetes API errors: 429, 5xx and network errors are temporary (`kopf.TemporaryError`,
retried with a delay); others (403, a Job the API rejects) are permanent for this attempt and
fail the render with `internal_error` when the Job cannot be created at all.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf
import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from roughy.adapters.executor.kube import ANNOTATION_DELETION_REASON
from roughy.adapters.executor.kube_tasks import job_pods, json_line, last_outcome, pod_log
from roughy.core.keys import render_prefix
from roughy.core.models import ErrorInfo, RenderResult, RenderState
from roughy.kube import crd
from roughy.kube.jobs import JobSettings, PresignedUrls, active_deadline_seconds, build_job, job_name
from roughy.kube.reconcile import JobObservation, decide

log = logging.getLogger(__name__)

TEMPORARY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
LOG_TAIL_LINES = 20
LOG_HEAD_BYTES = 512  # the encoder's first line names the encoder used
REQUEST_TIMEOUT = 30  # seconds per Kubernetes API call: a hung connection must not hold a worker
OUTPUT_UPLOAD_BUDGET = 96 * 1024  # bytes of ROUGHY_OUTPUT_UPLOAD (one env string: 128 KiB at most)
MAX_PART_SIZE = 5 * 2**30  # S3's largest part
URL_MARGIN = 3600  # presigned URLs outlive the Job's deadline by this much
MAX_URL_TTL = 7 * 24 * 3600  # what SigV4 allows


@dataclass(frozen=True)
class ControllerConfig:
    namespace: str
    jobs: JobSettings
    url_ttl: int = 24 * 3600  # presigned source/output URLs: longer than the Job's deadline


class Controller:
    def __init__(
        self,
        store: Any,
        storage: Any,
        api: k8s.ApiClient,
        config: ControllerConfig,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.store = store
        self.storage = storage
        self.config = config
        self.batch = k8s.BatchV1Api(api)
        self.core = k8s.CoreV1Api(api)
        self.objects = k8s.CustomObjectsApi(api)
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
        decision = decide(status, int(meta.get("generation") or 1), observation, self.clock())
        new = dict(decision.status)
        if "create_job" in decision.actions:
            new |= self._create_job(render, new)
        if "record" in decision.actions:
            self._record(render_id, new)
        if new.get("state") == RenderState.RUNNING.value and new.get("progress"):
            self.store.set_progress(render_id, float(new["progress"]))
        if new != status:
            self._patch_status(namespace, name, new, status)
            self._announce(render, status, new)
        return new

    def observe(self, namespace: str, job: str, status: dict[str, Any], *, video: bool = True) -> JobObservation:
        """What the Job and its pods say: counts, conditions, the outcome, progress."""
        found = self._read_job(namespace, job)
        if found is None:
            return JobObservation(exists=False)
        job_status = found.status or k8s.V1JobStatus()
        conditions = {c.type: c for c in job_status.conditions or [] if c.status == "True"}
        failed = conditions.get("Failed")
        pods = job_pods(self.core, namespace, found)
        outcome, exit_code, _ = last_outcome(pods)
        progress, encoder = None, outcome.get("encoder")
        running = [p for p in pods if p.status and p.status.phase == "Running"]
        started = bool(running) or any(p.status and p.status.phase in ("Succeeded", "Failed") for p in pods)
        if running and not conditions:
            progress, logged_encoder = self._read_progress(namespace, running[-1].metadata.name, status, video)
            encoder = encoder or logged_encoder
        result = outcome.get("result")
        return JobObservation(
            exists=True,
            active=job_status.active or 0,
            succeeded=job_status.succeeded or 0,
            failed=job_status.failed or 0,
            complete="Complete" in conditions,
            failed_reason=(failed.reason or "Failed") if failed is not None else None,
            exit_code=exit_code,
            result=_camel_result(result) if isinstance(result, dict) else None,
            error=outcome.get("error") if isinstance(outcome.get("error"), dict) else None,
            encoder=encoder if isinstance(encoder, str) else None,
            progress=progress,
            started=started,
        )

    def _read_progress(
        self, namespace: str, pod: str, status: dict[str, Any], video: bool
    ) -> tuple[float | None, str | None]:
        try:
            tail = pod_log(self.core, namespace, pod, tail_lines=LOG_TAIL_LINES)
            head = ""
            if video and not status.get("encoder"):  # the log's first line names the encoder used
                head = pod_log(self.core, namespace, pod, limit_bytes=LOG_HEAD_BYTES)
        except ApiException as exc:
            if exc.status in (400, 404):  # not started yet, or gone: no progress to read
                return None, None
            raise
        progress = None
        for line in reversed(tail.splitlines()):
            value = json_line(line).get("progress")
            if isinstance(value, int | float):
                progress = float(value)
                break
        encoder = None
        for line in head.splitlines():
            value = json_line(line).get("encoder")
            if isinstance(value, str):
                encoder = value
                break
        return progress, encoder

    def _create_job(self, render: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """Create the encoder Job; the status fields to add (jobName, or a failure)."""
        meta, spec = render["metadata"], render["spec"]
        sources = spec.get("sources") or {}
        try:
            ttl = self._url_ttl(render)
            target = self._output_target(spec["outputKey"], _max_output_bytes(render), ttl)
            single = str(target["method"]).upper() == "PUT"
            urls = PresignedUrls(
                output=str(target["url"]) if single else None,
                output_upload=None if single else target,
                video=self.storage.source_url(sources["video"], ttl=ttl) if sources.get("video") else None,
                audio=self.storage.source_url(sources["audio"], ttl=ttl) if sources.get("audio") else None,
            )
            job = build_job(render, self.config.jobs, urls)
        except (ValidationError, ValueError, KeyError) as exc:
            log.error("Render %s: no Job can be built for it: %s", meta["name"], exc)
            return self._fail_now(spec.get("renderId", ""), status, f"the render's Job could not be built: {exc}")
        try:
            self.batch.create_namespaced_job(meta["namespace"], job, _request_timeout=REQUEST_TIMEOUT)
            log.info("Render %s: created Job %s", meta["name"], job["metadata"]["name"])
        except ApiException as exc:
            if not single:  # this Job's upload will not be used: do not leave it open
                self.storage.abort_multipart(spec["outputKey"], str(target["upload_id"]))
            if exc.status == 409:
                pass  # created by an earlier attempt: it is running
            elif exc.status in TEMPORARY_STATUSES or (exc.status == 403 and "exceeded quota" in str(exc.body)):
                raise kopf.TemporaryError(f"the Job cannot be created yet: {exc.reason}", delay=10) from exc
            else:
                log.error("Render %s: the API refused its Job: %s %s", meta["name"], exc.status, exc.reason)
                return self._fail_now(spec.get("renderId", ""), status, f"the encode Job was refused ({exc.reason})")
        return {"jobName": job["metadata"]["name"]}

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

    def _url_ttl(self, render: dict[str, Any]) -> int:
        """Presigned URLs must outlive every attempt of the Job: its whole deadline, plus a margin
        (a retry late in the deadline reads the same URLs), within what SigV4 allows."""
        plan = crd.RenderSpec.model_validate(render["spec"]).plan.to_plan()
        deadline = active_deadline_seconds(plan, self.config.jobs)
        if deadline + URL_MARGIN > MAX_URL_TTL:
            raise ValueError(f"the encode's deadline ({deadline} s) is longer than a presigned URL can live")
        return max(self.config.url_ttl, deadline + URL_MARGIN)

    def _fail_now(self, render_id: str, status: dict[str, Any], message: str) -> dict[str, Any]:
        stamp = _stamp(self.clock())
        failed = {"state": "failed", "completedAt": stamp, "error": {"code": "internal_error", "message": message}}
        conditions = [c for c in status.get("conditions") or [] if c.get("type") not in ("Running", "Ready")]
        for type_ in ("Running", "Ready"):
            conditions.append(
                {"type": type_, "status": "False", "reason": "Failed", "message": message, "lastTransitionTime": stamp}
            )
        failed["conditions"] = conditions
        self._record(render_id, status | failed)
        return failed

    def _record(self, render_id: str, status: dict[str, Any]) -> None:
        """The outcome into the render's row and its outbox event (one transaction). The row may
        be pending as well as running: the API puts a claim back in the queue when it cannot
        tell whether its Render was created, and the outcome is the truth either way."""
        state = status.get("state")
        if state == RenderState.COMPLETED.value:
            finished = self.store.finish_render(render_id, _render_result(status["result"]), None, from_pending=True)
        else:
            error = status.get("error") or {}
            info = ErrorInfo(str(error.get("code") or "encode_failed"), str(error.get("message") or ""))
            finished = self.store.finish_render(render_id, None, info, from_pending=True)
        row = None if finished else self.store.get_render(render_id)
        if (finished and state != RenderState.COMPLETED.value) or (
            not finished and (row is None or row.state is RenderState.FAILED)
        ):
            self.storage.delete_prefix(render_prefix(render_id))  # failed, or cancelled meanwhile
        log.info("render %s %s%s", render_id, state, "" if finished else " (already settled)")

    # --- finalize ----------------------------------------------------------------------------

    def finalize(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        """Stop the Job, then settle the render and its outputs. Raises kopf.TemporaryError
        while the Job is still there (kopf calls again; the finalizer holds the Render)."""
        with _temporary_on_api_errors():
            job = self._read_job(namespace, job_name(name))
            if job is not None:
                if job.metadata.deletion_timestamp is None:
                    options = k8s.V1DeleteOptions(propagation_policy="Foreground")
                    try:
                        self.batch.delete_namespaced_job(
                            job_name(name), namespace, body=options, _request_timeout=REQUEST_TIMEOUT
                        )
                    except ApiException as exc:
                        if exc.status != 404:
                            raise
                    log.info("Render %s deleted: stopping Job %s", name, job_name(name))
                raise kopf.TemporaryError(f"waiting for Job {job_name(name)} to be gone", delay=1)
        spec = body.get("spec") or {}
        meta = body.get("metadata") or {}
        reason = (meta.get("annotations") or {}).get(ANNOTATION_DELETION_REASON)
        render_id = spec.get("renderId", "")
        row = self.store.get_render(render_id) if render_id else None
        if row is not None and row.state is RenderState.COMPLETED:
            return  # the output belongs to a completed render: the database keeps it
        if row is not None and row.state in (RenderState.RUNNING, RenderState.PENDING):
            if reason == "drain":
                self.store.release_render(render_id)
            else:
                message = "the render's Render resource was deleted on the cluster before the encode finished"
                self.store.finish_render(render_id, None, ErrorInfo("encode_failed", message), from_pending=True)
        if render_id:
            self.storage.delete_prefix(render_prefix(render_id))
        self._locks.pop(f"{namespace}/{name}", None)
        log.info("Render %s finalized (%s)", name, reason or "deleted")

    # --- API calls ---------------------------------------------------------------------------

    def _get_render(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = self.objects.get_namespaced_custom_object(
                crd.GROUP, crd.VERSION, namespace, crd.PLURAL, name, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(found)

    def _read_job(self, namespace: str, name: str) -> k8s.V1Job | None:
        try:
            return self.batch.read_namespaced_job(name, namespace, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _patch_status(self, namespace: str, name: str, new: dict[str, Any], old: dict[str, Any]) -> None:
        patch: dict[str, Any] = {key: value for key, value in new.items() if old.get(key) != value}
        patch |= {key: None for key in old if key not in new}
        self.objects.patch_namespaced_custom_object_status(
            crd.GROUP, crd.VERSION, namespace, crd.PLURAL, name, {"status": patch}, _request_timeout=REQUEST_TIMEOUT
        )

    def _delete_render(self, namespace: str, name: str, uid: str | None) -> None:
        options = k8s.V1DeleteOptions(propagation_policy="Foreground", preconditions=k8s.V1Preconditions(uid=uid))
        try:
            self.objects.delete_namespaced_custom_object(
                crd.GROUP, crd.VERSION, namespace, crd.PLURAL, name, body=options, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

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
    """Kubernetes client errors that will pass (429, 5xx, the network) become
    kopf.TemporaryError, which kopf retries after a delay."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, ApiException) and (exc.status in TEMPORARY_STATUSES or not exc.status):
            raise kopf.TemporaryError(f"the Kubernetes API answered {exc.status} {exc.reason}", delay=2) from exc
        if isinstance(exc, urllib3.exceptions.HTTPError):
            raise kopf.TemporaryError(f"the Kubernetes API is unreachable: {exc}", delay=2) from exc


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


def _camel_result(result: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return crd.dump_resource(crd.ResultStatus.from_result(RenderResult.from_json(result)))
    except (KeyError, TypeError, ValueError):  # pydantic's ValidationError is a ValueError
        return None


def _render_result(status_result: dict[str, Any]) -> RenderResult:
    return crd.ResultStatus.model_validate(status_result).to_result()


def _stamp(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")
