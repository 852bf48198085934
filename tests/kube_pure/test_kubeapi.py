"""What a Kubernetes API failure means, decided once (roughy.adapters.kubeapi), and how the
executor and the operator read it. Pure: the client's exceptions are built by hand, no server."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kopf
import pytest
import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from roughy.adapters.executor.kube import ExecutorFailed, ExecutorUnavailable
from roughy.adapters.executor.kube import translate as executor_error
from roughy.adapters.kubeapi import (
    KubeApi,
    KubeConflict,
    KubeError,
    KubeNotFound,
    KubePermanentError,
    KubeTemporaryError,
    translate,
)
from roughy.operator.controller import _retry_later, _temporary_on_api_errors

ROUGHY = Path(__file__).resolve().parents[2] / "roughy"


class Answer:
    """The part of urllib3's response that ApiException(http_resp=...) reads."""

    def __init__(self, status: int, reason: str, data: bytes = b"", headers: dict[str, str] | None = None):
        self.status, self.reason, self.data, self._headers = status, reason, data, headers or {}

    def getheaders(self) -> dict[str, str]:
        return self._headers


def refusal(status: int, reason: str = "", message: str = "", **extra: Any) -> ApiException:
    """An ApiException as the client raises it, with a `Status` body like the API server's."""
    headers = extra.pop("headers", None)
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": status, "reason": reason}
    body |= {"message": message} if message else {}
    body |= extra
    return ApiException(http_resp=Answer(status, "HTTP reason", json.dumps(body).encode(), headers))


# --- the translation ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 408, 429, 500, 502, 503, 504, 507])
def test_statuses_that_pass_are_temporary(status: int) -> None:
    error = translate(refusal(status, "Whatever"))
    assert type(error) is KubeTemporaryError and error.status == status and error.reason == "Whatever"


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, KubePermanentError), (403, KubePermanentError), (404, KubeNotFound), (409, KubeConflict),
     (410, KubePermanentError), (422, KubePermanentError)],
)  # fmt: skip
def test_other_refusals_are_permanent_and_404_409_have_their_own_class(status: int, cls: type[KubeError]) -> None:
    error = translate(refusal(status, "Refused", "no"))
    assert type(error) is cls and isinstance(error, KubePermanentError) and error.status == status


def test_an_exceeded_quota_is_temporary_but_rbac_is_not() -> None:
    quota = 'jobs.batch "r-1-encode" is forbidden: exceeded quota: compute, requested: limits.cpu=4'
    assert isinstance(translate(refusal(403, "Forbidden", quota)), KubeTemporaryError)
    rbac = 'jobs.batch is forbidden: User "system:serviceaccount:roughy:api" cannot create resource "jobs"'
    assert type(translate(refusal(403, "Forbidden", rbac))) is KubePermanentError


def test_the_status_reason_and_message_are_kept() -> None:
    error = translate(refusal(409, "AlreadyExists", 'renders.roughy.ai "r-1" already exists'))
    assert (error.status, error.reason) == (409, "AlreadyExists")
    assert error.message == 'renders.roughy.ai "r-1" already exists'
    assert str(error) == '409 AlreadyExists: renders.roughy.ai "r-1" already exists'


def test_an_answer_that_is_not_a_status_falls_back_to_the_http_reason_and_its_text() -> None:
    plain = translate(ApiException(http_resp=Answer(502, "Bad Gateway", b"upstream connect error\n")))
    assert (plain.status, plain.reason, plain.message) == (502, "Bad Gateway", "upstream connect error")
    other = translate(ApiException(http_resp=Answer(404, "Not Found", b'{"kind": "Pod", "secret": "x"}')))
    assert isinstance(other, KubeNotFound) and other.message == "Not Found"  # no stray JSON in logs


def test_retry_after_comes_from_the_header_else_the_status_details() -> None:
    header = translate(refusal(429, "TooManyRequests", headers={"Retry-After": "7"}))
    details = translate(refusal(429, "TooManyRequests", details={"retryAfterSeconds": 3}))
    neither = translate(refusal(503, "ServiceUnavailable"))
    assert isinstance(header, KubeTemporaryError) and header.retry_after == 7
    assert isinstance(details, KubeTemporaryError) and details.retry_after == 3
    assert isinstance(neither, KubeTemporaryError) and neither.retry_after is None


@pytest.mark.parametrize(
    "exc",
    [
        urllib3.exceptions.MaxRetryError(None, "/apis", reason=ConnectionRefusedError(111, "refused")),  # type: ignore[arg-type]
        urllib3.exceptions.ReadTimeoutError(None, "/apis", "Read timed out. (read timeout=30)"),  # type: ignore[arg-type]
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")),
        ConnectionRefusedError(111, "Connection refused"),
        ApiException(status=0, reason="SSLError: certificate verify failed"),  # the client's name for TLS errors
    ],
)
def test_no_answer_at_all_is_temporary_without_a_status(exc: Exception) -> None:
    error = translate(exc)
    assert type(error) is KubeTemporaryError and error.status is None
    assert str(error).startswith("the Kubernetes API is unreachable")


# --- the call helper --------------------------------------------------------------------------------


def test_every_call_carries_the_one_timeout_and_leaves_with_our_error() -> None:
    api = KubeApi(k8s.ApiClient(), timeout=4.5)
    seen: dict[str, Any] = {}

    def fn(*args: Any, **kwargs: Any) -> str:
        seen.update(args=args, kwargs=kwargs)
        return "ok"

    assert api.call(fn, "a", limit=1) == "ok"
    assert seen == {"args": ("a",), "kwargs": {"_request_timeout": 4.5, "limit": 1}}

    original = refusal(500, "InternalError")

    def fails(**_: Any) -> None:
        raise original

    with pytest.raises(KubeTemporaryError) as caught:
        api.call(fails)
    assert caught.value.__cause__ is original  # the client's exception stays as the cause


class FakeObjects:
    """CustomObjectsApi answering 404 to everything, as when the object or the CRD is missing."""

    def __getattr__(self, name: str) -> Any:
        def refuse(*_: Any, **__: Any) -> None:
            raise refusal(404, "NotFound", f"{name}: not found")

        return refuse


def test_reads_and_deletes_answer_absent_and_writes_raise_not_found() -> None:
    api = KubeApi(k8s.ApiClient())
    api._objects = FakeObjects()  # type: ignore[assignment]
    assert api.get_render("ns", "r-1") is None
    assert api.delete_render("ns", "r-1", uid="u", propagation="Foreground") is False
    with pytest.raises(KubeNotFound):
        api.patch_render_status("ns", "r-1", {"state": "running"})
    with pytest.raises(KubeNotFound):
        api.create_render("ns", {"metadata": {"name": "r-1"}})


class StreamingLog:
    """A pod log response whose body breaks while it is read."""

    released = False

    @property
    def data(self) -> bytes:
        raise urllib3.exceptions.ProtocolError("Connection broken", ConnectionResetError(104, "reset"))

    def release_conn(self) -> None:
        self.released = True


def test_a_log_that_breaks_while_streaming_is_translated_and_its_connection_released() -> None:
    api = KubeApi(k8s.ApiClient())
    response = StreamingLog()

    class FakeCore:
        def read_namespaced_pod_log(self, *_: Any, **kwargs: Any) -> StreamingLog:
            assert kwargs["_preload_content"] is False and kwargs["tail_lines"] == 5
            assert "limit_bytes" not in kwargs
            return response

    api._core = FakeCore()  # type: ignore[assignment]
    with pytest.raises(KubeTemporaryError):
        api.read_pod_log("ns", "pod", container="encoder", tail_lines=5)
    assert response.released


def test_only_the_adapter_calls_the_kubernetes_client() -> None:
    """One timeout, one error translation: no other module passes `_request_timeout`, catches
    the client's ApiException or urllib3's errors, or builds the client's API classes."""
    pattern = re.compile(r"\b_request_timeout|ApiException|urllib3|CustomObjectsApi|BatchV1Api|CoreV1Api|AppsV1Api")
    offenders = [
        str(path.relative_to(ROUGHY))
        for path in ROUGHY.rglob("*.py")
        if path.name != "kubeapi.py" and pattern.search(path.read_text())
    ]
    assert offenders == []


# --- how the executor and the operator read it ------------------------------------------------------


def test_the_executor_answers_503_for_temporary_and_500_for_permanent_errors() -> None:
    busy = executor_error(KubeTemporaryError("slow down", status=429, reason="TooManyRequests", retry_after=5))
    assert isinstance(busy, ExecutorUnavailable) and busy.status == 503 and busy.headers == {"Retry-After": "5"}
    gone = executor_error(KubeTemporaryError("the Kubernetes API is unreachable: refused"))
    assert isinstance(gone, ExecutorUnavailable) and "unreachable" in str(gone)
    rbac = executor_error(KubePermanentError("cannot create", status=403, reason="Forbidden"))
    assert isinstance(rbac, ExecutorFailed) and "RBAC" in str(rbac)
    no_crd = executor_error(KubeNotFound("the server could not find the requested resource", status=404))
    assert isinstance(no_crd, ExecutorFailed) and "CRD" in str(no_crd)


def test_the_operator_retries_temporary_errors_through_kopf_and_lets_permanent_ones_through() -> None:
    with pytest.raises(kopf.TemporaryError) as caught, _temporary_on_api_errors():
        raise KubeTemporaryError("etcdserver: request timed out", status=500, reason="InternalError")
    assert caught.value.delay == 2 and isinstance(caught.value.__cause__, KubeTemporaryError)
    with pytest.raises(KubePermanentError), _temporary_on_api_errors():
        raise KubePermanentError("forbidden", status=403, reason="Forbidden")
    asked = _retry_later(KubeTemporaryError("busy", status=429, retry_after=30), "the Job cannot be created yet")
    assert asked.delay == 30 and str(asked).startswith("the Job cannot be created yet: 429")


def test_the_one_timeout_comes_from_roughy_kube_request_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    from roughy.bootstrap import _kube_executor
    from roughy.settings import Settings

    monkeypatch.delenv("ROUGHY_KUBE_REQUEST_TIMEOUT", raising=False)
    assert Settings().kube_request_timeout == 30.0
    monkeypatch.setenv("ROUGHY_KUBE_REQUEST_TIMEOUT", "4.5")
    executor = _kube_executor(Settings(), k8s.ApiClient())
    assert isinstance(executor.api, KubeApi) and executor.api.timeout == 4.5
