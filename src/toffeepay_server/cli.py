"""The `toffeepay` command: run the server and the worker, manage games and keys."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import structlog
import typer
from rich.console import Console
from rich.table import Table

from .config import ConfigError, Settings, parse_address
from .devtools.commands import register as register_devtools
from .domain import listing
from .domain.accounts import Role
from .domain.errors import DomainError
from .domain.keys import Mode, Principal
from .serving import port_in_use, settle_garbage_collector


class _Lazy(ModuleType):
    """A module imported on first use: `toffeepay --help` and `--version` load no database code."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


if TYPE_CHECKING:
    from .services import accounts, games, return_tokens, secrets, webhooks
    from .services.context import ServiceContext
else:
    accounts = _Lazy("toffeepay_server.services.accounts")
    games = _Lazy("toffeepay_server.services.games")
    webhooks = _Lazy("toffeepay_server.services.webhooks")
    return_tokens = _Lazy("toffeepay_server.services.return_tokens")
    secrets = _Lazy("toffeepay_server.services.secrets")

app = typer.Typer(
    help="ToffeePay: payments for games.", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False
)
games_app = typer.Typer(help="Register games.", no_args_is_help=True)
keys_app = typer.Typer(help="Roll, revoke and list API keys.", no_args_is_help=True)
app.add_typer(games_app, name="games")
app.add_typer(keys_app, name="keys")
users_app = typer.Typer(help="Dashboard accounts and their roles in games.", no_args_is_help=True)
app.add_typer(users_app, name="users")
webhooks_app = typer.Typer(help="Register webhook endpoints and rotate their secrets.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")
tokens_app = typer.Typer(
    help="The keys that sign return tokens (published at /.well-known/jwks.json).", no_args_is_help=True
)
app.add_typer(tokens_app, name="tokens")
console = Console()
err = Console(stderr=True)
T = TypeVar("T")
DEV_KEY_FILE = Path(".toffeepay-sandbox-keys.json")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"toffeepay {version('toffeepay-server')} (Python SDK {version('toffeepay')})")
        raise typer.Exit()


@app.callback()
def _main(
    _version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """ToffeePay: payments for games."""


def _run(settings: Settings, action: Callable[[ServiceContext], Awaitable[T]]) -> T:
    """Run one operator action against the database, turning refusals into exit code 1."""

    from .services.context import run_with_context

    try:
        return run_with_context(settings, action)
    except DomainError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None


def load_settings() -> Settings:
    """The settings from the environment; a setting that cannot be used stops here, saying why."""
    from .internals import check_internals

    try:
        settings = Settings.from_env()
        for problem in check_internals():
            err.print(f"[yellow]warning:[/yellow] untested library release {problem}", soft_wrap=True)
        return settings
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None


def _settings() -> Settings:
    """The settings, once the database is migrated and the installation key opens its secrets."""
    from .services.context import run_with_context
    from .store.migrate import upgrade
    from .store.secret_box import KeyMismatch, Keyring

    settings = load_settings()
    upgrade(settings.database_url, Keyring(settings.secret_key, settings.key_file))
    try:
        run_with_context(settings, secrets.check_installation_key)
    except KeyMismatch as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    return settings


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


@app.command()
def migrate() -> None:
    """Apply database migrations (also done on every start)."""
    settings = _settings()
    console.print(f"database is up to date ({settings.database_url.split('@')[-1]})")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    sandbox_game: Annotated[
        str | None, typer.Option(help="Register this game on first start and print its sandbox key.")
    ] = None,
) -> None:
    """Run the API, the payment pages, the webhook dispatcher and the expiry sweeper.

    Database: TOFFEEPAY_DATABASE_URL, by default sqlite:///toffeepay.db, the file toffeepay.db in the current directory (created on first start); for PostgreSQL, postgresql://user@host/dbname.

    Metrics: set TOFFEEPAY_METRICS_ADDRESS (e.g. 127.0.0.1:9464) to serve /metrics there (docs/operations.md).
    """  # noqa: E501
    from granian import Granian
    from granian.constants import Interfaces

    from .logs import granian_logging

    if not os.environ.get("TOFFEEPAY_PUBLIC_URL"):
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        os.environ["TOFFEEPAY_PUBLIC_URL"] = f"http://{shown}:{port}"
    if (error := port_in_use(host, port)) is not None:
        console.print(
            f"[red]cannot listen on {host}:{port}: {error.strerror or error}[/red] "
            "(another server is using this port; stop it or choose another with --port)"
        )
        raise typer.Exit(1)
    settings = _settings()
    if sandbox_game:
        key = _run(settings, lambda ctx: _dev_sandbox_key(ctx, sandbox_game))
        first = _run(settings, lambda ctx: _dev_first_operator(ctx, sandbox_game))
        _print_dev_banner(settings, sandbox_game, key, first)
    with _metrics(settings, public=(host, port), workers=True):
        Granian(
            "toffeepay_server.app:app_from_env",
            factory=True,
            address=host,
            port=port,
            workers=workers,
            interface=Interfaces.ASGI,
            log_access=False,
            log_dictconfig=granian_logging(),
            workers_kill_timeout=30,
            # A worker that dies (whatever killed it) is replaced at once; granian logs the exit.
            respawn_failed_workers=True,
        ).serve()


@contextlib.contextmanager
def _metrics(settings: Settings, *, public: tuple[str, int] | None, workers: bool) -> Iterator[None]:
    """Serve /metrics on TOFFEEPAY_METRICS_ADDRESS while the block runs (nothing when unset).

    With worker processes, each writes its values to a directory of this run, which the
    exporter adds up (prometheus-client's multiprocess mode); it must be set before they start.
    """
    if not settings.metrics_address:
        yield
        return
    try:
        host, port = parse_address(settings.metrics_address)
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if public is not None and port == public[1]:
        err.print(f"[red]error:[/red] TOFFEEPAY_METRICS_ADDRESS must not use the public port {port}")
        raise typer.Exit(2)
    own_dir = None
    if workers and not os.environ.get(MULTIPROC_ENV):
        # Before prometheus-client is first imported: it picks its storage at import time.
        own_dir = tempfile.mkdtemp(prefix="toffeepay-metrics-")
        os.environ[MULTIPROC_ENV] = own_dir
    try:
        from .observability import exporter

        try:
            server = exporter.start(settings.metrics_address, settings)
        except OSError as exc:
            err.print(f"[red]error:[/red] cannot serve metrics on {host}:{port}: {exc.strerror or exc}")
            raise typer.Exit(1) from None
        try:
            yield
        finally:
            server.shutdown()
    finally:
        if own_dir:
            shutil.rmtree(own_dir, ignore_errors=True)


async def _dev_sandbox_key(ctx: ServiceContext, game_id: str) -> str:
    """The sandbox key of a development game, kept in a local file since keys are shown once."""
    saved = json.loads(DEV_KEY_FILE.read_text()) if DEV_KEY_FILE.exists() else {}
    key = saved.get(game_id)
    if key and await games.authenticate(ctx, key) is not None:
        return key
    if game_id in await games.list_games(ctx):
        key = await games.roll_key(ctx, game_id, Mode.SANDBOX)
    else:
        key = (await games.create_game(ctx, game_id)).sandbox_api_key
    saved[game_id] = key
    DEV_KEY_FILE.write_text(json.dumps(saved, indent=2))
    DEV_KEY_FILE.chmod(0o600)
    return key


async def _dev_first_operator(ctx: ServiceContext, game_id: str) -> accounts.FirstOperator | None:
    """On first start, an operator account for the dashboard (shown once, like the keys)."""
    return await accounts.ensure_first_operator(ctx)


def _print_dev_banner(settings: Settings, game_id: str, key: str, first: accounts.FirstOperator | None = None) -> None:
    console.print(f"\n[bold]ToffeePay[/bold] is starting on [cyan]{settings.public_url}[/cyan]")
    console.print(f"Sandbox game [bold]{game_id}[/bold], API key: [green]{key}[/green]")
    if first is not None:
        console.print(
            f"Dashboard: [cyan]{settings.public_url}/dashboard[/cyan]  "
            f"email [green]{first.email}[/green]  password [green]{first.password}[/green] (shown only this once)",
            soft_wrap=True,
        )
    else:
        console.print(f"Dashboard: [cyan]{settings.public_url}/dashboard[/cyan]")
    console.print()
    console.print("Create a payment session:\n")
    print(
        f"curl -s {settings.public_url}/pay.v1.PaymentService/CreateSession \\\n"
        f"  -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n"
        f'  -d \'{{"game_id": "{game_id}", "user_id": "player_42", '
        f'"item": {{"title": "50 Gold Coins", "price": 499, "currency": "USD"}}, '
        f'"return_url": "mygame://payment-complete"}}\'\n',
        flush=True,
    )


@app.command()
def worker() -> None:
    """Run only the background work (webhook dispatcher, expiry sweeper), for scale-out."""

    def stopped_while_starting(_signum: int, _frame: Any) -> None:
        raise SystemExit(0)

    # Stopped before its loop listens for SIGTERM (still importing or migrating): a clean exit.
    signal.signal(signal.SIGTERM, stopped_while_starting)
    from .events.background import Background
    from .logs import configure_logging
    from .observability import metrics
    from .processors.configured import configured_processors

    configure_logging()
    settings = _settings()

    async def main() -> None:
        from .services.context import ServiceContext

        ctx = ServiceContext.from_settings(settings)
        ctx.db.on_commit(metrics.events_committed)
        processors = configured_processors(settings, ctx.clock)
        background = Background(ctx, settings, processors)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        background.start()
        settle_garbage_collector()
        structlog.get_logger("toffeepay.worker").info("worker started")
        await stop.wait()
        await background.stop()
        await processors.close()
        await ctx.db.dispose()

    with _metrics(settings, public=None, workers=False):
        asyncio.run(main())


@games_app.command("create")
def games_create(
    game_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Register a game; prints its sandbox and live keys (shown only this once)."""
    created = _run(_settings(), lambda ctx: games.create_game(ctx, game_id))
    if as_json:
        _print_json(
            {
                "game_id": created.game_id,
                "sandbox_api_key": created.sandbox_api_key,
                "live_api_key": created.live_api_key,
            }
        )
        return
    console.print(f"Game [bold]{created.game_id}[/bold] registered. Keys are shown only once:")
    console.print(f"  sandbox: [green]{created.sandbox_api_key}[/green]")
    console.print(f"  live:    [green]{created.live_api_key}[/green]")


@games_app.command("list")
def games_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List registered games."""
    found = _run(_settings(), games.list_games)
    if as_json:
        _print_json(found)
        return
    for game_id in found:
        console.print(game_id)


@keys_app.command("roll")
def keys_roll(
    game_id: str,
    mode: Annotated[Mode, typer.Option(help="sandbox or live.")] = Mode.SANDBOX,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Issue a new key for a game and mode; the previous keys of that mode stop working."""
    key = _run(_settings(), lambda ctx: games.roll_key(ctx, game_id, mode))
    if as_json:
        _print_json({"game_id": game_id, "mode": mode.value, "api_key": key})
    else:
        console.print(f"New {mode.value} key for [bold]{game_id}[/bold] (shown only once): [green]{key}[/green]")


@keys_app.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="A key id (key_...) or the secret key itself.")]) -> None:
    """Revoke one API key at once."""
    count = _run(_settings(), lambda ctx: games.revoke_key(ctx, key))
    if not count:
        err.print("[red]error:[/red] not_found: no active key by that name")
        raise typer.Exit(1)
    console.print("revoked")


@keys_app.command("list")
def keys_list(game_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List a game's keys (never the secrets)."""
    records = _run(_settings(), lambda ctx: games.list_keys(ctx, game_id))
    rows: list[dict[str, Any]] = [
        {
            "id": r.id,
            "mode": r.mode.value,
            "prefix": r.display_prefix,
            "created_at": r.created_at.isoformat(),
            "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
        }
        for r in records
    ]
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "mode", "key", "created", "revoked")
    for r in rows:
        table.add_row(r["id"], r["mode"], r["prefix"] + "…", r["created_at"], r["revoked_at"] or "")
    console.print(table)


register_devtools(app)


class EndpointFormat(StrEnum):
    JSON = "json"
    LEGACY_FORM = "legacy_form"


def _event_types(values: list[str] | None) -> list[str]:
    """`--events a --events b` and `--events a,b` both work."""
    return [t.strip() for value in values or [] for t in value.split(",") if t.strip()]


@webhooks_app.command("add")
def webhooks_add(
    game_id: str,
    url: str,
    mode: Annotated[Mode, typer.Option(help="sandbox or live.")] = Mode.SANDBOX,
    format: Annotated[
        EndpointFormat, typer.Option("--format", help="json, or legacy_form (form callbacks, see docs/webhooks.md).")
    ] = EndpointFormat.JSON,
    events: Annotated[
        list[str] | None,
        typer.Option("--events", help="Only these event types (repeat or comma-separate); all when omitted."),
    ] = None,
    description: Annotated[str | None, typer.Option(help="A note for people.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Register a webhook endpoint; prints its signing secret (shown only this once)."""
    created, secret = _run(
        _settings(),
        lambda ctx: webhooks.create_endpoint(
            ctx,
            game_id=game_id,
            mode=mode,
            url=url,
            format=format.value,
            events=_event_types(events),
            description=description,
        ),
    )
    if as_json:
        _print_json({"endpoint_id": created.id, "secret": secret})
        return
    console.print(
        f"Endpoint [bold]{created.id}[/bold] ({created.mode}, {created.format}) -> {created.url}", soft_wrap=True
    )
    console.print(f"Signing secret (shown only once): [green]{secret}[/green]", soft_wrap=True)


@webhooks_app.command("list")
def webhooks_list(
    game_id: str,
    mode: Annotated[Mode | None, typer.Option(help="Only sandbox or live endpoints.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List a game's webhook endpoints (never their secrets)."""
    found = _run(_settings(), lambda ctx: webhooks.list_endpoints(ctx, game_id=game_id, mode=mode))
    rows: list[dict[str, Any]] = [
        {
            "endpoint_id": e.id,
            "mode": e.mode,
            "url": e.url,
            "format": e.format,
            "events": list(e.events),
            "enabled": e.enabled,
            "created_at": e.created_at.isoformat(),
        }
        for e in found
    ]
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "mode", "url", "format", "events", "enabled")
    for r in rows:
        table.add_row(
            r["endpoint_id"], r["mode"], r["url"], r["format"], ", ".join(r["events"]) or "all", str(r["enabled"])
        )
    console.print(table)


@webhooks_app.command("rotate")
def webhooks_rotate(
    endpoint_id: str,
    overlap_seconds: Annotated[
        int | None, typer.Option(help="How long the old secret keeps working (0..604800, default 86400).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Issue a new signing secret; the old one stays valid during the overlap."""
    secret, expires = _run(
        _settings(), lambda ctx: webhooks.rotate_secret(ctx, endpoint_id, overlap_seconds=overlap_seconds)
    )
    if as_json:
        _print_json(
            {
                "endpoint_id": endpoint_id,
                "secret": secret,
                "previous_secret_expires_at": expires.isoformat() if expires else None,
            }
        )
        return
    console.print(f"New signing secret (shown only once): [green]{secret}[/green]", soft_wrap=True)
    console.print(
        f"The previous secret works until {expires.isoformat()}." if expires else "The previous secret no longer works."
    )


@webhooks_app.command("remove")
def webhooks_remove(endpoint_id: str) -> None:
    """Delete an endpoint; nothing more is sent to it."""
    _run(_settings(), lambda ctx: webhooks.delete_endpoint(ctx, endpoint_id))
    console.print("removed")


@tokens_app.command("rotate")
def tokens_rotate(as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False) -> None:
    """Sign return tokens with a new key; the old one stays published until its tokens expire."""
    key = _run(_settings(), return_tokens.rotate)
    if as_json:
        _print_json({"kid": key.kid, "created_at": key.created_at.isoformat()})
    else:
        console.print(f"Return tokens are now signed with key [bold]{key.kid}[/bold].")


@tokens_app.command("keys")
def tokens_keys(as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False) -> None:
    """The published keys (the JSON Web Key Set), newest first."""
    published = _run(_settings(), return_tokens.jwks)
    if as_json:
        _print_json(published)
        return
    for i, key in enumerate(published["keys"]):
        console.print(f"{key['kid']}  {'signing' if i == 0 else 'verification only'}")


@users_app.command("create")
def users_create(
    email: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input (required).")
    ] = False,
    operator: Annotated[
        bool, typer.Option("--operator", help="An operator sees every game and registers games.")
    ] = False,
) -> None:
    """Create a dashboard account (passwords are read from stdin, never from the command line)."""
    import sys

    if not password_stdin:
        err.print("[red]error:[/red] give the password on standard input with --password-stdin")
        raise typer.Exit(2)
    password = sys.stdin.readline().rstrip("\r\n")
    user = _run(_settings(), lambda ctx: accounts.create_user(ctx, email, password, operator=operator))
    console.print(f"Account [bold]{user.email}[/bold] created{' (operator)' if operator else ''}.")


@users_app.command("grant")
def users_grant(
    email: str,
    game_id: str,
    role: Annotated[Role, typer.Option(help="owner, developer or viewer.")],
) -> None:
    """Give an account a role in a game (replacing the role it had there)."""
    _run(_settings(), lambda ctx: accounts.grant(ctx, email, game_id, role))
    console.print(f"{email} is now {role.value} of {game_id}.")


@users_app.command("revoke")
def users_revoke(email: str, game_id: str) -> None:
    """Take an account's role in a game away."""
    _run(_settings(), lambda ctx: accounts.revoke(ctx, email, game_id))
    console.print(f"{email} has no role in {game_id} any more.")


@webhooks_app.command("attempts")
def webhooks_attempts(
    game_id: str,
    mode: Annotated[Mode, typer.Option(help="sandbox or live.")] = Mode.SANDBOX,
    endpoint: Annotated[str | None, typer.Option(help="Only attempts to this endpoint id.")] = None,
    event: Annotated[str | None, typer.Option(help="Only attempts to deliver this event id.")] = None,
    status: Annotated[str | None, typer.Option(help="succeeded or failed.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first (1..250).")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show webhook delivery attempts: status, latency, the first bytes of the answer, the trigger."""
    principal = Principal("cli", game_id, mode)
    found, total = _run(
        _settings(),
        lambda ctx: webhooks.list_attempts(
            ctx,
            principal,
            endpoint_id=endpoint,
            event_id=event,
            status=status,
            page=listing.page(limit, 0, None, None, default_limit=20),
        ),
    )
    rows: list[dict[str, Any]] = [
        {
            "id": a.id,
            "event_id": a.event_id,
            "endpoint_id": a.endpoint_id,
            "attempt_number": a.attempt_number,
            "status": a.status,
            "http_status": a.http_status,
            "latency_ms": a.latency_ms,
            "response_excerpt": a.response_excerpt,
            "error": a.error,
            "trigger": a.trigger,
            "created_at": a.created_at.isoformat(),
            "next_attempt_at": a.next_attempt_at.isoformat() if a.next_attempt_at else None,
        }
        for a in found
    ]
    if as_json:
        _print_json({"attempts": rows, "total": total, "has_more": len(rows) < total})
        return
    table = Table("time", "event", "endpoint", "#", "trigger", "status", "http", "ms", "answer or error")
    for r in rows:
        color = "green" if r["status"] == "succeeded" else "red"
        answer = (r["error"] or r["response_excerpt"] or "").replace("\n", " ")[:60]
        table.add_row(
            r["created_at"][:19],
            r["event_id"],
            r["endpoint_id"],
            str(r["attempt_number"]),
            r["trigger"],
            f"[{color}]{r['status']}[/{color}]",
            str(r["http_status"] or ""),
            str(r["latency_ms"]),
            answer,
        )
    console.print(table)
    console.print(f"{len(rows)} of {total} attempts")


@app.command()
def verify(
    secret: Annotated[str, typer.Option(help="The endpoint's signing secret (whsec_...).")],
    header: Annotated[str, typer.Option(help="The X-ToffeePay-Signature header as received.")],
    body_file: Annotated[
        Path | None, typer.Option("--body-file", help="A file holding the raw request body, byte for byte.")
    ] = None,
    body: Annotated[str | None, typer.Option(help="The raw request body (when it is easier to paste).")] = None,
    tolerance: Annotated[int, typer.Option(help="Seconds the timestamp may be from now.")] = 300,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Check a webhook exactly as the SDK does and say why it fails; exit 0 only when valid."""
    import toffeepay

    if (body_file is None) == (body is None):
        err.print("[red]error:[/red] give the body with exactly one of --body-file or --body")
        raise typer.Exit(2)
    raw = body_file.read_bytes() if body_file is not None else (body or "").encode()
    diagnosis = toffeepay.Webhook.explain(raw, header, secret, tolerance)
    if as_json:
        _print_json(
            {
                "valid": diagnosis.valid,
                "reason": diagnosis.reason,
                "message": diagnosis.message,
                "timestamp": diagnosis.timestamp,
                "skew_seconds": diagnosis.skew_seconds,
            }
        )
    elif diagnosis.valid:
        console.print(f"[green]valid[/green]: {diagnosis.message}", soft_wrap=True)
    else:
        console.print(f"[red]invalid ({diagnosis.reason})[/red]: {diagnosis.message}", soft_wrap=True)
    raise typer.Exit(0 if diagnosis.valid else 1)


def main() -> None:
    app()
