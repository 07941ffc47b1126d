"""The payment page at `<public URL>/<session id>` and its forms.

GET shows what the session's state calls for: the payment choices (pending), a page that
updates itself (processing), the outcome (paid, failed: the browser is sent on to the
return_url), or "no longer valid" (cancelled, expired: 410). Forms post to `/pay` and
`/cancel` and answer with a redirect (303), so a reload never posts twice; a second
submission finds the payment already under way and just shows it. Cancel leads to
`/cancelled`, a result page like a payment's outcome.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import structlog
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..config import Settings
from ..domain import ids
from ..domain.errors import DomainError, Reason
from ..domain.keys import Mode
from ..domain.money import format_amount
from ..domain.payments import PaymentStatus, parse_method
from ..domain.sessions import Session, SessionStatus
from ..domain.urls import is_local_host, with_session_id
from ..services import checkout, processing, return_tokens, sessions
from ..services.context import ServiceContext
from ..services.processor import Instructions, Processors
from ..services.secrets import installation_secret
from . import assets, qr
from .csrf import FIELD, Csrf, derive_key
from .headers import BASE_HEADERS, page_headers
from .locales import preferred_locale

MAX_FORM_BYTES = 8 * 1024
# Form fields handed to the processor (the sandbox's chosen outcome and test card).
PROCESSOR_FIELDS = ("outcome", "number", "expiry", "cvc")
POLL_INTERVAL_MS = 1000
_PAYMENT_STATE = {
    PaymentStatus.PROCESSING: "processing",
    PaymentStatus.SUCCEEDED: SessionStatus.PAID.value,
    PaymentStatus.FAILED: SessionStatus.FAILED.value,
}
_GONE = {SessionStatus.CANCELLED.value, SessionStatus.EXPIRED.value}
# The QR image: nothing in it may run or load, and a game's own web page may show it.
_QR_HEADERS = {
    **BASE_HEADERS,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "Cross-Origin-Resource-Policy": "cross-origin",
    "Cache-Control": "no-store",
}


def page_state(view: checkout.Checkout) -> str:
    """pending | processing | paid | failed | cancelled | expired, as the player sees it."""
    if view.session.status.value in _GONE:
        return view.session.status.value
    if view.payment is not None:
        return _PAYMENT_STATE[view.payment.status]
    return view.session.status.value


async def _read_form(request: Request) -> dict[str, str] | None:
    """A small urlencoded form, or None for anything else."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20))
    except (UnicodeDecodeError, ValueError):
        return None


log = structlog.get_logger("toffeepay.checkout")


class CheckoutPages:
    def __init__(self, ctx: ServiceContext, processors: Processors, settings: Settings) -> None:
        self.ctx = ctx
        self.processors = processors
        self.secure = settings.public_url.startswith("https://")
        # A live card form only where the card data cannot travel in clear: behind https,
        # or on this machine's loopback (tests, a developer's own server).
        self.live_allowed = self.secure or is_local_host(urlsplit(settings.public_url).hostname or "")
        self.assets = assets.Assets()
        self.templates = Environment(
            loader=PackageLoader("toffeepay_server.checkout", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._csrf: Csrf | None = None

    def routes(self) -> list[BaseRoute]:
        page = f"/{ids.SESSION}_{{suffix}}"
        return [
            Route(f"{assets.PREFIX}/{{name}}", self.assets.serve, methods=["GET"]),
            Route(page, self.page, methods=["GET"]),
            Route(f"{page}/status", self.status, methods=["GET"]),
            Route(f"{page}/qr.svg", self.qr_code, methods=["GET"]),
            Route(f"{page}/pay", self.pay, methods=["POST"]),
            Route(f"{page}/cancel", self.cancel, methods=["POST"]),
            Route(f"{page}/cancelled", self.cancelled, methods=["GET"]),
        ]

    async def csrf(self) -> Csrf:
        if self._csrf is None:
            # Generated once, stored encrypted with the installation key, shared by every process.
            secret = await installation_secret(self.ctx, "checkout")
            self._csrf = Csrf(derive_key(secret), secure=self.secure)
        return self._csrf

    # Pages

    async def page(self, request: Request) -> Response:
        session_id = _session_id(request)
        try:
            view = await checkout.load(self.ctx, session_id, with_image=True)
        except DomainError:
            return self._not_found(request)
        return await self._show(request, view)

    async def _show(
        self, request: Request, view: checkout.Checkout, *, error: str | None = None, status: int = 200
    ) -> Response:
        state = page_state(view)
        session = view.session
        if state in _GONE:
            return self._render(request, "gone.html", 410, view=view, state=state)
        if state == "processing":
            return self._render(
                request,
                "processing.html",
                200,
                view=view,
                status_url=self._url(session.id, "status"),
                poll_interval=POLL_INTERVAL_MS,
            )
        if state != SessionStatus.PENDING.value:
            next_url = await self._return_to(session) if session.return_url else None
            return self._render(request, "outcome.html", 200, view=view, state=state, next_url=next_url)
        if not self._may_take_cards(session.mode):
            return self._insecure(request)
        csrf = await self.csrf()
        nonce, new = csrf.nonce(request.cookies.get(csrf.cookie))
        response = self._render(
            request,
            "pay.html",
            status,
            view=view,
            error=error,
            csrf_token=csrf.token(nonce, session.id),
            pay_url=self._url(session.id, "pay"),
            cancel_url=self._url(session.id, "cancel"),
            wallets=self.processors.wallets(session.mode),
            qr_svg=Markup(qr.inline_svg(self.ctx.page_url(session.id))),
            headers=page_headers(image=session.image, return_url=session.return_url),
        )
        if new:
            response.set_cookie(**csrf.cookie_args(nonce))  # type: ignore[arg-type]
        return response

    async def status(self, request: Request) -> Response:
        """The page's state as JSON, polled while a payment is processing."""
        try:
            view = await checkout.load(self.ctx, _session_id(request))
        except DomainError:
            return JSONResponse({"status": "not_found"}, status_code=404, headers=page_headers())
        return JSONResponse({"status": page_state(view)}, headers=page_headers())

    async def qr_code(self, request: Request) -> Response:
        """The page's URL as a QR code (SVG), for a game on a PC or console to show; 404 and 410 as the page."""
        session_id = _session_id(request)
        try:
            view = await checkout.load(self.ctx, session_id)
        except DomainError:
            return self._not_found(request)
        if page_state(view) in _GONE:
            return self._render(request, "gone.html", 410, view=view, state=page_state(view))
        return Response(qr.svg_document(self.ctx.page_url(session_id)), media_type="image/svg+xml", headers=_QR_HEADERS)

    # Forms

    async def pay(self, request: Request) -> Response:
        session_id = _session_id(request)
        form, refused = await self._checked_form(request, session_id)
        if refused is not None:
            return refused
        try:
            view = await checkout.load(self.ctx, session_id)
            if not self._may_take_cards(view.session.mode):
                return self._insecure(request)
            processor = self.processors.for_mode(view.session.mode)
            instructions = Instructions(
                parse_method(form.get("method", "")), {k: form[k] for k in PROCESSOR_FIELDS if k in form}
            )
            await processing.pay(self.ctx, processor, session_id, instructions)
        except DomainError as exc:
            if exc.reason is Reason.NOT_FOUND:
                return self._not_found(request)
            if exc.reason in (Reason.INVALID_ARGUMENT, Reason.PROCESSOR_UNAVAILABLE):
                view = await checkout.load(self.ctx, session_id, with_image=True)
                if page_state(view) == SessionStatus.PENDING.value:
                    unavailable = exc.reason is Reason.PROCESSOR_UNAVAILABLE
                    message = (
                        "Payments are not available right now. Please try again later." if unavailable else exc.detail
                    )
                    return await self._show(request, view, error=message, status=503 if unavailable else 400)
            # Otherwise (expired, cancelled, paid, a payment already under way) the page shows where it stands.
        return self._see_page(session_id)

    async def cancel(self, request: Request) -> Response:
        session_id = _session_id(request)
        _form, refused = await self._checked_form(request, session_id)
        if refused is not None:
            return refused
        try:
            await sessions.cancel_session(self.ctx, None, session_id)
        except DomainError as exc:
            if exc.reason is Reason.NOT_FOUND:
                return self._not_found(request)
            return self._see_page(session_id)
        return RedirectResponse(self._url(session_id, "cancelled"), 303, headers=BASE_HEADERS)

    async def cancelled(self, request: Request) -> Response:
        """The result of Cancel, like a paid or failed payment's: it sends the browser on to the
        return_url and offers a button, so a player whose browser cannot open the game's link
        is not left on a form. The payment link itself stays "no longer valid"."""
        session_id = _session_id(request)
        try:
            view = await checkout.load(self.ctx, session_id, with_image=True)
        except DomainError:
            return self._not_found(request)
        session = view.session
        if session.status is not SessionStatus.CANCELLED:
            return self._see_page(session_id)
        next_url = await self._return_to(session) if session.return_url else None
        return self._render(request, "outcome.html", 200, view=view, state="cancelled", next_url=next_url)

    async def _checked_form(self, request: Request, session_id: str) -> tuple[dict[str, str], Response | None]:
        form = await _read_form(request)
        if form is None:
            return {}, self._message(
                request, 400, "This form could not be read.", "Go back to the payment page and try again."
            )
        csrf = await self.csrf()
        if not csrf.valid(
            request.cookies.get(csrf.cookie), form.get(FIELD), session_id, request.headers.get("sec-fetch-site")
        ):
            return {}, self._message(
                request, 403, "This form has expired.", "Reload the payment page and try again. No payment was made."
            )
        return form, None

    async def _return_to(self, session: Session) -> str:
        """The return_url with `session_id` and a signed `token` of the outcome."""
        assert session.return_url is not None
        return with_session_id(session.return_url, session.id, await return_tokens.issue(self.ctx, session))

    def _may_take_cards(self, mode: str) -> bool:
        return mode != Mode.LIVE.value or self.live_allowed

    def _insecure(self, request: Request) -> Response:
        log.warning("live payment page refused: TOFFEEPAY_PUBLIC_URL is not https", public_url=self.ctx.public_url)
        return self._message(
            request,
            503,
            "Payments are not available on this address.",
            "This payment page must be served over https. No payment was made.",
        )

    # Rendering

    def _url(self, session_id: str, action: str) -> str:
        return f"{self.ctx.page_url(session_id)}/{action}"

    def _see_page(self, session_id: str) -> Response:
        return RedirectResponse(self.ctx.page_url(session_id), 303, headers=BASE_HEADERS)

    def _not_found(self, request: Request) -> Response:
        return self._message(
            request, 404, "Payment not found.", "Check the link you were given, or start again in the game."
        )

    def _message(self, request: Request, status: int, title: str, text: str) -> Response:
        return self._render(request, "message.html", status, title=title, text=text)

    def _render(
        self,
        request: Request,
        name: str,
        status: int,
        *,
        view: checkout.Checkout | None = None,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> Response:
        if view is not None:
            session = view.session
            context.update(
                session=session,
                payment=view.payment,
                sandbox=session.mode == Mode.SANDBOX.value,
                price=format_amount(
                    session.item.price, session.item.currency, preferred_locale(request.headers.get("accept-language"))
                ),
            )
            headers = headers or page_headers(image=session.image)
        body = self.templates.get_template(name).render(
            css_url=self._asset("checkout.css"), js_url=self._asset("checkout.js"), **context
        )
        return HTMLResponse(body, status_code=status, headers=headers or page_headers())

    def _asset(self, name: str) -> str:
        return f"{self.ctx.public_url}{self.assets.url(name)}"


def _session_id(request: Request) -> str:
    return f"{ids.SESSION}_{request.path_params['suffix']}"
