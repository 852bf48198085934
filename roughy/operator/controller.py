"""What the operator does for one Render: reconcile it with its Job, the database and storage.

`sync(namespace, name)` reads the Render, its Job and the Job's pods, and hands what it saw to
the pure `roughy.kube.reconcile.decide`; then it carries out the decision:

- `create_job`: make sure the render's Secret (its encoder token, `roughy.core.tokens`; the
  database keeps the digest) exists, build the Job (`roughy.kube.jobs.build_job`) and create it
  (AlreadyExists: it is running already). The Job holds no URL: its pods ask the API for
  presigned URLs when they need them, and report their progress to it (`roughy.app.encoding`),
  which shows it on the Render's status; no pod log is read here;
- `record`: the outcome, read from the pod's termination message (the encoder writes its
  `result` or `error` there), goes to the render service (`RenderService.finished`, as the
  embedded executor's do): the row and its outbox event in one transaction, a failed render's
  partial outputs deleted;
- the status is patched (status subresource) only when it changed, and state changes are
  posted as Kubernetes Events.

A Render whose render row is gone (cancelled while the cluster was unreachable) is deleted.

`sweep()` is the operator's one periodic look, instead of a timer per Render: one list of the
unfinished Renders (by label), then a `sync` only of those that need one: a pending render
whose queue budget may have run out, and any not reconciled for `resync_seconds` (a Job event
a broken watch lost). A running render costs nothing in between.

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

import base64
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import kopf
from pydantic import ValidationError

from roughy.adapters.executor.kube import ANNOTATION_DELETION_REASON, UNFINISHED_SELECTOR, parse_time
from roughy.adapters.executor.kube_tasks import job_pods, last_outcome
from roughy.adapters.kubeapi import KubeApi, KubeConflict, KubeError, KubePermanentError, KubeTemporaryError
from roughy.app.renders import RenderService
from roughy.core.keys import chunk_prefix
from roughy.core.models import RenderResult, RenderState
from roughy.core.ports import Outcome, PresignedStorage
from roughy.core.tokens import new_token
from roughy.kube import crd
from roughy.kube.jobs import (
    TOKEN_KEY,
    JobSettings,
    build_chunk_job,
    build_credentials_secret,
    build_job,
    chunk_job_name,
    credentials_secret_name,
    job_name,
)
from roughy.kube.reconcile import JobObservation, decide, failed

#: What a chunked render's chunks are known to be once its join Job exists: done.
CHUNKS_DONE = JobObservation(exists=True, complete=True)

if TYPE_CHECKING:  # the client's models come through the adapter; only their types are named here
    from kubernetes import client as k8s

log = logging.getLogger(__name__)

RETRY_DELAY = 2.0  # seconds before kopf calls again after a temporary API error
JOB_RETRY_DELAY = 10.0  # ... when the Job cannot be created yet (a quota, an overloaded API)
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"  # a pod's index in an Indexed Job


@dataclass(frozen=True)
class ControllerConfig:
    namespace: str
    jobs: JobSettings
    #: A running render is reconciled again after this long without a Job event (a lost event).
    resync_seconds: float = 300.0


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
        self._synced: dict[str, float] = {}  # Render name -> when it was last reconciled (monotonic)

    # --- reconcile ---------------------------------------------------------------------------

    def sync(self, namespace: str, name: str, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Reconcile one Render; return the status it now has (None if it is gone). `body`: the
        Render as kopf just listed or watched it (a create, a resume), which spares reading it
        again: a restart costs a Job read and a pod list per unfinished Render."""
        with self._locks[f"{namespace}/{name}"], _temporary_on_api_errors():
            render = body if body is not None else self._get_render(namespace, name)
            if render is None or render["metadata"].get("deletionTimestamp"):
                return None
            status = self._sync(render)
            self._synced[name] = time.monotonic()  # only once it went through: a failed one is due again
            return status

    def due(self, now: float | None = None) -> list[str]:
        """The unfinished Renders a sweep should reconcile (one list call): pending ones past
        their queue budget (counted from the Render's creation: its Job comes right after) and
        any not reconciled for `resync_seconds` (one first listed counts from then). Forgets
        the Renders that are not listed. `now`: the monotonic clock's reading (a test's)."""
        renders = self.api.list_renders(self.config.namespace, UNFINISHED_SELECTOR)
        names = {render["metadata"]["name"] for render in renders}
        for gone in set(self._synced) - names:
            self._synced.pop(gone, None)
        now, clock = time.monotonic() if now is None else now, self.clock()
        queue = self.config.jobs.queue_seconds
        due = []
        for render in renders:
            meta, status = render["metadata"], render.get("status") or {}
            if meta.get("deletionTimestamp"):
                continue
            # One this process has not reconciled yet is being resumed (kopf's resume handler,
            # which may take minutes for thousands): counted from now, not reconciled twice.
            last = self._synced.setdefault(meta["name"], now)
            created = parse_time(meta.get("creationTimestamp"))
            waited = (clock - created).total_seconds() if created else 0.0
            if now - last >= self.config.resync_seconds:
                due.append(meta["name"])
            elif status.get("state") != RenderState.RUNNING.value and queue and waited >= queue:
                due.append(meta["name"])
        return due

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
        observation = self.observe(namespace, job_name(name))
        chunks = None
        if (spec.get("plan") or {}).get("chunks"):  # a chunked render: the chunks' Job comes first
            # Once they are done (the join exists, or the status says so: their Job may have been
            # deleted by its TTL since) the chunks' Job is not read again, nor made again.
            done = observation.exists or bool(status.get("chunksDone"))
            chunks = CHUNKS_DONE if done else self.observe(namespace, chunk_job_name(name), chunks=True)
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

    def observe(self, namespace: str, job: str, *, chunks: bool = False) -> JobObservation:
        """What the Job and its pods say: counts, conditions, the outcome (from the pods'
        termination messages: no log is read). `chunks`: the Indexed Job of a chunked render,
        whose progress is its count of chunks done and whose outcome is that of the newest pod
        that failed, else the newest."""
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
        encoder = outcome.get("encoder")
        started = any(p.status and p.status.phase in ("Running", "Succeeded", "Failed") for p in pods)
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
            started=started,
            completions=(found.spec.completions if found.spec else None) or 1,
            created_at=found.metadata.creation_timestamp if found.metadata else None,
        )

    def _create_job(self, render: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """Create the encoder Job (the join, for a chunked render); the status fields to add
        (jobName, or a failure)."""
        meta, spec = render["metadata"], render["spec"]
        try:
            job = build_job(render, self.config.jobs)
        except (ValidationError, ValueError, KeyError) as exc:
            log.error("Render %s: no Job can be built for it: %s", meta["name"], exc)
            return self._fail_now(spec.get("renderId", ""), status, f"the render's Job could not be built: {exc}")
        refused = self._ensure_credentials(render)
        if refused is not None:
            message = f"the render's Secret was refused ({refused.reason})"
            return self._fail_now(spec.get("renderId", ""), status, message)
        _, refused = self._submit(render, job)
        if refused is not None:
            return self._fail_now(spec.get("renderId", ""), status, f"the encode Job was refused ({refused.reason})")
        return {"jobName": job["metadata"]["name"]}

    def _create_chunk_job(self, render: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """Create the Indexed Job of a chunked render's chunks; the status fields to add (none,
        or a failure)."""
        meta, spec = render["metadata"], render["spec"]
        try:
            job = build_chunk_job(render, self.config.jobs)
        except (ValidationError, ValueError, KeyError, TypeError) as exc:
            log.error("Render %s: no chunk Job can be built for it: %s", meta["name"], exc)
            return self._fail_now(spec.get("renderId", ""), status, f"the render's chunk Job could not be built: {exc}")
        refused = self._ensure_credentials(render)
        if refused is not None:
            message = f"the render's Secret was refused ({refused.reason})"
            return self._fail_now(spec.get("renderId", ""), status, message)
        _, refused = self._submit(render, job)
        if refused is not None:
            return self._fail_now(spec.get("renderId", ""), status, f"the chunk Job was refused ({refused.reason})")
        return {}

    def _ensure_credentials(self, render: dict[str, Any]) -> KubeError | None:
        """The render's Secret (its encoder token) exists and the database has the token's
        digest. An existing Secret (an earlier attempt made it) keeps its token: it is read back
        only when the database has no digest yet (that attempt stopped in between). The API's
        refusal for good (403: RBAC) is returned, and fails the render as a refused Job does."""
        meta, render_id = render["metadata"], render["spec"]["renderId"]
        token = new_token()
        try:
            self.api.create_secret(meta["namespace"], build_credentials_secret(render, self.config.jobs, token))
        except KubeConflict:  # made by an earlier attempt, or left by a Render of that name being collected
            secret = self.api.read_secret(meta["namespace"], credentials_secret_name(meta["name"]))
            data = (secret or {}).get("data") or {}
            owners = {ref.get("uid") for ref in ((secret or {}).get("metadata") or {}).get("ownerReferences") or []}
            if TOKEN_KEY not in data or meta.get("uid") not in owners:
                raise kopf.TemporaryError("the render's Secret is being replaced", delay=RETRY_DELAY) from None
            token = base64.b64decode(data[TOKEN_KEY]).decode()
        except KubeTemporaryError as exc:
            raise _retry_later(exc, "the render's Secret cannot be created yet", delay=JOB_RETRY_DELAY) from exc
        except KubePermanentError as exc:
            log.error("Render %s: the API refused its Secret: %s", meta["name"], exc)
            return exc
        self.renders.set_encoder_token(render_id, token)
        return None

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
