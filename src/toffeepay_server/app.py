"""Assembly: create_app(settings) wires the database, the services, the API and the pages."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from toffeepay._proto.pay.v1.health_connect import HealthService as HealthServiceDesc
from toffeepay._proto.pay.v1.health_connect import HealthServiceASGIApplication
from toffeepay._proto.pay.v1.payment_connect import PaymentService as PaymentServiceDesc
from toffeepay._proto.pay.v1.payment_connect import PaymentServiceASGIApplication
from toffeepay._proto.pay.v1.sandbox_connect import SandboxService as SandboxServiceDesc
from toffeepay._proto.pay.v1.sandbox_connect import SandboxServiceASGIApplication
from toffeepay._proto.pay.v1.webhook_connect import WebhookService as WebhookServiceDesc
from toffeepay._proto.pay.v1.webhook_connect import WebhookServiceASGIApplication

from .api.codecs import CODECS
from .api.edge import ConnectEdge, is_rpc_path
from .api.errors import ErrorInterceptor
from .api.gateway import ApiGateway
from .api.guard import RequestGuard
from .api.health_service import HealthService
from .api.payment_service import PaymentService
from .api.rate_limit import RateLimiter, parse_networks
from .api.sandbox_service import SandboxService
from .api.webhook_service import WebhookService
from .checkout import return_keys
from .checkout.routes import CheckoutPages
from .config import Settings
from .dashboard.routes import Dashboard
from .domain import money
from .events.background import Background
from .events.sender import Sender
from .logs import configure_logging
from .observability import metrics
from .observability.request_id import RequestIds
from .processors.configured import configured_processors
from .processors.stripe.adapter import StripeProcessor
from .processors.stripe.notifications import StripeNotifications
from .services import operations
from .services.context import ServiceContext
from .serving import BackgroundLease, settle_garbage_collector, stop_with_parent
from .store.migrate import head_revisions
from .web import not_found, root

log = structlog.get_logger("toffeepay")
# google.protobuf.MethodOptions.IdempotencyLevel.NO_SIDE_EFFECTS
_NO_SIDE_EFFECTS = 1


def _rpc_paths(*descs: Any, mutating: bool | None = None) -> set[str]:
    """Every RPC path of these services; only the mutating ones, or only the reads, when asked."""
    return {
        f"/{desc.type_name}/{method.name}"
        for desc in descs
        for method in desc.methods
        if mutating is None or (method.idempotency != _NO_SIDE_EFFECTS) == mutating
    }


def _mutating_paths(*descs: Any) -> set[str]:
    return _rpc_paths(*descs, mutating=True)


class Router:
    """Connect paths (`/package.Service/Method`) go to the API; everything else to Starlette."""

    def __init__(self, services: dict[str, Any], public: dict[str, Any], web: Any, edge: ConnectEdge) -> None:
        self.services = services
        self.public = public
        self.web = web
        self.edge = edge

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            prefix = scope["path"].rpartition("/")[0]
            if (app := self.public.get(prefix)) or (app := self.services.get(prefix)):
                await self.edge.serve(app, scope, receive, send)
                return
            if is_rpc_path(scope["path"]):
                await self.edge.serve(None, scope, receive, send)
                return
        await self.web(scope, receive, send)


def create_app(
    settings: Settings, *, ctx: ServiceContext | None = None, lease: BackgroundLease | None = None
) -> RequestIds:
    """`lease`: run the background loops only while holding it (one worker of a server does)."""
    configure_logging()
    # The currency data (CLDR) loads now, not during a worker's first CreateSession.
    money.active_currencies()
    ctx = ctx or ServiceContext.from_settings(settings)
    ctx.db.on_commit(metrics.events_committed)
    interceptors = [ErrorInterceptor()]

    def connect(app_class: Any, service: Any) -> Any:
        return app_class(service, interceptors=interceptors, codecs=CODECS, read_max_bytes=settings.max_request_bytes)

    processors = configured_processors(settings, ctx.clock)
    stripe = next((p for p in processors.all() if isinstance(p, StripeProcessor)), None)
    background = Background(ctx, settings, processors)
    # Test events (SendTestEvent) go out at once through a sender of their own, never retried.
    test_sender = Sender(ctx, site_id=settings.site_id, max_connections=16)
    ctx.webhook_sender = lambda job: test_sender.attempt(job, None)
    payment_app = connect(PaymentServiceASGIApplication, PaymentService(ctx, processors))
    webhook_app = connect(WebhookServiceASGIApplication, WebhookService(ctx))
    sandbox_app = connect(SandboxServiceASGIApplication, SandboxService(ctx, processors))
    services = {payment_app.path: payment_app, webhook_app.path: webhook_app, sandbox_app.path: sandbox_app}
    public_limiter = RateLimiter(settings.public_rate_limit, settings.rate_limit_storage, namespace="address")
    gateway = ApiGateway(
        _route(services),
        ctx,
        mutating_paths=_mutating_paths(PaymentServiceDesc.desc(), WebhookServiceDesc.desc(), SandboxServiceDesc.desc()),
        max_body=settings.max_request_bytes,
        idempotency_wait=settings.idempotency_wait,
        idempotency_lease=timedelta(seconds=settings.idempotency_lease),
        rate_limiter=RateLimiter(settings.rate_limit, settings.rate_limit_storage),
        public_limiter=public_limiter,
    )
    health_app = connect(HealthServiceASGIApplication, HealthService())

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        leading = None
        if settings.background and lease is not None:
            leading = asyncio.create_task(_lead(lease, background), name="background-lease")
        elif settings.background:
            background.start()
        try:
            yield
        finally:
            if leading is not None:
                leading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await leading
            await background.stop()
            if lease is not None:
                lease.release()
            await test_sender.aclose()
            await processors.close()
            await ctx.db.dispose()

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    schema_heads = head_revisions()

    async def readyz(_request: Request) -> Response:
        found = await operations.readiness(ctx, expected=schema_heads)
        if found.ready:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not_ready", "problem": found.problem}, status_code=503)

    checkout = CheckoutPages(ctx, processors, settings)
    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/", root),
        return_keys.route(ctx),
        *Dashboard(ctx, settings, processors).routes(),
        *checkout.routes(),
    ]
    if stripe:
        routes.append(StripeNotifications(ctx, stripe, max_bytes=settings.max_request_bytes).route())
    web = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: not_found})
    web.state.ctx = ctx
    descs = (PaymentServiceDesc.desc(), WebhookServiceDesc.desc(), SandboxServiceDesc.desc(), HealthServiceDesc.desc())
    edge = ConnectEdge(known=_rpc_paths(*descs), reads=_rpc_paths(*descs, mutating=False))
    router = Router({path: gateway for path in services}, {health_app.path: health_app}, web, edge)
    guard = RequestGuard(
        router,
        max_body=settings.max_request_bytes,
        body_timeout=settings.request_body_timeout,
        public_limiter=public_limiter,
        trusted_proxies=parse_networks(settings.trusted_proxies),
        hsts=settings.public_url.startswith("https://"),
    )
    return RequestIds(guard)


def _route(services: dict[str, Any]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await services[scope["path"].rpartition("/")[0]](scope, receive, send)

    return app


async def _lead(lease: BackgroundLease, background: Background) -> None:
    """Run the background loops once this worker holds the lease (at once, or when the worker
    holding it ends)."""
    while not lease.try_take():
        await asyncio.sleep(LEASE_POLL)
    log.info("this worker runs the background loops", pid=os.getpid())
    background.start()


LEASE_POLL = 2.0


def app_from_env() -> RequestIds:
    """The factory `toffeepay serve` hands to granian (each worker builds its own app)."""
    stop_with_parent()
    app = create_app(Settings.from_env(), lease=BackgroundLease(os.getppid()))
    settle_garbage_collector()
    return app
