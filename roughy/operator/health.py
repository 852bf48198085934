"""The operator's liveness: is it still hearing from the Kubernetes API server?

kopf restarts a watch stream that has gone quiet (`settings.watching.inactivity_timeout`: no
event and no bookmark for that long), and bounds each stream (`server_timeout`, `client_timeout`,
`connect_timeout`, set in `handlers.configure`). What a restart of the pod can still fix is an
operator that cannot reach the API at all (credentials that stopped working, a network that
dropped it): `ApiVitals` is the liveness probe for that. Every watch event of a Render or a Job
counts as word from the API; after `quiet` seconds without one the probe asks the API itself
(one small list), and it fails, so that the kubelet restarts the operator, only once the API has
not answered for `max_silence` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Unhealthy(RuntimeError):
    """The probe's failure: kopf's /healthz answers 500 with it."""


class ApiVitals:
    def __init__(
        self, *, quiet: float = 30.0, max_silence: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not 0 < quiet <= max_silence:
            raise ValueError("quiet must be positive and at most max_silence")
        self.quiet = quiet
        self.max_silence = max_silence
        self._clock = clock
        self._lock = threading.Lock()
        self._last = clock()

    def heard(self) -> None:
        """Word from the API: a watch event arrived, or a call answered."""
        with self._lock:
            self._last = self._clock()

    def silence(self) -> float:
        with self._lock:
            return self._clock() - self._last

    def check(self, ping: Callable[[], object]) -> dict[str, float]:
        """The probe: fine while the API spoke lately; else `ping` it, and raise Unhealthy when
        it has not answered for `max_silence` seconds."""
        silence = self.silence()
        if silence < self.quiet:
            return {"seconds_since_api": round(silence, 1)}
        try:
            ping()
        except Exception as exc:
            silence = self.silence()
            if silence >= self.max_silence:
                raise Unhealthy(f"no answer from the Kubernetes API for {silence:.0f} s: {exc}") from exc
            return {"seconds_since_api": round(silence, 1)}
        self.heard()
        return {"seconds_since_api": 0.0}
