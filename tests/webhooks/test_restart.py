"""Restart safety: an event whose delivery had not succeeded when `roughy serve` was SIGKILLed is
delivered by the next process on the same data directory, with the same event id."""

from __future__ import annotations

from pathlib import Path

from standardwebhooks import Webhook

from tests.conftest import free_port
from tests.test_recovery import Server
from tests.webhooks.helpers import create_endpoint, junk_asset, wait_deliveries
from tests.webhooks.receiver import Receiver

ENV = {
    "ROUGHY_WEBHOOK_ALLOW_PRIVATE": "true",
    "ROUGHY_WEBHOOK_RETRY_BASE": "0.2",
    "ROUGHY_WEBHOOK_RETRY_CAP": "0.5",
    "ROUGHY_WEBHOOK_TIMEOUT": "0.5",
}


def test_an_undelivered_event_survives_a_crash_and_is_delivered_after_restart(tmp_path: Path):
    port = free_port()  # nothing listens here yet: every attempt fails to connect
    data = tmp_path / "data"
    first = Server(data, **ENV)
    key = first.key
    assert key
    try:
        with first.client(key) as api:
            ep = create_endpoint(api, f"http://127.0.0.1:{port}/hook", ["asset.failed"])
            asset = junk_asset(api, tmp_path)
            [d] = wait_deliveries(api, ep["id"], lambda d: d and len(d[0]["attempts"]) >= 1)
            assert d["state"] == "pending"
            assert d["attempts"][0]["status_code"] is None and "Connect" in d["attempts"][0]["error"]
    finally:
        first.crash()

    rx = Receiver(port=port, secrets=[ep["secret"]])
    second = Server(data, **ENV)
    try:
        [req] = rx.wait(1, timeout=20)
        assert req.event_id == d["event_id"], "the same event, not a new one"
        payload = Webhook(ep["secret"]).verify(req.body, req.headers)
        assert payload["type"] == "asset.failed" and payload["data"]["id"] == asset["id"]
        with second.client(key) as api:
            [after] = wait_deliveries(api, ep["id"], lambda ds: ds and ds[0]["state"] == "succeeded")
            assert after["id"] == d["id"] and after["attempts"][-1]["status_code"] == 200
            assert len(after["attempts"]) >= 2
        assert len(rx.requests) == 1
    finally:
        second.crash()
        rx.close()
