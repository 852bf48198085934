"""`KubeEmulator`: kmock's KubernetesEmulator with the API-server semantics roughy relies on.

kmock stores objects, serves discovery, lists, watches and honours finalizers, but treats every
write as a plain dict merge. This subclass keeps kmock's HTTP server, request parsing, reaction
DSL (`emulator['list renders'] << 500` still works), discovery and object store
(`emulator.objects[...]`, with histories), and replaces the state logic with:

- **metadata the server owns**: `uid`, `creationTimestamp`, `generation`, `resourceVersion`
  (one cluster-wide counter, bumped on every write; a no-op write changes nothing and emits no
  event), `namespace`, `generateName` (kopf names its Events that way), and name/label
  validation (DNS-1123 names, label keys and values);
- **optimistic concurrency**: a PUT or merge PATCH whose body names `metadata.resourceVersion`
  (or `metadata.uid`) that is not the current one answers 409 Conflict; DELETE honours
  `preconditions`;
- **generation**: bumped when anything outside `metadata` (and `status`, for resources with a
  status subresource) changes;
- **status subresource** (resources registered with `subresources={'status'}`): writes to
  `.../status` change only `status`; writes to the object itself keep the old `status`;
  `status` is dropped on create;
- **PUT** (replace) and **DELETE collection**, which kmock does not route;
- **JSON patch** (a list body) besides merge patch (strategic merge patch is treated as a merge
  patch: lists are replaced, not merged by key);
- **deletion**: finalizers hold the object with `deletionTimestamp` set until they are all
  removed; no new finalizer may be added meanwhile (422);
- **garbage collection by owner references** (what kube-controller-manager's GC does):
  `propagationPolicy` Background deletes dependents once their owners are all gone, Foreground
  adds the `foregroundDeletion` finalizer and removes the owner only after its blocking
  dependents (`blockOwnerDeletion: true`) are gone, Orphan strips the owner references. The
  default is Background, except batch/v1 Jobs, whose API default is still Orphan (a Job deleted
  without a policy leaves its pods: pass Background or Foreground). A dependent created while
  its owner waits in the foreground (a controller racing the delete) is deleted at once;
- **list/watch**: `labelSelector` and `fieldSelector`; the list's `metadata.resourceVersion` is
  the current one; a watch from a `resourceVersion` replays the events after it (then streams
  live), one without it starts with ADDED for what exists; objects moving into or out of a
  watch's selector arrive as ADDED/DELETED; `timeoutSeconds` ends the stream;
- **410 Gone on stale watches**: the watch history is bounded like etcd's (`history_limit`
  events per resource; None, the default: unbounded) and can be compacted at any moment
  (`compact()`; `EmulatorServer.expire_watches()` compacts and ends the open streams, so the
  clients resume from a resourceVersion that is gone). A watch from a resourceVersion older than
  what is kept answers an `ERROR` event with a 410 `Expired` Status ("too old resource version:
  RV (OLDEST)") and ends, as the API server's watch cache does; the client must list again.
  Watches answered so are recorded in `expired`;
- **size limits**: a request body over 3 MiB (`max_request_bytes`: the API server's
  MaxRequestBodyBytes; with or without Content-Length) answers 413 `RequestEntityTooLarge`
  "Request entity too large: limit is 3145728"; an object whose JSON exceeds 1.5 MiB once
  written (`max_object_bytes`: etcd's default `--max-request-bytes`), on create, update, patch
  or status write, answers 500 "etcdserver: request is too large", as a real API server passes
  etcd's refusal on (kubernetes/kubernetes#112152), and nothing changes;
- **RBAC** (opt-in, `grant(token, user, rules, namespace)`: PolicyRules of a Role in that
  namespace, or of a ClusterRole with None; tests/kube/test_rbac.py feeds it the chart's
  rendered Roles): a request whose bearer token was granted rules is allowed only if one rule
  matches its verb (get/list/watch, `watch=true` on a list or a get being `watch`;
  create/update/patch/delete/deletecollection), API group, resource or `resource/subresource`
  (`renders/status`, `pods/log`), `resourceNames` (a rule with names allows no create, list or
  watch) and namespace (a Role's rules never reach cluster-scoped resources), with the `*`
  wildcards (and `*/SUB`). Otherwise 403 `Forbidden` in the API server's words (`renders.roughy.ai
  "r-1" is forbidden: User "system:serviceaccount:NS:SA" cannot patch resource
  "renders/status" in API group "roughy.ai" in the namespace "NS"`), before anything changes,
  recorded in `forbidden`. Discovery (`/api`, `/apis`, `/version`, `/apis/GROUP/VERSION`) is
  everyone's (system:discovery); requests without a granted token (the fake kubelet, playing
  the control plane; tests) are not restricted. No authentication: any token is accepted;
- **Namespace objects**: kmock's path parser cannot read `/api/v1/namespaces[/NAME]` (it takes
  the segment for a namespace scope), so these paths are rewritten and served as the cluster-
  scoped `v1/namespaces` resource (kopf lists and watches them);
- **the official client's quirks**: `watch=True` (kmock only routes `watch=true`) and the
  trailing-slash discovery paths `/apis/`, `/api/`, `/apis/GROUP/VERSION/`;
- **fault injection**: `fail(status, ...)` answers the next matching requests with an error
  *before* any state changes (kmock reactions answer after the write has happened);
- **shutdown**: `close_watches()` ends open watch streams so the HTTP server stops at once;
- **pod logs** (`GET .../pods/NAME/log`, text/plain): the text a kubelet wrote with
  `append_log(namespace, pod, text)` (thread-safe: the fake kubelet's reader threads call it
  while the process runs). `tailLines` then `limitBytes` cut it as the kubelet does (the last
  N lines, then at most that many bytes from their start); `container` is checked against the
  pod's containers (required when it has several); 404 for an unknown pod, 400 while the pod
  has no node (`spec.nodeName`) or its container has not started (no `running` or `terminated`
  state in `status.containerStatuses`), and for `previous=true` (no container ever restarts).
  `follow=true` answers what is there now and ends (no streaming); `timestamps`, `sinceSeconds`
  and `sinceTime` are ignored. A pod's log starts empty when it is created and is dropped
  when it is removed. The log is kept per pod, not per container. Beware the official client
  (as against a real cluster): `read_namespaced_pod_log` without `_preload_content=False` does
  not return the text as served. kubernetes 36 returns the repr of the bytes (`"b'...'"`,
  kubernetes-client/python#2596), and every version first tries `json.loads`, so a log that is
  one JSON document (`{"progress": 1}`) comes back as a Python repr. Pass
  `_preload_content=False` and decode `.data`;
- **CRD schema** (opt-in, per plural): `checks` validate (and may prune) each object about to
  be stored, `transition_checks` each update against the object it replaces (422 Invalid,
  nothing changes). harness.install_render_schema sets the Render CRD's: `spec` pruned of what
  the schema does not name (recorded: `SpecSchemaCheck.pruned`) then validated, `spec`
  immutable (the CRD's `self == oldSelf` rule), `status` validated with unknown fields refused
  (tests/kube/stack.py and tests/kube/test_rbac.py install it).

Not emulated: admission, the schema of any other resource, CEL rules other than the one above,
defaulting from the schema, server-side apply, pagination
(`limit`/`continue` return everything), a list at an old `resourceVersion` (always the current
state, never 410), bookmarks, RBAC aggregation and impersonation, graceful pod termination
(a pod is removed at once, as with grace period 0), and every controller (no Job controller,
no kubelet: tests/kube/kubelet.py provides a fake one).
"""

from __future__ import annotations

import asyncio
import collections
import copy
import dataclasses
import json
import re
import secrets
import threading
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import aiohttp.web
import attrs
import jsonpatch
import jsonpointer
import kmock

from tests.kube import selectors

Key = tuple[kmock.resource, str | None, str]
Event = tuple[str, dict[str, Any], dict[str, Any] | None]  # type, object, previous object

SERVER_FIELDS = (
    "name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
    "generation", "resourceVersion",
)  # fmt: skip
FOREGROUND = "foregroundDeletion"
MAX_REQUEST_BYTES = 3 * 1024 * 1024  # k8s.io/apiserver: MaxRequestBodyBytes
MAX_OBJECT_BYTES = 1536 * 1024  # etcd's default --max-request-bytes
POLICIES = ("Foreground", "Background", "Orphan")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_NAME_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"  # what the API server draws generateName suffixes from
_CLOSE: Any = object()  # put on the buses to end every open watch (server shutdown)

# kmock's path parser fails on `/api/v1/namespaces` and reads `/api/v1/namespaces/NAME` as a
# namespace, not a Namespace object: such paths are rewritten to an alias plural, then mapped back.
NAMESPACES = kmock.resource("", "v1", "namespaces")
PODS = kmock.resource("", "v1", "pods")
_NAMESPACES_ALIAS = kmock.resource("", "v1", "kmock-namespaces")
_NAMESPACE_PATH = re.compile(r"/api/v1/namespaces(/[^/]+)?(/status|/finalize)?/?")


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, reason: str, message: str, **details: Any) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=status, reason=reason, message=message, details=details or {})


def not_found(resource: kmock.resource, name: str) -> kmock.KubernetesError:
    return _error(404, "NotFound", f'{resource.plural}.{resource.group} "{name}" not found', name=name)


@dataclass
class Fault:
    status: int
    times: int
    method: str | None
    plural: str | None
    subresource: str | None
    reason: str

    def matches(self, request: kmock.Request) -> bool:
        if self.method is not None and str(request.method.value).upper() != self.method.upper():
            return False
        if self.plural is not None and (request.resource is None or request.resource.plural != self.plural):
            return False
        return self.subresource is None or request.subresource == self.subresource


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    _rv: int = attrs.field(default=0, init=False)
    _results: dict[kmock.Request, Any] = attrs.field(factory=dict, init=False)
    _log: dict[kmock.resource, list[tuple[int, Event]]] = attrs.field(
        factory=lambda: collections.defaultdict(list), init=False
    )
    _faults: list[Fault] = attrs.field(factory=list, init=False)
    _faults_lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    #: Per plural, a check of each object about to be stored (raises KubernetesError 422): what
    #: a real API server's schema validation refuses (see harness.status_schema_check).
    checks: dict[str, Callable[[dict[str, Any]], None]] = attrs.field(factory=dict, init=False)
    #: Per plural, a check of each update against the object it replaces (raises 422): the
    #: CRD's transition rules, e.g. `self == oldSelf` (see harness.immutable_spec_check).
    transition_checks: dict[str, Callable[[dict[str, Any], dict[str, Any]], None]] = attrs.field(
        factory=dict, init=False
    )
    _pod_logs: dict[tuple[str, str], list[str]] = attrs.field(factory=dict, init=False)
    _pod_logs_lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    #: None: kmock keeps every request in `_requests` (what tests inspect). A list: each request
    #: moves here once answered, so that `_requests` holds only those in flight. kmock looks a
    #: request up in `_requests` by a scan per answer, which a long bench makes quadratic.
    archive: list[kmock.Request] | None = attrs.field(default=None, init=False)
    #: How many events the watch history keeps per resource (None: all of them). Older ones are
    #: compacted away, as etcd does: a watch from a resourceVersion before them answers 410 Gone.
    history_limit: int | None = attrs.field(default=None)
    _compacted: dict[kmock.resource, int] = attrs.field(factory=dict, init=False)
    #: "METHOD /path?query" of every watch answered 410 Gone (its resourceVersion compacted away).
    expired: list[str] = attrs.field(factory=list, init=False)
    #: The API server's limit on a request body (3 MiB): larger answers 413 RequestEntityTooLarge.
    max_request_bytes: int = attrs.field(default=MAX_REQUEST_BYTES)
    #: etcd's limit on a stored object (1.5 MiB, `--max-request-bytes`), here its JSON: larger
    #: answers 500 "etcdserver: request is too large", as a real API server passes it on.
    max_object_bytes: int = attrs.field(default=MAX_OBJECT_BYTES)
    #: RBAC (opt-in): bearer token -> the subject it authenticates and the rules granted to it
    #: (see `grant`). Requests with another token, or none, are not restricted.
    rbac: dict[str, Subject] = attrs.field(factory=dict, init=False)
    #: Every request refused by RBAC (403), in order: what a test asserts is empty.
    forbidden: list[Refusal] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        # kmock routes no K8s action for PUT or for DELETE without a name: route them here.
        self.fallback[self._is_replace] << self._serve_replace
        self.fallback[self._is_delete_collection] << self._serve_delete_collection
        # The official client asks for `/apis/` and `/api/` with the slash; the real server serves both.
        self.fallback["get /apis/"] << self._serve_apis
        self.fallback["get /api/"] << self._serve_api

    # --- public helpers for tests -------------------------------------------------------------

    def fail(
        self,
        status: int = 500,
        *,
        times: int = 1,
        method: str | None = None,
        plural: str | None = None,
        subresource: str | None = None,
        reason: str = "InternalError",
    ) -> None:
        """Answer the next `times` matching requests with `status`, changing nothing (thread-safe)."""
        with self._faults_lock:
            self._faults.append(Fault(status, times, method, plural, subresource, reason))

    def grant(self, token: str, user: str, rules: list[dict[str, Any]], namespace: str | None = None) -> None:
        """Let the requests bearing `token` do what `rules` (RBAC PolicyRules) allow, and nothing
        else, as `user` (e.g. `system:serviceaccount:NS:SA`, for the 403 message). `namespace`:
        the rules come from a Role of that namespace (they apply to requests in it only); None:
        from a ClusterRole (everywhere, cluster-scoped resources too). Calls add up."""
        subject = self.rbac.setdefault(token, Subject(user))
        subject.grants.extend((namespace, copy.deepcopy(rule)) for rule in rules)

    def append_log(self, namespace: str, pod: str, text: str) -> None:
        """Add `text` to the log of pod `namespace/pod`, as its container wrote it (thread-safe).

        The pod need not exist yet (the text is served once it does and its container started);
        creating or removing the pod clears its log.
        """
        with self._pod_logs_lock:
            self._pod_logs.setdefault((namespace, pod), []).append(text)

    def pod_log(self, namespace: str, pod: str) -> str:
        """The whole log of pod `namespace/pod` so far ("" if none; thread-safe)."""
        with self._pod_logs_lock:
            return "".join(self._pod_logs.get((namespace, pod), ()))

    def _forget_log(self, key: Key) -> None:
        if key[0] == PODS and key[1] is not None:
            with self._pod_logs_lock:
                self._pod_logs.pop((key[1], key[2]), None)

    @property
    def resource_version(self) -> int:
        return self._rv

    def compact(self) -> None:
        """Forget the watch history up to now (etcd's compaction): a watch from an older
        resourceVersion answers 410 Gone, as does one from before `history_limit`'s window.
        Call it holding the lock (`EmulatorServer.call`)."""
        for resource in set(self._log) | set(self._resources):
            self._log[resource] = []
            self._compacted[resource] = self._rv

    async def close_watches(self) -> None:
        """End every open watch stream (else the HTTP server waits for them when it stops)."""
        async with self._lock:
            for bus in list(self._buses.values()):
                await bus.put(_CLOSE)

    # --- request entry point ------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if _NAMESPACE_PATH.fullmatch(raw_request.path):
            path = raw_request.path.replace("/api/v1/namespaces", f"/api/v1/{_NAMESPACES_ALIAS.plural}", 1)
            query = f"?{raw_request.query_string}" if raw_request.query_string else ""
            raw_request = raw_request.clone(rel_url=path + query)
        too_large = aiohttp.web.json_response(
            {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": f"Request entity too large: limit is {self.max_request_bytes}",
                "reason": "RequestEntityTooLarge", "code": 413,
            },
            status=413,
        )  # fmt: skip
        if (raw_request.content_length or 0) > self.max_request_bytes:
            return too_large
        # aiohttp's own default limit is 1 MiB: raise it to the API server's, then read the body
        # once (cached: kmock's parsing reads it again), so that a chunked one is measured too.
        raw_request = raw_request.clone(client_max_size=self.max_request_bytes)
        try:
            await raw_request.read()
        except aiohttp.web.HTTPRequestEntityTooLarge:
            return too_large
        return await super().__call__(raw_request)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.resource == _NAMESPACES_ALIAS:
            original, request = request, attrs.evolve(request, resource=NAMESPACES)
            # Views (reactions, fallbacks) see only the recorded requests: record the mapped one.
            self._requests[:] = [request if seen is original else seen for seen in self._requests]
        self._authorize(request)
        fault = self._take_fault(request)
        if fault is not None:
            raise _error(fault.status, fault.reason, f"injected failure ({fault.status})")
        if request.resource is not None and self._is_write(request):
            async with self._lock:
                self._results[request] = await self._write(request)
        try:
            # Skip KubernetesEmulator._handle (its dict-merge state logic); keep the reactions.
            return await super(kmock.KubernetesEmulator, self)._handle(request)
        finally:
            self._results.pop(request, None)
            if self.archive is not None:
                self.archive.append(request)
                self._requests[:] = [seen for seen in self._requests if seen is not request]

    def _authorize(self, request: kmock.Request) -> None:
        """RBAC: 403 Forbidden unless a rule granted to the request's token allows it."""
        if not self.rbac:
            return
        header = next((v for k, v in request.headers.items() if k.lower() == "authorization"), "")
        subject = self.rbac.get(header.removeprefix("Bearer ").strip()) if header.startswith("Bearer ") else None
        resource = request.resource
        if subject is None or resource is None or resource.plural is None:  # discovery: everyone
            return
        attrs_ = Attributes(
            verb=self._verb(request),
            group=resource.group or "",
            resource=resource.plural,
            subresource=request.subresource or "",
            name=request.name or "",
            namespace=request.namespace or "",
        )
        if any(_allows(rule, namespace, attrs_) for namespace, rule in subject.grants):
            return
        path = request.url.path_qs.replace(f"/api/v1/{_NAMESPACES_ALIAS.plural}", "/api/v1/namespaces", 1)
        refusal = Refusal(subject.user, attrs_, f"{self._method(request)} {path}")
        self.forbidden.append(refusal)
        raise _error(
            403,
            "Forbidden",
            refusal.message,
            **({"name": attrs_.name} if attrs_.name else {}),
            group=attrs_.group,
            kind=attrs_.resource,
        )

    def _verb(self, request: kmock.Request) -> str:
        method = self._method(request)
        if method in {"GET", "HEAD"}:
            if self._is_watch(request):
                return "watch"
            return "get" if request.name is not None else "list"
        if method == "DELETE":
            return "delete" if request.name is not None else "deletecollection"
        return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())

    def _take_fault(self, request: kmock.Request) -> Fault | None:
        with self._faults_lock:
            for fault in self._faults:
                if fault.matches(request):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    @staticmethod
    def _method(request: kmock.Request) -> str:
        return str(request.method.value).upper()

    def _is_write(self, request: kmock.Request) -> bool:
        return self._method(request) in {"POST", "PUT", "PATCH", "DELETE"}

    def _is_replace(self, request: kmock.Request) -> bool:
        return request.resource is not None and self._method(request) == "PUT" and request.name is not None

    def _is_delete_collection(self, request: kmock.Request) -> bool:
        return request.resource is not None and self._method(request) == "DELETE" and request.name is None

    async def _write(self, request: kmock.Request) -> Any:
        method = self._method(request)
        info = self._info(request.resource)
        if method == "POST" and request.name is None:
            return await self._create(request, info)
        if method in {"PUT", "PATCH"} and request.name is not None:
            return await self._update(request, info)
        if method == "DELETE" and request.name is not None:
            return await self._delete_request(request, info)
        if method == "DELETE":
            return await self._delete_collection(request, info)
        raise _error(405, "MethodNotAllowed", f"{method} is not supported on {request.url.path}")

    # --- resources, keys, objects --------------------------------------------------------------

    def _info(self, resource: kmock.resource | None) -> kmock.ResourceInfo:
        for known in self._resources:
            if known == resource:
                return self._resources[known]
        raise _error(404, "NotFound", f"the server could not find the requested resource ({resource})")

    @staticmethod
    def _has_status(info: kmock.ResourceInfo) -> bool:
        return "status" in info.subresources

    def _key(self, resource: kmock.resource, info: kmock.ResourceInfo, namespace: str | None, name: str) -> Key:
        return (resource, namespace if info.namespaced is not False else None, name)

    def _live(self, key: Key) -> dict[str, Any] | None:
        if key not in self._objects or self._objects[key].deleted:
            return None
        return copy.deepcopy(self._objects[key].raw)

    def _require(self, key: Key) -> dict[str, Any]:
        obj = self._live(key)
        if obj is None:
            raise not_found(key[0], key[2])
        return obj

    def _live_items(
        self, keep: Callable[[Key, dict[str, Any]], bool] | None = None
    ) -> list[tuple[Key, dict[str, Any]]]:
        """Copies of the live objects `keep` accepts (it sees the stored object: it must not
        change it). Filtering before copying keeps a list of a few objects among thousands cheap."""
        items = []
        for key, obj in self._objects.items():
            if obj.deleted:
                continue
            raw = obj.raw
            if keep is None or keep(key, raw):
                items.append((key, copy.deepcopy(raw)))
        return items

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    async def _store(self, key: Key, obj: dict[str, Any], kind: str, old: dict[str, Any] | None) -> None:
        check = self.checks.get(key[0].plural) if kind != "DELETED" else None
        if check is not None:
            check(obj)
        transition = self.transition_checks.get(key[0].plural) if kind == "MODIFIED" else None
        if transition is not None and old is not None:
            transition(obj, old)
        if kind != "DELETED" and len(json.dumps(obj, separators=(",", ":"))) > self.max_object_bytes:
            raise _error(500, "InternalError", "etcdserver: request is too large")
        if key in self._objects:
            self._objects[key].create(copy.deepcopy(obj))
        else:
            self._objects[key] = copy.deepcopy(obj)
        await self._emit(key[0], kind, obj, old)

    async def _emit(self, resource: kmock.resource, kind: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        event: Event = (kind, copy.deepcopy(obj), old)
        log = self._log[resource]
        log.append((int(obj["metadata"]["resourceVersion"]), event))
        if self.history_limit is not None and len(log) > self.history_limit:
            dropped = log[: len(log) - self.history_limit]
            del log[: len(dropped)]
            self._compacted[resource] = max(self._compacted.get(resource, 0), dropped[-1][0])
        await self._buses[resource].put(event)

    # --- validation ---------------------------------------------------------------------------

    @staticmethod
    def _validate(obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        name = meta.get("name", "")
        if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
            raise _error(422, "Invalid", f"metadata.name: Invalid value: {name!r}: must be a DNS-1123 subdomain")
        for label_key, value in (meta.get("labels") or {}).items():
            prefix, _, label_name = label_key.rpartition("/")
            if (
                (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)))
                or len(label_name) > 63
                or not _LABEL_NAME.fullmatch(label_name)
            ):
                raise _error(422, "Invalid", f"metadata.labels: Invalid value: {label_key!r}: not a label key")
            if not isinstance(value, str) or len(value) > 63 or (value and not _LABEL_NAME.fullmatch(value)):
                raise _error(422, "Invalid", f"metadata.labels: Invalid value: {value!r}: not a label value")

    # --- create -------------------------------------------------------------------------------

    async def _create(self, request: kmock.Request, info: kmock.ResourceInfo) -> Any:
        resource = request.resource
        assert resource is not None
        if not isinstance(request.data, dict):
            raise _error(400, "BadRequest", "the body must be a JSON object")
        obj = copy.deepcopy(request.data)
        meta = obj.setdefault("metadata", {})
        namespace: str | None = None
        if info.namespaced is not False:
            if request.namespace and meta.get("namespace") not in (None, "", request.namespace):
                raise _error(400, "BadRequest", "the namespace of the object does not match the request's")
            namespace = request.namespace or meta.get("namespace")
            if not namespace:
                raise _error(400, "BadRequest", "a namespaced object needs a namespace")
        name = meta.get("name")
        if not name:
            prefix = meta.get("generateName")
            if not prefix:
                raise _error(422, "Invalid", "metadata.name: Required value: name or generateName is required")
            while True:
                name = prefix + "".join(secrets.choice(_NAME_SUFFIX) for _ in range(5))
                if self._live(self._key(resource, info, namespace, name)) is None:
                    break
        key = self._key(resource, info, namespace, name)
        if self._live(key) is not None:
            raise _error(
                409,
                "AlreadyExists",
                f'{resource.plural}.{resource.group} "{name}" already exists',
                name=name,
                group=resource.group,
                kind=resource.plural,
            )
        for field in SERVER_FIELDS:
            meta.pop(field, None)
        meta["name"] = name
        if namespace is not None:
            meta["namespace"] = namespace
        meta.update(
            uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339(), generation=1, resourceVersion=self._next_rv()
        )
        obj.setdefault("apiVersion", f"{resource.group}/{resource.version}" if resource.group else resource.version)
        if info.kind:
            obj.setdefault("kind", info.kind)
        if self._has_status(info):
            obj.pop("status", None)
        self._validate(obj)
        self._forget_log(key)
        await self._store(key, obj, "ADDED", None)
        if self._owner_deleting_in_foreground(obj):  # a controller that had not seen the delete yet
            await self._delete(key, "Foreground")
        return kmock.Response(status=201, payload=obj)  # type: ignore[attr-defined]  # exported, not in __all__

    def _owner_deleting_in_foreground(self, obj: dict[str, Any]) -> bool:
        """An owner of `obj` waits for its dependents (foreground deletion): the GC deletes a
        dependent that appears meanwhile, as it does one that was there before."""
        for ref in obj["metadata"].get("ownerReferences") or []:
            owner_key = self._by_uid(ref.get("uid", ""))
            owner = self._live(owner_key) if owner_key is not None else None
            if owner is not None and FOREGROUND in (owner["metadata"].get("finalizers") or []):
                return True
        return False

    # --- update (PUT, PATCH; main resource or status) ---------------------------------------------

    async def _update(self, request: kmock.Request, info: kmock.ResourceInfo) -> dict[str, Any]:
        resource = request.resource
        assert resource is not None and request.name is not None
        key = self._key(resource, info, request.namespace, request.name)
        old = self._require(key)
        sub = request.subresource
        if sub not in (None, "status") or (sub == "status" and not self._has_status(info)):
            raise _error(404, "NotFound", f"the server could not find the requested resource ({sub})")
        new, preconditions = self._apply_body(request, old)
        if preconditions.get("resourceVersion") not in (None, "", old["metadata"]["resourceVersion"]):
            raise _error(
                409,
                "Conflict",
                f"Operation cannot be fulfilled on {resource.plural}.{resource.group} "
                f'"{request.name}": the object has been modified; please apply your changes to the latest '
                "version and try again",
                name=request.name,
            )
        if preconditions.get("uid") not in (None, "", old["metadata"]["uid"]):
            raise _error(
                409,
                "Conflict",
                f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                f"UID in object meta: {old['metadata']['uid']}",
            )

        if sub == "status":
            result = copy.deepcopy(old)
            if new.get("status") is not None:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
        else:
            result = new
            if self._has_status(info):
                result.pop("status", None)
                if "status" in old:
                    result["status"] = old["status"]
        result["apiVersion"], result["kind"] = old.get("apiVersion"), old.get("kind")
        meta = result.get("metadata")
        if not isinstance(meta, dict):
            meta = result["metadata"] = {}
        for field in SERVER_FIELDS:
            meta.pop(field, None)
            if field in old["metadata"]:
                meta[field] = old["metadata"][field]
        if meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old["metadata"].get("finalizers") or [])
            if added:
                raise _error(
                    422,
                    "Invalid",
                    f"metadata.finalizers: Forbidden: no new finalizers can be added if "
                    f"the object is being deleted, found new finalizers {sorted(added)}",
                )
        self._validate(result)
        if result == old:
            return old  # a no-op write: no new resourceVersion, no event
        if self._spec_part(result, info) != self._spec_part(old, info):
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        meta["resourceVersion"] = self._next_rv()
        await self._store(key, result, "MODIFIED", old)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            await self._remove(key)
        return result

    def _apply_body(self, request: kmock.Request, old: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The object after the write, and the metadata preconditions the body names."""
        body = request.data
        content_type = request.headers.get("Content-Type", "")
        if self._method(request) == "PUT":
            if not isinstance(body, dict):
                raise _error(400, "BadRequest", "the body must be a JSON object")
            return copy.deepcopy(body), dict(body.get("metadata") or {})
        if "apply-patch" in content_type:
            raise _error(415, "UnsupportedMediaType", "server-side apply is not emulated")
        if isinstance(body, list):
            try:
                patched = jsonpatch.apply_patch(old, body, in_place=False)
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
                raise _error(422, "Invalid", f"the JSON patch does not apply: {exc}") from exc
            return patched, {}
        if isinstance(body, dict):
            return merge_patch(old, body), dict(body.get("metadata") or {})
        raise _error(400, "BadRequest", "the patch must be a JSON object or a JSON patch list")

    def _spec_part(self, obj: dict[str, Any], info: kmock.ResourceInfo) -> dict[str, Any]:
        skipped = {"metadata", "status"} if self._has_status(info) else {"metadata"}
        return {key: value for key, value in obj.items() if key not in skipped}

    # --- delete and garbage collection ------------------------------------------------------------

    def _delete_options(self, request: kmock.Request) -> dict[str, Any]:
        options = dict(request.data) if isinstance(request.data, dict) else {}
        for param in ("propagationPolicy", "gracePeriodSeconds", "orphanDependents"):
            if param in request.params and param not in options:
                options[param] = request.params[param]
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if str(options["orphanDependents"]).lower() == "true" else "Background"
        if policy is None:
            assert request.resource is not None
            policy = (
                "Orphan" if (request.resource.group, request.resource.plural) == ("batch", "jobs") else "Background"
            )
        if policy not in POLICIES:
            raise _error(400, "BadRequest", f"unknown propagationPolicy {policy!r}")
        options["propagationPolicy"] = policy
        return options

    async def _delete_request(self, request: kmock.Request, info: kmock.ResourceInfo) -> dict[str, Any]:
        assert request.resource is not None and request.name is not None
        key = self._key(request.resource, info, request.namespace, request.name)
        obj = self._require(key)
        options = self._delete_options(request)
        preconditions = options.get("preconditions") or {}
        for field in ("uid", "resourceVersion"):
            expected = preconditions.get(field)
            if expected not in (None, "") and expected != obj["metadata"].get(field):
                raise _error(
                    409,
                    "Conflict",
                    f"Precondition failed: {field} in precondition: {expected}, "
                    f"{field} in object meta: {obj['metadata'].get(field)}",
                )
        return await self._delete(key, options["propagationPolicy"])

    async def _delete_collection(self, request: kmock.Request, info: kmock.ResourceInfo) -> dict[str, Any]:
        assert request.resource is not None
        match = self._selector(request)
        policy = self._delete_options(request)["propagationPolicy"]
        deleted = []
        for key, obj in self._live_items():
            if self._in_scope(request, key) and match(obj):
                deleted.append(await self._delete(key, policy))
        return {"apiVersion": "v1", "kind": f"{info.kind or 'Object'}List", "metadata": {}, "items": deleted}

    def _dependents(self, uid: str) -> list[tuple[Key, dict[str, Any]]]:
        return self._live_items(
            lambda _, obj: any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])
        )

    def _by_uid(self, uid: str) -> Key | None:
        for key, obj in self._objects.items():
            if not obj.deleted and obj.raw["metadata"].get("uid") == uid:
                return key
        return None

    async def _modify(self, key: Key, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """A write by the server itself (GC, deletion marks): no validation, no generation bump."""
        old = self._require(key)
        new = copy.deepcopy(old)
        change(new)
        if new == old:
            return old
        new["metadata"]["resourceVersion"] = self._next_rv()
        await self._store(key, new, "MODIFIED", old)
        return new

    async def _delete(self, key: Key, policy: str) -> dict[str, Any]:
        obj = self._require(key)
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            return obj  # already terminating: nothing more to do
        uid = meta["uid"]
        dependents = self._dependents(uid)
        if policy == "Orphan":
            for dep_key, _ in dependents:
                await self._modify(dep_key, lambda o: _drop_owner(o, uid))
            dependents = []

        def mark(o: dict[str, Any]) -> None:
            o["metadata"]["deletionTimestamp"] = now_rfc3339()
            o["metadata"]["deletionGracePeriodSeconds"] = 0
            if policy == "Foreground" and dependents and FOREGROUND not in (o["metadata"].get("finalizers") or []):
                o["metadata"]["finalizers"] = [*(o["metadata"].get("finalizers") or []), FOREGROUND]

        if not meta.get("finalizers") and not (policy == "Foreground" and dependents):
            return await self._remove(key)
        obj = await self._modify(key, mark)
        if policy == "Foreground":
            for dep_key, _ in dependents:
                if self._live(dep_key) is not None:
                    await self._delete(dep_key, "Foreground")
            await self._release_foreground(key)
            obj = self._live(key) or obj
        return obj

    async def _remove(self, key: Key) -> dict[str, Any]:
        """Remove the object for good; then collect its dependents, and unblock its owners."""
        obj = self._require(key)
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self._objects[key].delete()
        self._forget_log(key)
        await self._emit(key[0], "DELETED", obj, None)
        uid = obj["metadata"]["uid"]
        for dep_key, dep in self._dependents(uid):
            owners = [ref.get("uid") for ref in dep["metadata"].get("ownerReferences") or []]
            if self._live(dep_key) is not None and not any(self._by_uid(owner) for owner in owners):
                await self._delete(dep_key, "Background")
        for ref in obj["metadata"].get("ownerReferences") or []:
            owner_key = self._by_uid(ref.get("uid", ""))
            if owner_key is not None:
                await self._release_foreground(owner_key)
        return obj

    async def _release_foreground(self, key: Key) -> None:
        """Drop `foregroundDeletion` once no blocking dependent is left, as the GC does."""
        owner = self._live(key)
        if owner is None or FOREGROUND not in (owner["metadata"].get("finalizers") or []):
            return
        uid = owner["metadata"]["uid"]
        for _, dep in self._dependents(uid):
            for ref in dep["metadata"].get("ownerReferences") or []:
                if ref.get("uid") == uid and ref.get("blockOwnerDeletion"):
                    return
        owner = await self._modify(
            key,
            lambda o: o["metadata"].__setitem__(
                "finalizers", [f for f in o["metadata"]["finalizers"] if f != FOREGROUND]
            ),
        )
        if not owner["metadata"].get("finalizers"):
            await self._remove(key)

    # --- reading: fetch, list, watch ------------------------------------------------------------------

    def _selector(self, request: kmock.Request) -> selectors.Matcher:
        try:
            return selectors.selector(request.params.get("labelSelector"), request.params.get("fieldSelector"))
        except selectors.SelectorError as exc:
            raise _error(400, "BadRequest", f"unable to parse requirement: {exc}") from exc

    @staticmethod
    def _in_scope(request: kmock.Request, key: Key) -> bool:
        return (
            key[0] == request.resource
            and (request.namespace is None or key[1] == request.namespace)
            and (request.name is None or key[2] == request.name)
        )

    async def _serve_fetch(self, request: kmock.Request) -> Any:
        if request.subresource == "log":
            return await self._serve_log(request)
        if self._is_watch(request):
            return self._serve_watch(request)
        info = self._info(request.resource)
        assert request.resource is not None and request.name is not None
        async with self._lock:
            return self._require(self._key(request.resource, info, request.namespace, request.name))

    async def _serve_log(self, request: kmock.Request) -> Any:
        """`GET /api/v1/namespaces/NS/pods/NAME/log`: what `append_log` stored, as text/plain."""
        info = self._info(request.resource)
        assert request.resource is not None and request.name is not None
        if request.resource != PODS:
            raise _error(404, "NotFound", f"the server could not find the requested resource ({request.url.path})")
        async with self._lock:
            pod = self._require(self._key(request.resource, info, request.namespace, request.name))
        name = request.name
        containers = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
        container = request.params.get("container") or None
        if container is None and len(containers) > 1:
            choices = " ".join(containers)
            raise _error(
                400, "BadRequest", f"a container name must be specified for pod {name}, choose one of: [{choices}]"
            )
        container = container or (containers[0] if containers else "")
        if container not in containers:
            raise _error(400, "BadRequest", f"container {container} is not valid for pod {name}")
        if not (pod.get("spec") or {}).get("nodeName"):
            raise _error(400, "BadRequest", f"pod {name} does not have a host assigned")
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        state = next((s.get("state") or {} for s in statuses if s.get("name") == container), {})
        if "running" not in state and "terminated" not in state:
            reason = (state.get("waiting") or {}).get("reason") or "ContainerCreating"
            raise _error(400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        if request.params.get("previous", "").lower() in {"true", "1"}:
            raise _error(400, "BadRequest", f'previous terminated container "{container}" in pod "{name}" not found')
        text = self.pod_log(str(request.namespace), name)
        tail, limit = self._log_param(request, "tailLines"), self._log_param(request, "limitBytes")
        if tail is not None:
            text = "".join(text.splitlines(keepends=True)[-tail:]) if tail > 0 else ""
        body = text.encode()
        if limit is not None:
            body = body[:limit]
        return kmock.Response(  # type: ignore[attr-defined]  # exported, not in __all__
            status=200, payload=body, headers={"Content-Type": "text/plain"}
        )

    @staticmethod
    def _log_param(request: kmock.Request, name: str) -> int | None:
        raw = request.params.get(name)
        if raw in (None, ""):
            return None
        if not raw.isdigit() or (name == "limitBytes" and int(raw) == 0):
            raise _error(400, "BadRequest", f"{name}: Invalid value: {raw!r}: must be a positive integer")
        return int(raw)

    @staticmethod
    def _is_watch(request: kmock.Request) -> bool:
        # kmock routes only `watch=true` to WATCH; the official client sends `watch=True`.
        return request.params.get("watch", "").lower() in {"true", "1"}

    async def _serve_list(self, request: kmock.Request) -> Any:
        if request.resource is not None and request.resource.plural is None:  # `/apis/batch/v1/`: discovery
            return await self._serve_version(request)
        if self._is_watch(request):
            return self._serve_watch(request)
        info = self._info(request.resource)
        match = self._selector(request)
        async with self._lock:
            items = [obj for _, obj in self._live_items(lambda key, raw: self._in_scope(request, key) and match(raw))]
            version = str(self._rv)
        items.sort(key=lambda obj: (obj["metadata"].get("namespace") or "", obj["metadata"]["name"]))
        assert request.resource is not None
        group_version = f"{request.resource.group}/{request.resource.version}".lstrip("/")
        return {
            "apiVersion": group_version,
            "kind": f"{info.kind or 'Object'}List",
            "metadata": {"resourceVersion": version},
            "items": items,
        }

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        self._info(request.resource)
        assert request.resource is not None
        match = self._selector(request)
        since = request.params.get("resourceVersion", "")
        timeout = float(request.params["timeoutSeconds"]) if request.params.get("timeoutSeconds") else None
        bus = self._buses[request.resource]
        async with self._lock:  # every write emits under this lock: the snapshot and the mark agree
            marker = await bus.mark()
            expired: dict[str, Any] | None = None
            if since.isdigit() and int(since) > 0 and int(since) < self._compacted.get(request.resource, 0):
                # Events after `since` are gone: the API server's watch cache says 410 Expired.
                oldest = self._compacted[request.resource] + 1
                expired = {
                    "type": "ERROR",
                    "object": {
                        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": f"too old resource version: {since} ({oldest})", "reason": "Expired",
                        "code": 410,
                    },
                }  # fmt: skip
                backlog = []
                self.expired.append(f"{self._method(request)} {request.url.path_qs}")
            elif since.isdigit() and int(since) > 0:
                backlog = [event for rv, event in self._log[request.resource] if rv > int(since)]
            else:
                items = self._live_items(lambda key, _: key[0] == request.resource)
                backlog = [("ADDED", obj, None) for _, obj in items]
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        stream = cast(AsyncGenerator[Any, None], bus.stream(since=marker))
        try:
            yield b""  # send the headers: the stream is open even if nothing happens
            if expired is not None:
                yield expired
                return
            for event in backlog:
                if (out := self._watch_event(request, match, event)) is not None:
                    yield out
            while True:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        event = await anext(stream)
                except TimeoutError:
                    break
                if event is _CLOSE:
                    break
                if (out := self._watch_event(request, match, event)) is not None:
                    yield out
        finally:
            await stream.aclose()
            await bus.unmark(marker)

    def _watch_event(self, request: kmock.Request, match: selectors.Matcher, event: Event) -> Any:
        kind, obj, old = event
        meta = obj["metadata"]
        if request.namespace is not None and meta.get("namespace") != request.namespace:
            return None
        if request.name is not None and meta.get("name") != request.name:
            return None
        now, before = match(obj), old is not None and match(old)
        if kind == "MODIFIED" and now != before:
            kind = "ADDED" if now else "DELETED"
        elif not now:
            return None
        return {"type": kind, "object": obj}

    # --- responses of the writes (the state changed in _handle) ------------------------------------

    async def _serve_create(self, request: kmock.Request) -> Any:
        return self._results[request]

    async def _serve_update(self, request: kmock.Request) -> Any:
        return self._results[request]

    async def _serve_delete(self, request: kmock.Request) -> Any:
        return self._results[request]

    async def _serve_replace(self, request: kmock.Request) -> Any:
        return self._results[request]

    async def _serve_delete_collection(self, request: kmock.Request) -> Any:
        return self._results[request]


@dataclass
class Subject:
    user: str
    #: (the Role's namespace, or None for a ClusterRole; a PolicyRule)
    grants: list[tuple[str | None, dict[str, Any]]] = dataclasses.field(default_factory=list)


@dataclass(frozen=True)
class Attributes:
    """What the API server's authorizer is asked about a resource request."""

    verb: str
    group: str
    resource: str
    subresource: str
    name: str
    namespace: str


@dataclass(frozen=True)
class Refusal:
    user: str
    attributes: Attributes
    request: str  # "METHOD /path?query"

    @property
    def message(self) -> str:
        """As the API server words it (k8s.io/apiserver's forbidden message)."""
        a = self.attributes
        what = f"{a.resource}.{a.group}" if a.group else a.resource
        if a.name:
            what += f' "{a.name}"'
        resource = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
        scope = f' in the namespace "{a.namespace}"' if a.namespace else " at the cluster scope"
        return (
            f'{what} is forbidden: User "{self.user}" cannot {a.verb} resource "{resource}" '
            f'in API group "{a.group}"{scope}'
        )


def _allows(rule: dict[str, Any], namespace: str | None, a: Attributes) -> bool:
    """Whether one PolicyRule (of a Role in `namespace`, or of a ClusterRole: None) allows `a`,
    with RBAC's matching: `*` for any verb, group or resource, `*/SUB` for a subresource of any
    resource; `resourceNames` restricts the rule to those names (a create, list or watch without
    a name is then not allowed)."""
    if namespace is not None and a.namespace != namespace:
        return False
    verbs, groups, resources = rule.get("verbs") or [], rule.get("apiGroups") or [], rule.get("resources") or []
    if "*" not in verbs and a.verb not in verbs:
        return False
    if "*" not in groups and a.group not in groups:
        return False
    wanted = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    if not any(r in ("*", wanted) or (a.subresource and r == f"*/{a.subresource}") for r in resources):
        return False
    names = rule.get("resourceNames") or []
    return not names or a.name in names


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _drop_owner(obj: dict[str, Any], uid: str) -> None:
    refs = [ref for ref in obj["metadata"].get("ownerReferences") or [] if ref.get("uid") != uid]
    if refs:
        obj["metadata"]["ownerReferences"] = refs
    else:
        obj["metadata"].pop("ownerReferences", None)
