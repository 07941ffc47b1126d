"""What every dashboard page shares: who is signed in, the game and mode in view, CSRF, rendering.

A signed-in browser holds a random token in an HttpOnly, SameSite=Lax cookie (Secure and
`__Host-` under https); the database keeps only its hash. Every form carries
HMAC(key, token hash): another site can neither read nor forge it, and it changes with
each sign-in.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..api.rate_limit import client_address, parse_networks
from ..checkout.headers import BASE_HEADERS, page_headers
from ..config import Settings
from ..domain.accounts import AccessDenied, Account, Action, session_token_hash
from ..domain.errors import DomainError, Reason
from ..domain.keys import Mode, Principal
from ..services import accounts
from ..services.audit import Actor
from ..services.context import ServiceContext
from ..services.secrets import installation_secret
from . import assets, format

COOKIE = "toffeepay_dashboard"
SECURE_COOKIE = "__Host-toffeepay_dashboard"
CSRF_FIELD = "csrf_token"
MAX_FORM_BYTES = 16 * 1024
MAX_FORM_FIELDS = 60
FORM_TYPE = "application/x-www-form-urlencoded"


class Redirect(Exception):
    def __init__(self, location: str) -> None:
        self.location = location


class Refused(Exception):
    """A request answered with a message page (403 forged or beyond the role, 404, 400)."""

    def __init__(self, status: int, title: str, text: str = "") -> None:
        self.status = status
        self.title = title
        self.text = text


@dataclass(frozen=True, slots=True)
class Scope:
    """A signed-in account looking at one game in one mode."""

    account: Account
    token: str
    game_id: str
    mode: Mode
    base: str

    @property
    def principal(self) -> Principal:
        return Principal(f"dashboard:{self.account.id}", self.game_id, self.mode)

    def url(self, *parts: str, **query: Any) -> str:
        path = "/".join([self.base, quote(self.game_id), self.mode.value, *(quote(p, safe="") for p in parts)])
        shown = {k: v for k, v in query.items() if v not in (None, "")}
        return path + ("?" + urlencode(shown) if shown else "")

    def may(self, action: Action | str) -> bool:
        return self.account.may(Action(action), self.game_id)

    def require(self, action: Action) -> None:
        self.account.require(action, self.game_id)


class Web:
    def __init__(self, ctx: ServiceContext, settings: Settings) -> None:
        self.ctx = ctx
        self.secure = settings.public_url.startswith("https://")
        self.cookie = SECURE_COOKIE if self.secure else COOKIE
        self.idle = timedelta(seconds=settings.dashboard_idle_timeout)
        self.trusted_proxies = parse_networks(settings.trusted_proxies)
        self.base = urlsplit(settings.public_url).path.rstrip("/") + "/dashboard"
        self.assets = assets.Assets()
        self.templates = Environment(
            loader=PackageLoader("toffeepay_server.dashboard", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters.update(format.FILTERS)
        self._csrf_key: bytes | None = None

    # Who is asking

    def token(self, request: Request) -> str | None:
        return request.cookies.get(self.cookie)

    async def account(self, request: Request) -> tuple[Account, str]:
        token = self.token(request)
        account = await accounts.account_of(self.ctx, token, idle=self.idle)
        if account is None or token is None:
            raise Redirect(f"{self.base}/sign-in?" + urlencode({"next": _local_path(request)}))
        return account, token

    async def scope(self, request: Request) -> Scope:
        account, token = await self.account(request)
        game_id = request.path_params["game"]
        try:
            mode = Mode(request.path_params["mode"])
        except ValueError:
            raise Refused(404, "Page not found.") from None
        if account.role_in(game_id) is None:
            raise Refused(404, "Game not found.", "You have no role in this game, or it does not exist.")
        if account.operator and game_id not in await accounts.games_of(self.ctx, account):
            raise Refused(404, "Game not found.")
        return Scope(account, token, game_id, mode, self.base)

    def address(self, request: Request) -> str:
        """The client's address (the first of X-Forwarded-For only from a trusted proxy)."""
        return client_address(request.scope, self.trusted_proxies) or "unknown"

    def actor(self, request: Request, account: Account) -> Actor:
        return Actor(account.email, account.id, self.address(request))

    # CSRF

    async def csrf_key(self) -> bytes:
        if self._csrf_key is None:
            # The installation secret, stored encrypted with the installation key (docs/secrets.md).
            secret = await installation_secret(self.ctx, "checkout")
            self._csrf_key = hmac.new(secret.encode(), b"toffeepay dashboard csrf v1", hashlib.sha256).digest()
        return self._csrf_key

    async def csrf_token(self, token: str) -> str:
        return hmac.new(await self.csrf_key(), session_token_hash(token).encode(), hashlib.sha256).hexdigest()

    async def form(self, request: Request, token: str | None) -> dict[str, list[str]]:
        """The posted form, once its CSRF token matches the signed-in session (else 403)."""
        form = await read_form(request)
        if form is None:
            raise Refused(400, "This form could not be read.")
        submitted = (form.get(CSRF_FIELD) or [""])[0]
        if (
            token is None
            or request.headers.get("sec-fetch-site") == "cross-site"
            or not hmac.compare_digest(await self.csrf_token(token), submitted)
        ):
            raise Refused(403, "This form has expired.", "Reload the page and try again. Nothing was changed.")
        return form

    # Rendering

    def asset(self, name: str) -> str:
        return self.base + self.assets.url(name)

    async def render(
        self, request: Request, name: str, *, scope: Scope | None = None, status: int = 200, **context: Any
    ) -> Response:
        if scope is not None:
            context.update(
                scope=scope,
                account=scope.account,
                games=await accounts.games_of(self.ctx, scope.account),
                csrf_token=await self.csrf_token(scope.token),
            )
        context.setdefault("base", self.base)
        context.setdefault("request_path", request.url.path)
        body = self.templates.get_template(name).render(css_url=self.asset("dashboard.css"), **context)
        return HTMLResponse(body, status_code=status, headers=page_headers())

    def see(self, location: str) -> Response:
        return RedirectResponse(location, 303, headers=BASE_HEADERS)

    def cookie_args(self, token: str) -> dict[str, Any]:
        return {
            "key": self.cookie,
            "value": token,
            "path": "/",
            "secure": self.secure,
            "httponly": True,
            "samesite": "lax",
        }


def _local_path(request: Request) -> str:
    query = request.url.query
    return request.url.path + ("?" + query if query else "")


def safe_next(value: str | None, base: str) -> str:
    """Only a path inside the dashboard, never another site (no open redirect)."""
    if value and value.startswith(base + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return base + "/"


async def read_form(request: Request) -> dict[str, list[str]] | None:
    """A small urlencoded form (every value of repeated fields), or None for anything else."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM_TYPE:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return None


def field(form: dict[str, list[str]], name: str) -> str:
    return (form.get(name) or [""])[0].strip()


Handler = Callable[[Any, Request], Awaitable[Response]]


def page(handler: Handler) -> Handler:
    """Turn a handler's refusals into pages: sign-in redirects, 403, 404, 400 with the reason."""

    @functools.wraps(handler)
    async def wrapped(self: Any, request: Request) -> Response:
        started = time.perf_counter()
        response = await _answer(handler, self, request)
        # The server's own time for the page (Server-Timing), as the benchmark reads it.
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
        return response

    return wrapped


async def _answer(handler: Handler, owner: Any, request: Request) -> Response:
    web: Web = owner.web
    try:
        return await handler(owner, request)
    except Redirect as exc:
        return web.see(exc.location)
    except Refused as exc:
        return await web.render(request, "message.html", status=exc.status, title=exc.title, text=exc.text)
    except AccessDenied as exc:
        return await web.render(
            request,
            "message.html",
            status=403,
            title="Your role does not allow this.",
            text=f"Nothing was changed ({exc}).",
        )
    except DomainError as exc:
        status = 404 if exc.reason is Reason.NOT_FOUND else 400
        return await web.render(request, "message.html", status=status, title="That did not work.", text=exc.message)
