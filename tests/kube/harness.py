"""Run a `KubeEmulator` as a real HTTP server on 127.0.0.1, in a thread with its own event loop.

The Kubernetes client is synchronous and kopf runs its own loop, so the emulator cannot live in
the test's loop (kmock's own `kmock` fixture does that, for async tests). `EmulatorServer`
starts `kmock.Server(emulator)` (aiohttp, a free port) in a daemon thread; `stop()` closes it,
open watch streams included.

    server = EmulatorServer().start()
    api = server.api_client()               # kubernetes.client.ApiClient for server.url
    server.emulator.fail(500, plural="renders", method="POST")
    server.object("renders", "ns", "r-x")   # a copy of the stored object, or None
    server.append_log("ns", "pod-x", "line\n")  # what GET .../pods/pod-x/log serves (thread-safe)
    server.expire_watches()                 # etcd compaction: open watches resume into 410 Gone
    server.call(install_render_schema)      # Render writes checked against the CRD (spec, status)
    server.call(lambda e: e.grant(token, "system:serviceaccount:ns:sa", rules, "ns"))  # RBAC
    server.stop()

What kopf needs from it: the resources in RESOURCES are registered (discovery lists them, with
`namespaced`, `kind`, verbs and the `status` subresource that makes kopf patch status through
`/status`); the namespaces and the Render CRD exist from the start (kopf lists and watches
both); kopf's peering resources do not, so kopf runs standalone. Leases are registered too,
for the operator's own leader election. `running_operator(server,
registry)` runs the real kopf in a thread against the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import jsonschema
import kmock
import kopf
import yaml
from kubernetes import client as k8s

from roughy.kube import crd
from tests.kube.emulator import KubeEmulator

T = TypeVar("T")

VERBS = {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}

RENDERS = kmock.resource(crd.GROUP, crd.VERSION, crd.PLURAL)
JOBS = kmock.resource("batch", "v1", "jobs")
PODS = kmock.resource("", "v1", "pods")
EVENTS = kmock.resource("", "v1", "events")
NAMESPACES = kmock.resource("", "v1", "namespaces")
CRDS = kmock.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
LEASES = kmock.resource("coordination.k8s.io", "v1", "leases")
SECRETS = kmock.resource("", "v1", "secrets")

RESOURCES: dict[kmock.resource, kmock.ResourceInfo] = {
    RENDERS: kmock.ResourceInfo(
        kind=crd.KIND,
        singular=crd.SINGULAR,
        namespaced=True,
        verbs=VERBS,
        shortnames=set(crd.SHORT_NAMES),
        categories=set(crd.CATEGORIES),
        subresources={"status"},
    ),
    JOBS: kmock.ResourceInfo(kind="Job", singular="job", namespaced=True, verbs=VERBS, subresources={"status"}),
    PODS: kmock.ResourceInfo(
        kind="Pod", singular="pod", namespaced=True, verbs=VERBS, shortnames={"po"}, subresources={"status"}
    ),
    EVENTS: kmock.ResourceInfo(kind="Event", singular="event", namespaced=True, verbs=VERBS, shortnames={"ev"}),
    # A render's encoder token (roughy.kube.jobs.build_credentials_secret), mounted by its pods.
    SECRETS: kmock.ResourceInfo(kind="Secret", singular="secret", namespaced=True, verbs=VERBS),
    NAMESPACES: kmock.ResourceInfo(
        kind="Namespace",
        singular="namespace",
        namespaced=False,
        verbs=VERBS,
        shortnames={"ns"},
        subresources={"status"},
    ),
    CRDS: kmock.ResourceInfo(
        kind="CustomResourceDefinition",
        singular="customresourcedefinition",
        namespaced=False,
        verbs=VERBS,
        shortnames={"crd", "crds"},
        subresources={"status"},
    ),
    # The operator's leader election (roughy/operator/leader.py): no status subresource.
    LEASES: kmock.ResourceInfo(kind="Lease", singular="lease", namespaced=True, verbs=VERBS),
}

_PLURALS = {res.plural: res for res in RESOURCES}


def register(emulator: KubeEmulator) -> None:
    for resource, info in RESOURCES.items():
        emulator.resources[resource] = copy.deepcopy(info)


def status_schema_check() -> Callable[[dict[str, Any]], None]:
    """Validate a Render's `status` against the CRD's schema, as the API server does, and refuse
    fields the schema does not name, which a real server would silently prune (data lost)."""
    schema = crd.render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    validator = jsonschema.Draft4Validator(_closed(copy.deepcopy(schema)))

    def check(obj: dict[str, Any]) -> None:
        errors = [
            f"status.{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(obj.get("status", {}))
        ]
        if errors:
            raise kmock.KubernetesError(status=422, reason="Invalid", message="; ".join(errors[:5]), details={})

    return check


class SpecSchemaCheck:
    """What the API server does to a Render's `spec` on every write, from the CRD's schema:
    prune the fields the schema does not name (silently: the data is lost; each pruned path is
    recorded in `pruned`, for tests to assert there is none), then validate (422 Invalid)."""

    def __init__(self) -> None:
        schema = crd.render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        self.schema = schema["properties"]["spec"]
        self.validator = jsonschema.Draft4Validator(_nullable(copy.deepcopy(self.schema)))
        self.pruned: list[str] = []

    def __call__(self, obj: dict[str, Any]) -> None:
        if "spec" not in obj:
            raise kmock.KubernetesError(status=422, reason="Invalid", message="spec: Required value", details={})
        self.pruned += _prune(obj["spec"], self.schema, "spec")
        errors = [f"spec.{'.'.join(map(str, e.path))}: {e.message}" for e in self.validator.iter_errors(obj["spec"])]
        if errors:
            name = obj.get("metadata", {}).get("name", "")
            message = f'{crd.KIND}.{crd.GROUP} "{name}" is invalid: ' + "; ".join(errors[:5])
            raise kmock.KubernetesError(status=422, reason="Invalid", message=message, details={})


def render_schema_check(spec: SpecSchemaCheck | None = None) -> Callable[[dict[str, Any]], None]:
    """The Render's whole schema: `spec` pruned and validated (SpecSchemaCheck), `status` as in
    status_schema_check."""
    spec = spec or SpecSchemaCheck()
    status = status_schema_check()

    def check(obj: dict[str, Any]) -> None:
        spec(obj)
        status(obj)

    return check


def immutable_spec_check(new: dict[str, Any], old: dict[str, Any]) -> None:
    """The CRD's transition rule on `spec` (x-kubernetes-validations `self == oldSelf`)."""
    if new.get("spec") != old.get("spec"):
        name = new.get("metadata", {}).get("name", "")
        raise kmock.KubernetesError(
            status=422,
            reason="Invalid",
            message=f'{crd.KIND}.{crd.GROUP} "{name}" is invalid: spec: Invalid value: "object": '
            f"{crd.IMMUTABLE_SPEC['message']}",
            details={},
        )


def install_render_schema(emulator: KubeEmulator, spec: SpecSchemaCheck | None = None) -> None:
    """Validate every Render write against the CRD: spec (pruned, validated, immutable), status."""
    emulator.checks[crd.PLURAL] = render_schema_check(spec)
    emulator.transition_checks[crd.PLURAL] = immutable_spec_check


def _prune(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Drop, in place, what a structural schema does not name (the API server's pruning)."""
    pruned: list[str] = []
    if isinstance(value, dict) and schema.get("type") == "object":
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return pruned
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key in list(value):
            if properties is not None and key in properties:
                pruned += _prune(value[key], properties[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                pruned += _prune(value[key], extra, f"{path}.{key}")
            elif extra is not True:
                del value[key]
                pruned.append(f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            pruned += _prune(item, schema["items"], f"{path}[{index}]")
    return pruned


def _each_schema(node: Any, fix: Callable[[dict[str, Any]], None]) -> Any:
    """`fix` applied to every object of a schema, nested ones included; the schema, changed."""
    if isinstance(node, dict):
        fix(node)
        for value in node.values():
            _each_schema(value, fix)
    elif isinstance(node, list):
        for value in node:
            _each_schema(value, fix)
    return node


def _nullable(node: Any) -> Any:
    """OpenAPI's `nullable: true` as JSON Schema: null is one more type (and enum value)."""

    def fix(schema: dict[str, Any]) -> None:
        if schema.get("nullable") and isinstance(schema.get("type"), str):
            schema["type"] = [schema["type"], "null"]
            if "enum" in schema:
                schema["enum"] = [*schema["enum"], None]

    return _each_schema(node, fix)


def _closed(node: Any) -> Any:
    """No property the schema does not name (what the API server would prune)."""

    def fix(schema: dict[str, Any]) -> None:
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False

    return _each_schema(node, fix)


def kubeconfig(path: Path, server: str, token: str = "unused", namespace: str = "roughy") -> Path:
    """A kubeconfig for a process of its own (`roughy serve`, `roughy operator`, a bench's) to
    reach this server as the chart's pods reach theirs. The bearer token names the process in
    the emulator's record of requests (and, with RBAC granted to it, picks its rules)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": server}}],
        "users": [{"name": token, "user": {"token": token}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": token, "namespace": namespace}}],
        "current-context": "emulator",
    }
    path.write_text(yaml.safe_dump(config))
    return path


async def seed(server_url: str, namespaces: Iterable[str]) -> None:
    """What a fresh cluster with roughy's CRD installed has: the namespaces and the Render CRD."""
    async with aiohttp.ClientSession(server_url) as session:
        bodies = [("/api/v1/namespaces", {"metadata": {"name": name}}) for name in namespaces]
        bodies.append(("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd.render_crd()))
        for path, body in bodies:
            async with session.post(path, json=body) as response:
                if response.status != 201:
                    raise RuntimeError(f"seeding {path} failed: {response.status} {await response.text()}")


class EmulatorServer:
    def __init__(
        self,
        factory: Callable[[], KubeEmulator] = KubeEmulator,
        namespaces: Iterable[str] = ("default", "kube-system", "ns", "roughy"),
    ) -> None:
        self._factory = factory
        self._namespaces = tuple(namespaces)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self.emulator: KubeEmulator | None = None
        self.url = ""

    def start(self) -> EmulatorServer:
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="kmock", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("the kmock server did not start in 10 s")
        if self._failure is not None:
            raise RuntimeError("the kmock server failed to start") from self._failure
        return self

    async def _main(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            async with self._factory() as emulator, kmock.Server(emulator) as server:
                register(emulator)
                self.emulator = emulator
                self.url = str(server.url).rstrip("/")
                await seed(self.url, self._namespaces)
                self._ready.set()
                await self._stopping.wait()
                await emulator.close_watches()
        except BaseException as exc:  # surfaced by start()
            self._failure = exc
            self._ready.set()
            raise

    def stop(self) -> None:
        if self._loop is None or self._stopping is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=15)
        self._loop = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def call(self, fn: Callable[[KubeEmulator], T]) -> T:
        """Run `fn(emulator)` in the server's loop, holding the emulator's lock."""
        assert self._loop is not None and self.emulator is not None
        emulator = self.emulator

        async def locked() -> T:
            async with emulator._lock:
                return fn(emulator)

        return asyncio.run_coroutine_threadsafe(locked(), self._loop).result(timeout=10)

    def object(self, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """A copy of the stored object (as the API server holds it), or None if absent or deleted."""
        resource = _PLURALS[plural]

        def read(emulator: KubeEmulator) -> dict[str, Any] | None:
            key = (resource, namespace, name)
            if key not in emulator.objects or emulator.objects[key].deleted:
                return None
            return copy.deepcopy(emulator.objects[key].raw)

        return self.call(read)

    def expire_watches(self) -> None:
        """An etcd compaction under the open watches: forget the watch history up to now, then end
        every stream. A client that re-watches from the resourceVersion it last saw (older than
        now) gets 410 Gone, and must list again (see `KubeEmulator.compact`)."""
        assert self._loop is not None and self.emulator is not None
        self.call(lambda emulator: emulator.compact())
        asyncio.run_coroutine_threadsafe(self.emulator.close_watches(), self._loop).result(timeout=10)

    def append_log(self, namespace: str, pod: str, text: str) -> None:
        """Add `text` to the pod's log, served by `GET .../pods/POD/log` (thread-safe, no loop hop):
        what a kubelet does with its container's output. See `KubeEmulator.append_log`."""
        assert self.emulator is not None
        self.emulator.append_log(namespace, pod, text)

    def pod_log(self, namespace: str, pod: str) -> str:
        """The pod's whole log so far, as stored ("" if none)."""
        assert self.emulator is not None
        return self.emulator.pod_log(namespace, pod)

    def api_client(self, *, retries: int = 0) -> k8s.ApiClient:
        """A Kubernetes client for this server: no auth, no retries (errors show at once)."""
        configuration = k8s.Configuration(host=self.url)
        configuration.retries = retries
        return k8s.ApiClient(configuration)


@contextlib.contextmanager
def running_operator(
    server: EmulatorServer,
    registry: kopf.OperatorRegistry,
    *,
    namespaces: Iterable[str] = ("roughy",),
    settings: kopf.OperatorSettings | None = None,
    ready_timeout: float = 10.0,
    liveness_endpoint: str | None = None,
) -> Iterator[None]:
    """Run the real kopf operator (`registry`'s handlers) against `server`, in a thread.

    A login handler pointing at the server is added to the registry. kopf runs standalone (the
    emulator has no peering resources) with its own event loop; leaving the block stops it.
    """

    @kopf.on.login(registry=registry)
    def _login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=server.url, insecure=True)

    stop, ready = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(
                kopf.operator(
                    registry=registry, settings=settings, standalone=True, namespaces=list(namespaces),
                    stop_flag=stop, ready_flag=ready, liveness_endpoint=liveness_endpoint,
                )
            )  # fmt: skip
        except BaseException as exc:  # surfaced below
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name="kopf", daemon=True)
    thread.start()
    try:
        if not ready.wait(ready_timeout) or failure:
            raise RuntimeError("kopf did not start") from (failure[0] if failure else None)
        yield
    finally:
        stop.set()
        thread.join(timeout=15)
