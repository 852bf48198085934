"""Webhook deliveries per second that one roughy process sustains to a fast local receiver.

    python bench/webhooks.py                       # 3 runs of 3000 events, 8 sender threads (the default)
    python bench/webhooks.py --events 5000 --runs 5 --workers 16 --json bench/out/webhooks.json

Setup: the real embedded service (`tests.conftest.start_service`: SQLite file, the dispatcher
thread and its sender pool, all in this process) with `webhook_allow_private` on, and a receiver
in a separate process (so it does not share this process's GIL): an asyncio HTTP/1.1 server on
127.0.0.1 that reads each request and answers `204` at once, keeping connections alive.

Each run: an endpoint is created through the API (subscribed to `render.completed`) and paused
(disabled, which makes deliveries wait); N events are written to the outbox with the same `emit`
the state changes use (in transactions of 500, a realistic ~700-byte `render.completed`
payload each); then the endpoint is enabled and the clock starts. The run ends when the store
has no pending delivery left (the harness watches the receiver's counter, and only then the
store, so its polling does not compete for SQLite's write lock). Quoted: N / (enable -> last
delivery recorded), and the steady rate between 10% and 90% of the receiver's count. Checked:
every delivery succeeded with one attempt, the receiver saw each event id exactly once, and a
sample of 20 requests verifies with the `standardwebhooks` library. Between runs the endpoint
is deleted (with its deliveries).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/webhooks.py` puts bench/ first, not the repo root

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from standardwebhooks import Webhook  # noqa: E402

from roughy.adapters.store import tables as t  # noqa: E402
from roughy.adapters.store.webhooks import emit  # noqa: E402
from roughy.core.events import EventType, NewEvent  # noqa: E402
from tests.conftest import Service, start_service  # noqa: E402

BATCH = 500
SAMPLE = 20


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the receiver (its own process) ----------------------------------------------------------


def receiver_main(port: Any, count: Any, ids_out: Any, sample_out: Any, stop: Any) -> None:
    """Answer 204 to every POST; count them; hand back every webhook-id and a few whole requests."""
    seen: list[str] = []
    sample: list[tuple[dict[str, str], bytes]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                seen.append(headers.get("webhook-id", ""))
                if len(sample) < SAMPLE:
                    sample.append((headers, body))
                with count.get_lock():
                    count.value += 1
        except (asyncio.IncompleteReadError, asyncio.CancelledError, ConnectionError):
            pass  # the sender closed the connection, or the receiver is stopping
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=256)
        port.value = server.sockets[0].getsockname()[1]
        while not stop.is_set():
            await asyncio.sleep(0.05)
        server.close()

    asyncio.run(main())
    ids_out.put(seen)
    sample_out.put(sample)


class Receiver:
    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.port = ctx.Value("i", 0)
        self.count = ctx.Value("q", 0)
        self.ids = ctx.Queue()
        self.sample = ctx.Queue()
        self.stop = ctx.Event()
        self.proc = ctx.Process(
            target=receiver_main, args=(self.port, self.count, self.ids, self.sample, self.stop), daemon=True
        )
        self.proc.start()
        deadline = time.monotonic() + 20
        while not self.port.value:
            if time.monotonic() > deadline:
                raise RuntimeError("the receiver did not start")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port.value}/hook"

    def received(self) -> int:
        return int(self.count.value)

    def finish(self) -> tuple[list[str], list[tuple[dict[str, str], bytes]]]:
        self.stop.set()
        ids = self.ids.get(timeout=30)
        sample = self.sample.get(timeout=30)
        self.proc.join(timeout=10)
        return ids, sample


# -- one run -----------------------------------------------------------------------------------


def payload(i: int) -> dict[str, Any]:
    """A completed render, as `render.completed` carries it (about 700 bytes of JSON)."""
    return {
        "id": f"rnd_bench{i:011d}",
        "object": "render",
        "asset_id": "ast_benchbenchbench1",
        "cut_id": None,
        "output": {
            "format": "mp4",
            "resolution": "720p",
            "video_bitrate": None,
            "audio_bitrate": None,
            "audio_channels": None,
            "fps": None,
        },
        "state": "completed",
        "progress": 1.0,
        "error": None,
        "result": {
            "format": "mp4",
            "duration": 60.0,
            "width": 1280,
            "height": 720,
            "fps": 30.0,
            "video_bitrate_kbps": 5000,
            "audio_bitrate_kbps": 128,
            "audio_channels": 2,
            "size_bytes": 38_912_345,
            "filename": "talk-720p.mp4",
        },
        "created_at": "2026-01-01T12:00:00.000000Z",
        "started_at": "2026-01-01T12:00:00.100000Z",
        "completed_at": "2026-01-01T12:00:41.300000Z",
    }


def pending(store: Any) -> int:
    """Deliveries not yet settled (read from the table: the store has no such query)."""
    with store.read() as c:
        return int(c.execute(select(func.count()).where(t.deliveries.c.state == "pending")).scalar_one())


def one_run(svc: Service, api: httpx.Client, events: int, run: int) -> dict[str, Any]:
    store = svc.embedded.store
    rx = Receiver()
    try:
        resp = api.post("/v1/webhook_endpoints", json={"url": rx.url, "events": ["render.completed"]})
        resp.raise_for_status()
        endpoint = resp.json()
        store.set_endpoint_enabled(endpoint["id"], False, "paused by the benchmark")  # deliveries wait
        for start in range(0, events, BATCH):
            with store.tx() as c:
                for i in range(start, min(events, start + BATCH)):
                    emit(c, [NewEvent(EventType.RENDER_COMPLETED, svc.account_id, payload(i))])
        time.sleep(0.5)  # the dispatcher is idle (the endpoint is paused), the outbox is full
        assert rx.received() == 0

        started = time.monotonic()
        store.set_endpoint_enabled(endpoint["id"], True)
        marks: dict[int, float] = {}
        while (n := rx.received()) < events:  # watch the receiver, not the store (its lock is contended)
            for pct in (10, 90):
                if pct not in marks and n >= events * pct / 100:
                    marks[pct] = time.monotonic()
            time.sleep(0.005)
        while pending(store):  # then until the last attempt is recorded
            time.sleep(0.005)
        elapsed = time.monotonic() - started
        marks.setdefault(10, started)
        marks.setdefault(90, time.monotonic())

        ids, sample = rx.finish()
        with store.tx() as c:
            rows = c.execute(t.deliveries.select().where(t.deliveries.c.endpoint_id == endpoint["id"])).mappings().all()
        ok = sum(1 for r in rows if r["state"] == "succeeded" and r["attempts"] == 1)
        verified = 0
        for headers, body in sample:
            Webhook(endpoint["secret"]).verify(body, headers)
            verified += 1
        result = {
            "run": run,
            "events": events,
            "seconds": elapsed,
            "deliveries_per_s": events / elapsed,
            "steady_per_s": (events * 0.8) / max(1e-9, marks[90] - marks[10]),
            "succeeded_first_attempt": ok,
            "requests_received": len(ids),
            "distinct_event_ids": len(set(ids)),
            "signatures_verified": verified,
        }
        api.delete(f"/v1/webhook_endpoints/{endpoint['id']}").raise_for_status()
        return result
    finally:
        if rx.proc.is_alive():
            rx.stop.set()
            rx.proc.join(timeout=5)
            if rx.proc.is_alive():
                rx.proc.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=3000, help="events queued per run (default 3000)")
    ap.add_argument("--runs", type=int, default=3, help="runs (default 3); the median is quoted")
    ap.add_argument("--workers", type=int, default=None, help="ROUGHY_WEBHOOK_WORKERS (default: the setting's, 8)")
    ap.add_argument("--json", type=Path, help="also write every run's figures here")
    args = ap.parse_args()

    load = os.getloadavg()[0]
    log(f"load {load:.2f} on {os.cpu_count()} CPUs{' (NOT quiet)' if load >= 1.0 else ''}")
    overrides: dict[str, Any] = {"webhook_allow_private": True}
    if args.workers:
        overrides["webhook_workers"] = args.workers
    with tempfile.TemporaryDirectory(prefix="roughy-bench-webhooks-") as tmp:
        svc = start_service(Path(tmp) / "data", **overrides)
        workers = svc.embedded.dispatcher.workers
        runs = []
        try:
            with svc.client() as api:
                for run in range(1, args.runs + 1):
                    r = one_run(svc, api, args.events, run)
                    runs.append(r)
                    log(
                        f"run {run}: {r['events']} deliveries in {r['seconds']:.2f} s = "
                        f"{r['deliveries_per_s']:.0f}/s (steady 10-90%: {r['steady_per_s']:.0f}/s); "
                        f"{r['succeeded_first_attempt']} succeeded first time, {r['requests_received']} requests, "
                        f"{r['distinct_event_ids']} distinct ids, {r['signatures_verified']} signatures verified"
                    )
        finally:
            svc.stop()

    rates = [r["deliveries_per_s"] for r in runs]
    steady = [r["steady_per_s"] for r in runs]
    correct = all(
        r["succeeded_first_attempt"] == r["events"] == r["distinct_event_ids"] == r["requests_received"]
        and r["signatures_verified"] == min(SAMPLE, r["events"])
        for r in runs
    )
    print(
        f"webhooks: {args.events} events x {args.runs} runs, {workers} sender thread{'s' if workers != 1 else ''}: "
        f"median {statistics.median(rates):.0f} deliveries/s (min {min(rates):.0f}, max {max(rates):.0f}); "
        f"steady 10-90% median {statistics.median(steady):.0f}/s; "
        f"{'all delivered once, signatures verify' if correct else 'INCORRECT deliveries (see above)'}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"workers": workers, "load_at_start": load, "runs": runs}, indent=2))
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
