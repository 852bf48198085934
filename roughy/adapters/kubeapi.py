"""The one way roughy talks to the Kubernetes API: every call, its timeout, and what its errors mean.

The executor (API side), the asset tasks and the operator's controller all call the API through
`KubeApi`. It is the only module that calls the `kubernetes` client's API methods: each call
carries the same `_request_timeout` (a hung connection must not hold a thread forever), and each
failure leaves as one of the errors below, never as the client's `ApiException` or a urllib3
error. Callers decide what an error means for *them* (the executor: 503 or 500; the operator:
retry later or fail the render) from our classes alone.

The model is kopf's (`kopf/_cogs/clients/errors.py`): the client library could be replaced, so
its exceptions are not spread over the code; ours carry what the API said (status, reason,
message) and chain the client's exception as their cause::

    KubeError                  status (None: no HTTP answer at all), reason, message
    +-- KubeTemporaryError     retrying later can succeed; retry_after: what the API asked for
    +-- KubePermanentError     the same request will get the same answer
        +-- KubeNotFound       404
        +-- KubeConflict       409: AlreadyExists, or a uid/resourceVersion precondition failed

Temporary: no answer (connection refused or reset, TLS, a timeout), 401, 408, 429, 5xx, and a
403 for an exceeded ResourceQuota (it passes as other objects finish). Permanent: the rest
(400, 403 RBAC, 404, 409, 422, ...). A 404 or 409 is often an answer rather than a failure (the
object is gone; someone else created or changed it): NotFound and Conflict have their own
classes so callers can catch exactly those.

401 is temporary. kopf files it as a client error, yet does not give up on it: its API layer
invalidates the credentials, logs in again and repeats the request, and escalates (LoginError)
only when the login yields no new credentials. We have no login step: the kubernetes client
refreshes credentials itself (in a pod it re-reads the projected service-account token every
minute; kubeconfig exec plugins run again on expiry), so the next attempt *is* the
re-authenticated one. Temporary, a token rotation keeps a render queued instead of failing it
for good; credentials that stay wrong show as repeated temporary errors, and the operator's
kopf (same credentials) stops with its LoginError.

Reads (`get_render`, `read_job`, `read_deployment`, `read_lease`) and deletes answer None /
False for an absent object: every caller wants "absent" as an answer there. Programming errors
of the client (`ApiTypeError`, `ApiValueError`: a wrong argument) are not translated: they are
bugs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from roughy.kube import crd

DEFAULT_REQUEST_TIMEOUT = 30.0  # seconds; Settings.kube_request_timeout feeds the real value
TEMPORARY_STATUSES = frozenset({401, 408, 429})  # and every 5xx
LIST_PAGE_SIZE = 500
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

T = TypeVar("T")


class KubeError(Exception):
    """A Kubernetes API call failed. `status` is the HTTP status (None: there was no answer)."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        if self.status is None:
            return self.message
        head = f"{self.status} {self.reason}".strip()
        return f"{head}: {self.message}" if self.message and self.message != self.reason else head


class KubeTemporaryError(KubeError):
    """Retrying later can succeed: no answer, a timeout, 401, 408, 429, 5xx, an exceeded quota."""

    def __init__(
        self, message: str, *, status: int | None = None, reason: str = "", retry_after: int | None = None
    ) -> None:
        super().__init__(message, status=status, reason=reason)
        self.retry_after = retry_after


class KubePermanentError(KubeError):
    """The API refused the request; the same request will be refused the same way."""


class KubeNotFound(KubePermanentError):
    """404: the object (or its resource type, when the CRD is missing) does not exist."""


class KubeConflict(KubePermanentError):
    """409: the object already exists, or it is not the uid/resourceVersion we named."""


class KubeConfigError(KubePermanentError):
    """No usable client configuration: neither in a pod nor a readable kubeconfig."""


def translate(exc: BaseException) -> KubeError:
    """The client's exception as ours (pure: the unit tests feed it exceptions directly)."""
    if isinstance(exc, ApiException) and exc.status:
        return _from_answer(int(exc.status), str(exc.reason or ""), exc.body, exc.headers)
    if isinstance(exc, ApiException):  # status 0: the client's own name for a TLS failure
        return KubeTemporaryError(f"the Kubernetes API is unreachable: {exc.reason or exc}")
    return KubeTemporaryError(f"the Kubernetes API is unreachable: {exc}")


def _from_answer(status: int, http_reason: str, body: Any, headers: Any) -> KubeError:
    """An HTTP error answer as ours: the `Status` object in the body says more than the status."""
    payload = _status_object(body)
    reason = str(payload.get("reason") or http_reason)
    message = str(payload.get("message") or http_reason)
    if status in TEMPORARY_STATUSES or status >= 500 or (status == 403 and "exceeded quota" in message):
        return KubeTemporaryError(message, status=status, reason=reason, retry_after=_retry_after(headers, payload))
    cls = KubeNotFound if status == 404 else KubeConflict if status == 409 else KubePermanentError
    return cls(message, status=status, reason=reason)


def _status_object(body: Any) -> dict[str, Any]:
    """The error answer's `Status` (kind, reason, message, details), or {} when it is not one."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        payload = json.loads(body) if isinstance(body, str) else None
    except ValueError:
        return {"message": body.strip()[:256]} if isinstance(body, str) and body.strip() else {}
    return payload if isinstance(payload, dict) and payload.get("kind") == "Status" else {}


def _retry_after(headers: Any, payload: dict[str, Any]) -> int | None:
    """The wait the API asked for: the Retry-After header, else the Status's retryAfterSeconds."""
    for value in ((headers or {}).get("Retry-After"), (payload.get("details") or {}).get("retryAfterSeconds")):
        if value is None:
            continue
        try:
            return max(0, int(float(value)))
        except (TypeError, ValueError):  # an HTTP date, or not a number: ignore it
            continue
    return None


@contextmanager
def translated() -> Iterator[None]:
    """Inside: any client or network error leaves as a KubeError (the client's one as its cause)."""
    try:
        yield
    except ApiException as exc:
        raise translate(exc) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:  # refused, reset, TLS, read timeouts
        raise translate(exc) from exc


class KubeApi:
    """The API calls roughy makes, on one client and with one request timeout."""

    def __init__(
        self, client: k8s.ApiClient, *, timeout: float = DEFAULT_REQUEST_TIMEOUT, namespace: str = "default"
    ) -> None:
        """`timeout`: seconds per request (connect and answer); `namespace`: the one the
        configuration names, for callers that are not given one."""
        self.client = client
        self.timeout = timeout
        self.namespace = namespace
        self._objects = k8s.CustomObjectsApi(client)
        self._batch = k8s.BatchV1Api(client)
        self._core = k8s.CoreV1Api(client)
        self._apps = k8s.AppsV1Api(client)
        self._coordination = k8s.CoordinationV1Api(client)

    @classmethod
    def from_environment(cls, *, timeout: float = DEFAULT_REQUEST_TIMEOUT) -> KubeApi:
        """In a pod: the service account's config and namespace. Elsewhere: KUBECONFIG (or
        ~/.kube/config) and its current context's namespace ("default" when it names none)."""
        configuration = k8s.Configuration()
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
            return cls(k8s.ApiClient(configuration), timeout=timeout, namespace=_service_account_namespace())
        except ConfigException:
            pass
        try:
            # Read KUBECONFIG now: the client reads it once, when it is imported.
            k8s_config.load_kube_config(config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration)
        except (ConfigException, OSError) as exc:
            raise KubeConfigError(f"no Kubernetes configuration (in-cluster or KUBECONFIG): {exc}") from exc
        return cls(k8s.ApiClient(configuration), timeout=timeout, namespace=_kubeconfig_namespace())

    def close(self) -> None:
        self.client.close()

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a client API method with our timeout; every failure leaves as a KubeError."""
        return self.call_within(self.timeout, fn, *args, **kwargs)

    def call_within(self, timeout: float, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`call` with another timeout (seconds for the whole request): the leader election's
        requests must end before its renew deadline does."""
        with translated():
            return fn(*args, _request_timeout=timeout, **kwargs)

    # --- Render custom objects ------------------------------------------------------------------

    def create_render(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return _dict(self.call(self._objects.create_namespaced_custom_object, *_renders(namespace), body))

    def get_render(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return _dict(self.call(self._objects.get_namespaced_custom_object, *_renders(namespace), name))
        except KubeNotFound:
            return None

    def list_renders(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """Every matching Render, page by page (a big namespace does not come in one answer)."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            options: dict[str, Any] = {"label_selector": label_selector, "limit": LIST_PAGE_SIZE}
            if token:
                options["_continue"] = token
            page = _dict(self.call(self._objects.list_namespaced_custom_object, *_renders(namespace), **options))
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    def ping(self, namespace: str, *, timeout: float = 5.0) -> None:
        """The smallest call that proves the API answers and still accepts our credentials,
        with a short timeout (a liveness probe must answer within its own)."""
        with translated():
            self._objects.list_namespaced_custom_object(*_renders(namespace), limit=1, _request_timeout=timeout)

    def patch_render(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A merge patch; `metadata.uid`/`resourceVersion` in it make it conditional (409)."""
        return _dict(self.call(self._objects.patch_namespaced_custom_object, *_renders(namespace), name, patch))

    def patch_render_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """A merge patch of the status subresource (None values remove fields)."""
        call = self._objects.patch_namespaced_custom_object_status
        return _dict(self.call(call, *_renders(namespace), name, {"status": status}))

    def delete_render(self, namespace: str, name: str, *, uid: str | None, propagation: str) -> bool:
        """Delete the Render if it is still the object `uid` (KubeConflict if not); False if gone."""
        options = k8s.V1DeleteOptions(propagation_policy=propagation, preconditions=k8s.V1Preconditions(uid=uid))
        try:
            self.call(self._objects.delete_namespaced_custom_object, *_renders(namespace), name, body=options)
        except KubeNotFound:
            return False
        return True

    # --- Jobs, pods, Deployments ------------------------------------------------------------------

    def create_job(self, namespace: str, body: dict[str, Any]) -> k8s.V1Job:
        return self.call(self._batch.create_namespaced_job, namespace, body)

    def read_job(self, namespace: str, name: str) -> k8s.V1Job | None:
        try:
            return self.call(self._batch.read_namespaced_job, name, namespace)
        except KubeNotFound:
            return None

    def delete_job(self, namespace: str, name: str, *, propagation: str) -> bool:
        """Delete the Job (`Foreground`: its pods go first); False if it was already gone."""
        options = k8s.V1DeleteOptions(propagation_policy=propagation)
        try:
            self.call(self._batch.delete_namespaced_job, name, namespace, body=options)
        except KubeNotFound:
            return False
        return True

    def create_secret(self, namespace: str, body: dict[str, Any]) -> None:
        self.call(self._core.create_namespaced_secret, namespace, body)

    def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Secret as a plain dict (`data` base64, as the API has it); None if there is none."""
        try:
            secret = self.call(self._core.read_namespaced_secret, name, namespace)
        except KubeNotFound:
            return None
        owners = [{"uid": ref.uid} for ref in (secret.metadata.owner_references or [])] if secret.metadata else []
        return {"metadata": {"name": name, "ownerReferences": owners}, "data": dict(secret.data or {})}

    def list_pods(self, namespace: str, label_selector: str) -> list[k8s.V1Pod]:
        pods: list[k8s.V1Pod] = self.call(
            self._core.list_namespaced_pod, namespace, label_selector=label_selector
        ).items
        return pods

    def read_pod_log(
        self, namespace: str, pod: str, *, container: str, tail_lines: int | None = None, limit_bytes: int | None = None
    ) -> str:
        """The container's log as text. Read raw: the client's own decoding of this endpoint
        returns the repr of the bytes (b'...'), and a log that is one JSON document as a dict.
        The body is read here too, so an error while it streams is translated like the call's."""
        options = {"tail_lines": tail_lines, "limit_bytes": limit_bytes}
        options = {key: value for key, value in options.items() if value is not None}
        response = self.call(
            self._core.read_namespaced_pod_log, pod, namespace, container=container, _preload_content=False, **options
        )
        try:
            with translated():
                return bytes(response.data).decode("utf-8", "replace")
        finally:
            response.release_conn()

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        self.call(self._apps.patch_namespaced_deployment_scale, name, namespace, {"spec": {"replicas": replicas}})

    def read_deployment(self, namespace: str, name: str) -> k8s.V1Deployment | None:
        try:
            return self.call(self._apps.read_namespaced_deployment, name, namespace)
        except KubeNotFound:
            return None

    # --- Leases (coordination.k8s.io/v1: the operator's leader election) ------------------------

    def read_lease(self, namespace: str, name: str, *, timeout: float | None = None) -> dict[str, Any] | None:
        """The Lease as the API serves it (camelCase JSON), or None when there is none."""
        try:
            lease = self.call_within(timeout or self.timeout, self._coordination.read_namespaced_lease, name, namespace)
        except KubeNotFound:
            return None
        return self._json(lease)

    def create_lease(self, namespace: str, body: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """KubeConflict (AlreadyExists) when another process created it first."""
        call = self._coordination.create_namespaced_lease
        return self._json(self.call_within(timeout or self.timeout, call, namespace, body))

    def replace_lease(
        self, namespace: str, name: str, body: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        """A PUT: with `metadata.resourceVersion` in `body` it is conditional (KubeConflict when
        another process wrote the Lease since that version was read)."""
        call = self._coordination.replace_namespaced_lease
        return self._json(self.call_within(timeout or self.timeout, call, name, namespace, body))

    def _json(self, obj: Any) -> dict[str, Any]:
        """A typed client object as the API's JSON (camelCase keys; times as ISO 8601 strings)."""
        return _dict(self.client.sanitize_for_serialization(obj))


def _renders(namespace: str) -> tuple[str, str, str, str]:
    """The leading arguments of every custom-object call on Renders."""
    return crd.GROUP, crd.VERSION, namespace, crd.PLURAL


def _dict(value: Any) -> dict[str, Any]:
    """Custom-object calls answer plain JSON objects (untyped in the client)."""
    return cast(dict[str, Any], value)


def _service_account_namespace() -> str:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def _kubeconfig_namespace() -> str:
    try:
        _, active = k8s_config.list_kube_config_contexts(config_file=os.environ.get("KUBECONFIG"))
    except (ConfigException, OSError):
        return "default"
    return str((active or {}).get("context", {}).get("namespace") or "default")
