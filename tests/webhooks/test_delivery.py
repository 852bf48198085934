"""Delivery (SPEC 6): at least once, retried with backoff, given up after the window, endpoints
disabled after repeated failures and re-enabled, redelivery, and the safety of the sender
(no redirects, bounded reads, no private targets even when DNS changes its answer)."""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime

import httpx
import pytest
from standardwebhooks import Webhook

from roughy.adapters.store.webhooks import emit
from roughy.adapters.webhooks import WebhookSender
from roughy.core.errors import ValidationFailed
from roughy.core.events import EventType, NewEvent
from roughy.core.ids import now
from roughy.core.webhooks import Event, WebhookEndpoint, new_secret
from tests.conftest import Service, finished_render, ready_asset, start_service, wait_for
from tests.webhooks.helpers import FAST, create_endpoint, deliveries, junk_asset, new_account, wait_deliveries
from tests.webhooks.receiver import Receiver, Reply


def stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_a_receiver_that_fails_twice_then_succeeds_gets_one_event_three_times(api, receivers, tmp_path):
    rx = receivers(lambda _req, i: Reply(500, b"boom") if i < 2 else Reply(200))
    ep = create_endpoint(api, rx.url(), ["asset.failed"], rx)
    junk_asset(api, tmp_path)
    reqs = rx.wait(3)
    [d] = wait_deliveries(api, ep["id"], lambda d: d and d[0]["state"] == "succeeded")
    assert {r.event_id for r in reqs} == {d["event_id"]}, "one event id in all three attempts"
    assert len({r.body for r in reqs}) == 1, "the same payload each time"
    for r in reqs:
        assert Webhook(ep["secret"]).verify(r.body, r.headers)["id"] == d["event_id"]
    assert [a["status_code"] for a in d["attempts"]] == [500, 500, 200]
    assert [a["error"] for a in d["attempts"]] == ["HTTP 500: boom", "HTTP 500: boom", None]
    assert all(a["latency_ms"] > 0 for a in d["attempts"])
    times = [stamp(a["attempted_at"]) for a in d["attempts"]]
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    assert all(g >= 0.04 for g in gaps), f"retries back off (base 0.1 s, jitter x0.5-1.5): {gaps}"
    assert d["next_retry_at"] is None and d["completed_at"]
    time.sleep(0.5)
    assert len(rx.requests) == 3, "nothing more after the success"


def test_a_pending_delivery_shows_its_next_retry(receivers, tmp_path):
    svc = start_service(tmp_path / "data", **(FAST | {"webhook_retry_base": 30.0, "webhook_retry_cap": 60.0}))
    try:
        with svc.client() as api:
            rx = receivers(lambda _r, _i: Reply(503, b"down for maintenance"))
            ep = create_endpoint(api, rx.url(), ["asset.failed"], rx)
            junk_asset(api, tmp_path)
            [d] = wait_deliveries(api, ep["id"], lambda d: d and d[0]["attempts"])
            assert d["state"] == "pending"
            [a] = d["attempts"]
            assert a["status_code"] == 503 and a["error"] == "HTTP 503: down for maintenance"
            wait = (stamp(d["next_retry_at"]) - stamp(a["attempted_at"])).total_seconds()
            assert 15 - 1 <= wait <= 45 + 1, f"first retry after base 30 s x jitter 0.5-1.5: {wait}"
    finally:
        svc.stop()


def test_a_hanging_receiver_times_out_is_retried_and_holds_up_nothing_else(api, receivers, tmp_path, clip):
    hang = receivers(lambda _r, _i: Reply(delay=60))
    fast = receivers()
    events = ["asset.ready", "asset.failed", "render.completed"]
    slow_ep = create_endpoint(api, hang.url(), events, hang)
    fast_ep = create_endpoint(api, fast.url(), events, fast)
    started = time.monotonic()
    for n in range(10):  # more deliveries to the hanging endpoint than there are sender threads (8)
        junk_asset(api, tmp_path, f"junk{n}.mp4")
    asset = ready_asset(api, clip)
    render = finished_render(api, {"asset_id": asset["id"], "output": {"format": "mp4"}})
    assert render["state"] == "completed"
    got = fast.wait(12, timeout=10)
    assert sorted(r.json["type"] for r in got).count("asset.failed") == 10
    assert {r.json["type"] for r in got} == set(events)
    # every event reached the fast endpoint within a second or two of happening, despite the hang
    for r in got:
        lag = (datetime.now().astimezone() - stamp(r.json["created_at"])).total_seconds() - (time.monotonic() - r.at)
        assert lag < 3.0, f"{r.json['type']} took {lag:.2f} s to arrive"
    slow = wait_deliveries(api, slow_ep["id"], lambda d: len(d) == 12 and all(len(x["attempts"]) >= 2 for x in d))
    for d in slow:
        assert d["state"] == "pending" and d["next_retry_at"]
        for a in d["attempts"]:
            assert a["status_code"] is None and a["error"] == "timed out after 0.5 s", a
            assert 450 <= a["latency_ms"] < 1500, a
    assert all(d["state"] == "succeeded" for d in deliveries(api, fast_ep["id"]))
    assert time.monotonic() - started < 40


def test_retries_end_when_the_window_is_over_and_the_delivery_is_failed(receivers, tmp_path):
    svc = start_service(tmp_path / "data", **(FAST | {"webhook_retry_window": 1.5}))
    try:
        with svc.client() as api:
            rx = receivers(lambda _r, _i: Reply(503))
            ep = create_endpoint(api, rx.url(), ["asset.failed"], rx)
            junk_asset(api, tmp_path)
            [d] = wait_deliveries(api, ep["id"], lambda d: d and d[0]["state"] != "pending", timeout=10)
            assert d["state"] == "failed" and d["next_retry_at"] is None and d["completed_at"]
            assert len(d["attempts"]) >= 3, "retried until the window closed"
            last = (stamp(d["attempts"][-1]["attempted_at"]) - stamp(d["created_at"])).total_seconds()
            assert last < 1.5 + 1.0, f"no attempt long after the window (plus polling slack): {last}"
            count = len(rx.requests)
            time.sleep(0.6)
            assert len(rx.requests) == count == len(d["attempts"]), "nothing after giving up"
            assert _metric(svc, "roughy_webhook_deliveries_failed_total") >= 1
            ep_now = api.get(f"/v1/webhook_endpoints/{ep['id']}").json()
            assert ep_now["enabled"] is True, "a few failures do not disable an endpoint"
    finally:
        svc.stop()


def test_an_endpoint_failing_repeatedly_is_disabled_and_resumes_when_enabled(receivers, tmp_path):
    # A first retry 10-30 s out: anything delivered within seconds of `enable` was resumed by it.
    slow_retries = {"webhook_retry_base": 20.0, "webhook_retry_cap": 60.0}
    svc = start_service(tmp_path / "data", **(FAST | slow_retries | {"webhook_disable_after": 3}))
    try:
        with svc.client() as api:
            up = threading.Event()
            rx = receivers(lambda _r, _i: Reply(200) if up.is_set() else Reply(500, b"down"))
            ep = create_endpoint(api, rx.url(), ["asset.failed"], rx)
            for n in range(3):
                junk_asset(api, tmp_path, f"junk{n}.mp4")
            wait_for(
                lambda: api.get(f"/v1/webhook_endpoints/{ep['id']}").json(), lambda e: not e["enabled"], timeout=10
            )
            disabled = api.get(f"/v1/webhook_endpoints/{ep['id']}").json()
            assert "3 consecutive failed attempts" in disabled["disabled_reason"]
            junk_asset(api, tmp_path, "while-disabled.mp4")  # an event while disabled is kept too
            wait_deliveries(api, ep["id"], lambda d: len(d) == 4)
            up.set()
            time.sleep(1.0)
            assert len(rx.requests) == 3, "a disabled endpoint's deliveries wait"
            assert all(d["state"] == "pending" for d in deliveries(api, ep["id"]))

            enabled = api.post(f"/v1/webhook_endpoints/{ep['id']}/enable")
            assert enabled.status_code == 200, enabled.text
            assert enabled.json()["enabled"] is True and enabled.json()["disabled_reason"] is None
            at = time.monotonic()
            done = wait_deliveries(api, ep["id"], lambda d: all(x["state"] == "succeeded" for x in d), timeout=8)
            assert time.monotonic() - at < 3, "enabling resumes the waiting deliveries now, not at their backoff"
            assert len(done) == 4 and len({d["event_id"] for d in done}) == 4
            ok = [r for r in rx.requests if r.verified and all(r.verified.values())]
            assert {r.event_id for r in ok[-4:]} == {d["event_id"] for d in done}
    finally:
        svc.stop()


def test_redeliver_sends_the_same_event_again(api, receivers, tmp_path):
    rx = receivers()
    ep = create_endpoint(api, rx.url(), ["asset.failed"], rx)
    junk_asset(api, tmp_path)
    [first] = rx.wait(1)
    [d] = wait_deliveries(api, ep["id"], lambda d: d and d[0]["state"] == "succeeded")
    again = api.post(f"/v1/events/{d['event_id']}/redeliver")
    assert again.status_code == 202, again.text
    assert again.json()["event_id"] == d["event_id"] and len(again.json()["deliveries"]) == 1
    [_, second] = rx.wait(2)
    assert second.event_id == first.event_id == d["event_id"]
    assert second.json == first.json
    assert second.verified == {ep["secret"]: True}
    both = wait_deliveries(api, ep["id"], lambda ds: len(ds) == 2 and all(x["state"] == "succeeded" for x in ds))
    assert [x["id"] for x in both] == [again.json()["deliveries"][0], d["id"]]
    assert {x["event_id"] for x in both} == {d["event_id"]}
    assert api.post("/v1/events/evt_nope/redeliver").status_code == 404


def test_redirects_are_not_followed(api, receivers, tmp_path):
    rx = receivers()
    elsewhere = {"location": rx.url("/elsewhere")}
    rx.behaviour = lambda r, _i: Reply(302, headers=elsewhere) if r.path == "/hook" else Reply()
    ep = create_endpoint(api, rx.url("/hook"), ["asset.failed"], rx)
    junk_asset(api, tmp_path)
    [d] = wait_deliveries(api, ep["id"], lambda d: d and len(d[0]["attempts"]) >= 2)
    assert d["state"] == "pending", "a redirect is a failed attempt, retried"
    for a in d["attempts"]:
        assert a["status_code"] == 302 and "redirect" in a["error"]
    assert rx.on("/elsewhere") == []


def test_a_huge_response_body_is_read_only_up_to_a_limit(api, receivers, tmp_path):
    endless = receivers(lambda _r, _i: Reply(200, endless=True))
    loud = receivers(lambda _r, _i: Reply(500, b"E" * 2_000_000))
    ok_ep = create_endpoint(api, endless.url(), ["asset.failed"], endless)
    err_ep = create_endpoint(api, loud.url(), ["asset.failed"], loud)
    junk_asset(api, tmp_path)
    [d] = wait_deliveries(api, ok_ep["id"], lambda d: d and d[0]["state"] == "succeeded", timeout=10)
    [a] = d["attempts"]
    assert a["status_code"] == 200 and a["latency_ms"] < 2000
    assert endless.sent_body_bytes < 64 * 1024 * 1024, "the sender hung up instead of reading it all"
    [e] = wait_deliveries(api, err_ep["id"], lambda d: d and d[0]["attempts"])
    assert e["attempts"][0]["status_code"] == 500
    assert len(e["attempts"][0]["error"]) < 300, "the recorded error is a short excerpt"


def test_a_trickling_receiver_holds_a_sender_no_longer_than_the_timeout(api, receivers, tmp_path):
    """One byte every 0.1 s keeps every read under the 0.5 s timeout: the attempt's deadline ends it."""
    slow_head = receivers(lambda _r, _i: Reply(200, trickle="headers"))
    slow_body = receivers(lambda _r, _i: Reply(200, trickle="body"))
    head_ep = create_endpoint(api, slow_head.url(), ["asset.failed"], slow_head)
    body_ep = create_endpoint(api, slow_body.url(), ["asset.failed"], slow_body)
    junk_asset(api, tmp_path)
    [h] = wait_deliveries(api, head_ep["id"], lambda d: d and len(d[0]["attempts"]) >= 2, timeout=10)
    for a in h["attempts"]:
        assert a["status_code"] is None and a["error"] == "timed out after 0.5 s"
        assert a["latency_ms"] < 1500, a
    [b] = wait_deliveries(api, body_ep["id"], lambda d: d and d[0]["attempts"], timeout=10)
    [a] = b["attempts"]
    assert a["status_code"] == 200 and a["error"] is None and a["latency_ms"] < 1500, "the answer was 200"


def test_metrics_count_attempts_by_outcome(hooks: Service, api, receivers, tmp_path):
    before_ok = _metric(hooks, 'roughy_webhook_attempts_total{outcome="success"}')
    before_bad = _metric(hooks, 'roughy_webhook_attempts_total{outcome="failure"}')
    rx = receivers(lambda _r, i: Reply(500) if i == 0 else Reply(200))
    ep = create_endpoint(api, rx.url(), ["asset.failed"], rx)
    junk_asset(api, tmp_path)
    wait_deliveries(api, ep["id"], lambda d: d and d[0]["state"] == "succeeded")
    assert _metric(hooks, 'roughy_webhook_attempts_total{outcome="success"}') >= before_ok + 1
    assert _metric(hooks, 'roughy_webhook_attempts_total{outcome="failure"}') >= before_bad + 1


def _metric(svc: Service, name: str) -> float:
    text = httpx.get(f"{svc.url}/metrics").text
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


# -- the outbox --------------------------------------------------------------------------------


def test_an_event_is_written_with_its_transaction_or_not_at_all(hooks: Service, api, receivers):
    rx = receivers()
    ep = create_endpoint(api, rx.url(), ["asset.failed"], rx)
    account_id = hooks.embedded.store.get_endpoint(ep["id"]).account_id
    with pytest.raises(RuntimeError), hooks.embedded.store.tx() as c:
        emit(c, [NewEvent(EventType.ASSET_FAILED, account_id, {"id": "ast_rolled_back"})])
        raise RuntimeError("the state change failed")
    with hooks.embedded.store.tx() as c:
        [kept] = emit(c, [NewEvent(EventType.ASSET_FAILED, account_id, {"id": "ast_committed"})])
    [req] = rx.wait(1)
    time.sleep(0.5)
    assert [r.json["data"]["id"] for r in rx.requests] == ["ast_committed"] and req.event_id == kept
    assert [d["event_id"] for d in deliveries(api, ep["id"])] == [kept]


# -- targets at delivery time: DNS can change ------------------------------------------------


class Rebinding:
    """A resolver that answers a public address first, and a loopback one afterwards."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        return ["93.184.216.34"] if self.calls == 1 else ["127.0.0.1"]


def test_a_target_that_rebinds_to_loopback_is_refused_at_delivery(receivers, tmp_path):
    svc = start_service(tmp_path / "data", **(FAST | {"webhook_allow_private": False}))
    try:
        sender = WebhookSender(timeout=0.5, resolver=Rebinding())
        svc.embedded.dispatcher.sender = sender  # what the service checks and sends with
        svc.embedded.application.webhooks.targets = sender
        rx = receivers()
        with svc.client() as api:
            ep = create_endpoint(api, f"https://hooks.example.com:{rx.port}/hook", ["asset.failed"])
            junk_asset(api, tmp_path)
            [d] = wait_deliveries(api, ep["id"], lambda d: d and d[0]["attempts"])
            a = d["attempts"][0]
            assert a["status_code"] is None and a["error"].startswith("refused:"), a
            assert "127.0.0.1" in a["error"]
            assert d["state"] == "pending", "retried: the name may point somewhere public again"
        assert rx.requests == []
    finally:
        svc.stop()


def _event() -> Event:
    return Event("evt_test", "acct_test", "asset.failed", {"id": "ast_x"}, now())


def _endpoint(url: str) -> WebhookEndpoint:
    return WebhookEndpoint("whe_test", "acct_test", url, ["asset.failed"], new_secret(), now())


def test_the_sender_refuses_any_private_answer_and_pins_the_checked_address(receivers):
    mixed = WebhookSender(resolver=lambda _h, _p: ["93.184.216.34", "10.1.2.3"])
    with pytest.raises(ValidationFailed):
        mixed.check_url("https://hooks.example.com/hook")
    attempt = mixed.send(_endpoint("https://hooks.example.com/hook"), _event())
    assert attempt.status_code is None and attempt.error and attempt.error.startswith("refused:")

    # The connection goes to the address that was checked, with the URL's host name: the name is
    # resolved once, by the resolver, and never again by the HTTP client (it would not resolve).
    rx: Receiver = receivers()
    endpoint = _endpoint(f"http://hooks.example.invalid:{rx.port}/hook")
    rx.secrets = [endpoint.secret]
    pinned = WebhookSender(allow_private=True, resolver=lambda _h, _p: ["127.0.0.1"])
    attempt = pinned.send(endpoint, _event())
    assert attempt.status_code == 200 and attempt.error is None, attempt
    [req] = rx.requests
    assert req.headers["host"] == f"hooks.example.invalid:{rx.port}"
    assert req.verified == {endpoint.secret: True}
    pinned.close()
    mixed.close()


def test_an_account_sees_only_its_own_deliveries(hooks: Service, api, receivers, tmp_path):
    rx = receivers()
    mine = create_endpoint(api, rx.url("/mine"), ["asset.failed"], rx)
    with new_account(hooks, "neighbour") as other:
        theirs = create_endpoint(other, rx.url("/theirs"), ["asset.failed"], rx)
        junk_asset(api, tmp_path)
        rx.wait(1, "/mine")
        time.sleep(0.5)
        assert rx.on("/theirs") == [] and deliveries(other, theirs["id"]) == []
    assert len(deliveries(api, mine["id"])) == 1
