"""Leader election for the operator: several replicas run, exactly one reconciles.

The operator's Deployment runs two replicas (issue 10, item 3: one replica was a single point of
failure). Each holds back until it holds a `coordination.k8s.io/v1` Lease named after the
release; the holder renews it, the other waits as a standby and takes over once the holder has
stopped renewing. Only the holder runs kopf (watches, handlers, timers) and the background
service (assets, webhooks, pruning): the standby makes no call but reading the Lease.

Why a Lease and not kopf's peering. kopf's peering (`kopf/_core/engines/peering.py`,
`docs/peering.rst`) is made to pause deployed operators while a developer runs one of higher
priority; it is not an election. Replicas of one Deployment have the same priority, and for
equal priorities kopf "issue[s] a warning and freeze[s], leaving the cluster unserved": every
replica pauses. It needs its own CRD (`KopfPeering`) and a 60 s keep-alive, and a paused
operator still lists and watches. A Lease is the cluster's own election object (kube-scheduler,
kube-controller-manager and client-go's `leaderelection` use it): no CRD, three namespaced verbs
(get, create, update) on one object, and `kubectl get lease` shows who leads.

The model is client-go's (`tools/leaderelection`), with its defaults:

- `leaseDurationSeconds` 15: how long a standby waits, after the Lease last changed, before it
  takes it over; `renew_deadline` 10 s: how long the leader keeps leading without a successful
  renewal; `retry_period` 2 s: how often a standby reads the Lease and a failed renewal is
  retried. The leader renews every `renew_deadline / 2` (5 s).
- Every write names the `resourceVersion` it read (optimistic concurrency): of two standbys that
  both see the Lease expire, one write wins and the other gets 409 Conflict and waits again.
  Taking over from another holder (or from nobody, after a release) counts in
  `leaseTransitions`.
- Expiry is measured on the standby's own monotonic clock from when *it* first saw the current
  version of the Lease, not from the `renewTime` the holder wrote (client-go's `observedTime`):
  that needs no agreement between the two nodes' clocks. The cost: a standby that has just
  started waits a full `leaseDurationSeconds` before it takes over a Lease whose holder died long
  ago; a released Lease (no holder) is taken at once.
- Why two processes never reconcile at once: the leader stops at latest `renew_deadline` (10 s)
  after it *sent* its last successful renewal, and its requests are cut off at that deadline;
  the standby takes over at the earliest `leaseDurationSeconds` (15 s) after it *saw* that
  renewal, which was after it was sent. The 5 s between them absorb the exit and a request in
  flight. What a lease cannot rule out (no lease can, without fencing tokens on every write) is
  a leader frozen for longer than that (SIGSTOP, a stalled VM) that resumes and writes before it
  notices; roughy's writes are idempotent anyway (deterministic Job names: AlreadyExists, uid
  preconditions, a terminal state recorded once in the database).

On loss, the leader stops reconciling at once: when a renewal finds another holder (409, then a
read), finds the Lease deleted, or has not succeeded within `renew_deadline`, the process exits
with status EXIT_LOST (`os._exit`: no handler runs any more, nothing is cleaned up that the next
leader does not redo). Kubernetes restarts the container, which comes back as a standby. On a
clean stop (SIGTERM: a rollout, a drain, a scale-down) the leader releases the Lease (no holder,
`leaseDurationSeconds` 1) after kopf has stopped, so the standby takes over within
`retry_period` instead of `leaseDurationSeconds`.

The holder's identity is the pod's name (`POD_NAME`, from the downward API), else hostname and
pid. A container restarted in the same pod keeps the name and takes its own Lease back at once:
the process that held it is gone. While it waits, the standby serves the liveness endpoint
itself (kopf serves it once it runs): alive while it can read the Lease, failing only once the
API has not answered it for minutes (`health.ApiVitals`), as the leader's probe does.

`decide`, `claim`, `released` and `must_step_down` are the rules, pure (tests/kube_pure); the
`LeaderElector` applies them through `KubeApi`.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import Gauge

from roughy.adapters.kubeapi import KubeApi, KubeConflict, KubeError, KubeNotFound, KubeTemporaryError
from roughy.operator.health import ApiVitals, Unhealthy

log = logging.getLogger(__name__)

#: client-go's defaults (tools/leaderelection); Timing's and the chart's.
LEASE_DURATION = 15
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 2.0
#: The exit status of a leader that lost its Lease (the container restarts as a standby).
EXIT_LOST = 3
API_VERSION = "coordination.k8s.io/v1"

LEADER = Gauge("roughy_operator_leader", "1 while this operator process holds the leader Lease, else 0")


# --- the rules (pure) -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """`lease_duration` whole seconds (the Lease's field is an integer), the rest seconds."""

    lease_duration: int = LEASE_DURATION
    renew_deadline: float = RENEW_DEADLINE
    retry_period: float = RETRY_PERIOD

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs 0 < retry period < renew deadline < lease duration, got "
                f"{self.retry_period} s, {self.renew_deadline} s, {self.lease_duration} s"
            )

    @property
    def renew_interval(self) -> float:
        """How often the leader renews: twice within the renew deadline."""
        return self.renew_deadline / 2


@dataclass(frozen=True)
class Lease:
    """What the election reads of a Lease object."""

    holder: str  # "": nobody (released)
    duration: float  # leaseDurationSeconds as the holder wrote it (0: not set)
    transitions: int
    version: str  # metadata.resourceVersion: what a conditional write names
    acquired: str | None = None  # acquireTime, kept by renewals
    renewed: str | None = None  # renewTime (for people: the decision does not trust other clocks)

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> Lease:
        spec, meta = obj.get("spec") or {}, obj.get("metadata") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration=float(spec.get("leaseDurationSeconds") or 0),
            transitions=int(spec.get("leaseTransitions") or 0),
            version=str(meta.get("resourceVersion") or ""),
            acquired=_micro(spec.get("acquireTime")),
            renewed=_micro(spec.get("renewTime")),
        )


@dataclass(frozen=True)
class Sighting:
    """A version of the Lease and when this process first saw it (its own monotonic clock)."""

    version: str
    since: float


class Move(enum.Enum):
    CREATE = "create"  # there is no Lease: create it, naming me
    TAKE = "take"  # released, or its holder stopped renewing: replace it, naming me
    RENEW = "renew"  # mine: replace it with a new renewTime
    WAIT = "wait"  # another process holds it and renewed it less than its duration ago


@dataclass(frozen=True)
class Verdict:
    move: Move
    sighting: Sighting | None = None  # what to pass as `seen` next time
    expires_in: float = 0.0  # WAIT: seconds until it may be taken over, if nothing changes


def decide(lease: Lease | None, me: str, now: float, seen: Sighting | None, timing: Timing = Timing()) -> Verdict:
    """Should `me` write the Lease now, and how? `now` is this process's monotonic clock; `seen`
    the sighting the previous call returned. Another holder's Lease expires `duration` seconds
    after this process first saw its current version (a renewal is a new version)."""
    if lease is None:
        return Verdict(Move.CREATE)
    if lease.holder == me:
        return Verdict(Move.RENEW)
    if not lease.holder:
        return Verdict(Move.TAKE)
    sighting = seen if seen is not None and seen.version == lease.version else Sighting(lease.version, now)
    duration = lease.duration if lease.duration > 0 else timing.lease_duration
    left = sighting.since + duration - now
    if left <= 0:
        return Verdict(Move.TAKE, sighting)
    return Verdict(Move.WAIT, sighting, left)


def must_step_down(renewed_at: float, now: float, timing: Timing = Timing()) -> bool:
    """The leader's rule: no successful renewal sent within the renew deadline, stop leading.
    `renewed_at` is when the last successful write was *sent* (monotonic clock)."""
    return now - renewed_at >= timing.renew_deadline


def claim(lease: Lease | None, me: str, now: datetime, timing: Timing = Timing()) -> dict[str, Any]:
    """The Lease's spec with `me` holding it from `now` (a renewal keeps acquireTime; a takeover
    is a transition)."""
    stamp = micro_time(now)
    if lease is not None and lease.holder == me:
        acquired, transitions = lease.acquired or stamp, lease.transitions
    else:
        acquired, transitions = stamp, 0 if lease is None else lease.transitions + 1
    return {
        "holderIdentity": me,
        "leaseDurationSeconds": timing.lease_duration,
        "acquireTime": acquired,
        "renewTime": stamp,
        "leaseTransitions": transitions,
    }


def released(lease: Lease, now: datetime) -> dict[str, Any]:
    """The Lease's spec once given up: no holder, and already expired for readers that go by
    renewTime + leaseDurationSeconds (client-go's release writes the same)."""
    stamp = micro_time(now)
    return {"leaseDurationSeconds": 1, "acquireTime": stamp, "renewTime": stamp, "leaseTransitions": lease.transitions}


def lease_object(name: str, namespace: str, spec: dict[str, Any], version: str | None = None) -> dict[str, Any]:
    """The body of a create (no version) or of a conditional replace (the version read)."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if version:
        meta["resourceVersion"] = version
    return {"apiVersion": API_VERSION, "kind": "Lease", "metadata": meta, "spec": spec}


def micro_time(moment: datetime) -> str:
    """A `MicroTime` as the API writes it: RFC 3339, UTC, six fractional digits (the API server
    parses exactly that layout). A naive datetime is taken as UTC."""
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_identity(environ: Mapping[str, str], hostname: str, pid: int) -> str:
    """The pod's name (POD_NAME, from the downward API), else hostname and pid."""
    return environ.get("POD_NAME") or f"{hostname}-{pid}"


def _micro(value: Any) -> str | None:
    """A time read back from the API (the client turns it into a datetime, and that into ISO
    8601 with an offset, without fractions when they are 0) as a MicroTime again; None if it is
    not one (a renewal then writes a new acquireTime)."""
    if value is None:
        return None
    try:
        return micro_time(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        return None


# --- applying them ---------------------------------------------------------------------------------


class LeadershipLost(Exception):
    """Another process holds the Lease, or it could not be renewed in time."""


def exit_now(reason: str) -> None:
    """Stop reconciling at once: flush what was logged, then end the process without running
    anything more (kopf's handlers included). The container restarts as a standby."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_LOST)


class LeaderElector:
    """One process's part in the election for the Lease `namespace/name`.

    `wait_for_leadership` blocks until this process holds the Lease; `start_renewing` keeps it
    (a thread; `on_lost` is called when it is lost: by default the process exits); `release`
    gives it up on a clean stop."""

    def __init__(
        self,
        api: KubeApi,
        *,
        namespace: str,
        name: str,
        identity: str,
        timing: Timing = Timing(),
        on_lost: Callable[[str], None] = exit_now,
        vitals: ApiVitals | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timing = timing
        self.vitals = vitals or ApiVitals()
        self._on_lost = on_lost
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._lease: Lease | None = None  # as last read or written
        self._sighting: Sighting | None = None
        self._renewed_at = 0.0
        self._leading = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def leading(self) -> bool:
        with self._lock:
            return self._leading

    def status(self) -> dict[str, Any]:
        """For the standby's liveness answer and logs."""
        with self._lock:
            lease = self._lease
            return {
                "leader": self._leading,
                "identity": self.identity,
                "lease": f"{self.namespace}/{self.name}",
                "holder": lease.holder if lease is not None else None,
            }

    # --- standing by --------------------------------------------------------------------------

    def wait_for_leadership(self, stop: threading.Event) -> bool:
        """Try every `retry_period` until this process holds the Lease (True) or `stop` is set
        (False). Temporary API errors are retried; a permanent one (RBAC: 403) is raised."""
        holder: str | None = None
        while not stop.is_set():
            try:
                if self.try_acquire():
                    return True
            except KubeTemporaryError as exc:
                log.warning(
                    "leader election: cannot read the Lease %s/%s (%s); retrying", self.namespace, self.name, exc
                )
            current = self.status()["holder"]
            if current != holder:
                holder = current
                log.info("leader election: standing by; %s holds the Lease %s/%s", holder, self.namespace, self.name)
            stop.wait(self.timing.retry_period)
        return False

    def try_acquire(self) -> bool:
        """One round: read the Lease, decide, and write it when it is free or expired (or mine).
        False when another process holds it, or won the race for it."""
        obj = self.api.read_lease(self.namespace, self.name)
        self.vitals.heard()
        lease = Lease.parse(obj) if obj is not None else None
        verdict = decide(lease, self.identity, self._clock(), self._sighting, self.timing)
        with self._lock:
            self._lease, self._sighting = lease, verdict.sighting
        if verdict.move is Move.WAIT:
            return False
        try:
            self._write(lease, timeout=self.api.timeout)
        except (KubeConflict, KubeNotFound):
            return False  # another process wrote (or deleted) it since: read it again next round
        log.info(
            "leader election: %s holds the Lease %s/%s (%s%s); reconciling",
            self.identity, self.namespace, self.name, verdict.move.value,
            f" from {lease.holder}" if lease is not None and lease.holder and lease.holder != self.identity else "",
        )  # fmt: skip
        with self._lock:
            self._leading = True
        LEADER.set(1)
        return True

    def _write(self, lease: Lease | None, *, timeout: float) -> None:
        """Create or conditionally replace the Lease naming this process; on success it holds
        it, renewed as of when the request was sent."""
        sent = self._clock()
        spec = claim(lease, self.identity, self._wall(), self.timing)
        if lease is None:
            obj = self.api.create_lease(self.namespace, lease_object(self.name, self.namespace, spec), timeout=timeout)
        else:
            body = lease_object(self.name, self.namespace, spec, lease.version)
            obj = self.api.replace_lease(self.namespace, self.name, body, timeout=timeout)
        self.vitals.heard()
        with self._lock:
            self._lease, self._renewed_at = Lease.parse(obj), sent

    # --- leading ------------------------------------------------------------------------------

    def start_renewing(self) -> None:
        self._thread = threading.Thread(target=self._renew_loop, name="leader-lease", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(max(0.0, self._since_renewal_until(self.timing.renew_interval))):
            try:
                self.renew()
            except LeadershipLost as exc:
                self._lost(str(exc))
                return
            except BaseException as exc:  # an unforeseen error must not leave a leader that no longer renews
                self._lost(f"the Lease could not be renewed: {exc!r}")
                return

    def _since_renewal_until(self, seconds: float) -> float:
        with self._lock:
            return self._renewed_at + seconds - self._clock()

    def renew(self) -> None:
        """Renew the Lease, retrying every `retry_period`; LeadershipLost when another process
        holds it, it is gone, or `renew_deadline` passed since the last renewal was sent. Each
        request is cut off at that deadline."""
        while not self._stop.is_set():
            with self._lock:
                lease, renewed_at = self._lease, self._renewed_at
            now = self._clock()
            if must_step_down(renewed_at, now, self.timing):
                raise LeadershipLost(f"the Lease was not renewed within {self.timing.renew_deadline:g} s")
            left = renewed_at + self.timing.renew_deadline - now
            try:
                self._write(lease, timeout=min(self.api.timeout, left))
                return
            except KubeConflict:
                if self._reread(min(self.api.timeout, left)):
                    continue  # still mine (a write of ours that answered too late): again, at once
            except KubeNotFound as exc:
                raise LeadershipLost("the Lease was deleted") from exc
            except KubeError as exc:
                log.warning("leader election: renewing the Lease failed (%s); retrying", exc)
            until_deadline = self._since_renewal_until(self.timing.renew_deadline)
            self._stop.wait(max(0.0, min(self.timing.retry_period, until_deadline)))

    def _reread(self, timeout: float) -> bool:
        """After a conflict: True when the Lease still names this process (now at its current
        version); LeadershipLost when it names another or none; False when it cannot be read."""
        try:
            obj = self.api.read_lease(self.namespace, self.name, timeout=timeout)
        except KubeError as exc:
            log.warning("leader election: reading the Lease failed (%s); retrying", exc)
            return False
        if obj is None:
            raise LeadershipLost("the Lease was deleted")
        lease = Lease.parse(obj)
        if lease.holder != self.identity:
            raise LeadershipLost(f"{lease.holder or 'nobody'} holds the Lease now")
        with self._lock:
            self._lease = lease
        return True

    def _lost(self, reason: str) -> None:
        with self._lock:
            self._leading = False
        LEADER.set(0)
        log.critical(
            "leader election: lost the Lease %s/%s (%s); exiting at once, to restart as a standby",
            self.namespace, self.name, reason,
        )  # fmt: skip
        self._on_lost(reason)

    def release(self) -> None:
        """Stop renewing and give the Lease up, if this process still holds it, so that the
        standby takes over now rather than once it expires. A conflict means it was taken
        already; a failure leaves it to expire."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timing.renew_deadline + 1)
        with self._lock:
            lease, leading, self._leading = self._lease, self._leading, False
        LEADER.set(0)
        if not leading or lease is None:
            return
        body = lease_object(self.name, self.namespace, released(lease, self._wall()), lease.version)
        try:
            self.api.replace_lease(self.namespace, self.name, body, timeout=min(self.api.timeout, 5.0))
        except KubeConflict:
            log.info("leader election: the Lease %s/%s was taken already", self.namespace, self.name)
        except KubeError as exc:
            log.warning("leader election: could not release the Lease (%s); it expires by itself", exc)
        else:
            log.info("leader election: released the Lease %s/%s", self.namespace, self.name)

    def probe(self) -> dict[str, Any]:
        """The standby's liveness: alive while the API answers (ApiVitals' rule)."""
        answer = self.vitals.check(lambda: self.api.read_lease(self.namespace, self.name, timeout=5.0))
        return {**self.status(), **answer}


# --- the standby's process --------------------------------------------------------------------------


def wait_to_lead(elector: LeaderElector, *, liveness: str | None) -> bool:
    """`roughy operator`'s start with leader election: stand by, serving `liveness` (kopf's
    endpoint URL, e.g. http://0.0.0.0:8080/healthz), until this process holds the Lease, then
    keep renewing it (True). SIGTERM or SIGINT meanwhile end the wait (False: nothing to hand
    over); the previous handlers are back once it returns, and kopf installs its own."""
    stop = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGTERM, signal.SIGINT)}
    log.info("leader election: %s wants the Lease %s/%s", elector.identity, elector.namespace, elector.name)
    try:
        with standby_probe(elector, liveness):
            if not elector.wait_for_leadership(stop):
                return False
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    elector.start_renewing()
    return True


@contextmanager
def standby_probe(elector: LeaderElector, endpoint: str | None) -> Iterator[None]:
    """Serve GET `endpoint`'s path (200 with the election's status, 500 when Unhealthy) while
    the block runs; the port is free again when it ends, for kopf's own endpoint."""
    if not endpoint:
        yield
        return
    url = urlsplit(endpoint)

    class Probe(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != (url.path or "/"):
                self._answer(404, {"error": "not found"})
                return
            try:
                self._answer(200, elector.probe())
            except Unhealthy as exc:
                self._answer(500, {"error": str(exc)})

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((url.hostname or "0.0.0.0", url.port or 80), Probe)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="standby-probe", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def process_identity() -> str:
    """This process's identity in the election (see `default_identity`)."""
    return default_identity(os.environ, socket.gethostname(), os.getpid())
