"""Asset work as Kubernetes Jobs: audio extraction and silence detection (`roughy-encode
extract-audio | silence` in the encoder image), for the operator's asset processing.

`KubeTasks` has the same two methods as the in-process `LocalTasks` (roughy.adapters.executor.local_tasks):
it creates the Job (`roughy.kube.jobs.build_task_job`), waits for it to finish, reads the
outcome from the pod's termination message (or the log's last line when it did not fit), deletes
the Job, and returns the result or raises the encoder's error. Job names are derived from the
work (`t-<hash of kind and asset or cut id>`), so an operator that restarts while it waits
finds the same Job and waits on; a finished Job of an earlier attempt that failed is replaced.

The pod helpers here (`pod_log`, `job_pods`, `last_outcome`) are shared with the render
controller. API calls go through `roughy.adapters.kubeapi.KubeApi`; its temporary errors
(`KubeTemporaryError`) leave `run` as they are: the asset work's next tick tries again.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from kubernetes import client as k8s

from roughy.adapters.kubeapi import KubeApi, KubeConflict, KubeError
from roughy.core.models import AudioInfo
from roughy.encoder.errors import EncodeFailed, EncoderError, InvalidMedia
from roughy.encoder.protocol import decode
from roughy.kube.jobs import CONTAINER, JobSettings, TaskJob, build_task_job, task_job_name

log = logging.getLogger(__name__)

JOB_NAME_LABEL = "job-name"  # set on a Job's pods by every Kubernetes version


def pod_log(
    api: KubeApi, namespace: str, pod: str, *, tail_lines: int | None = None, limit_bytes: int | None = None
) -> str:
    """The encoder container's log as text."""
    return api.read_pod_log(namespace, pod, container=CONTAINER, tail_lines=tail_lines, limit_bytes=limit_bytes)


def last_outcome(pods: list[k8s.V1Pod]) -> tuple[dict[str, Any], int | None, str | None]:
    """The newest terminated encoder container's termination message (the encoder's outcome as
    JSON), its exit code, and its pod's name."""
    for pod in reversed(pods):
        for container in (pod.status.container_statuses if pod.status else None) or []:
            terminated = container.state.terminated if container.state else None
            if container.name != CONTAINER or terminated is None:
                continue
            return decode(terminated.message or ""), terminated.exit_code, pod.metadata.name
    return {}, None, None


def job_pods(api: KubeApi, namespace: str, job: k8s.V1Job) -> list[k8s.V1Pod]:
    """The Job's pods, oldest first: by the Job's own selector (its controller-uid, so a pod of
    an earlier Job of the same name is never taken for this one's), else by its name label."""
    labels = (job.spec.selector.match_labels if job.spec and job.spec.selector else None) or {
        JOB_NAME_LABEL: job.metadata.name
    }
    selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
    pods = api.list_pods(namespace, selector)
    pods.sort(key=lambda p: (p.metadata.creation_timestamp is not None, p.metadata.creation_timestamp))
    return pods


class TaskFailed(RuntimeError):
    """The task's Job ended without the encoder's outcome (its deadline passed while the pod
    waited for a node or an image, evictions, a lost result): the cluster's trouble, not the
    asset's. Not an EncoderError, so the asset is not failed: the next tick runs the work again."""


class KubeTasks:
    def __init__(
        self,
        api: KubeApi,
        *,
        namespace: str,
        settings: JobSettings,
        poll_interval: float = 1.0,
    ):
        self.api = api
        self.namespace = namespace
        self.settings = settings
        self.poll_interval = poll_interval

    def extract_audio(
        self, src: str, target: str, *, subject: str, duration: float, labels: dict[str, str]
    ) -> AudioInfo:
        task = TaskJob("extract-audio", subject, src, duration, labels, output_url=target)
        data = self.run(task)
        if not isinstance(data, dict):
            raise EncodeFailed("the audio extraction reported no result")
        return AudioInfo(**data)

    def detect_silence(
        self,
        src: str,
        *,
        min_silence: float,
        threshold_db: float,
        subject: str,
        duration: float,
        labels: dict[str, str],
    ) -> list[tuple[float, float]]:
        args = ("--min-silence", repr(min_silence), "--threshold-db", repr(threshold_db))
        data = self.run(TaskJob("silence", subject, src, duration, labels, args=args))
        if not isinstance(data, list):
            raise EncodeFailed("the silence detection reported no result")
        return [(float(start), float(end)) for start, end in data]

    def run(self, task: TaskJob) -> Any:
        """Run the task's Job to its end and return its result (EncoderError if it failed)."""
        name = task_job_name(task.kind, task.subject)
        body = self._start(name, task)
        # The Job's own deadline ends it; past that and a margin, something else is wrong (the
        # Job was deleted by hand, no controller runs): give up here, the next tick retries.
        give_up = time.monotonic() + int(body["spec"]["activeDeadlineSeconds"]) + 300
        while True:
            job = self._read(name)
            if job is None:
                raise TaskFailed(f"the {task.kind} Job {name} disappeared before it finished")
            conditions = {c.type for c in (job.status.conditions if job.status else None) or [] if c.status == "True"}
            if "Complete" in conditions or "Failed" in conditions:
                break
            if time.monotonic() > give_up:
                self._delete(name)
                raise TaskFailed(f"the {task.kind} Job {name} did not finish within its deadline")
            time.sleep(self.poll_interval)
        try:
            return self._outcome(name, task, complete="Complete" in conditions, job=job)
        finally:
            self._delete(name)

    def _start(self, name: str, task: TaskJob) -> dict[str, Any]:
        body = build_task_job(task, self.settings, namespace=self.namespace)
        for _ in range(3):
            try:
                self.api.create_job(self.namespace, body)
                log.info("started %s Job %s for %s", task.kind, name, task.subject)
                return body
            except KubeConflict:
                pass  # a Job of that name exists: see below whether to wait on it or replace it
            existing = self._read(name)
            if existing is None:
                continue  # deleted meanwhile: create it again
            if existing.metadata.deletion_timestamp is None and not _finished(existing):
                log.info("waiting on the %s Job %s already running for %s", task.kind, name, task.subject)
                return body
            self._delete(name)  # an earlier attempt's finished Job: run the work afresh
            self._wait_gone(name)
        raise TaskFailed(f"could not start the {task.kind} Job {name}")

    def _outcome(self, name: str, task: TaskJob, *, complete: bool, job: k8s.V1Job) -> Any:
        outcome, exit_code, pod = last_outcome(job_pods(self.api, self.namespace, job))
        if outcome.get("result_in_log") and pod is not None:
            lines = pod_log(self.api, self.namespace, pod, tail_lines=5).strip().splitlines()
            try:
                outcome = {"result": json.loads(lines[-1])}
            except (IndexError, ValueError):
                raise TaskFailed(f"the {task.kind} Job's result could not be read from its log") from None
        if complete and "result" in outcome:
            return outcome["result"]
        error: dict[str, Any] = outcome["error"] if isinstance(outcome.get("error"), dict) else {}
        code, message = str(error.get("code") or ""), str(error.get("message") or "")
        if code == "invalid_media" or exit_code == InvalidMedia.exit_code:
            raise InvalidMedia(message or f"the {task.kind} Job found the source unreadable")
        if code:
            failure: EncoderError = EncodeFailed(message)
            failure.code = code
            raise failure
        reasons = [c.reason for c in (job.status.conditions or []) if c.type == "Failed" and c.reason]
        raise TaskFailed(f"the {task.kind} Job failed ({', '.join(reasons) or 'no result'})")

    def _read(self, name: str) -> k8s.V1Job | None:
        return self.api.read_job(self.namespace, name)

    def _delete(self, name: str) -> None:
        """Best effort: a Job left behind is deleted by its TTL, or replaced by the next attempt."""
        try:
            self.api.delete_job(self.namespace, name, propagation="Background")
        except KubeError as exc:
            log.warning("could not delete the finished Job %s: %s", name, exc)

    def _wait_gone(self, name: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self._read(name) is not None and time.monotonic() < deadline:
            time.sleep(self.poll_interval)


def _finished(job: k8s.V1Job) -> bool:
    conditions = (job.status.conditions if job.status else None) or []
    return any(c.type in ("Complete", "Failed") and c.status == "True" for c in conditions)
