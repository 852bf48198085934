"""Execute renders on Kubernetes: one `Render` custom resource per render to execute.

The database stays the system of record; a Render is the *execution record* the operator
reconciles into a Job (the shared design notes, "Where state lives"). This adapter is the API's side of it:

- `submit` creates `r-<signature hash>` (crd.render_body, labelled with account, asset, render
  id and managed-by=roughy). Creation is idempotent: AlreadyExists for the same render id means
  it is already executing. A record left by *another* render with the same signature (a failed
  render that was replaced) is deleted and the new one created; a record still being finalized
  is waited for, briefly, then reported as ExecutorUnavailable so that the caller retries.
- `cancel` deletes the record with foreground propagation (the Job goes first, and the
  operator's finalizer stops it and removes the outputs) and waits, briefly, until it is gone.
- `prune_terminal` deletes completed/failed records whose `completedAt` is older than the
  retention, found by the managed-by label. The database keeps the render; etcd is not an
  archive. (The outcome reaches the database through the operator, never through here.)

Deletions that must *not* remove the render's outputs say why in the annotation
`roughy.ai/deletion-reason` (`retention`, `replaced`), written just before the delete; a plain
delete (no annotation) is a cancel or a hard delete.

API calls go through `roughy.adapters.kubeapi.KubeApi` (its timeout, its errors). Its errors
are translated here, at the executor's edge: a `KubeTemporaryError` (unreachable API, timeouts,
401, 429, 5xx) becomes `ExecutorUnavailable` (503, retry later); a `KubePermanentError` (RBAC, a
missing CRD, a rejected object) becomes `ExecutorFailed` (500). No KubeError leaves this module.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from roughy.adapters.kubeapi import (
    DEFAULT_REQUEST_TIMEOUT,
    KubeApi,
    KubeConflict,
    KubeError,
    KubeNotFound,
    KubeTemporaryError,
)
from roughy.core.errors import ExecutorFailed, ExecutorUnavailable, RoughyError
from roughy.core.models import Render
from roughy.core.plan import EncodePlan
from roughy.core.ports import EncodeJob
from roughy.core.signature import resource_name
from roughy.kube import crd

log = logging.getLogger(__name__)

LABEL_RENDER = crd.LABEL_RENDER
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "roughy"
MANAGED_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
#: Only Renders still pending or running: a list whose size follows the work in flight, not
#: the history kept (finished Renders stay for `retention`).
UNFINISHED_SELECTOR = f"{MANAGED_SELECTOR},{crd.LABEL_FINISHED}!=true"
FINISHED_SELECTOR = f"{MANAGED_SELECTOR},{crd.LABEL_FINISHED}=true"
ANNOTATION_DELETION_REASON = "roughy.ai/deletion-reason"
TERMINAL_STATES = frozenset({"completed", "failed"})

_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


class KubeExecutor:
    def __init__(
        self,
        api: KubeApi,
        *,
        namespace: str,
        retention: float = 3600.0,
        replace_wait: float = 5.0,
        cancel_wait: float = 10.0,
        poll_interval: float = 0.1,
        max_running: int = 500,
    ):
        """`retention`: seconds a completed or failed Render is kept (prune_terminal's default);
        `replace_wait`: how long submit waits for a previous record that is being finalized;
        `cancel_wait`: how long cancel waits for the finalizer. The request timeout is `api`'s."""
        self.api = api
        self.namespace = namespace
        self.retention = retention
        self._replace_wait = replace_wait
        self._cancel_wait = cancel_wait
        self._poll = poll_interval
        self.max_running = max_running

    @classmethod
    def from_environment(
        cls, *, namespace: str | None = None, timeout: float = DEFAULT_REQUEST_TIMEOUT, **kwargs: Any
    ) -> KubeExecutor:
        """In a pod: the service account's config and namespace. Elsewhere: KUBECONFIG (or
        ~/.kube/config) and its current context's namespace. `namespace` overrides both;
        `timeout`: seconds per API request."""
        with _translated():
            api = KubeApi.from_environment(timeout=timeout)
        return cls(api, namespace=namespace or api.namespace, **kwargs)

    def close(self) -> None:
        self.api.close()

    # --- the Executor port (roughy.core.ports): outcomes come from the operator ----------------

    @property
    def capacity(self) -> int:
        return self.max_running

    def start(self, job: EncodeJob) -> None:
        render = job.render
        sources = {"video": job.video_key, "audio": job.audio_key}
        self.submit(
            render.id, render.account_id, render.asset_id, render.signature, job.plan, sources, job.output_key,
            cut_id=render.cut_id,
        )  # fmt: skip

    def executing(self) -> set[str]:
        return self.render_ids()

    def shutdown(self) -> None:
        """Renders handed to the cluster go on running without this process."""

    # --- the executor's operations -------------------------------------------------------------

    def render_body(
        self,
        render_id: str,
        account_id: str,
        asset_id: str,
        signature: str,
        plan: EncodePlan,
        sources: Mapping[str, str | None],
        output_key: str,
        *,
        cut_id: str | None = None,
        encoder: crd.VideoEncoder | None = None,
    ) -> dict[str, Any]:
        """The Render object `submit` creates (pure: no API call)."""
        spec = crd.RenderSpec(
            render_id=render_id,
            account_id=account_id,
            asset_id=asset_id,
            cut_id=cut_id,
            tier=crd.tier_of(plan),
            plan=crd.PlanSpec.from_plan(plan),
            sources=crd.SourcesSpec(video=sources.get("video"), audio=sources.get("audio")),
            output_key=output_key,
            encoder=encoder,
        )
        body = crd.render_body(resource_name(signature), spec, namespace=self.namespace)
        labels = body["metadata"]["labels"]
        labels.update({LABEL_RENDER: render_id, LABEL_MANAGED_BY: MANAGED_BY})
        for key, value in labels.items():
            if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
                raise ValueError(f"{value!r} cannot be the value of label {key}")
        return body

    def submit(
        self,
        render_id: str,
        account_id: str,
        asset_id: str,
        signature: str,
        plan: EncodePlan,
        sources: Mapping[str, str | None],
        output_key: str,
        *,
        cut_id: str | None = None,
        encoder: crd.VideoEncoder | None = None,
    ) -> str:
        """Create the render's Render (idempotently) and return its name."""
        body = self.render_body(
            render_id, account_id, asset_id, signature, plan, sources, output_key, cut_id=cut_id, encoder=encoder
        )
        name: str = body["metadata"]["name"]
        deadline = time.monotonic() + self._replace_wait
        while True:
            if self._create(body):
                log.info("created Render %s for render %s", name, render_id)
                return name
            current = self._get(name) or {}  # {}: deleted between our create and get: create again
            meta = current.get("metadata") or {}
            owner = (current.get("spec") or {}).get("renderId")
            if current and not meta.get("deletionTimestamp"):
                if owner == render_id:
                    return name  # already executing
                state = (current.get("status") or {}).get("state")
                if state not in TERMINAL_STATES:
                    log.warning("replacing Render %s of render %s in state %s", name, owner, state)
                log.info("replacing Render %s: it belonged to render %s, now to %s", name, owner, render_id)
                self._delete(name, meta.get("uid"), reason="replaced", propagation="Foreground")
            if time.monotonic() >= deadline:
                raise ExecutorUnavailable(
                    f"Render {name} of a previous render is still being finalized; retry shortly", retry_after=2
                )
            time.sleep(self._poll)

    def show_progress(self, render: Render, progress: float, encoder: str | None = None) -> None:
        """The encoder's progress (in the steps `roughy.app.encoding` shows) and encoder on the
        Render's status, for `kubectl get renders`: best effort, the database has the truth."""
        status: dict[str, Any] = {"progress": progress, "progressPercent": int(round(progress * 100))}
        if encoder:
            status["encoder"] = encoder
        try:
            self.api.patch_render_status(self.namespace, self._name(render.signature), status)
        except KubeError as exc:
            log.info("render %s: progress not shown on its Render (%s)", render.id, exc)

    def cancel(self, render_id: str) -> None:
        if not self.cancel_render(render_id):
            log.info("render %s: its Render is still being finalized", render_id)

    def cancel_resource(
        self, signature_or_name: str, *, render_id: str | None = None, wait: float | None = None
    ) -> bool:
        """Delete the render's Render (foreground: the Job first, then the operator's finalizer).

        With `render_id`, a Render that now belongs to another render is left alone. Waits up to
        `wait` seconds (default: the executor's cancel_wait) for it to be gone. Returns True when
        no Render is left (gone, or there was none), False while it is still being finalized.
        """
        name = self._name(signature_or_name)
        current = self._get(name)
        if current is None:
            return True
        if render_id is not None and (current.get("spec") or {}).get("renderId") != render_id:
            return True  # not this render's record (any more)
        uid = (current.get("metadata") or {}).get("uid")
        self._delete(name, uid, propagation="Foreground")
        return self._wait_gone(name, uid, self._cancel_wait if wait is None else wait)

    def cancel_render(self, render_id: str, *, wait: float | None = None) -> bool:
        """`cancel` by render id (the `roughy.ai/render` label), for callers that no longer
        have the signature: the render's row is already deleted when it is cancelled."""
        done = True
        for item in self._list(f"{LABEL_RENDER}={render_id},{MANAGED_SELECTOR}"):
            meta = item.get("metadata") or {}
            if (item.get("spec") or {}).get("renderId") != render_id:
                continue
            self._delete(meta["name"], meta.get("uid"), propagation="Foreground")
            done = self._wait_gone(meta["name"], meta.get("uid"), self._cancel_wait if wait is None else wait) and done
        return done

    def drain(self, *, wait: float = 300.0, reason: str = "drain") -> list[str]:
        """Delete every Render this release manages (saying why: the operator's finalizer then
        keeps finished outputs and puts unfinished renders back in the queue) and wait until
        none is left, listing again (a Render created meanwhile is deleted too). Returns the
        names still present when `wait` ran out. Stop the API first (`stop_deployment`), or it
        hands the requeued renders straight back to the cluster."""
        deadline = time.monotonic() + wait
        while True:
            items = self._list(MANAGED_SELECTOR)
            if not items:
                return []
            for item in items:
                meta = item.get("metadata") or {}
                if not meta.get("deletionTimestamp"):
                    self._delete(meta["name"], meta.get("uid"), reason=reason, propagation="Foreground")
            if time.monotonic() >= deadline:
                return sorted(item["metadata"]["name"] for item in items)
            time.sleep(max(self._poll, 0.5))

    def stop_deployment(self, name: str, *, wait: float = 120.0) -> bool:
        """Scale the Deployment `name` to 0 and wait until its pods are gone, terminating ones
        included (True), e.g. the API before a drain. A missing Deployment counts as stopped."""
        with _translated():
            try:
                self.api.scale_deployment(self.namespace, name, 0)
            except KubeNotFound:
                return True
            current = self.api.read_deployment(self.namespace, name)
        if current is None:
            return True
        labels = (current.spec.selector.match_labels if current.spec and current.spec.selector else None) or {}
        if not labels:
            return False  # no way to tell its pods: do not claim they are gone
        selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            # Pods still terminating count: they may still be handing renders over.
            with _translated():
                pods = self.api.list_pods(self.namespace, selector)
            if not pods:
                return True
            time.sleep(max(self._poll, 0.5))
        return False

    def render_ids(self) -> set[str]:
        """The render ids of the unfinished Renders this release manages, being deleted or not
        (a finished one's outcome is in the database already: the operator records it before it
        labels the Render finished)."""
        return {
            str((item.get("spec") or {}).get("renderId"))
            for item in self._list(UNFINISHED_SELECTOR)
            if (item.get("spec") or {}).get("renderId")
        }

    def prune_terminal(self, older_than_seconds: float | None = None, *, now: datetime | None = None) -> list[str]:
        """Delete completed/failed Renders whose completedAt is older than the retention (or
        `older_than_seconds`); return the names deleted. Records that changed since they were
        listed are left for the next round."""
        retention = self.retention if older_than_seconds is None else older_than_seconds
        cutoff = (now or datetime.now(UTC)) - timedelta(seconds=retention)
        pruned: list[str] = []
        for item in self._list(FINISHED_SELECTOR):
            meta, status = item.get("metadata") or {}, item.get("status") or {}
            if meta.get("deletionTimestamp") or status.get("state") not in TERMINAL_STATES:
                continue
            completed_at = parse_time(status.get("completedAt"))
            if completed_at is None or completed_at > cutoff:
                continue
            name = meta["name"]
            if self._delete(
                name, meta.get("uid"), reason="retention", resource_version=meta.get("resourceVersion"),
                propagation="Background",
            ):  # fmt: skip
                log.info("pruned Render %s (%s at %s)", name, status.get("state"), status.get("completedAt"))
                pruned.append(name)
        return pruned

    # --- API calls --------------------------------------------------------------------------------

    @staticmethod
    def _name(signature_or_name: str) -> str:
        return signature_or_name if signature_or_name.startswith("r-") else resource_name(signature_or_name)

    def _create(self, body: dict[str, Any]) -> bool:
        """Create the Render; False if one of that name exists already."""
        with _translated():
            try:
                self.api.create_render(self.namespace, body)
            except KubeConflict:
                return False
        return True

    def _get(self, name: str) -> dict[str, Any] | None:
        with _translated():
            return self.api.get_render(self.namespace, name)

    def _list(self, label_selector: str) -> list[dict[str, Any]]:
        with _translated():
            return self.api.list_renders(self.namespace, label_selector)

    def _delete(
        self,
        name: str,
        uid: str | None,
        *,
        propagation: str,
        reason: str | None = None,
        resource_version: str | None = None,
    ) -> bool:
        """Delete `name` if it is still the object `uid` (and unchanged since `resource_version`).

        With `reason`, first annotate why (the operator's finalizer reads it). False when the
        object is gone or is not the one we meant any more."""
        with _translated():
            try:
                if reason is not None:
                    preconditions: dict[str, Any] = {"uid": uid}
                    if resource_version is not None:
                        preconditions["resourceVersion"] = resource_version
                    patch = {"metadata": {**preconditions, "annotations": {ANNOTATION_DELETION_REASON: reason}}}
                    self.api.patch_render(self.namespace, name, patch)
                return self.api.delete_render(self.namespace, name, uid=uid, propagation=propagation)
            except (KubeNotFound, KubeConflict):
                return False

    def _wait_gone(self, name: str, uid: str | None, wait: float) -> bool:
        deadline = time.monotonic() + wait
        while True:
            current = self._get(name)
            if current is None or (current.get("metadata") or {}).get("uid") != uid:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(self._poll)


@contextmanager
def _translated() -> Iterator[None]:
    """Inside: a KubeError leaves as the executor's own error (what the API answers with)."""
    try:
        yield
    except KubeError as exc:
        raise translate(exc) from exc


def translate(exc: KubeError) -> RoughyError:
    """A Kubernetes API error as the error the API answers with."""
    if isinstance(exc, KubeTemporaryError):
        if exc.status is None:
            return ExecutorUnavailable(str(exc))  # "the Kubernetes API is unreachable: ..."
        return ExecutorUnavailable(f"the Kubernetes API is unavailable ({exc})", retry_after=exc.retry_after or 1)
    if exc.status is None:  # no configuration at all
        return ExecutorFailed(str(exc))
    if exc.status == 404:
        return ExecutorFailed(f"the Render resource is not served in this namespace (is the CRD installed?): {exc}")
    if exc.status == 403:
        return ExecutorFailed(f"the Kubernetes API forbids this (check the service account's RBAC): {exc}")
    return ExecutorFailed(f"the Kubernetes API refused the request: {exc}")


def parse_time(value: Any) -> datetime | None:
    """A Kubernetes timestamp (RFC 3339, `Z`) as an aware datetime; None if absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
