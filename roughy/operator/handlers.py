"""The kopf handlers of the operator: thin calls into `Controller`.

- create and resume of a Render: `sync` (creates the Job; on resume, catches up on whatever
  happened while no operator ran). Resume skips finished Renders: a restart costs one list,
  then calls for the unfinished ones only;
- every event of a Job this operator manages: `sync` of the Render that owns it (its
  controller owner reference), so a finished Job is recorded at once;
- no timer per Render: progress reaches the API from the encoder itself, and Job events move a
  render on. One sweep every `sweep_interval` seconds (`Controller.due`: one list of the
  unfinished Renders) reconciles only the pending ones past their queue budget
  (`no_capacity`) and any not reconciled for the controller's `resync_seconds` (what a lost
  watch event left behind);
- the delete handler, which makes kopf hold a finalizer on every Render: `finalize`;
- reconciles are counted (`roughy_operator_reconciles_total{trigger, outcome}`), served with
  the encode and webhook metrics on the operator's own `/metrics` (`roughy operator
  --metrics-port`);
- a liveness probe (kopf's `/healthz`): fails when the API server has not answered for minutes
  (`health.ApiVitals`); watch streams are bounded and replaced when they go quiet (`configure`),
  and the Job watch is filtered by the API server to roughy's Jobs.

kopf keeps its own bookkeeping in annotations (`roughy.ai/...`), never in `status`, whose
schema belongs to the Render (DESIGN.md). Handlers are plain functions: kopf runs them in
its thread pool, and the controller's Kubernetes client, store and storage are synchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import kopf
from prometheus_client import Counter

from roughy.adapters.executor.kube import LABEL_MANAGED_BY, MANAGED_BY
from roughy.kube import crd
from roughy.kube.reconcile import TERMINAL
from roughy.operator.controller import Controller
from roughy.operator.health import ApiVitals

ANNOTATION_PREFIX = "roughy.ai"
log = logging.getLogger(__name__)
RECONCILES = Counter(
    "roughy_operator_reconciles_total", "Reconciles of Renders by the operator", ["trigger", "outcome"]
)


#: Watch streams: the API server ends each within WATCH_SERVER_TIMEOUT seconds (kopf then starts
#: the next from the last resourceVersion), the client gives up on one after WATCH_CLIENT_TIMEOUT
#: and on connecting after WATCH_CONNECT_TIMEOUT, and a stream that sends nothing, not even a
#: bookmark (about one a minute), for WATCH_INACTIVITY seconds is taken as dead and replaced.
WATCH_SERVER_TIMEOUT = 600
WATCH_CLIENT_TIMEOUT = WATCH_SERVER_TIMEOUT + 60
WATCH_CONNECT_TIMEOUT = 30
WATCH_INACTIVITY = 90
#: The Job watch is filtered by the API server: only Jobs roughy made reach the operator.
JOB_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"


def configure(settings: kopf.OperatorSettings, *, workers: int = 8) -> None:
    """kopf's settings for this operator (also applied by the startup handler)."""
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT
    settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT
    settings.watching.connect_timeout = WATCH_CONNECT_TIMEOUT
    settings.watching.inactivity_timeout = WATCH_INACTIVITY
    settings.watching.label_selectors["batch", "jobs"] = JOB_SELECTOR
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.finalizer = f"{ANNOTATION_PREFIX}/finalizer"
    settings.execution.max_workers = workers
    # A namespaced Role cannot list namespaces or CRDs cluster-wide: serve the given namespace only.
    settings.scanning.disabled = True
    settings.posting.level = logging.WARNING  # kopf's own log lines as Events: warnings only


def build_registry(
    controller: Controller,
    *,
    sweep_interval: float = 30.0,
    login: bool = True,
    vitals: ApiVitals | None = None,
) -> kopf.OperatorRegistry:
    """`login`: authenticate as the kubernetes client does (the pod's service account, else
    KUBECONFIG). A registry of one's own has none of kopf's default logins; tests bring theirs.
    `vitals`: the liveness probe's record of the API server's word (`health.ApiVitals`)."""
    registry = kopf.OperatorRegistry()
    vitals = vitals or ApiVitals()
    renders = (crd.GROUP, crd.VERSION, crd.PLURAL)

    if login:

        @kopf.on.login(registry=registry)
        def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
            return kopf.login_via_client(**kwargs)

    sweeper: list[asyncio.Task[None]] = []

    @kopf.on.startup(registry=registry)
    async def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings)
        sweeper.append(asyncio.get_running_loop().create_task(_sweep_forever(controller, sweep_interval)))

    @kopf.on.cleanup(registry=registry)
    async def _cleanup(**_: Any) -> None:
        for task in sweeper:
            task.cancel()

    @kopf.on.create(*renders, registry=registry)
    @kopf.on.resume(*renders, when=_unfinished, registry=registry)  # a restart costs nothing per finished one
    def _reconcile(**kwargs: Any) -> None:
        with counted("resume"):
            controller.sync(kwargs["namespace"], kwargs["name"], dict(kwargs["body"]))

    @kopf.on.event(*renders, registry=registry)
    def _render_seen(**_: Any) -> None:
        vitals.heard()

    @kopf.on.probe(id="kubernetes_api", errors=kopf.ErrorsMode.PERMANENT, registry=registry)  # fail now, no retry
    def _api_alive(**_: Any) -> dict[str, float]:
        return vitals.check(lambda: controller.api.ping(controller.config.namespace))

    @kopf.on.resume(*renders, when=_finished_unlabelled, registry=registry)
    def _label_finished(**kwargs: Any) -> None:  # finished before the label existed: pruning finds it
        controller.label_finished(kwargs["namespace"], kwargs["name"])

    @kopf.on.event("batch", "v1", "jobs", labels={LABEL_MANAGED_BY: MANAGED_BY}, registry=registry)
    def _job_changed(**kwargs: Any) -> None:
        vitals.heard()
        owner = _render_owner(kwargs["body"])
        if owner is None or kwargs.get("type") is None:  # type None: the initial listing, covered by resume
            return
        try:
            with counted("job_event"):
                controller.sync(kwargs["namespace"], owner)
        except kopf.TemporaryError:
            pass  # event handlers are not retried: the sweep comes back to this Render

    @kopf.on.delete(*renders, registry=registry)
    def _finalize(**kwargs: Any) -> None:
        with counted("finalize"):
            controller.finalize(kwargs["namespace"], kwargs["name"], dict(kwargs["body"]))

    return registry


async def _sweep_forever(controller: Controller, interval: float) -> None:
    """Every `interval` seconds: reconcile what `Controller.due` names, in kopf's thread pool's
    stead a thread of its own (the calls are blocking). Errors wait for the next sweep."""
    namespace = controller.config.namespace
    while True:
        await asyncio.sleep(interval)
        try:
            due = await asyncio.to_thread(controller.due)
        except Exception as exc:  # the API is away: the liveness probe reports it, not this
            log.warning("sweep: cannot list the unfinished Renders: %s", exc)
            continue
        for name in due:
            try:
                with counted("sweep"):
                    await asyncio.to_thread(controller.sync, namespace, name)
            except Exception as exc:  # counted; the next sweep comes back to it
                log.warning("sweep: Render %s not reconciled: %s", name, exc)


@contextlib.contextmanager
def counted(trigger: str) -> Iterator[None]:
    """Count one reconcile of a Render by what triggered it and how it ended: `ok`, `retry` (a
    temporary error: kopf calls again) or `error` (anything else: a bug, or a permanent error)."""
    try:
        yield
    except kopf.TemporaryError:
        RECONCILES.labels(trigger, "retry").inc()
        raise
    except BaseException:
        RECONCILES.labels(trigger, "error").inc()
        raise
    RECONCILES.labels(trigger, "ok").inc()


def _unfinished(status: kopf.Status, **_: Any) -> bool:
    return status.get("state") not in TERMINAL


def _finished_unlabelled(status: kopf.Status, labels: kopf.Labels, **_: Any) -> bool:
    return status.get("state") in TERMINAL and labels.get(crd.LABEL_FINISHED) != "true"


def _render_owner(body: kopf.Body) -> str | None:
    for ref in body.metadata.get("ownerReferences") or []:
        if ref.get("kind") == crd.KIND and ref.get("apiVersion") == crd.API_VERSION and ref.get("controller"):
            return str(ref["name"])
    return None
