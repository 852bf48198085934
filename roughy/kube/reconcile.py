"""What the operator does next for a Render, as a pure function of what it sees.

`decide(status, generation, job, now)` takes the Render's current status, its generation and an
observation of its Job, and returns the status to write and the actions to take. kopf handlers
(and a test) call it; nothing here talks to Kubernetes, the database or the clock.

Rules:
- no Job yet and not terminal: create it (the Job is named after the Render, so a repeat is an
  AlreadyExists, not a second encode);
- a Job whose pod has not started (unschedulable, pulling its image, queued) leaves the Render
  pending, for at most `queue_seconds` from the Job's creation: then the render fails with
  `no_capacity` and its Jobs are deleted (a Job that hit its own deadline with no pod ever
  started fails so too, not as `encode_timeout`); once running, a Render stays running through
  the Job's retries;
- a terminal Render never changes again: a late or repeated observation is ignored;
- progress only moves forward and is 1.0 exactly when completed; the status shows it in steps
  of STATUS_PROGRESS_STEP (so the Render is written ~10 times for it, not on every tick), and
  `Decision.progress` carries the value observed, which goes to the database;
- the move into a terminal state happens once, with one `record` action, which writes the
  database row and its outbox event in one transaction;
- conditions follow the API conventions: `Running` while the encode runs, then `Complete` or
  `Failed` set True (as a Job's: `kubectl wait --for=condition=Complete`), `Ready` True once
  the output is stored; `progressPercent` mirrors `progress` for `kubectl get`.

A chunked render (`chunks` observed: its plan has chunks) has two Jobs: first the Indexed Job
of its chunks (`create_chunk_job`), then, once every chunk succeeded, the render's own Job,
which joins them (`create_job`). Its progress is the share of chunks done, up to
CHUNK_SHARE, then the join's. A chunk that fails for good fails the render; the join is
observed exactly as a single Job is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from roughy.core.chunks import CHUNK_SHARE
from roughy.encoder.protocol import EXIT_CODES

TERMINAL = ("completed", "failed")
#: The Render's status moves in steps of this much progress: at most ~10 status writes for the
#: progress of one render (the database, which the API reads, gets every value).
STATUS_PROGRESS_STEP = 0.1


@dataclass(frozen=True)
class JobObservation:
    exists: bool
    active: int = 0
    succeeded: int = 0
    failed: int = 0
    complete: bool = False  # the Job's Complete condition is True
    failed_reason: str | None = None  # the Job's Failed condition's reason, when it is True
    exit_code: int | None = None  # the last pod's container exit code, when known
    result: dict[str, Any] | None = None  # the encoder's `result` line, in the CRD's camelCase form
    error: dict[str, str] | None = None  # the encoder's `error` line
    encoder: str | None = None  # the encoder's `encoder` line
    progress: float | None = None  # the encoder's last progress line
    started: bool = True  # a pod of the Job has started (Running, or already finished)
    completions: int = 1  # pods that must succeed (an Indexed Job: its chunks)
    created_at: datetime | None = None  # the Job's creationTimestamp: the queue budget counts from it


@dataclass(frozen=True)
class Decision:
    status: dict[str, Any]
    actions: tuple[str, ...] = field(default_factory=tuple)  # "create_chunk_job", "create_job", "record", "delete_jobs"
    #: The encode's progress as observed, for the database (the API's `progress`); the status
    #: keeps it in STATUS_PROGRESS_STEP steps only.
    progress: float | None = None


#: The error of a render that waited for capacity longer than its budget.
NO_CAPACITY = "no_capacity"


def decide(
    status: dict[str, Any] | None,
    generation: int,
    job: JobObservation,
    now: datetime,
    chunks: JobObservation | None = None,
    queue_seconds: float = 0,
) -> Decision:
    """`job`: the render's own Job (the join, for a chunked render); `chunks`: the Indexed Job
    of a chunked render's chunks, None for a render that is not chunked. `queue_seconds`: how
    long a render may wait for its first pod to start (0: no limit)."""
    decision = _decide(status, generation, job, now, chunks, queue_seconds)
    progress = decision.status.get("progress")
    if progress is None or (status or {}).get("state") in TERMINAL:  # a finished render never changes
        return decision
    exact = float(progress)
    shown = exact if exact >= 1.0 else math.floor(round(exact / STATUS_PROGRESS_STEP, 6)) * STATUS_PROGRESS_STEP
    shown = round(max(shown, float((status or {}).get("progress") or 0.0)), 6)
    fields = {"progress": shown, "progressPercent": int(round(shown * 100))}
    return replace(decision, status=decision.status | fields, progress=exact)


def _decide(
    status: dict[str, Any] | None,
    generation: int,
    job: JobObservation,
    now: datetime,
    chunks: JobObservation | None,
    queue_seconds: float,
) -> Decision:
    current = dict(status or {})
    state = current.get("state", "pending")
    if state in TERMINAL:
        return Decision(current)
    stamp = now.isoformat().replace("+00:00", "Z")
    new = current | {"observedGeneration": generation}
    if not job.exists and chunks is not None:
        if state != "running" and _queued_too_long(chunks, now, queue_seconds):
            return _no_capacity(new, queue_seconds, stamp)
        return _decide_chunks(current, new, chunks, stamp)
    if chunks is not None and job.progress is not None:  # the join's own progress, after the chunks'
        job = replace(job, progress=CHUNK_SHARE + (1 - CHUNK_SHARE) * job.progress)
    if job.failed_reason is not None and _ran(current):
        job = replace(job, started=True)
    if chunks is not None and job.exists and _queued_too_long(job, now, queue_seconds):
        return _no_capacity(new, queue_seconds, stamp)  # the join waits under the same budget
    if not job.exists:
        new |= {"state": "pending", "progress": float(current.get("progress", 0.0))}
        return Decision(
            _with_condition(new, "Running", "False", "JobPending", "creating the encode Job", stamp), ("create_job",)
        )
    if job.encoder:
        new["encoder"] = job.encoder
    if job.complete or job.succeeded:
        return _finish_completed(new, job, stamp)
    if job.failed_reason is not None:
        return _finish_failed(new, _failure(job), stamp)
    if not job.started and state != "running":
        if _queued_too_long(job, now, queue_seconds):
            return _no_capacity(new, queue_seconds, stamp)
        new |= {"state": "pending", "progress": float(current.get("progress", 0.0))}
        message = "waiting for the encoder's pod to start (capacity, scheduling, image pull)"
        return Decision(_with_condition(new, "Running", "False", "PodPending", message, stamp))
    new |= {"state": "running", "progress": _forward(current.get("progress"), job.progress)}
    new.setdefault("startedAt", stamp)
    return Decision(_with_condition(new, "Running", "True", "Encoding", "the encode is running", stamp))


def _decide_chunks(current: dict[str, Any], new: dict[str, Any], chunks: JobObservation, stamp: str) -> Decision:
    """Before the join: the chunks' Job is created, runs, fails the render, or is done."""
    state = current.get("state", "pending")
    if not chunks.exists:
        new |= {"state": "pending", "progress": float(current.get("progress", 0.0))}
        message = "creating the Job of the render's chunks"
        return Decision(_with_condition(new, "Running", "False", "JobPending", message, stamp), ("create_chunk_job",))
    if chunks.encoder:
        new["encoder"] = chunks.encoder
    if chunks.failed_reason is not None:
        return _finish_failed(new, _failure(replace(chunks, started=chunks.started or _ran(current))), stamp)
    if chunks.complete or chunks.succeeded >= chunks.completions:
        new |= {"state": "running", "progress": _forward(current.get("progress"), CHUNK_SHARE), "chunksDone": True}
        new.setdefault("startedAt", stamp)
        message = "every chunk is encoded: joining them"
        return Decision(_with_condition(new, "Running", "True", "Joining", message, stamp), ("create_job",))
    if not chunks.started and state != "running":
        new |= {"state": "pending", "progress": float(current.get("progress", 0.0))}
        message = "waiting for the chunks' pods to start (scheduling, image pull)"
        return Decision(_with_condition(new, "Running", "False", "PodPending", message, stamp))
    done = CHUNK_SHARE * chunks.succeeded / max(1, chunks.completions)
    new |= {"state": "running", "progress": _forward(current.get("progress"), done)}
    new.setdefault("startedAt", stamp)
    message = f"encoding chunks: {chunks.succeeded} of {chunks.completions} done"
    return Decision(_with_condition(new, "Running", "True", "Encoding", message, stamp))


def _ran(current: dict[str, Any]) -> bool:
    """The render was seen running: a Job past its deadline whose pods are gone (the Job
    controller deletes them) timed out encoding; it did not wait for capacity."""
    return current.get("state") == "running" or bool(current.get("startedAt"))


def _queued_too_long(job: JobObservation, now: datetime, queue_seconds: float) -> bool:
    """No pod of `job` has started, and it was created more than `queue_seconds` ago."""
    if queue_seconds <= 0 or not job.exists or job.started or job.created_at is None:
        return False
    return (now - job.created_at).total_seconds() > queue_seconds


def _no_capacity(new: dict[str, Any], queue_seconds: float, stamp: str) -> Decision:
    """Waiting for capacity is not an encode that timed out: its own error, and its Jobs go
    (their pods would start some day, for nobody)."""
    message = f"no capacity: the encode did not start within {queue_seconds:g} s (no node could run it)"
    return Decision(failed(new, {"code": NO_CAPACITY, "message": message}, stamp), ("record", "delete_jobs"))


def _finish_completed(new: dict[str, Any], job: JobObservation, stamp: str) -> Decision:
    if job.result is None:
        return _finish_failed(new, {"code": "encode_failed", "message": "the encoder reported no result"}, stamp)
    new |= {"state": "completed", "progress": 1.0, "completedAt": stamp, "result": job.result, "error": None}
    new.setdefault("startedAt", stamp)
    new = _with_condition(new, "Running", "False", "Completed", "the encode finished", stamp)
    new = _with_condition(new, "Complete", "True", "Completed", "the output is stored", stamp)
    return Decision(_with_condition(new, "Ready", "True", "Completed", "the output is stored", stamp), ("record",))


def _finish_failed(new: dict[str, Any], error: dict[str, str], stamp: str) -> Decision:
    return Decision(failed(new, error, stamp), ("record",))


def failed(status: dict[str, Any], error: dict[str, str], stamp: str) -> dict[str, Any]:
    """`status` moved to failed with `error`: the conditions say so (`Failed` True, as a Job's
    do, so `kubectl wait --for=condition=Failed` returns); its progress stays where it was."""
    new = status | {"state": "failed", "completedAt": stamp, "error": error, "result": None}
    new = _with_condition(new, "Running", "False", "Failed", error["message"], stamp)
    new = _with_condition(new, "Failed", "True", _camel(error.get("code") or "failed"), error["message"], stamp)
    return _with_condition(new, "Ready", "False", "Failed", error["message"], stamp)


def _camel(code: str) -> str:
    """A SPEC error code as a condition reason: `encode_timeout` -> `EncodeTimeout`."""
    return "".join(part.capitalize() for part in code.split("_"))


def _failure(job: JobObservation) -> dict[str, str]:
    """The client-facing error of a failed Job: the encoder's own words first."""
    if job.error:
        return {"code": job.error.get("code", "encode_failed"), "message": job.error.get("message", "")}
    if job.failed_reason == "DeadlineExceeded" and not job.started:
        return {"code": NO_CAPACITY, "message": "no capacity: no pod of the encode Job started before its deadline"}
    if job.failed_reason == "DeadlineExceeded":
        return {"code": "encode_timeout", "message": "the encode Job ran past its deadline"}
    if job.exit_code in EXIT_CODES:
        return {"code": EXIT_CODES[job.exit_code], "message": f"the encoder exited with status {job.exit_code}"}
    reason = job.failed_reason or "Failed"
    return {"code": "encode_failed", "message": f"the encode Job failed ({reason})"}


def _forward(old: Any, new: float | None) -> float:
    """Progress never goes backwards and stays below 1.0 until the render completes."""
    before = float(old or 0.0)
    if new is None:
        return before
    return max(before, min(float(new), 0.999))


def _with_condition(
    status: dict[str, Any], type_: str, value: str, reason: str, message: str, stamp: str
) -> dict[str, Any]:
    """Set one condition; its lastTransitionTime moves only when its status does."""
    conditions = [dict(c) for c in status.get("conditions") or []]
    for cond in conditions:
        if cond["type"] == type_:
            if cond["status"] != value:
                cond["lastTransitionTime"] = stamp
            cond.update(status=value, reason=reason, message=message)
            break
    else:
        conditions.append(
            {"type": type_, "status": value, "reason": reason, "message": message, "lastTransitionTime": stamp}
        )
    return status | {"conditions": conditions}
