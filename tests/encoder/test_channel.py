"""The encoder's progress reports to the API (`roughy.encoder.channel.ProgressSender`): the
encoder first, only forward and only after a step, soon at first and then every few seconds,
and a failed report never fails the encode."""

from __future__ import annotations

import threading
import time
from typing import Any

from roughy.encoder import channel
from roughy.encoder.channel import ChannelError, ProgressSender


class Recorder:
    timeout = 1.0

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[float, float, str | None]] = []
        self.fail = fail
        self.started = time.monotonic()

    def progress(self, value: float, encoder: str | None = None) -> None:
        self.sent.append((time.monotonic() - self.started, value, encoder))
        if self.fail:
            raise ChannelError("HTTP 503 (test)")


def test_reports_go_forward_by_steps_the_encoder_first() -> None:
    api = Recorder()
    sender = ProgressSender(api, "libx264", interval=0.2, step=0.05)  # type: ignore[arg-type]
    for value in (0.01, 0.02, 0.3, 0.31, 0.2, 0.9):
        sender.update(value)
        time.sleep(0.25)
    sender.close()
    values = [value for _, value, _ in api.sent]
    assert api.sent[0][1:] == (0.0, "libx264") and all(e is None for _, _, e in api.sent[1:])
    assert values == sorted(values) and values[-1] == 0.9
    assert all(b - a >= 0.05 for a, b in zip(values, values[1:], strict=False))


def test_a_short_encode_still_reports_in_between(monkeypatch: Any) -> None:
    """The first reports come FIRST_INTERVAL apart (growing), not REPORT_INTERVAL."""
    monkeypatch.setattr(channel, "FIRST_INTERVAL", 0.05)
    api = Recorder()
    sender = ProgressSender(api, None, interval=10.0)  # type: ignore[arg-type]
    done = threading.Event()

    def encode() -> None:
        for i in range(1, 11):
            sender.update(i / 10)
            time.sleep(0.05)
        done.set()

    threading.Thread(target=encode).start()
    assert done.wait(5)
    sender.close()
    assert any(0 < value < 1 for _, value, _ in api.sent), api.sent


def test_a_failed_report_is_forgotten() -> None:
    api = Recorder(fail=True)
    sender = ProgressSender(api, "libx264", interval=0.05)  # type: ignore[arg-type]
    sender.update(0.5)
    time.sleep(0.3)
    sender.close()  # no exception: progress is for show
    assert api.sent and api.sent[0][2] == "libx264"
