"""Execute renders on Kubernetes: one `Render` custom resource per render to execute.

The database stays the system of record; a Render is the *execution record* the operator
reconciles into a Job (DESIGN.md, "Where state lives"). This adapter is the API's side of it:

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

Every Kubernetes client error is translated here, at the edge: unreachable API, timeouts, 429
and 5xx become `ExecutorUnavailable` (503, retry later); anything else (RBAC, a missing CRD,
a rejected object) becomes `ExecutorFailed` (500). No `ApiException` leaves this module.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from roughy.core.errors import RoughyError
from roughy.core.plan import EncodePlan
from roughy.core.signature import resource_name
from roughy.kube import crd

log = logging.getLogger(__name__)

LABEL_RENDER = crd.LABEL_RENDER
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "roughy"
MANAGED_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
ANNOTATION_DELETION_REASON = "roughy.ai/deletion-reason"
TERMINAL_STATES = frozenset({"completed", "failed"})
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_TEMPORARY = frozenset({401, 408, 429, 500, 502, 503, 504})


class ExecutorUnavailable(RoughyError):
    """The Kubernetes API cannot be reached or is overloaded right now: retry later."""

    code, status = "executor_unavailable", 503

    def __init__(self, message: str, *, retry_after: int = 1):
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class ExecutorFailed(RoughyError):
    """The Kubernetes API refused the request for good (RBAC, a missing CRD, a rejected object)."""

    code, status = "internal_error", 500


@dataclass(frozen=True)
class _Refused:
    """An expected API refusal (e.g. 404 or 409), returned instead of raised."""

    status: int
    reason: str


class KubeExecutor:
    def __init__(
        self,
        api: k8s.ApiClient,
        *,
        namespace: str,
        retention: float = 3600.0,
        timeout: float = 10.0,
        replace_wait: float = 5.0,
        cancel_wait: float = 10.0,
        poll_interval: float = 0.1,
    ):
        """`retention`: seconds a completed or failed Render is kept (prune_terminal's default);
        `timeout`: seconds per API request; `replace_wait`: how long submit waits for a previous
        record that is being finalized; `cancel_wait`: how long cancel waits for the finalizer."""
        self.api = api
        self.namespace = namespace
        self.retention = retention
        self._timeout = timeout
        self._replace_wait = replace_wait
        self._cancel_wait = cancel_wait
        self._poll = poll_interval
        self._objects = k8s.CustomObjectsApi(api)

    @classmethod
    def from_environment(cls, *, namespace: str | None = None, **kwargs: Any) -> KubeExecutor:
        """In a pod: the service account's config and namespace. Elsewhere: KUBECONFIG (or
        ~/.kube/config) and its current context's namespace. `namespace` overrides both."""
        configuration = k8s.Configuration()
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
            in_cluster = True
        except ConfigException:
            in_cluster = False
            try:
                # Read KUBECONFIG now: the client reads it once, when it is imported.
                k8s_config.load_kube_config(
                    config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
                )
            except (ConfigException, OSError) as exc:
                raise ExecutorFailed(f"no Kubernetes configuration (in-cluster or KUBECONFIG): {exc}") from exc
        if namespace is None:
            namespace = _default_namespace(in_cluster)
        return cls(k8s.ApiClient(configuration), namespace=namespace, **kwargs)

    def close(self) -> None:
        self.api.close()

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
            created = self._call(
                self._objects.create_namespaced_custom_object,
                crd.GROUP, crd.VERSION, self.namespace, crd.PLURAL, body,
                expect=(409,),
            )  # fmt: skip
            if not isinstance(created, _Refused):
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

    def cancel(self, signature_or_name: str, *, render_id: str | None = None, wait: float | None = None) -> bool:
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
        apps = k8s.AppsV1Api(self.api)
        scaled = self._call(
            apps.patch_namespaced_deployment_scale, name, self.namespace, {"spec": {"replicas": 0}}, expect=(404,)
        )
        if isinstance(scaled, _Refused):
            return True
        current = self._call(apps.read_namespaced_deployment, name, self.namespace, expect=(404,))
        if isinstance(current, _Refused):
            return True
        labels = (current.spec.selector.match_labels if current.spec and current.spec.selector else None) or {}
        if not labels:
            return False  # no way to tell its pods: do not claim they are gone
        selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
        core = k8s.CoreV1Api(self.api)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            # Pods still terminating count: they may still be handing renders over.
            pods = self._call(core.list_namespaced_pod, self.namespace, label_selector=selector)
            if not pods.items:
                return True
            time.sleep(max(self._poll, 0.5))
        return False

    def render_ids(self) -> set[str]:
        """The render ids of every Render this release manages, being deleted or not."""
        return {
            str((item.get("spec") or {}).get("renderId"))
            for item in self._list(MANAGED_SELECTOR)
            if (item.get("spec") or {}).get("renderId")
        }

    def prune_terminal(self, older_than_seconds: float | None = None, *, now: datetime | None = None) -> list[str]:
        """Delete completed/failed Renders whose completedAt is older than the retention (or
        `older_than_seconds`); return the names deleted. Records that changed since they were
        listed are left for the next round."""
        retention = self.retention if older_than_seconds is None else older_than_seconds
        cutoff = (now or datetime.now(UTC)) - timedelta(seconds=retention)
        pruned: list[str] = []
        for item in self._list(MANAGED_SELECTOR):
            meta, status = item.get("metadata") or {}, item.get("status") or {}
            if meta.get("deletionTimestamp") or status.get("state") not in TERMINAL_STATES:
                continue
            completed_at = _parse_time(status.get("completedAt"))
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

    def _get(self, name: str) -> dict[str, Any] | None:
        found = self._call(
            self._objects.get_namespaced_custom_object,
            crd.GROUP, crd.VERSION, self.namespace, crd.PLURAL, name,
            expect=(404,),
        )  # fmt: skip
        return None if isinstance(found, _Refused) else dict(found)

    def _list(self, label_selector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"label_selector": label_selector, "limit": 500}
            if token:
                kwargs["_continue"] = token
            page = self._call(
                self._objects.list_namespaced_custom_object,
                crd.GROUP, crd.VERSION, self.namespace, crd.PLURAL, **kwargs,
            )  # fmt: skip
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

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
        if reason is not None:
            preconditions: dict[str, Any] = {"uid": uid}
            if resource_version is not None:
                preconditions["resourceVersion"] = resource_version
            patch = {"metadata": {**preconditions, "annotations": {ANNOTATION_DELETION_REASON: reason}}}
            patched = self._call(
                self._objects.patch_namespaced_custom_object,
                crd.GROUP, crd.VERSION, self.namespace, crd.PLURAL, name, patch,
                expect=(404, 409),
            )  # fmt: skip
            if isinstance(patched, _Refused):
                return False
        options = k8s.V1DeleteOptions(propagation_policy=propagation, preconditions=k8s.V1Preconditions(uid=uid))
        deleted = self._call(
            self._objects.delete_namespaced_custom_object,
            crd.GROUP, crd.VERSION, self.namespace, crd.PLURAL, name,
            body=options, expect=(404, 409),
        )  # fmt: skip
        return not isinstance(deleted, _Refused)

    def _wait_gone(self, name: str, uid: str | None, wait: float) -> bool:
        deadline = time.monotonic() + wait
        while True:
            current = self._get(name)
            if current is None or (current.get("metadata") or {}).get("uid") != uid:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(self._poll)

    def _call(self, fn: Callable[..., Any], *args: Any, expect: Collection[int] = (), **kwargs: Any) -> Any:
        """Call the API. A refusal whose status is in `expect` comes back as `_Refused`; every
        other failure is translated into a RoughyError."""
        try:
            return fn(*args, _request_timeout=self._timeout, **kwargs)
        except ApiException as exc:
            if exc.status in expect:
                return _Refused(exc.status, exc.reason or "")
            raise translate(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ExecutorUnavailable(f"the Kubernetes API is unreachable: {exc}") from exc


def translate(exc: ApiException) -> RoughyError:
    """An ApiException as the error the API answers with."""
    status = exc.status or 0
    detail = f"Kubernetes API {status} {exc.reason or ''}".strip()
    if status == 0 or status in _TEMPORARY:
        retry_after = (exc.headers or {}).get("Retry-After")
        return ExecutorUnavailable(
            f"the Kubernetes API is unavailable ({detail})",
            retry_after=int(retry_after) if retry_after and str(retry_after).isdigit() else 1,
        )
    if status == 404:
        return ExecutorFailed(f"the Render resource is not served in this namespace (is the CRD installed?): {detail}")
    if status == 403:
        return ExecutorFailed(f"the Kubernetes API forbids this (check the service account's RBAC): {detail}")
    return ExecutorFailed(f"the Kubernetes API refused the request: {detail}")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _default_namespace(in_cluster: bool) -> str:
    if in_cluster and SERVICE_ACCOUNT_NAMESPACE.exists():
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    try:
        _, active = k8s_config.list_kube_config_contexts(config_file=os.environ.get("KUBECONFIG"))
    except (ConfigException, OSError):
        return "default"
    return str((active or {}).get("context", {}).get("namespace") or "default")
