"""The Kubernetes runtime at scale, without a cluster (issue 10, item 9): N renders at once.

    python bench/kube_scale.py                         # 1,000 renders, ~60 s simulated encodes
    python bench/kube_scale.py --renders 200 --encode-seconds 40 --json bench/out/kube_scale.json

What runs: the Kubernetes API emulator (tests/kube/emulator.py) in this process; `roughy serve`
(ROUGHY_RUNTIME=kubernetes) and `roughy operator` as real processes configured by environment
and a kubeconfig each (each with its own token, so every request the emulator records says who
made it); moto's S3 server; PostgreSQL (`ROUGHY_TEST_DATABASE_URL`, a fresh database) or else a
SQLite file; and the FakeKubelet, whose pods run `bench/fake_encoder.sh` instead of
`roughy-encode`: a shell script that does what the encoder does over the network and nothing
else (reads its token file, asks the API for its inputs, reports progress ten times over
`--encode-seconds`, asks for its output's upload and PUTs a few bytes there, writes its result
to the termination log). No ffmpeg: the figures are the control plane's.

What it reports (bench/README.md has the last run):

- POST /v1/renders -> the Job's creationTimestamp, p50 / p99 (the emulator stamps seconds);
- steady state, while all N encodes run: requests per second to the Kubernetes API by the
  operator and by the API (watch streams excluded: they are open, not requests), per running
  render, and status writes per second;
- the operator's resident memory (VmRSS) at steady state;
- a restart of the operator while they run: its calls per unfinished render, and, after they
  finished, a restart's calls per finished Render.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.conftest import ADMIN_KEY, free_port, upload_part  # noqa: E402
from tests.kube.harness import EmulatorServer, kubeconfig  # noqa: E402
from tests.kube.kubelet import FakeKubelet  # noqa: E402
from tests.media import make_audio  # noqa: E402
from tests.storage.conftest import BUCKET  # noqa: E402

NAMESPACE = "roughy"
FORMATS = ("mp3", "m4a")
BITRATES = (None, 128, 192, 256, 320)  # the audio ladder, and the format's default
FAKE_ENCODER = ROOT / "bench" / "fake_encoder.sh"
S3_SERVER = """
import sys, threading
from tests.storage.conftest import CREDENTIALS
from tests.storage.s3server import StrictS3Server
server = StrictS3Server(CREDENTIALS)
server._port = int(sys.argv[1])
server.start()
threading.Event().wait()
"""
AWS = {
    "AWS_ACCESS_KEY_ID": "testing-key",
    "AWS_SECRET_ACCESS_KEY": "testing-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextmanager
def database() -> Iterator[str]:
    """A fresh PostgreSQL database when ROUGHY_TEST_DATABASE_URL names a server, else SQLite."""
    url = os.environ.get("ROUGHY_TEST_DATABASE_URL")
    if not url:
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{directory}/roughy.db"
        return
    import sqlalchemy as sa

    name = f"roughy_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield str(sa.engine.make_url(url).set(database=name))
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


class Stack:
    """The emulator, S3, the API and operator processes, the FakeKubelet."""

    def __init__(self, workdir: Path, db_url: str, renders: int, encode_seconds: float, kubelet_poll: float):
        self.workdir = workdir
        os.environ.update(AWS)
        self.kube = EmulatorServer().start()
        self.kube.call(lambda emulator: setattr(emulator, "archive", []))  # answered requests: not rescanned
        # S3 in a process of its own: this one's GIL is the emulator's and the kubelet's.
        s3_port = free_port()
        self.s3_url = f"http://127.0.0.1:{s3_port}"
        self.s3 = subprocess.Popen(
            [sys.executable, "-c", S3_SERVER, str(s3_port)], cwd=ROOT, env=os.environ | AWS,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait(lambda: answers(self.s3_url, ok=(200, 403, 404)), 60, "S3")
        import boto3

        boto3.client("s3", endpoint_url=self.s3_url, region_name="us-east-1").create_bucket(Bucket=BUCKET)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("ROUGHY_")} | {
            "ROUGHY_RUNTIME": "kubernetes",
            "ROUGHY_DATABASE_URL": db_url,
            "ROUGHY_ADMIN_KEY": ADMIN_KEY,
            "ROUGHY_S3_BUCKET": BUCKET,
            "ROUGHY_S3_ENDPOINT_URL": self.s3_url,
            "ROUGHY_S3_ADDRESSING_STYLE": "path",
            "ROUGHY_ENCODER_IMAGE": "roughy-encoder:bench",
            "ROUGHY_ENCODER_API_URL": self.url,
            "ROUGHY_MAX_ACTIVE_RENDERS": str(renders * 2),
            "ROUGHY_KUBE_MAX_RUNNING": str(renders * 2),
            "ROUGHY_RATE_LIMIT_PER_SECOND": "100000",
            "ROUGHY_DATA_DIR": str(workdir / "data"),
            **AWS,
            "NO_PROXY": "127.0.0.1,localhost",
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.encoder = workdir / "fake_encoder.sh"
        self.encoder.write_text(FAKE_ENCODER.read_text().replace("@ENCODE_SECONDS@", str(encode_seconds)))
        self.encoder.chmod(0o755)
        self.kubelet = FakeKubelet(
            self.kube, namespaces=(NAMESPACE,), workdir=workdir / "kubelet", poll=kubelet_poll,
            executables={"roughy-encode": str(self.encoder)},
        )  # fmt: skip

    def run(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        env = self.env | {"KUBECONFIG": str(kubeconfig(self.workdir / f"{name}.kubeconfig", self.kube.url, name))}
        proc = subprocess.Popen(
            [sys.executable, "-m", "roughy.cli", *args], env=env,
            stdout=(self.workdir / f"{name}.log").open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.processes[name] = proc
        return proc

    def start(self) -> None:
        migrate = subprocess.run([sys.executable, "-m", "roughy.cli", "migrate"], env=self.env, capture_output=True)
        if migrate.returncode:
            raise SystemExit(migrate.stderr.decode())
        self.start_operator()
        self.run("api", "serve", "--port", str(self.port))
        wait(lambda: answers(f"{self.url}/readyz"), 60, "the API")
        self.kubelet.start()

    def start_operator(self) -> None:
        self.operator_health = f"http://127.0.0.1:{free_port()}/healthz"
        self.run("operator", "operator", "--liveness", self.operator_health, "--metrics-port", "0")
        wait(lambda: answers(self.operator_health), 60, "the operator")

    def stop_operator(self) -> None:
        proc = self.processes.pop("operator")
        proc.terminate()
        proc.wait(60)

    def stop(self) -> None:
        self.kubelet.stop()
        for proc in self.processes.values():
            proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.s3.terminate()
        self.s3.wait(30)
        self.kube.stop()

    # --- what the emulator saw -----------------------------------------------------------------

    def requests(self, since: int = 0) -> list[Any]:
        """The answered requests from the `since`-th on (watches count once they end)."""
        return self.kube.call(lambda emulator: list(emulator.archive[since:]))

    def request_count(self) -> int:
        return self.kube.call(lambda emulator: len(emulator.archive))

    def objects(self, plural: str) -> list[dict[str, Any]]:
        return self.kube.call(
            lambda emulator: [obj.raw for key, obj in emulator.objects.items()
                              if key[0].plural == plural and not obj.deleted]  # fmt: skip
        )

    def rss_mib(self, name: str) -> float:
        status = Path(f"/proc/{self.processes[name].pid}/status").read_text()
        kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        return kib / 1024


def answers(url: str, ok: tuple[int, ...] = (200,)) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code in ok
    except httpx.TransportError:
        return False


def wait(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval)


def who(request: Any) -> str:
    auth = str(request.headers.get("Authorization", ""))
    return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else "kubelet"


def is_watch(request: Any) -> bool:
    return request.params.get("watch") in ("true", "1")


def is_status_write(request: Any) -> bool:
    return (request.resource is not None and request.resource.plural == "renders"
            and request.subresource == "status" and request.method.value.upper() == "PATCH")  # fmt: skip


def rates(requests: list[Any], seconds: float, running: int) -> dict[str, float]:
    counts: Counter[str] = Counter()
    for request in requests:
        if is_watch(request):
            continue
        counts[f"{who(request)}_requests"] += 1
        if is_status_write(request):
            counts[f"{who(request)}_status_writes"] += 1
    figures = {key: round(value / seconds, 3) for key, value in counts.items()}
    for side in ("operator", "api"):
        figures[f"{side}_requests_per_running_render"] = round(
            counts[f"{side}_requests"] / seconds / max(running, 1), 5
        )
    return figures


def calls_of(requests: list[Any], name: str) -> Counter[str]:
    """(method resource[/sub]) of `name`'s non-watch requests."""
    found: Counter[str] = Counter()
    for r in requests:
        if who(r) == name and not is_watch(r):
            plural = r.resource.plural if r.resource is not None else str(r.url.path)
            found[f"{r.method.value.upper()} {plural}{'/' + r.subresource if r.subresource else ''}"] += 1
    return found


def settle(stack: Stack, since: int, limit: float, quiet: float = 5.0) -> float:
    """Wait until the operator has made no request (but watches) for `quiet` seconds, at most
    `limit`; the seconds it took to go quiet."""
    started = time.monotonic()
    last, seen = started, 0
    while time.monotonic() - started < limit:
        time.sleep(1.0)
        count = sum(1 for r in stack.requests(since) if who(r) == "operator" and not is_watch(r))
        if count != seen:
            last, seen = time.monotonic(), count
        elif time.monotonic() - last >= quiet:
            break
    return round(last - started, 1)


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def make_assets(client: httpx.Client, workdir: Path, count: int) -> list[str]:
    clip = make_audio(workdir / "tone.m4a", duration=2.0)
    ids: list[str] = []

    def one(_: int) -> None:
        asset = client.post("/v1/assets", json={"kind": "audio", "filename": "tone.m4a"}).json()
        upload_part(client, asset, "audio", clip)
        ids.append(asset["id"])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))
    wait(lambda: all(client.get(f"/v1/assets/{a}").json()["state"] == "ready" for a in ids), 300, "the assets", 1.0)
    return ids


def bench(args: argparse.Namespace) -> dict[str, Any]:
    per_asset = len(FORMATS) * len(BITRATES)
    bodies = []
    workdir = Path(tempfile.mkdtemp(prefix="roughy-kube-scale-"))
    with database() as db_url:
        stack = Stack(workdir, db_url, args.renders, args.encode_seconds, args.kubelet_poll)
        try:
            stack.start()
            admin = httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60)
            account = admin.post("/v1/admin/accounts", json={"name": "bench"}).json()
            key = admin.post(f"/v1/admin/accounts/{account['id']}/api_keys").json()["key"]
            assets_needed = -(-args.renders // per_asset)
            admin.post(f"/v1/admin/accounts/{account['id']}/credits",
                       json={"amount": assets_needed + 10, "reason": "bench"})  # fmt: skip
            client = httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
            log(f"{assets_needed} audio assets for {args.renders} renders")
            assets = make_assets(client, workdir, assets_needed)
            for asset in assets:
                for fmt in FORMATS:
                    for kbps in BITRATES:
                        output = {"format": fmt} | ({"audio_bitrate": kbps} if kbps else {})
                        bodies.append({"asset_id": asset, "output": output})
            bodies = bodies[: args.renders]

            log(f"POST {len(bodies)} renders")
            posted: dict[str, float] = {}
            lock = threading.Lock()

            def post(body: dict[str, Any]) -> None:
                at = time.time()
                answer = client.post("/v1/renders", json=body)
                if answer.status_code not in (200, 201):
                    raise SystemExit(f"POST /v1/renders: {answer.status_code} {answer.text}")
                with lock:
                    posted[answer.json()["id"]] = at

            started = time.monotonic()
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(post, bodies))
            post_seconds = time.monotonic() - started

            def jobs_by_render() -> dict[str, dict[str, Any]]:
                return {j["metadata"]["labels"].get("roughy.ai/render", ""): j for j in stack.objects("jobs")}

            wait(lambda: len(jobs_by_render()) >= len(bodies), 600, "every Job", 1.0)
            jobs = jobs_by_render()
            latencies = [parse_time(jobs[rid]["metadata"]["creationTimestamp"]) - at for rid, at in posted.items()]
            log(f"all {len(jobs)} Jobs created {time.monotonic() - started:.1f} s after the first POST")

            def running() -> int:
                pods = stack.objects("pods")
                return sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running")

            wait(lambda: running() >= len(bodies) * 0.95, 600, "the pods to run", 1.0)
            steady_from = stack.request_count()
            t0 = time.monotonic()
            time.sleep(args.window)
            window = time.monotonic() - t0
            live = running()
            seen = stack.requests(steady_from)
            steady = rates(seen, window, live)
            steady_calls = {name: dict(calls_of(seen, name)) for name in ("operator", "api")}
            rss = stack.rss_mib("operator")
            log(f"steady state over {window:.0f} s with {live} pods running: {steady}")

            before = stack.request_count()
            stack.stop_operator()
            unfinished = sum(1 for r in stack.objects("renders")
                             if (r.get("status") or {}).get("state") not in ("completed", "failed"))  # fmt: skip
            restart_from = stack.request_count()
            stack.start_operator()
            restart_seconds = settle(stack, restart_from, args.settle)
            restart_calls = calls_of(stack.requests(restart_from), "operator")
            log(f"restart with {unfinished} unfinished: {dict(restart_calls)}")
            del before

            states: Counter[str] = Counter()
            finished, idle_calls = 0, Counter()
            if args.finish:
                wait(lambda: all((r.get("status") or {}).get("state") in ("completed", "failed")
                                 for r in stack.objects("renders")), 900, "every Render to finish", 2.0)  # fmt: skip
                states = Counter(client.get(f"/v1/renders/{rid}").json()["state"] for rid in posted)
                finished = len(stack.objects("renders"))
                stack.stop_operator()
                idle_from = stack.request_count()
                stack.start_operator()
                settle(stack, idle_from, args.settle)
                idle_calls = calls_of(stack.requests(idle_from), "operator")
                log(f"restart with {finished} finished Renders: {dict(idle_calls)}")
        finally:
            stack.stop()
    return {
        "renders": len(bodies),
        "encode_seconds": args.encode_seconds,
        "post_seconds": round(post_seconds, 1),
        "post_to_job_p50_s": round(statistics.median(latencies), 2),
        "post_to_job_p99_s": round(percentile(latencies, 0.99), 2),
        "steady_window_s": round(window, 1),
        "running_pods": live,
        "steady": steady,
        "steady_calls": steady_calls,
        "operator_rss_mib": round(rss, 1),
        "restart_unfinished": unfinished,
        "restart_calls": dict(restart_calls),
        "restart_seconds_to_quiet": restart_seconds,
        "restart_calls_per_unfinished": round(
            (restart_calls["GET jobs"] + restart_calls["GET pods"] - 1) / max(unfinished, 1), 2
        ),  # a Job read and a pod list per Render resumed (the one Job list is the watch's)
        "idle_restart_finished": finished,
        "idle_restart_calls": dict(idle_calls),
        "final_states": dict(states),
        "workdir": str(workdir),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--renders", type=int, default=1000)
    parser.add_argument("--encode-seconds", type=float, default=60.0, help="how long each fake encode runs")
    parser.add_argument("--window", type=float, default=20.0, help="seconds of steady state measured")
    parser.add_argument("--settle", type=float, default=300.0, help="at most this long for a restart to go quiet")
    parser.add_argument("--kubelet-poll", type=float, default=2.0, help="seconds between the FakeKubelet's lists")
    parser.add_argument(
        "--finish", action=argparse.BooleanOptionalAction, default=True,
        help="wait for every render, then restart the operator over finished Renders (--no-finish: stop after the"
        " first restart; give encodes that outlast it to count a restart's calls alone)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    figures = bench(args)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
