"""`roughy`: serve the embedded service, administer it, or use it as a client (docs/cli.md).

roughy serve [--host H] [--port P] [--data-dir D] [--public-url U]  (ROUGHY_RUNTIME=kubernetes: on a cluster)
roughy operator [--namespace NS] [--liveness URL] [--metrics-port N] [--[no-]leader-election]
roughy migrate                                          (apply database migrations)
roughy drain [--wait S] [--stop-api DEPLOYMENT]         (delete every Render; before uninstall)
roughy admin [--data-dir D] create-account NAME | create-key ACCOUNT_ID | revoke-key KEY_ID
             | grant ACCOUNT_ID AMOUNT [--reason R]
roughy render FILE --format mp4 [--resolution 720p] [--cut 1.5-10,20-30] [-o OUT] [--no-reuse]
roughy renders list | get ID | cancel ID | download ID [-o OUT]       roughy assets list | get ID
roughy credits                                          roughy --version

Client commands find the service and key in ROUGHY_API_URL / ROUGHY_API_KEY (or --api-url,
--api-key). Their errors are one line on stderr (`error: ...`): 2 for a usage mistake found before
anything was sent, 1 for a failure, 130 after Ctrl-C; never a traceback.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from roughy import __version__, logs
from roughy.core.formats import AUDIO_BITRATES_KBPS, VIDEO_BITRATES_MBPS, Format
from roughy.core.models import Resolution
from roughy.settings import Settings

app = typer.Typer(
    name="roughy",
    help="An open-source render service: run it, administer it, or render through it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
admin_app = typer.Typer(
    help="Operator commands on the service's database (same ROUGHY_DATA_DIR / ROUGHY_DATABASE_URL)."
)
renders_app = typer.Typer(help="Renders of your account: list, show, cancel, download.", no_args_is_help=True)
assets_app = typer.Typer(help="Assets of your account: list, show.", no_args_is_help=True)
app.add_typer(admin_app, name="admin", no_args_is_help=True)
app.add_typer(renders_app, name="renders")
app.add_typer(assets_app, name="assets")

# Names, reasons and messages come from users and the API: never read them as rich markup
# (`clip [final].mp4` would lose its brackets, `weird[/].mp4` would raise) or emoji codes.
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)
# Tables piped into a file or another program are not cut at 80 columns.
out = Console(highlight=False, markup=False, emoji=False, width=None if sys.stdout.isatty() else 200)

DEFAULT_API_URL = "http://127.0.0.1:8000"
ApiUrl = Annotated[str, typer.Option("--api-url", envvar="ROUGHY_API_URL", help="the service (ROUGHY_API_URL)")]
ApiKey = Annotated[
    str | None,
    typer.Option("--api-key", envvar="ROUGHY_API_KEY", help="your API key (ROUGHY_API_KEY)", show_default=False),
]
AsJson = Annotated[bool, typer.Option("--json", help="print the API's JSON (for scripts)")]
DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="data directory (ROUGHY_DATA_DIR)", show_default=False)
]


def _version(value: bool) -> None:
    if value:
        print(f"roughy {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """An open-source render service: run it, administer it, or render through it."""


def _fail(message: str, code: int = 1) -> NoReturn:
    print(f"roughy: {message}", file=sys.stderr)
    raise typer.Exit(code)


# -- the service ---------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="listen address (ROUGHY_HOST, default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="listen port (ROUGHY_PORT, default 8000)")] = None,
    data_dir: DataDir = None,
    public_url: Annotated[str | None, typer.Option(help="base URL of signed links (ROUGHY_PUBLIC_URL)")] = None,
) -> None:
    """Run the service: embedded (API, SQLite, local disk, runner), or ROUGHY_RUNTIME=kubernetes."""
    settings = _settings(host=host, port=port, data_dir=data_dir, public_url=public_url)
    code = cmd_serve(settings)
    if code:
        raise typer.Exit(code)


def _settings(**options: Any) -> Settings:
    return Settings(**{name: value for name, value in options.items() if value is not None})


def cmd_serve(settings: Settings) -> int:
    import uvicorn

    from roughy.adapters.datadir import DataDirInUse
    from roughy.bootstrap import build_embedded, first_start

    logs.setup(settings.log_format)
    if settings.runtime == "kubernetes":
        return _serve_kubernetes(settings)
    try:
        embedded = build_embedded(settings)
    except DataDirInUse as exc:
        _fail(str(exc))
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
    logs.announce(settings.log_format, f"roughy: serving on {url} (OpenAPI at {url}/openapi.json)")
    uvicorn.run(
        embedded.app,
        host=settings.host,
        port=settings.port,
        log_config=logs.uvicorn_config(settings.log_format),  # and its levels: no log_level
    )
    return 0


def _serve_kubernetes(settings: Settings) -> int:
    import uvicorn

    from roughy.bootstrap import build_kubernetes

    service = build_kubernetes(settings)
    logs.announce(
        settings.log_format,
        f"roughy: serving on {settings.host}:{settings.port}, executing on Kubernetes "
        f"(namespace {service.executor.namespace})",
    )
    uvicorn.run(
        service.app,
        host=settings.host,
        port=settings.port,
        log_config=logs.uvicorn_config(settings.log_format),  # and its levels: no log_level
    )
    return 0


@app.command()
def operator(
    namespace: Annotated[str | None, typer.Option(help="namespace of Renders and Jobs (ROUGHY_NAMESPACE)")] = None,
    liveness: Annotated[
        str, typer.Option(help="kopf's liveness endpoint ('' for none)")
    ] = "http://0.0.0.0:8080/healthz",
    metrics_port: Annotated[int, typer.Option(help="port of the operator's Prometheus /metrics (0: none)")] = 9090,
    leader_election: Annotated[
        bool | None,
        typer.Option(
            "--leader-election/--no-leader-election",
            help="reconcile only while holding the leader Lease (ROUGHY_LEADER_ELECTION; the chart turns it on)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the Kubernetes operator (kopf): Render resources to Jobs."""
    import kopf

    from roughy.bootstrap import build_operator
    from roughy.operator.leader import wait_to_lead

    settings = _settings(namespace=namespace or None, leader_election=leader_election)
    logs.setup(settings.log_format)
    built = build_operator(settings)
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)  # encodes, reconciles, webhook deliveries of this process
    if built.elector is not None and not wait_to_lead(built.elector, liveness=liveness):
        return  # stopped while standing by
    built.service.start()
    try:
        kopf.run(
            registry=built.registry,
            standalone=True,  # one process reconciles: the only one, or the Lease's holder
            namespaces=[built.namespace],
            liveness_endpoint=liveness or None,
        )
    finally:
        built.service.stop()  # asset work, webhooks, pruning: stopped before the standby starts them
        if built.elector is not None:
            built.elector.release()  # the standby takes over now


@app.command()
def migrate() -> None:
    """Apply the database migrations (ROUGHY_DATABASE_URL) and exit."""
    from roughy.adapters.store import open_store

    settings = Settings()
    logs.setup(settings.log_format)
    open_store(settings.resolved_database_url()).engine.dispose()
    logs.announce(settings.log_format, "roughy: the database schema is up to date")


@app.command()
def drain(
    wait: Annotated[float, typer.Option(help="seconds to wait for the finalizers")] = 600.0,
    stop_api: Annotated[
        str | None, typer.Option(metavar="DEPLOYMENT", help="scale this API Deployment to 0 first")
    ] = None,
) -> None:
    """Delete every Render in the namespace and wait for the operator (before an uninstall)."""
    from roughy.adapters.executor.kube import KubeExecutor

    settings = Settings()
    logs.setup(settings.log_format)
    executor = KubeExecutor.from_environment(namespace=settings.namespace, timeout=settings.kube_request_timeout)
    started = time.monotonic()
    if stop_api and not executor.stop_deployment(stop_api, wait=min(120.0, wait / 4)):
        _fail(
            f"the API Deployment {stop_api} did not stop; not draining while it still submits "
            f"(scale it back up with kubectl scale deployment {stop_api} --replicas=N)"
        )
    left = executor.drain(wait=max(1.0, wait - (time.monotonic() - started)))
    if left:
        _fail(f"{len(left)} Render(s) still present after {wait:g} s: {', '.join(left[:10])}")
    logs.announce(settings.log_format, f"roughy: drained the Renders of namespace {executor.namespace}")


# -- admin: the admin API's use cases on the database directly (the same AccountService) ----------


@admin_app.callback()
def _admin(ctx: typer.Context, data_dir: DataDir = None) -> None:
    ctx.obj = data_dir


@contextmanager
def _accounts(ctx: typer.Context) -> Iterator[Any]:
    from roughy.adapters.store import open_store
    from roughy.app.accounts import AccountService
    from roughy.core.errors import NotFound

    settings = _settings(data_dir=ctx.obj)
    if not settings.database_url and not (settings.data_dir / "roughy.db").exists():
        _fail(
            f"no roughy database in {settings.data_dir.resolve()}: start `roughy serve` there first, "
            "or point ROUGHY_DATA_DIR / --data-dir (or ROUGHY_DATABASE_URL) at the service's"
        )
    try:
        yield AccountService(open_store(settings.resolved_database_url()))
    except NotFound as exc:
        _fail(exc.message)


@admin_app.command("create-account")
def create_account(ctx: typer.Context, name: str) -> None:
    """Create an account (no credit); prints its id and name."""
    with _accounts(ctx) as accounts:
        account = accounts.create_account(name)
        print(f"{account.id}\t{account.name}")


@admin_app.command("create-key")
def create_key(ctx: typer.Context, account_id: str) -> None:
    """Create an API key for an account; prints its id and the key (shown once)."""
    with _accounts(ctx) as accounts:
        key_id, key = accounts.create_api_key(account_id)
        print(f"{key_id}\t{key}")


@admin_app.command("revoke-key")
def revoke_key(ctx: typer.Context, key_id: str) -> None:
    """Revoke an API key, at once."""
    with _accounts(ctx) as accounts:
        accounts.revoke_api_key(key_id)
        print(f"revoked {key_id}")


@admin_app.command()
def grant(
    ctx: typer.Context,
    account_id: str,
    amount: int,
    reason: Annotated[str, typer.Option(help="why, for the ledger")] = "operator grant",
) -> None:
    """Grant credits to an account; prints the ledger entry and the new balance."""
    with _accounts(ctx) as accounts:
        entry = accounts.grant(account_id, amount, reason)
        print(f"{entry.id}\t+{entry.amount}\tbalance {accounts.credits(account_id)[0]}")


# -- client commands -----------------------------------------------------------------------------


def _choice(values: list[str]) -> Callable[[str | None], str | None]:
    def check(value: str | None) -> str | None:
        if value is not None and value not in values:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(values)}")
        return value

    return check


@contextmanager
def _client(api_url: str, api_key: str | None) -> Iterator[Any]:
    """An SDK client; every SDK error becomes one human line and an exit status."""
    from roughy.cli_render import Failed, UsageProblem
    from roughy.sdk import ApiError, Client, ConnectionFailed, SdkError

    if not api_key:
        _error("no API key: set ROUGHY_API_KEY or pass --api-key", 2)
    try:
        with Client(api_url, api_key) as client:
            yield client
    except UsageProblem as exc:
        _error(str(exc), 2)
    except ConnectionFailed as exc:
        if exc.url.rstrip("/") != api_url.rstrip("/"):
            _error(str(exc))  # a signed URL's host (object storage), or a transfer cut short
        _error(
            f"cannot reach roughy at {api_url} (is the server running? start it with `roughy serve`, "
            "or point ROUGHY_API_URL / --api-url at it)"
        )
    except (ApiError, Failed, SdkError) as exc:
        _error(str(exc))
    except OSError as exc:  # the local side: a file that cannot be written, a full disk
        _error(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))


def _error(message: str, code: int = 1) -> NoReturn:
    err.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


@app.command()
def render(
    file: Annotated[Path, typer.Argument(help="the video or audio file", show_default=False)],
    format: Annotated[str, typer.Option("--format", "-f", help=f"output format: {', '.join(f.value for f in Format)}")],
    resolution: Annotated[
        str | None,
        typer.Option(
            help="video tier: 720p, 1080p, 4k (default: the source's size)",
            callback=_choice([r.value for r in Resolution]),
        ),
    ] = None,
    video_bitrate: Annotated[
        int | None, typer.Option(help=f"Mbps, one of {', '.join(map(str, VIDEO_BITRATES_MBPS))} (default Auto)")
    ] = None,
    audio_bitrate: Annotated[
        int | None, typer.Option(help=f"kbps, one of {', '.join(map(str, AUDIO_BITRATES_KBPS))} (default Auto)")
    ] = None,
    cut: Annotated[str | None, typer.Option(help="kept segments in seconds: START-END[,START-END...]")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="output file or directory (default: the server's name, here)")
    ] = None,
    reuse: Annotated[
        bool, typer.Option("--reuse/--no-reuse", help="use the asset of an earlier upload of the same file")
    ] = True,
    progress: Annotated[bool, typer.Option("--progress", help="draw the progress bars even when not a TTY")] = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Upload FILE (or reuse its earlier upload), cut it, render it and download the result.

    Prints the output's path. Everything the file tells is checked before anything is sent.
    """
    from roughy.cli_render import AssetCache, RenderRequest, RenderRun, interrupted

    if format not in [f.value for f in Format]:
        _error(f"--format {format!r} is not one of {', '.join(f.value for f in Format)}", 2)
    for option, value, ladder in (
        ("--video-bitrate", video_bitrate, VIDEO_BITRATES_MBPS),
        ("--audio-bitrate", audio_bitrate, AUDIO_BITRATES_KBPS),
    ):
        if value is not None and value not in ladder:
            _error(f"{option} {value} is not one of {', '.join(map(str, ladder))}", 2)
    request = RenderRequest(
        file=file,
        format=Format(format),
        resolution=Resolution(resolution) if resolution else None,
        video_bitrate=video_bitrate,
        audio_bitrate=audio_bitrate,
        cut=cut,
        output=output,
        reuse=reuse,
    )
    console = Console(
        stderr=True, highlight=False, markup=False, emoji=False, force_terminal=True if progress else None
    )
    with _client(api_url, api_key) as client:
        run = RenderRun(client, request, AssetCache(api_url, api_key or ""), console)
        try:
            path = run.run()
        except KeyboardInterrupt:
            interrupted(client, run.render_id, err, run.asset_id)
            raise typer.Exit(130) from None
    print(path)


@renders_app.command("list")
def renders_list(
    asset: Annotated[str | None, typer.Option("--asset", help="only renders of this asset")] = None,
    state: Annotated[
        str | None,
        typer.Option(
            help="pending, running, completed or failed",
            callback=_choice(["pending", "running", "completed", "failed"]),
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="how many, newest first")] = 20,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """List renders, newest first."""
    with _client(api_url, api_key) as client:
        body = client.request("GET", "/v1/renders", params=_present(asset_id=asset, state=state, limit=limit))
    if as_json:
        _print_json(body)
        return
    table = _table("id", "asset", "output", "state", "progress", "created")
    for r in body["data"]:
        table.add_row(
            r["id"], r["asset_id"], _output(r["output"]), r["state"], f"{r['progress']:.0%}", _when(r["created_at"])
        )
    out.print(table)
    if body.get("has_more"):
        out.print(f"(more: --limit above {limit})")


@renders_app.command("get")
def renders_get(
    render_id: str, as_json: AsJson = False, api_url: ApiUrl = DEFAULT_API_URL, api_key: ApiKey = None
) -> None:
    """Show one render (a completed one with its download URL)."""
    with _client(api_url, api_key) as client:
        body = client.request("GET", f"/v1/renders/{render_id}")
    if as_json:
        _print_json(body)
        return
    _print_fields(body, output=_output(body["output"]), progress=f"{body['progress']:.0%}")


@renders_app.command("cancel")
def renders_cancel(render_id: str, api_url: ApiUrl = DEFAULT_API_URL, api_key: ApiKey = None) -> None:
    """Cancel a render: it and its output are deleted, a running encode stops."""
    with _client(api_url, api_key) as client:
        client.renders.cancel(render_id)
    print(f"cancelled {render_id}")


@renders_app.command("download")
def renders_download(
    render_id: str,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="output file or directory")] = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Download a completed render's file (named by the server unless -o); prints its path."""
    from roughy.cli_render import Bars, interrupted

    with _client(api_url, api_key) as client:
        render = client.renders.get(render_id)
        if render.state != "completed":
            _error(f"render {render_id} is {render.state}: only a completed render has a file")
        try:
            with Bars(err).shown() as bars:
                path = client.renders.download(render, output, progress=bars.bytes(bars.add("download")))
        except KeyboardInterrupt:
            interrupted(client, None, err)
            raise typer.Exit(130) from None
    print(path)


@assets_app.command("list")
def assets_list(
    limit: Annotated[int, typer.Option(min=1, max=100, help="how many, newest first")] = 20,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """List assets, newest first."""
    with _client(api_url, api_key) as client:
        body = client.request("GET", "/v1/assets", params={"limit": limit})
    if as_json:
        _print_json(body)
        return
    table = _table("id", "kind", "filename", "state", "duration", "size", "created")
    for a in body["data"]:
        video = a.get("video")
        size = f"{video['width']}x{video['height']}" if video else ""
        duration = f"{a['duration']:.2f} s" if a.get("duration") is not None else ""
        table.add_row(a["id"], a["kind"], a["filename"], a["state"], duration, size, _when(a["created_at"]))
    out.print(table)
    if body.get("has_more"):
        out.print(f"(more: --limit above {limit})")


@assets_app.command("get")
def assets_get(
    asset_id: str, as_json: AsJson = False, api_url: ApiUrl = DEFAULT_API_URL, api_key: ApiKey = None
) -> None:
    """Show one asset."""
    with _client(api_url, api_key) as client:
        body = client.request("GET", f"/v1/assets/{asset_id}")
    if as_json:
        _print_json(body)
        return
    _print_fields({key: value for key, value in body.items() if key != "upload"})


@app.command()
def credits(as_json: AsJson = False, api_url: ApiUrl = DEFAULT_API_URL, api_key: ApiKey = None) -> None:
    """Your credit balance and ledger."""
    with _client(api_url, api_key) as client:
        body = client.request("GET", "/v1/credits")
    if as_json:
        _print_json(body)
        return
    out.print(f"balance: {body['balance']}")
    table = _table("id", "type", "amount", "asset", "reason", "created")
    for e in body["entries"]:
        table.add_row(
            e["id"], e["type"], str(e["amount"]), e.get("asset_id") or "", e["reason"], _when(e["created_at"])
        )
    out.print(table)


IDS = frozenset({"id", "asset"})
WRAPPED = frozenset({"filename", "reason"})


def _table(*columns: str) -> Table:
    """A table whose id columns are never cut (people copy them into the next command)."""
    table = Table()
    for name in columns:
        table.add_column(name, no_wrap=name not in WRAPPED, min_width=20 if name in IDS else None)
    return table


def _when(timestamp: str) -> str:
    return timestamp[:16].replace("T", " ")


def _present(**params: Any) -> dict[str, Any]:
    return {key: value for key, value in params.items() if value is not None}


def _print_json(body: Any) -> None:
    print(json.dumps(body, indent=2))


def _output(output: dict[str, Any]) -> str:
    parts = [output["format"], output.get("resolution")]
    if output.get("video_bitrate"):
        parts.append(f"{output['video_bitrate']} Mbps")
    if output.get("audio_bitrate"):
        parts.append(f"{output['audio_bitrate']} kbps")
    return " ".join(str(p) for p in parts if p)


def _print_fields(body: dict[str, Any], **shown: str) -> None:
    table = Table(show_header=False, box=None)
    for key, value in body.items():
        text = shown.get(key, value if isinstance(value, str) else json.dumps(value))
        table.add_row(key, text)
    out.print(table)


def main(argv: list[str] | None = None) -> int:
    try:
        app(args=argv, prog_name="roughy")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
