"""`roughy`: serve the embedded service, administer it, or render a file through it.

roughy serve [--host H] [--port P] [--data-dir D]     (ROUGHY_RUNTIME=kubernetes: on a cluster)
roughy operator [--namespace NS] [--liveness URL] [--metrics-port N] [--[no-]leader-election]
                                                        (the Kubernetes runtime's operator)
roughy migrate                                          (apply database migrations)
roughy drain [--wait S]                                 (delete every Render; before uninstall)
roughy admin create-account NAME | create-key ACCOUNT_ID | revoke-key KEY_ID
             | grant ACCOUNT_ID AMOUNT [--reason R]
roughy render FILE --format mp4 [--resolution 720p] [--cut 1.5-10,20-30] [-o OUT]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from roughy import logs
from roughy.core.formats import AUDIO_BITRATES_KBPS, VIDEO_BITRATES_MBPS
from roughy.core.models import Format, Resolution
from roughy.settings import Settings

AUDIO_SUFFIXES = {".mp3", ".m4a", ".aac", ".wav", ".flac", ".ogg", ".opus", ".mka", ".wma", ".aiff"}


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("host", "port", "data_dir", "public_url"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from roughy.adapters.datadir import DataDirInUse
    from roughy.bootstrap import build_embedded, first_start

    settings = _settings(args)
    logs.setup(settings.log_format)
    if settings.runtime == "kubernetes":
        return _serve_kubernetes(settings)
    try:
        embedded = build_embedded(settings)
    except DataDirInUse as exc:
        return _fail(str(exc))
    created = first_start(embedded.store, settings)
    url = settings.resolved_public_url()
    if created:
        account_id, key = created
        print(
            f"\nroughy: first start in {settings.data_dir.resolve()}\n"
            f"  account {account_id} with {settings.starter_credits} starter credits\n"
            f"  API key (shown once, keep it): {key}\n\n"
            f"  export ROUGHY_API_URL={url} ROUGHY_API_KEY={key}\n",
            flush=True,
        )
    print(f"roughy: serving on {url} (OpenAPI at {url}/openapi.json)", flush=True)
    uvicorn.run(
        embedded.app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        log_config=logs.uvicorn_config(settings.log_format),
    )
    return 0


def _serve_kubernetes(settings: Settings) -> int:
    import uvicorn

    from roughy.bootstrap import build_kubernetes

    service = build_kubernetes(settings)
    print(
        f"roughy: serving on {settings.host}:{settings.port}, executing on Kubernetes "
        f"(namespace {service.executor.namespace})",
        flush=True,
    )
    uvicorn.run(
        service.app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        log_config=logs.uvicorn_config(settings.log_format),
    )
    return 0


def cmd_operator(args: argparse.Namespace) -> int:
    import kopf

    from roughy.bootstrap import build_operator
    from roughy.operator.leader import wait_to_lead

    overrides = {"namespace": args.namespace or None, "leader_election": args.leader_election}
    settings = Settings(**{key: value for key, value in overrides.items() if value is not None})
    logs.setup(settings.log_format)
    operator = build_operator(settings)
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port)  # encodes, reconciles, webhook deliveries of this process
    if operator.elector is not None and not wait_to_lead(operator.elector, liveness=args.liveness):
        return 0  # stopped while standing by
    operator.service.start()
    try:
        kopf.run(
            registry=operator.registry,
            standalone=True,  # one process reconciles: the only one, or the Lease's holder
            namespaces=[operator.namespace],
            liveness_endpoint=args.liveness or None,
        )
    finally:
        operator.service.stop()  # asset work, webhooks, pruning: stopped before the standby starts them
        if operator.elector is not None:
            operator.elector.release()  # the standby takes over now
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from roughy.adapters.store import open_store

    settings = Settings()
    open_store(settings.resolved_database_url()).engine.dispose()
    print("roughy: the database schema is up to date", flush=True)
    return 0


def cmd_drain(args: argparse.Namespace) -> int:
    from roughy.adapters.executor.kube import KubeExecutor

    settings = Settings()
    executor = KubeExecutor.from_environment(namespace=settings.namespace, timeout=settings.kube_request_timeout)
    started = time.monotonic()
    if args.stop_api and not executor.stop_deployment(args.stop_api, wait=min(120.0, args.wait / 4)):
        return _fail(
            f"the API Deployment {args.stop_api} did not stop; not draining while it still submits "
            f"(scale it back up with kubectl scale deployment {args.stop_api} --replicas=N)"
        )
    left = executor.drain(wait=max(1.0, args.wait - (time.monotonic() - started)))
    if left:
        return _fail(f"{len(left)} Render(s) still present after {args.wait:g} s: {', '.join(left[:10])}")
    print(f"roughy: drained the Renders of namespace {executor.namespace}", flush=True)
    return 0


def cmd_admin(args: argparse.Namespace) -> int:
    """The admin API's use cases on the database directly (the same AccountService)."""
    from roughy.adapters.store import open_store
    from roughy.app.accounts import AccountService
    from roughy.core.errors import NotFound

    settings = _settings(args)
    if not settings.database_url and not (settings.data_dir / "roughy.db").exists():
        return _fail(
            f"no roughy database in {settings.data_dir.resolve()}: start `roughy serve` there first, "
            "or point ROUGHY_DATA_DIR / --data-dir (or ROUGHY_DATABASE_URL) at the service's"
        )
    accounts = AccountService(open_store(settings.resolved_database_url()))
    try:
        if args.action == "create-account":
            account = accounts.create_account(args.name)
            print(f"{account.id}\t{account.name}")
        elif args.action == "create-key":
            key_id, key = accounts.create_api_key(args.account_id)
            print(f"{key_id}\t{key}")
        elif args.action == "revoke-key":
            accounts.revoke_api_key(args.key_id)
            print(f"revoked {args.key_id}")
        elif args.action == "grant":
            entry = accounts.grant(args.account_id, args.amount, args.reason)
            print(f"{entry.id}\t+{entry.amount}\tbalance {accounts.credits(args.account_id)[0]}")
    except NotFound as exc:
        return _fail(exc.message)
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from roughy.adapters.client import Client, ClientError, parse_cut

    path = Path(args.file)
    if not path.is_file():
        return _fail(f"no such file: {path}")
    if not args.api_key:
        return _fail("no API key: set ROUGHY_API_KEY or pass --api-key")
    output: dict[str, Any] = {"format": args.format}
    for name in ("resolution", "video_bitrate", "audio_bitrate"):
        if getattr(args, name):
            output[name] = getattr(args, name)
    try:
        segments = parse_cut(args.cut) if args.cut else None
        with Client(args.api_url, args.api_key) as client:
            out = client.render_file(
                path,
                kind="audio" if path.suffix.lower() in AUDIO_SUFFIXES else "video",
                output=output,
                segments=segments,
                out=Path(args.output) if args.output else None,
                progress=sys.stderr.isatty() or args.progress,
            )
    except (ClientError, ValueError) as exc:
        return _fail(str(exc))
    print(out)
    return 0


def _fail(message: str) -> int:
    print(f"roughy: {message}", file=sys.stderr)
    return 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="roughy", description="An open-source render service.")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the embedded service (API, SQLite, local disk, runner)")
    serve.add_argument("--host", help="listen address (ROUGHY_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (ROUGHY_PORT, default 8000)")
    serve.add_argument("--data-dir", type=Path, help="data directory (ROUGHY_DATA_DIR)")
    serve.add_argument("--public-url", help="base URL of signed links (ROUGHY_PUBLIC_URL)")
    serve.set_defaults(func=cmd_serve)

    operator = sub.add_parser("operator", help="run the Kubernetes operator (kopf): Render resources to Jobs")
    operator.add_argument("--namespace", help="namespace of Renders and Jobs (ROUGHY_NAMESPACE)")
    operator.add_argument(
        "--liveness", default="http://0.0.0.0:8080/healthz", help="kopf's liveness endpoint ('' for none)"
    )
    operator.add_argument(
        "--metrics-port", type=int, default=9090, help="port of the operator's Prometheus /metrics (0: none)"
    )
    operator.add_argument(
        "--leader-election",
        action=argparse.BooleanOptionalAction,
        help="reconcile only while holding the leader Lease (ROUGHY_LEADER_ELECTION; the chart turns it on)",
    )
    operator.set_defaults(func=cmd_operator)

    migrate = sub.add_parser("migrate", help="apply the database migrations (ROUGHY_DATABASE_URL) and exit")
    migrate.set_defaults(func=cmd_migrate)

    drain = sub.add_parser("drain", help="delete every Render in the namespace and wait for the operator")
    drain.add_argument("--wait", type=float, default=600.0, help="seconds to wait for the finalizers")
    drain.add_argument("--stop-api", metavar="DEPLOYMENT", help="scale this API Deployment to 0 first")
    drain.set_defaults(func=cmd_drain)

    admin = sub.add_parser("admin", help="operator commands on the embedded database")
    admin.add_argument("--data-dir", type=Path, help="data directory (ROUGHY_DATA_DIR)")
    actions = admin.add_subparsers(dest="action", required=True)
    actions.add_parser("create-account").add_argument("name")
    actions.add_parser("create-key").add_argument("account_id")
    actions.add_parser("revoke-key").add_argument("key_id")
    grant = actions.add_parser("grant")
    grant.add_argument("account_id")
    grant.add_argument("amount", type=int)
    grant.add_argument("--reason", default="operator grant")
    admin.set_defaults(func=cmd_admin)

    render = sub.add_parser("render", help="upload FILE, render it, download the result")
    render.add_argument("file")
    render.add_argument("--format", required=True, choices=[f.value for f in Format])
    render.add_argument("--resolution", choices=[r.value for r in Resolution])
    render.add_argument("--video-bitrate", type=int, choices=VIDEO_BITRATES_MBPS)
    render.add_argument("--audio-bitrate", type=int, choices=AUDIO_BITRATES_KBPS)
    render.add_argument("--cut", help="kept segments in seconds: START-END[,START-END...]")
    render.add_argument("-o", "--output", help="output file (default: the server's filename, here)")
    render.add_argument("--progress", action="store_true", help="show the progress bar even when not a TTY")
    render.add_argument("--api-url", default=os.environ.get("ROUGHY_API_URL", "http://127.0.0.1:8000"))
    render.add_argument("--api-key", default=os.environ.get("ROUGHY_API_KEY"))
    render.set_defaults(func=cmd_render)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
