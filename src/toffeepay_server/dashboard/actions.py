"""The dashboard's forms (POST): sign-in and out, and every change, each checked for CSRF and role.

A change runs inside `audit.recording(...)`, so its audit entry commits in the same
transaction as the change itself. A request beyond the account's role is refused (403)
before anything is touched.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, date, datetime, time

from starlette.requests import Request
from starlette.responses import Response

from ..api.rate_limit import RateLimiter
from ..checkout.csrf import Csrf
from ..config import Settings
from ..domain.accounts import Action, key_action, parse_role
from ..domain.errors import DomainError, Reason
from ..domain.refunds import parse_reason
from ..services import accounts, audit, games, processing, refunds, sessions, webhooks
from ..services.processor import Processors
from .pages import Pages
from .web import Refused, Web, field, page, read_form, safe_next

SIGN_IN = "dashboard-sign-in"


def _day_start(value: str) -> datetime | None:
    return _date(value, time.min)


def _day_end(value: str) -> datetime | None:
    return _date(value, time.max)


def _date(value: str, at: time) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), at, tzinfo=UTC)
    except ValueError:
        raise DomainError(Reason.INVALID_TIME_RANGE, "dates are written YYYY-MM-DD") from None


class Actions:
    def __init__(self, web: Web, pages: Pages, settings: Settings, processors: Processors) -> None:
        self.web = web
        self.processors = processors
        self.pages = pages
        self.ctx = web.ctx
        self.email_limit = RateLimiter(
            settings.dashboard_signin_limit, settings.rate_limit_storage, namespace="dashboard_sign_in_email"
        )
        self.address_limit = RateLimiter(
            settings.dashboard_signin_address_limit, settings.rate_limit_storage, namespace="dashboard_sign_in_address"
        )
        self._signin_csrf: Csrf | None = None

    # Signing in and out

    async def signin_csrf(self) -> Csrf:
        if self._signin_csrf is None:
            key = hmac.new(await self.web.csrf_key(), b"sign-in", hashlib.sha256).digest()
            self._signin_csrf = Csrf(key, secure=self.web.secure)
        return self._signin_csrf

    async def _sign_in_page(self, request: Request, *, status: int = 200, error: str | None = None) -> Response:
        csrf = await self.signin_csrf()
        nonce, new = csrf.nonce(request.cookies.get(csrf.cookie))
        response = await self.web.render(
            request,
            "sign_in.html",
            status=status,
            error=error,
            csrf_token=csrf.token(nonce, SIGN_IN),
            next=safe_next(request.query_params.get("next"), self.web.base),
        )
        if new:
            response.set_cookie(**csrf.cookie_args(nonce))  # type: ignore[arg-type]
        return response

    @page
    async def sign_in_form(self, request: Request) -> Response:
        return await self._sign_in_page(request)

    @page
    async def sign_in(self, request: Request) -> Response:
        form = await read_form(request)
        csrf = await self.signin_csrf()
        if form is None or not csrf.valid(
            request.cookies.get(csrf.cookie), field(form, "csrf_token"), SIGN_IN, request.headers.get("sec-fetch-site")
        ):
            return await self._sign_in_page(request, status=403, error="This form has expired. Please try again.")
        email = field(form, "email").lower()
        address = self.web.address(request)
        wait = await self.address_limit.retry_after(address) or await self.email_limit.retry_after(email)
        if wait is not None:
            response = await self._sign_in_page(
                request, status=429, error=f"Too many sign-in attempts. Try again in {wait} seconds."
            )
            response.headers["Retry-After"] = str(wait)
            return response
        token = await accounts.sign_in(self.ctx, email, (form.get("password") or [""])[0], address=address)
        if token is None:
            return await self._sign_in_page(request, status=401, error="That email and password do not match.")
        response = self.web.see(safe_next(field(form, "next"), self.web.base))
        response.set_cookie(**self.web.cookie_args(token))
        return response

    @page
    async def sign_out(self, request: Request) -> Response:
        token = self.web.token(request)
        await self.web.form(request, token)
        await accounts.sign_out(self.ctx, token, idle=self.web.idle)
        response = self.web.see(f"{self.web.base}/sign-in")
        response.delete_cookie(self.web.cookie, path="/", secure=self.web.secure, httponly=True, samesite="lax")
        return response

    # Webhooks

    @page
    async def add_endpoint(self, request: Request) -> Response:
        scope = await self.web.scope(request)
        form = await self.web.form(request, scope.token)
        scope.require(Action.MANAGE_WEBHOOKS)
        url = field(form, "url")
        with audit.recording(
            self.ctx,
            self.web.actor(request, scope.account),
            "webhook.endpoint_added",
            game_id=scope.game_id,
            mode=scope.mode.value,
            target=url[:255],
        ):
            endpoint, secret = await webhooks.create_endpoint(
                self.ctx,
                game_id=scope.game_id,
                mode=scope.mode,
                url=url,
                format=field(form, "format"),
                events=[t for t in form.get("events", []) if t],
                description=field(form, "description") or None,
            )
        await accounts.reveal_once(self.ctx, scope.token, accounts.Reveal(endpoint.id, secret))
        return self.web.see(scope.url("webhooks", endpoint.id))

    @page
    async def endpoint_action(self, request: Request) -> Response:
        scope = await self.web.scope(request)
        form = await self.web.form(request, scope.token)
        scope.require(Action.MANAGE_WEBHOOKS)
        endpoint_id = request.path_params["endpoint_id"]
        action = request.path_params["action"]
        actor = self.web.actor(request, scope.account)
        scoped = {"game_id": scope.game_id, "mode": scope.mode.value, "target": endpoint_id}
        if action == "rotate":
            try:
                overlap = int(field(form, "overlap") or 86400)
            except ValueError:
                raise DomainError(Reason.INVALID_ARGUMENT, "overlap must be a number of seconds") from None
            with audit.recording(
                self.ctx, actor, "webhook.secret_rotated", **scoped, details={"overlap_seconds": overlap}
            ):
                secret, until = await webhooks.rotate_secret(
                    self.ctx, endpoint_id, scope.principal, overlap_seconds=overlap
                )
            shown = accounts.Reveal(endpoint_id, secret, until.isoformat() if until else None)
            await accounts.reveal_once(self.ctx, scope.token, shown)
            return self.web.see(scope.url("webhooks", endpoint_id))
        if action in ("disable", "enable"):
            with audit.recording(self.ctx, actor, f"webhook.endpoint_{action}d", **scoped):
                await webhooks.update_endpoint(self.ctx, scope.principal, endpoint_id, enabled=action == "enable")
        elif action == "test":
            with audit.recording(self.ctx, actor, "webhook.test_event_sent", **scoped):
                attempt = await webhooks.send_test_event(self.ctx, scope.principal, endpoint_id)
            result = f"answered {attempt.http_status}" if attempt.http_status else f"no answer ({attempt.error})"
            outcome = "delivered" if attempt.succeeded else "failed"
            return await self.pages.endpoint_page(
                request, scope, notice=f"Test event {attempt.event_id} {outcome}: {result}, {attempt.latency_ms} ms."
            )
        elif action == "replay":
            created_from, created_to = _day_start(field(form, "from")), _day_end(field(form, "to"))
            types = [t for t in form.get("types", []) if t]
            only_failed = field(form, "only_failed") == "1"
            details = {"from": field(form, "from"), "to": field(form, "to"), "types": types, "only_failed": only_failed}
            with audit.recording(self.ctx, actor, "webhook.events_replayed", **scoped, details=details):
                replay = await webhooks.replay_events(
                    self.ctx,
                    scope.principal,
                    created_from=created_from,
                    created_to=created_to,
                    types=types,
                    endpoint_id=endpoint_id,
                    only_failed=only_failed,
                )
            return await self.pages.endpoint_page(
                request, scope, notice=f"{replay.replayed} events will be delivered again to this endpoint."
            )
        elif action == "resend":
            event_id = field(form, "event_id")
            with audit.recording(self.ctx, actor, "webhook.event_resent", **scoped, details={"event_id": event_id}):
                await webhooks.resend_event(self.ctx, scope.principal, event_id, endpoint_id)
        else:
            raise Refused(404, "Page not found.")
        return self.web.see(scope.url("webhooks", endpoint_id))

    @page
    async def resend_event(self, request: Request) -> Response:
        """Resend one event to every endpoint that wants it (from the event's page)."""
        scope = await self.web.scope(request)
        await self.web.form(request, scope.token)
        scope.require(Action.MANAGE_WEBHOOKS)
        event_id = request.path_params["event_id"]
        with audit.recording(
            self.ctx,
            self.web.actor(request, scope.account),
            "webhook.event_resent",
            game_id=scope.game_id,
            mode=scope.mode.value,
            target=event_id,
        ):
            await webhooks.resend_event(self.ctx, scope.principal, event_id, None)
        return self.web.see(scope.url("events", event_id))

    # Refunds

    @page
    async def refund(self, request: Request) -> Response:
        """Refund a session's payment (all that is left, or an amount in minor units)."""
        scope = await self.web.scope(request)
        form = await self.web.form(request, scope.token)
        scope.require(Action.REFUND)
        session = await sessions.get_session(self.ctx, scope.principal, request.path_params["session_id"])
        if session.payment_id is None:
            raise DomainError(Reason.PAYMENT_NOT_REFUNDABLE, "this session has no payment")
        payment = await refunds.payment_to_refund(self.ctx, scope.principal, session.payment_id)
        raw = field(form, "amount")
        if raw and not raw.isdigit():
            raise DomainError(Reason.INVALID_REFUND_AMOUNT, "the amount is a whole number of minor units")
        amount = int(raw) if raw else None
        reason = parse_reason(field(form, "reason"))
        with audit.recording(
            self.ctx,
            self.web.actor(request, scope.account),
            "payment.refunded",
            game_id=scope.game_id,
            mode=scope.mode.value,
            target=payment.id,
            details={"amount": amount if amount is not None else "rest", "reason": reason.value},
        ):
            await processing.refund(self.ctx, self.processors, payment, amount=amount, reason=reason)
        return self.web.see(scope.url("sessions", session.id))

    # API keys

    @page
    async def roll_key(self, request: Request) -> Response:
        scope = await self.web.scope(request)
        await self.web.form(request, scope.token)
        scope.require(key_action(scope.mode))
        with audit.recording(
            self.ctx,
            self.web.actor(request, scope.account),
            "api_key.rolled",
            game_id=scope.game_id,
            mode=scope.mode.value,
        ):
            key = await games.roll_key(self.ctx, scope.game_id, scope.mode)
        await accounts.reveal_once(self.ctx, scope.token, accounts.Reveal(f"api_key:{scope.mode.value}", key))
        return self.web.see(scope.url("keys"))

    @page
    async def revoke_key(self, request: Request) -> Response:
        scope = await self.web.scope(request)
        form = await self.web.form(request, scope.token)
        scope.require(key_action(scope.mode))
        key = await games.get_key(self.ctx, scope.game_id, field(form, "key"))
        if key.mode is not scope.mode:
            raise DomainError(Reason.NOT_FOUND, "no such key in this mode")
        with audit.recording(
            self.ctx,
            self.web.actor(request, scope.account),
            "api_key.revoked",
            game_id=scope.game_id,
            mode=scope.mode.value,
            target=f"{key.id} ({key.display_prefix}…)",
        ):
            await games.revoke_key(self.ctx, key.id, game_id=scope.game_id)
        return self.web.see(scope.url("keys"))

    # Members and games

    @page
    async def grant(self, request: Request) -> Response:
        scope = await self.web.scope(request)
        form = await self.web.form(request, scope.token)
        scope.require(Action.MANAGE_MEMBERS)
        await accounts.grant(
            self.ctx,
            field(form, "email"),
            scope.game_id,
            parse_role(field(form, "role")),
            actor=self.web.actor(request, scope.account),
        )
        return self.web.see(scope.url("members"))

    @page
    async def revoke_member(self, request: Request) -> Response:
        scope = await self.web.scope(request)
        form = await self.web.form(request, scope.token)
        scope.require(Action.MANAGE_MEMBERS)
        await accounts.revoke(
            self.ctx, field(form, "email"), scope.game_id, actor=self.web.actor(request, scope.account)
        )
        return self.web.see(scope.url("members"))

    @page
    async def register_game(self, request: Request) -> Response:
        account, token = await self.web.account(request)
        form = await self.web.form(request, token)
        if not account.operator:
            raise Refused(403, "Only operators register games.", "Nothing was changed.")
        game_id = field(form, "game_id")
        with audit.recording(
            self.ctx, self.web.actor(request, account), "game.registered", game_id=game_id[:64], target=game_id[:64]
        ):
            created = await games.create_game(self.ctx, game_id)
        return await self.pages.games_page(request, created=created)
