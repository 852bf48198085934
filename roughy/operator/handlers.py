"""The kopf handlers of the operator: thin calls into `Controller`.

- create and resume of a Render: `sync` (creates the Job; on resume, catches up on whatever
  happened while no operator ran);
- every event of a Job this operator manages: `sync` of the Render that owns it (its
  controller owner reference), so a finished Job is recorded at once;
- a timer on unfinished Renders, every `interval` seconds: `sync`, which reads the encoder's
  progress from the pod's log and repairs anything a missed watch event left behind;
- the delete handler, which makes kopf hold a finalizer on every Render: `finalize`.

kopf keeps its own bookkeeping in annotations (`roughy.ai/...`), never in `status`, whose
schema belongs to the Render (DESIGN.md). Handlers are plain functions: kopf runs them in
its thread pool, and the controller's Kubernetes client, store and storage are synchronous.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from roughy.adapters.executor.kube import LABEL_MANAGED_BY, MANAGED_BY
from roughy.kube import crd
from roughy.kube.reconcile import TERMINAL
from roughy.operator.controller import Controller

ANNOTATION_PREFIX = "roughy.ai"


def configure(settings: kopf.OperatorSettings, *, workers: int = 8) -> None:
    """kopf's settings for this operator (also applied by the startup handler)."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.finalizer = f"{ANNOTATION_PREFIX}/finalizer"
    settings.execution.max_workers = workers
    # A namespaced Role cannot list namespaces or CRDs cluster-wide: serve the given namespace only.
    settings.scanning.disabled = True
    settings.posting.level = logging.WARNING  # kopf's own log lines as Events: warnings only


def build_registry(controller: Controller, *, interval: float = 2.0, login: bool = True) -> kopf.OperatorRegistry:
    """`login`: authenticate as the kubernetes client does (the pod's service account, else
    KUBECONFIG). A registry of one's own has none of kopf's default logins; tests bring theirs."""
    registry = kopf.OperatorRegistry()
    renders = (crd.GROUP, crd.VERSION, crd.PLURAL)

    if login:

        @kopf.on.login(registry=registry)
        def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
            return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings)

    @kopf.on.create(*renders, registry=registry)
    @kopf.on.resume(*renders, registry=registry)
    def _reconcile(**kwargs: Any) -> None:
        controller.sync(kwargs["namespace"], kwargs["name"])

    @kopf.on.event("batch", "v1", "jobs", labels={LABEL_MANAGED_BY: MANAGED_BY}, registry=registry)
    def _job_changed(**kwargs: Any) -> None:
        owner = _render_owner(kwargs["body"])
        if owner is None or kwargs.get("type") is None:  # type None: the initial listing, covered by resume
            return
        try:
            controller.sync(kwargs["namespace"], owner)
        except kopf.TemporaryError:
            pass  # event handlers are not retried: the timer comes back to this Render

    @kopf.timer(*renders, interval=interval, when=_unfinished, registry=registry)
    def _poll(**kwargs: Any) -> None:
        controller.sync(kwargs["namespace"], kwargs["name"])

    @kopf.on.delete(*renders, registry=registry)
    def _finalize(**kwargs: Any) -> None:
        controller.finalize(kwargs["namespace"], kwargs["name"], dict(kwargs["body"]))

    return registry


def _unfinished(status: kopf.Status, **_: Any) -> bool:
    return status.get("state") not in TERMINAL


def _render_owner(body: kopf.Body) -> str | None:
    for ref in body.metadata.get("ownerReferences") or []:
        if ref.get("kind") == crd.KIND and ref.get("apiVersion") == crd.API_VERSION and ref.get("controller"):
            return str(ref["name"])
    return None
