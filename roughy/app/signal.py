"""A wake-up shared by the services that write work and the loops that do it.

The API writes a render, a completed part or a grant, and wakes the loop that acts on it at
once instead of at its next poll; the loops also poll, so a lost wake-up only delays work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Signal:
    def __init__(self) -> None:
        self._event = threading.Event()

    def wake(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> None:
        """Until woken or `timeout` passes; a wake-up is consumed."""
        self._event.wait(timeout)
        self._event.clear()


class Ticker:
    """One background loop: `tick` on every wake-up or every `interval` seconds, until stopped.

    A failing tick is logged and retried after the interval: the work stays in the database,
    so the next tick finds it again.
    """

    def __init__(self, name: str, tick: Callable[[], None], *, interval: float, signal: Signal | None = None):
        self.name = name
        self._tick = tick
        self.interval = interval
        self.signal = signal or Signal()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.signal.wake()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.signal.wait(self.interval)
            if self._stop.is_set():
                return
            try:
                self._tick()
            except Exception:
                log.exception("%s: tick failed; retrying", self.name)
                time.sleep(self.interval)
