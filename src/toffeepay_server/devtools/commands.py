"""The development commands: `toffeepay sessions|refunds|events|trigger|listen`.

They talk to a running server through the SDK, as a game server would, with a short-lived
sandbox key minted in the database (or `--api-key`).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_args

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from toffeepay.errors import APIConnectionError, APIError, AuthenticationError, ToffeePayError

from ..config import DEFAULT_PUBLIC_URL, Settings
from ..domain import events as event_types
from ..domain.durations import parse_duration
from ..domain.errors import DomainError
from ..domain.keys import KEY_PREFIX, Mode
from ..domain.money import to_major

# The SDK, the database and the HTTP client load when a command runs, so `--help` stays quick.
if TYPE_CHECKING:
    from toffeepay import ToffeePay
    from toffeepay.types import Session, SessionStatus, Timestamp

    from .listen import Forwarded

# Lines are never wrapped: ids and secrets stay whole, in a narrow terminal or a pipe.
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

sessions_app = typer.Typer(help="Look at a sandbox game's payment sessions.", no_args_is_help=True)
events_app = typer.Typer(help="Look at a sandbox game's webhook events and resend them.", no_args_is_help=True)
refunds_app = typer.Typer(help="Refund a game's payments and look at its refunds.", no_args_is_help=True)

Game = Annotated[str, typer.Option("--game", envvar="TOFFEEPAY_GAME", help="The game (its sandbox data).")]
ApiUrl = Annotated[str, typer.Option("--api-url", envvar="TOFFEEPAY_PUBLIC_URL", help="The running ToffeePay server.")]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="TOFFEEPAY_API_KEY",
        help="A sandbox key to use; without one, a short-lived key is minted in the database and revoked after.",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@contextmanager
def _client(game_id: str, api_url: str, api_key: str | None, *, live_key: bool = False) -> Iterator[ToffeePay]:
    """An SDK client for the game's sandbox (or, with `live_key`, whichever mode `--api-key` is of);
    API refusals become a message and exit code 1."""
    if api_key and not live_key and not api_key.startswith(KEY_PREFIX[Mode.SANDBOX]):
        err.print(
            "[red]error:[/red] --api-key must be a sandbox key (sk_test_...): these tools only touch sandbox data"
        )
        raise typer.Exit(2)
    from toffeepay import ToffeePay

    from .keys import DatabaseUnavailable, sandbox_key

    settings = Settings.from_env()
    try:
        if api_key:
            yield ToffeePay(api_key, base_url=api_url)
            return
        with sandbox_key(settings, game_id) as key:
            yield ToffeePay(key, base_url=api_url)
    except AuthenticationError:
        if api_key:
            err.print(
                f"[red]error:[/red] {api_url} refused --api-key: it is wrong, revoked, or of another installation"
            )
        else:
            # The key was just made in this database, so a server that refuses it uses another one.
            err.print(
                f"[red]error:[/red] the server at {api_url} does not use the database here "
                f"({_database_name(settings)}): it refused the key just made in it. Run this command in the "
                "directory where `toffeepay serve` runs, set TOFFEEPAY_DATABASE_URL to the server's database, "
                "or pass --api-key."
            )
        raise typer.Exit(1) from None
    except APIConnectionError as exc:
        err.print(
            f"[red]error:[/red] no answer from {api_url} (is `toffeepay serve` running there? see --api-url): {exc}"
        )
        raise typer.Exit(1) from None
    except ToffeePayError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    except (DomainError, DatabaseUnavailable, TimeoutError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


def _database_name(settings: Settings) -> str:
    """The database as a person would name it: the SQLite file, or the PostgreSQL host and name."""
    from sqlalchemy import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return str(Path(url.database or "").resolve())
    return f"{url.host or 'localhost'}/{url.database}"


def _print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], keep: Sequence[int] = (0,)) -> None:
    """A borderless table; the `keep` columns (ids) never wrap or shorten, the others fold.

    Piped output is not cut to 80 columns, so a script or a file gets whole lines.
    """
    table = Table(box=box.SIMPLE_HEAD, title=title)
    for i, name in enumerate(columns):
        if i in keep:
            table.add_column(name, no_wrap=True, min_width=max([len(name), *(len(r[i]) for r in rows)]))
        else:
            table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2), flush=True)


def _message(message: Any) -> dict[str, Any]:
    return json.loads(message.to_json(use_proto_field_name=True))


def _when(value: Timestamp | None) -> str:
    return value.to_datetime().strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else ""


def _price(session: Session) -> str:
    item = session.item
    return f"{to_major(item.price, item.currency)} {item.currency}" if item is not None else ""


def _session_status(value: str | None) -> SessionStatus | None:
    """The --status option, checked against the statuses a session can have."""
    from toffeepay.types import SessionStatus

    if value is None:
        return None
    for known in get_args(SessionStatus):
        if value == known:
            return known
    raise typer.BadParameter(f"must be one of {', '.join(get_args(SessionStatus))}", param_hint="--status")


def _title(session: Session) -> str:
    return session.item.title if session.item is not None else ""


@sessions_app.command("list")
def sessions_list(
    game: Game,
    status: Annotated[str | None, typer.Option(help="pending, paid, failed, cancelled or expired.")] = None,
    user: Annotated[str | None, typer.Option(help="Only this player's sessions.")] = None,
    unfulfilled: Annotated[
        bool, typer.Option("--unfulfilled", help="Only paid sessions the game has not fulfilled yet.")
    ] = False,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    api_url: ApiUrl = DEFAULT_PUBLIC_URL,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """List the game's sandbox sessions, newest first."""
    with _client(game, api_url, api_key) as client:
        page = client.sessions.list(
            game_id=game,
            user_id=user,
            status=_session_status(status),
            limit=limit,
            fulfilled=False if unfulfilled else None,
        )
    if as_json:
        _print_json({"sessions": [_message(s) for s in page], "total": page.total, "has_more": page.has_more})
        return
    rows = [(s.id, s.status, s.user_id, f"{_title(s)}, {_price(s)}", _when(s.created_at)) for s in page]
    _print_table(f"{len(page)} of {page.total} sessions", ("id", "status", "user", "item", "created"), rows)


@sessions_app.command("get")
def sessions_get(
    session_id: str,
    game: Game,
    api_url: ApiUrl = DEFAULT_PUBLIC_URL,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Show one session."""
    with _client(game, api_url, api_key) as client:
        session = client.sessions.get(session_id)
    if as_json:
        _print_json(_message(session))
        return
    table = Table(box=box.SIMPLE, show_header=False, title=session.id)
    rows = [
        ("status", session.status),
        ("user", session.user_id),
        ("item", _title(session)),
        ("price", _price(session)),
        ("payment", session.payment_id),
        ("url", session.url),
        ("return_url", session.return_url),
    ]
    rows += [(f"metadata.{k}", v) for k, v in session.metadata.items()]
    rows += [
        (name, _when(getattr(session, name)))
        for name in ("created_at", "expires_at", "paid_at", "failed_at", "cancelled_at", "expired_at", "fulfilled_at")
    ]
    for name, value in rows:
        if value:
            table.add_row(name, value)
    console.print(table)


LiveApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="TOFFEEPAY_API_KEY",
        help="The game's key (sk_live_... refunds live payments); without one, a short-lived sandbox key is minted.",
    ),
]


def _refund_rows(refund: Any) -> list[tuple[str, str]]:
    rows = [
        ("status", refund.status),
        ("payment", refund.payment_id),
        ("session", refund.session_id),
        ("amount", f"{to_major(refund.amount, refund.currency)} {refund.currency}"),
        ("reason", refund.reason),
        ("failure_code", refund.failure_code or ""),
    ]
    return rows + [(name, _when(getattr(refund, name))) for name in ("created_at", "succeeded_at", "failed_at")]


def _print_refund(refund: Any) -> None:
    table = Table(box=box.SIMPLE, show_header=False, title=refund.id)
    for name, value in _refund_rows(refund):
        if value:
            table.add_row(name, value)
    console.print(table)


@refunds_app.command("create")
def refunds_create(
    payment_id: str,
    game: Game,
    amount: Annotated[
        int | None, typer.Option(help="Minor units to give back (499 = 4.99 USD); all that is left by default.")
    ] = None,
    reason: Annotated[
        str | None, typer.Option(help="requested_by_customer (default), duplicate, fraudulent or other.")
    ] = None,
    api_url: ApiUrl = DEFAULT_PUBLIC_URL,
    api_key: LiveApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Refund a succeeded payment, in full or in part; the refund starts pending."""
    with _client(game, api_url, api_key, live_key=True) as client:
        refund = client.refunds.create(payment_id, amount=amount, reason=reason)
    if as_json:
        _print_json(_message(refund))
        return
    _print_refund(refund)


@refunds_app.command("get")
def refunds_get(
    refund_id: str,
    game: Game,
    api_url: ApiUrl = DEFAULT_PUBLIC_URL,
    api_key: LiveApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Show one refund."""
    with _client(game, api_url, api_key, live_key=True) as client:
        refund = client.refunds.get(refund_id)
    if as_json:
        _print_json(_message(refund))
        return
    _print_refund(refund)


@refunds_app.command("list")
def refunds_list(
    game: Game,
    payment: Annotated[str | None, typer.Option(help="Only this payment's refunds.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    api_url: ApiUrl = DEFAULT_PUBLIC_URL,
    api_key: LiveApiKey = None,
    as_json: AsJson = False,
) -> None:
    """List the game's refunds, newest first."""
    with _client(game, api_url, api_key, live_key=True) as client:
        page = client.refunds.list(payment_id=payment, limit=limit)
    if as_json:
        _print_json({"refunds": [_message(r) for r in page], "total": page.total, "has_more": page.has_more})
        return
    rows = [
        (r.id, r.status, r.payment_id, f"{to_major(r.amount, r.currency)} {r.currency}", _when(r.created_at))
        for r in page
    ]
    _print_table(f"{len(page)} of {page.total} refunds", ("id", "status", "payment", "amount", "created"), rows)


@events_app.command("list")
def events_list(
    game: Game,
    types: Annotated[list[str] | None, typer.Option("--type", help="Only this event type (repeatable).")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    api_url: ApiUrl = DEFAULT_PUBLIC_URL,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """List the game's sandbox events (kept 30 days), newest first."""
    from toffeepay import event_to_dict

    with _client(game, api_url, api_key) as client:
        page = client.webhooks.events.list(types=types, limit=limit)
    if as_json:
        _print_json({"events": [event_to_dict(e) for e in page], "total": page.total, "has_more": page.has_more})
        return
    rows = []
    for e in page:
        body = event_to_dict(e)
        # The object the event is about: session_id for session.*, payment_id for payment.*, ...
        subject = body["data"].get(f"{e.event.partition('.')[0]}_id", "")
        rows.append((e.id, e.event, subject, body.get("timestamp", "")))
    _print_table(f"{len(page)} of {page.total} events", ("id", "event", "object", "time"), rows, keep=(0, 2))


@events_app.command("resend")
def events_resend(
    event_id: str,
    game: Game,
    endpoint: Annotated[
        str | None, typer.Option(help="Only to this endpoint id; all matching endpoints by default.")
    ] = None,
    api_url: ApiUrl = DEFAULT_PUBLIC_URL,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Deliver an event again to the game's webhook endpoints."""
    with _client(game, api_url, api_key) as client:
        deliveries = client.webhooks.events.resend(event_id, endpoint_id=endpoint)
    if as_json:
        _print_json({"event_id": event_id, "deliveries": deliveries})
    else:
        console.print(f"{event_id}: {deliveries} deliver{'y' if deliveries == 1 else 'ies'} scheduled")


@events_app.command("replay")
def events_replay(
    game: Game,
    since: Annotated[str, typer.Option("--since", help="Events created this long ago or later: 30m, 2h, 3d.")],
    types: Annotated[list[str] | None, typer.Option("--type", help="Only this event type (repeatable).")] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="Only to this endpoint id; every enabled endpoint that wants them by default.")
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Only events whose last delivery to the endpoint failed.")
    ] = False,
    wait: Annotated[bool, typer.Option(help="Follow the deliveries with a progress bar until all were tried.")] = True,
    api_url: ApiUrl = DEFAULT_PUBLIC_URL,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Deliver the game's sandbox events of a time range again (same event ids), with a progress bar."""
    try:
        window = parse_duration(since)
    except ValueError as exc:
        err.print(f"[red]error:[/red] --since: {exc}")
        raise typer.Exit(2) from None
    with _client(game, api_url, api_key) as client:
        started = datetime.now(UTC)
        replayed = client.webhooks.events.replay(
            from_=started - window, types=types, endpoint_id=endpoint, only_failed=failed
        )
        tried = _follow_replay(client, replayed, started, endpoint, as_json) if wait and replayed else 0
    if as_json:
        _print_json({"replayed": replayed, "attempted": tried})
    else:
        console.print(f"{replayed} deliver{'y' if replayed == 1 else 'ies'} replayed")


def _follow_replay(client: ToffeePay, replayed: int, started: datetime, endpoint: str | None, quiet: bool) -> int:
    """Count the replay's attempts as they are made, until every delivery was tried once."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    def attempted() -> int:
        page = client.webhooks.endpoints.attempts(
            endpoint_id=endpoint, trigger="replay", from_=started - timedelta(seconds=5), limit=1
        )
        return min(page.total, replayed)

    with Progress(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=quiet,
    ) as progress:
        task = progress.add_task("replay", total=replayed)
        done = attempted()
        while done < replayed:
            progress.update(task, completed=done)
            time.sleep(0.5)
            done = attempted()
        progress.update(task, completed=done)
    return done


def trigger(
    event: Annotated[str, typer.Argument(help=f"One of: {', '.join(event_types.SESSION_EVENT_TYPES)}.")],
    game: Game,
    api_url: ApiUrl = DEFAULT_PUBLIC_URL,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Run a real sandbox flow that emits EVENT (e.g. payment.succeeded creates and pays a session)."""
    if event not in event_types.SESSION_EVENT_TYPES:
        err.print(f"[red]error:[/red] unknown event {event!r}; one of: {', '.join(event_types.SESSION_EVENT_TYPES)}")
        raise typer.Exit(2)
    with _client(game, api_url, api_key) as client:
        from . import trigger as flows

        done = flows.run(client, event, game)
    if as_json:
        _print_json(done.as_dict())
        return
    console.print(f"Triggered [bold]{event}[/bold]: session {done.session_id} is [bold]{done.status}[/bold]")
    for label, value in (("payment", done.payment_id), ("dispute", done.dispute_id), ("refund", done.refund_id)):
        if value:
            console.print(f"  {label} {value}")
    for event_id in done.events:
        console.print(f"  event {event_id}")
    if event == event_types.SESSION_FULFILLMENT_OVERDUE and not done.events:
        console.print("  the event follows when the session is not fulfilled within TOFFEEPAY_FULFILLMENT_GRACE")


def listen(
    forward_to: Annotated[
        str, typer.Option("--forward-to", help="Where to POST each event, e.g. http://localhost:3000/webhooks.")
    ],
    game: Game,
    types: Annotated[list[str] | None, typer.Option("--events", help="Only this event type (repeatable).")] = None,
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 1.0,
    api_url: ApiUrl = DEFAULT_PUBLIC_URL,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Forward the game's new sandbox events to a local URL, signed with a secret printed at start."""
    # SIGTERM ends the loop like Ctrl-C, so the minted key is revoked on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    from ..domain.webhooks import new_secret
    from .listen import Listener

    secret = new_secret()
    with _client(game, api_url, api_key) as client:
        listener = Listener(client, forward_to, secret, types=types or ())
        if as_json:
            print(json.dumps({"ready": True, "secret": secret, "forward_to": forward_to}), flush=True)
        else:
            console.print(f"Ready! Forwarding [bold]{game}[/bold] sandbox events to [cyan]{forward_to}[/cyan]")
            console.print(f"Your webhook signing secret is [green]{secret}[/green] (Ctrl-C to quit)")
        resend = _enter_presses()
        down = False
        try:
            while True:
                try:
                    failed_before = len(listener.failed)
                    if resend.is_set():
                        resend.clear()
                        for forwarded in listener.resend_failed():
                            _show(forwarded, as_json, resent=True)
                    for forwarded in listener.poll():
                        _show(forwarded, as_json)
                    if len(listener.failed) > failed_before and not as_json:
                        count = len(listener.failed)
                        console.print(
                            f"  [yellow]{count} event{'s' if count > 1 else ''} not taken:[/yellow] "
                            "fix your server, then press Enter to resend"
                        )
                except (APIConnectionError, APIError) as exc:
                    # A restarting server is routine in development: say so once, keep polling.
                    if not down:
                        err.print(f"[yellow]waiting for the server:[/yellow] {exc}")
                    down = True
                else:
                    if down:
                        err.print("[green]server is back[/green]")
                    down = False
                time.sleep(interval)
        except KeyboardInterrupt:
            pass


def _enter_presses() -> threading.Event:
    """Set whenever a line (Enter) arrives on stdin: `listen` then resends the events not taken."""
    pressed = threading.Event()

    def read() -> None:
        for _line in sys.stdin:
            pressed.set()

    if sys.stdin is not None and not sys.stdin.closed:
        threading.Thread(target=read, name="listen-stdin", daemon=True).start()
    return pressed


def _show(forwarded: Forwarded, as_json: bool, *, resent: bool = False) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    "event_id": forwarded.event_id,
                    "event": forwarded.event,
                    "status": forwarded.status,
                    "latency_ms": forwarded.latency_ms,
                    "error": forwarded.error,
                    "resent": resent,
                }
            ),
            flush=True,
        )
        return
    stamp = datetime.now().strftime("%H:%M:%S")
    if forwarded.status is None:
        outcome = f"[red]failed[/red] {forwarded.error}"
    else:
        color = "green" if 200 <= forwarded.status < 300 else "red"
        outcome = f"[{color}]{forwarded.status}[/{color}] in {forwarded.latency_ms} ms"
    again = " (resent)" if resent else ""
    console.print(f"{stamp}  {forwarded.event:<18} {forwarded.event_id}  -> {outcome}{again}")


def register(app: typer.Typer) -> None:
    """Add the development commands to the `toffeepay` command."""
    app.add_typer(sessions_app, name="sessions")
    app.add_typer(events_app, name="events")
    app.add_typer(refunds_app, name="refunds")
    app.command()(trigger)
    app.command()(listen)
