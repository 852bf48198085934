"""The kind cluster the e2e suite runs against, as deployed by tests/e2e/deploy.sh.

Nothing here creates a cluster: the workflow (.github/workflows/e2e.yml) makes it, builds and
loads the images and runs deploy.sh; the tests talk to it with kubectl and through port-forwards.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

NAMESPACE = "roughy-e2e"
DEPS_NAMESPACE = "roughy-e2e-deps"
RELEASE = "roughy"
VALUES: dict[str, Any] = yaml.safe_load(Path(__file__).with_name("values.yaml").read_text())
TOOLS = ("kind", "kubectl", "helm", "docker")
WORKFLOW = ".github/workflows/e2e.yml"


def skip_reason() -> str | None:
    """Why the suite cannot run here, or None when it can."""
    if os.environ.get("ROUGHY_E2E") != "1":
        return f"ROUGHY_E2E=1 is not set: the kind suite runs in the e2e workflow ({WORKFLOW})"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"not on PATH: {', '.join(missing)} (the kind suite needs {', '.join(TOOLS)}; see {WORKFLOW})"
    return None


def run(*argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def kubectl(*args: str, namespace: str = NAMESPACE, check: bool = True, timeout: float = 120) -> str:
    return run("kubectl", "--namespace", namespace, *args, check=check, timeout=timeout).stdout


def kubectl_json(*args: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(kubectl(*args, "--output", "json", namespace=namespace))
    return found


def items(*args: str, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    return list(kubectl_json("get", *args, namespace=namespace)["items"])


def can_i(service_account: str, verb: str, resource: str) -> bool:
    """`kubectl auth can-i` as one of the release's ServiceAccounts (exit 0: yes, 1: no).
    `resource` may name a subresource after a slash (pods/log)."""
    user = f"system:serviceaccount:{NAMESPACE}:{service_account}"
    kind, _, subresource = resource.partition("/")
    extra = ["--subresource", subresource] if subresource else []
    proc = run("kubectl", "auth", "can-i", verb, kind, *extra, "--namespace", NAMESPACE, "--as", user, check=False)
    if proc.returncode not in (0, 1):
        raise AssertionError(f"kubectl auth can-i failed: {proc.stderr}")
    return proc.returncode == 0


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def local_port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, f"{url} names no port"
    return port


class PortForward:
    """`kubectl port-forward` to a Service, on the fixed local port that values.yaml names."""

    def __init__(self, namespace: str, service: str, local: int, remote: int):
        self.argv = ["kubectl", "--namespace", namespace, "port-forward", f"svc/{service}", f"{local}:{remote}"]
        self.local = local
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PortForward:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_until(self._ready, 30, f"{' '.join(self.argv)}", interval=0.2)
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            stderr = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise AssertionError(f"{' '.join(self.argv)} exited: {stderr}")
        try:
            with socket.create_connection(("127.0.0.1", self.local), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
