"""The dashboard's pages (GET): overview, lists, a session's timeline, a player, webhooks, keys, audit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..domain import ids
from ..domain.accounts import Action, key_action
from ..domain.errors import DomainError, Reason
from ..domain.events import EVENT_TYPES
from ..domain.keys import Mode
from ..domain.listing import Page
from ..domain.payments import PaymentStatus
from ..domain.refunds import Refund, RefundReason
from ..domain.sessions import SessionStatus
from ..domain.webhooks import FORMATS
from ..services import accounts, audit, games, refunds, reports, sessions, webhooks
from ..services import payments as payment_service
from . import charts, format
from .web import Refused, Scope, Web, page

PER_PAGE = 25
# Lists count their matches up to this many ("10000 or more"): an exact count of a large
# game's sessions costs more than the page itself.
COUNT_LIMIT = 10_000
OVERLAPS = [(0, "none (the old secret stops now)"), (3600, "1 hour"), (86400, "24 hours"), (604800, "7 days")]


def _date(value: str, *, end: bool) -> datetime | None:
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise Refused(400, "That date could not be read.", "Write dates as YYYY-MM-DD.") from None
    return datetime.combine(day, time.max if end else time.min, tzinfo=UTC)


class Filters:
    """The filters and page of a list, read from the query string and written back into links."""

    def __init__(self, request: Request) -> None:
        q = request.query_params
        self.status = q.get("status", "").strip()
        self.user_id = q.get("user_id", "").strip()
        self.type = q.get("type", "").strip()
        self.date_from = q.get("from", "").strip()
        self.date_to = q.get("to", "").strip()
        self.fulfilled = q.get("fulfilled", "").strip()
        try:
            self.number = max(1, int(q.get("page", "1")))
        except ValueError:
            self.number = 1
        start, end = _date(self.date_from, end=False), _date(self.date_to, end=True)
        if start and end and start > end:
            raise Refused(400, "The time range ends before it starts.")
        self.page = Page(PER_PAGE, (self.number - 1) * PER_PAGE, start, end)

    def query(self, **changes: Any) -> dict[str, Any]:
        values = {
            "status": self.status,
            "user_id": self.user_id,
            "type": self.type,
            "from": self.date_from,
            "to": self.date_to,
            "fulfilled": self.fulfilled,
            "page": self.number,
        }
        values.update(changes)
        return {k: v for k, v in values.items() if v not in ("", None, 1)}

    def pager(self, scope: Scope, path: str, total: int) -> dict[str, Any]:
        last = max(1, -(-total // PER_PAGE))
        return {
            "total": total,
            "at_least": total >= COUNT_LIMIT,
            "number": self.number,
            "last": last,
            "prev": scope.url(path, **self.query(page=self.number - 1)) if self.number > 1 else None,
            "next": scope.url(path, **self.query(page=self.number + 1)) if self.number < last else None,
        }


class Pages:
    def __init__(self, web: Web) -> None:
        self.web = web
        self.ctx = web.ctx

    @page
    async def home(self, request: Request) -> Response:
        account, _token = await self.web.account(request)
        found = await accounts.games_of(self.ctx, account)
        if found:
            return self.web.see(f"{self.web.base}/{found[0]}/{Mode.SANDBOX.value}/")
        if account.operator:
            return self.web.see(f"{self.web.base}/games")
        raise Refused(200, "No games yet.", "Ask an owner of your studio's game to give you a role in it.")

    @page
    async def switch(self, request: Request) -> Response:
        """The game switcher's target: the same page of another game or mode."""
        account, _token = await self.web.account(request)
        game_id = request.query_params.get("game", "")
        mode = request.query_params.get("mode", Mode.SANDBOX.value)
        if account.role_in(game_id) is None or mode not in (Mode.SANDBOX.value, Mode.LIVE.value):
            raise Refused(404, "Game not found.")
        return self.web.see(f"{self.web.base}/{game_id}/{mode}/")

    @page
    async def overview(self, request: Request) -> Response:
        scope = await self.web.scope(request)
        data, attention = await asyncio.gather(
            reports.overview(self.ctx, scope.principal), reports.needs_attention(self.ctx, scope.principal)
        )
        days = [d.day for d in data.days]
        activity = charts.bar_chart(
            "Sessions created and paid per day",
            days,
            [
                charts.Series("created", [d.created for d in data.days], "created"),
                charts.Series("paid", [d.paid for d in data.days], "paid"),
            ],
            summary=f"Last 30 days: {data.created} sessions created, {data.paid} paid.",
        )
        revenue = [
            (
                currency,
                charts.bar_chart(
                    f"Revenue per day in {currency}",
                    days,
                    [charts.Series(currency, [d.revenue.get(currency, 0) for d in data.days], "revenue")],
                    summary=f"Last 30 days: {format.money(data.revenue(currency), currency)} in {currency}.",
                    label=_money_label(currency),
                ),
            )
            for currency in data.currencies
        ]
        rate = charts.bar_chart(
            "Dispute rate per day",
            days,
            [charts.Series("dispute rate", [d.dispute_rate for d in data.days], "disputes")],
            summary=(
                f"Last 30 days: {data.disputes} disputes for {data.paid} paid sessions, "
                f"a dispute rate of {format.percent(data.dispute_rate)}."
            ),
            label=lambda v: f"{v * 100:.0f}%",
        )
        return await self.web.render(
            request,
            "overview.html",
            scope=scope,
            nav="overview",
            data=data,
            activity=activity,
            revenue=revenue,
            rate=rate,
            attention=attention,
        )

    async def _search(self, scope: Scope, query: str) -> Response | None:
        """Search by id: a session, payment, dispute or event id opens its page."""
        query = query.strip()
        if not query:
            return None
        principal = scope.principal
        try:
            if ids.has_prefix(query, ids.SESSION):
                session = await sessions.get_session(self.ctx, principal, query)
                return self.web.see(scope.url("sessions", session.id))
            if ids.has_prefix(query, ids.PAYMENT):
                payment = await payment_service.get_payment(self.ctx, principal, query)
                return self.web.see(scope.url("sessions", payment.session_id))
            if ids.has_prefix(query, ids.DISPUTE):
                dispute = await reports.get_dispute(self.ctx, principal, query)
                target = scope.url("sessions", dispute.session_id) if dispute.session_id else None
                return self.web.see(target or scope.url("disputes", user_id=dispute.user_id))
            if len(query) == 36:
                return self.web.see(scope.url("events", query))
        except DomainError:
            pass
        raise Refused(404, "Nothing found by that id.", f"No session, payment, dispute or event {query[:80]!r} here.")

    @page
    async def sessions(self, request: Request) -> Response:
        scope = await self.web.scope(request)
        if found := await self._search(scope, request.query_params.get("q", "")):
            return found
        filters = Filters(request)
        rows, total = await sessions.list_sessions(
            self.ctx,
            scope.principal,
            game_id=None,
            user_id=filters.user_id or None,
            status=filters.status or None,
            page=filters.page,
            fulfilled={"yes": True, "no": False}.get(filters.fulfilled),
            count_limit=COUNT_LIMIT,
        )
        return await self.web.render(
            request,
            "sessions.html",
            scope=scope,
            nav="sessions",
            rows=rows,
            filters=filters,
            pager=filters.pager(scope, "sessions", total),
            statuses=[s.value for s in SessionStatus],
        )

    @page
    async def session(self, request: Request) -> Response:
        scope = await self.web.scope(request)
        session, timeline = await reports.timeline(self.ctx, scope.principal, request.path_params["session_id"])
        payment = None
        found_refunds: list[Refund] = []
        if session.payment_id:
            payment = await payment_service.get_payment(self.ctx, scope.principal, session.payment_id)
            found_refunds, _ = await refunds.list_refunds(
                self.ctx, scope.principal, payment_id=payment.id, page=Page(100, 0, None, None)
            )
        return await self.web.render(
            request,
            "session.html",
            scope=scope,
            nav="sessions",
            session=session,
            payment=payment,
            timeline=timeline,
            refunds=found_refunds,
            refund_reasons=[r.value for r in RefundReason],
            may_refund=scope.may(Action.REFUND) and payment is not None and payment.status is PaymentStatus.SUCCEEDED,
            may_resend=scope.may(Action.MANAGE_WEBHOOKS),
        )

    @page
    async def payments(self, request: Request) -> Response:
        scope = await self.web.scope(request)
        if found := await self._search(scope, request.query_params.get("q", "")):
            return found
        filters = Filters(request)
        rows, total = await reports.list_payments(
            self.ctx,
            scope.principal,
            status=filters.status or None,
            user_id=filters.user_id or None,
            page=filters.page,
            count_limit=COUNT_LIMIT,
        )
        return await self.web.render(
            request,
            "payments.html",
            scope=scope,
            nav="payments",
            rows=rows,
            filters=filters,
            pager=filters.pager(scope, "payments", total),
            statuses=[s.value for s in PaymentStatus],
        )

    @page
    async def disputes(self, request: Request) -> Response:
        scope = await self.web.scope(request)
        if found := await self._search(scope, request.query_params.get("q", "")):
            return found
        filters = Filters(request)
        rows, total = await reports.list_disputes(
            self.ctx, scope.principal, user_id=filters.user_id or None, page=filters.page, count_limit=COUNT_LIMIT
        )
        return await self.web.render(
            request,
            "disputes.html",
            scope=scope,
            nav="disputes",
            rows=rows,
            filters=filters,
            pager=filters.pager(scope, "disputes", total),
        )

    @page
    async def events(self, request: Request) -> Response:
        scope = await self.web.scope(request)
        if found := await self._search(scope, request.query_params.get("q", "")):
            return found
        filters = Filters(request)
        rows, total = await webhooks.list_events(
            self.ctx,
            scope.principal,
            types=[filters.type] if filters.type else [],
            after=None,
            page=filters.page,
            count_limit=COUNT_LIMIT,
        )
        return await self.web.render(
            request,
            "events.html",
            scope=scope,
            nav="events",
            rows=rows,
            filters=filters,
            pager=filters.pager(scope, "events", total),
            types=EVENT_TYPES,
        )

    @page
    async def event(self, request: Request) -> Response:
        scope = await self.web.scope(request)
        event_id = request.path_params["event_id"]
        body, attempts = await reports.event(self.ctx, scope.principal, event_id)
        return await self.web.render(
            request,
            "event.html",
            scope=scope,
            nav="events",
            event=body,
            pretty=json.dumps(body, indent=2, ensure_ascii=False),
            attempts=attempts,
            may_resend=scope.may(Action.MANAGE_WEBHOOKS),
        )

    @page
    async def player(self, request: Request) -> Response:
        scope = await self.web.scope(request)
        user_id = request.path_params["user_id"]
        recent = Page(PER_PAGE, 0, None, None)
        found_sessions, sessions_total = await sessions.list_sessions(
            self.ctx, scope.principal, game_id=None, user_id=user_id, status=None, page=recent
        )
        found_payments, _ = await reports.list_payments(
            self.ctx, scope.principal, status=None, user_id=user_id, page=recent
        )
        _, paid_total = await reports.list_payments(
            self.ctx,
            scope.principal,
            status=PaymentStatus.SUCCEEDED.value,
            user_id=user_id,
            page=Page(1, 0, None, None),
        )
        found_disputes, disputes_total = await reports.list_disputes(
            self.ctx, scope.principal, user_id=user_id, page=recent
        )
        return await self.web.render(
            request,
            "player.html",
            scope=scope,
            nav="sessions",
            user_id=user_id,
            sessions=found_sessions,
            sessions_total=sessions_total,
            payments=found_payments,
            paid_total=paid_total,
            disputes=found_disputes,
            disputes_total=disputes_total,
            dispute_rate=disputes_total / paid_total if paid_total else None,
        )

    @page
    async def webhooks(self, request: Request) -> Response:
        scope = await self.web.scope(request)
        health = await reports.endpoint_health(self.ctx, scope.principal)
        return await self.web.render(
            request,
            "webhooks.html",
            scope=scope,
            nav="webhooks",
            health=health,
            formats=sorted(FORMATS),
            types=EVENT_TYPES,
            may_manage=scope.may(Action.MANAGE_WEBHOOKS),
        )

    @page
    async def endpoint(self, request: Request) -> Response:
        scope = await self.web.scope(request)
        shown = await accounts.take_reveal(self.ctx, scope.token, request.path_params["endpoint_id"])
        if shown is None:
            return await self.endpoint_page(request, scope)
        until = datetime.fromisoformat(shown.until) if shown.until else None
        return await self.endpoint_page(request, scope, secret=shown.secret, secret_until=until)

    async def endpoint_page(
        self,
        request: Request,
        scope: Scope,
        *,
        secret: str | None = None,
        secret_until: Any = None,
        notice: str | None = None,
    ) -> Response:
        endpoint_id = request.path_params["endpoint_id"]
        endpoint, attempts = await reports.endpoint_attempts(self.ctx, scope.principal, endpoint_id)
        health = next(
            h for h in await reports.endpoint_health(self.ctx, scope.principal) if h.endpoint.id == endpoint.id
        )
        return await self.web.render(
            request,
            "endpoint.html",
            scope=scope,
            nav="webhooks",
            endpoint=endpoint,
            health=health,
            attempts=attempts,
            overlaps=OVERLAPS,
            secret=secret,
            secret_until=secret_until,
            notice=notice,
            types=EVENT_TYPES,
            may_manage=scope.may(Action.MANAGE_WEBHOOKS),
        )

    @page
    async def keys(self, request: Request) -> Response:
        scope = await self.web.scope(request)
        records = [k for k in await games.list_keys(self.ctx, scope.game_id) if k.mode is scope.mode]
        records.sort(key=lambda k: (k.revoked_at is not None, k.created_at), reverse=False)
        shown = await accounts.take_reveal(self.ctx, scope.token, f"api_key:{scope.mode.value}")
        return await self.web.render(
            request,
            "keys.html",
            scope=scope,
            nav="keys",
            keys=records,
            may_manage=scope.may(key_action(scope.mode)),
            new_key=shown.secret if shown else None,
        )

    @page
    async def confirm_key(self, request: Request) -> Response:
        """'Roll key' and 'Revoke key' ask first: this page says what will happen."""
        scope = await self.web.scope(request)
        scope.require(key_action(scope.mode))
        what = request.path_params["what"]
        key = None
        if what == "revoke":
            key = await games.get_key(self.ctx, scope.game_id, request.query_params.get("key", ""))
            if key.mode is not scope.mode:
                raise DomainError(Reason.NOT_FOUND, "no such key in this mode")
        elif what != "roll":
            raise Refused(404, "Page not found.")
        return await self.web.render(request, "confirm_key.html", scope=scope, nav="keys", what=what, key=key)

    @page
    async def audit_log(self, request: Request) -> Response:
        scope = await self.web.scope(request)
        filters = Filters(request)
        entries, total = await audit.list_entries(
            self.ctx, game_id=None if scope.account.operator else scope.game_id, page=filters.page
        )
        return await self.web.render(
            request,
            "audit.html",
            scope=scope,
            nav="audit",
            entries=entries,
            pager=filters.pager(scope, "audit", total),
        )

    @page
    async def members(self, request: Request) -> Response:
        scope = await self.web.scope(request)
        return await self.web.render(
            request,
            "members.html",
            scope=scope,
            nav="members",
            members=await accounts.members(self.ctx, scope.game_id),
            may_manage=scope.may(Action.MANAGE_MEMBERS),
        )

    @page
    async def games(self, request: Request) -> Response:
        return await self.games_page(request)

    async def games_page(self, request: Request, *, created: Any = None) -> Response:
        account, token = await self.web.account(request)
        if not account.operator:
            raise Refused(403, "Only operators register games.")
        found = await games.list_games(self.ctx)
        csrf_token = await self.web.csrf_token(token)
        return await self.web.render(
            request, "games.html", account=account, games=found, csrf_token=csrf_token, created=created
        )


def _money_label(currency: str) -> Callable[[float], str]:
    """How a chart labels an amount of `currency` (minor units)."""
    return lambda value: format.money(int(value), currency)
