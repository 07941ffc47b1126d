"""Webhook endpoints of a game and mode, and its event log (ListEvents, ResendEvent)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from ..domain import ids
from ..domain import webhooks as rules
from ..domain.deliveries import DeliveryStatus
from ..domain.errors import DomainError, Reason
from ..domain.keys import Mode, Principal
from ..domain.listing import Page
from ..domain.webhooks import Endpoint
from ..store import games as games_store
from ..store import outbox as outbox_store
from ..store import webhooks as store
from ..store.database import UnitOfWork
from .context import ServiceContext

RESOLVE_TIMEOUT = 2.0


async def resolve(host: str, port: int) -> list[str]:
    """The addresses a host name resolves to, each once."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def _check_resolved(url: str, *, private: bool) -> None:
    """Refuse a host name that resolves to an address webhooks may not reach.

    A name that does not resolve yet is accepted: every delivery resolves and checks again.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if rules.literal_address(host) is not None:
        return
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            addresses = await resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
    except (OSError, TimeoutError, UnicodeError):
        return
    for address in addresses:
        if not rules.address_allowed(address, private=private):
            hint = f"; {rules.LISTEN_HINT}" if rules.address_allowed(address, private=True) else ""
            raise DomainError(Reason.INVALID_URL, f"{host} resolves to {address}, which webhooks may not reach{hint}")


async def check_url(ctx: ServiceContext, url: str, mode: Mode) -> str:
    private = ctx.private_targets_allowed(mode.value)
    rules.check_url(url, private=private)
    await _check_resolved(url, private=private)
    return url


async def create_endpoint(
    ctx: ServiceContext,
    *,
    game_id: str,
    mode: Mode,
    url: str,
    format: str = "",
    events: Sequence[str] = (),
    description: str | None = None,
) -> tuple[Endpoint, str]:
    """Register an endpoint; returns it and its secret (shown only this once)."""
    endpoint = Endpoint(
        id=ctx.new_id(ids.ENDPOINT),
        game_id=game_id,
        mode=mode.value,
        url=await check_url(ctx, url, mode),
        format=rules.check_format(format),
        events=rules.check_event_types(events),
        enabled=True,
        description=rules.check_description(description),
        secret=rules.new_secret(),
        previous_secret=None,
        previous_secret_expires_at=None,
        created_at=ctx.clock(),
    )
    async with ctx.db.transaction() as uow:
        if not await games_store.game_exists(uow.conn, game_id):
            raise DomainError(Reason.NOT_FOUND, f"no game {game_id!r}")
        if await store.count_endpoints(uow.conn, game_id=game_id, mode=mode.value) >= rules.MAX_ENDPOINTS:
            raise DomainError(
                Reason.INVALID_ARGUMENT, f"a game has at most {rules.MAX_ENDPOINTS} webhook endpoints per mode"
            )
        await store.insert_endpoint(uow.conn, endpoint)
    return endpoint, endpoint.secret


async def list_endpoints(ctx: ServiceContext, *, game_id: str, mode: Mode | None = None) -> list[Endpoint]:
    async with ctx.db.read() as conn:
        return await store.list_endpoints(conn, game_id=game_id, mode=mode.value if mode else None)


async def _locked(uow: UnitOfWork, endpoint_id: str, principal: Principal | None) -> Endpoint:
    endpoint = await store.get_endpoint(
        uow.conn,
        endpoint_id,
        game_id=principal.game_id if principal else None,
        mode=principal.mode.value if principal else None,
        for_update=True,
    )
    if endpoint is None:
        raise DomainError(Reason.NOT_FOUND, f"no webhook endpoint {endpoint_id!r}")
    return endpoint


async def update_endpoint(
    ctx: ServiceContext,
    principal: Principal,
    endpoint_id: str,
    *,
    url: str | None = None,
    format: str | None = None,
    events: Sequence[str] | None = None,
    enabled: bool | None = None,
    description: str | None = None,
) -> Endpoint:
    """Change only what is given; an empty event list means all events."""
    changes: dict[str, Any] = {}
    if url is not None:
        changes["url"] = await check_url(ctx, url, principal.mode)
    if format is not None:
        changes["format"] = rules.check_format(format)
    if events is not None:
        changes["events"] = rules.check_event_types(events)
    if enabled is not None:
        changes["enabled"] = enabled
    if description is not None:
        changes["description"] = rules.check_description(description)
    async with ctx.db.transaction() as uow:
        endpoint = replace(await _locked(uow, endpoint_id, principal), **changes)
        await store.save_endpoint(uow.conn, endpoint)
        if enabled:
            uow.wake_dispatchers()
    return endpoint


async def delete_endpoint(ctx: ServiceContext, endpoint_id: str, principal: Principal | None = None) -> Endpoint:
    """Remove an endpoint; deliveries still pending for it are given up."""
    async with ctx.db.transaction() as uow:
        now = ctx.clock()
        endpoint = replace(await _locked(uow, endpoint_id, principal), deleted_at=now, enabled=False)
        await store.save_endpoint(uow.conn, endpoint)
        await store.fail_pending_deliveries(uow.conn, endpoint_id, now)
    return endpoint


async def rotate_secret(
    ctx: ServiceContext,
    endpoint_id: str,
    principal: Principal | None = None,
    *,
    overlap_seconds: int | None = None,
) -> tuple[str, datetime | None]:
    """A new secret; the current one keeps signing until the overlap (default 24 h) ends."""
    overlap = rules.check_overlap(overlap_seconds)
    async with ctx.db.transaction() as uow:
        endpoint = (await _locked(uow, endpoint_id, principal)).rotated(rules.new_secret(), ctx.clock(), overlap)
        await store.save_endpoint(uow.conn, endpoint)
    return endpoint.secret, endpoint.previous_secret_expires_at


async def list_events(
    ctx: ServiceContext,
    principal: Principal,
    *,
    types: Sequence[str],
    after: str | None,
    page: Page,
) -> tuple[list[dict[str, Any]], int]:
    """Event bodies of the last 30 days: newest first, or oldest first after a cursor event."""
    wanted = rules.check_event_types(types)
    scope = {"game_id": principal.game_id, "mode": principal.mode.value}
    async with ctx.db.read() as conn:
        after_position = None
        if after is not None:
            cursor = await outbox_store.get_event(conn, after, **scope)
            if cursor is None:
                raise DomainError(Reason.NOT_FOUND, f"no event {after[:64]!r} (events are kept 30 days)")
            after_position = cursor.position
        return await outbox_store.list_events(
            conn,
            **scope,
            types=wanted,
            after_position=after_position,
            created_from=page.created_from,
            created_to=page.created_to,
            limit=page.limit,
            offset=page.offset,
        )


async def resend_event(ctx: ServiceContext, principal: Principal, event_id: str, endpoint_id: str | None) -> int:
    """Schedule the event again, to one endpoint or to every endpoint that wants it; returns how many."""
    scope = {"game_id": principal.game_id, "mode": principal.mode.value}
    async with ctx.db.transaction() as uow:
        event = await outbox_store.get_event(uow.conn, event_id, **scope)
        if event is None:
            raise DomainError(Reason.NOT_FOUND, f"no event {event_id[:64]!r} (events are kept 30 days)")
        if endpoint_id is not None:
            targets = [e for e in [await _locked(uow, endpoint_id, principal)] if e.carries(event.type)]
        else:
            targets = [e for e in await store.list_endpoints(uow.conn, **scope) if e.enabled and e.wants(event.type)]
        now = ctx.clock()
        await outbox_store.insert_deliveries(
            uow.conn,
            [
                {
                    "id": ctx.new_id(ids.DELIVERY),
                    "event_id": event.id,
                    "endpoint_id": e.id,
                    "status": DeliveryStatus.PENDING.value,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "claimed_by": None,
                    "claimed_until": None,
                    "created_at": now,
                    "updated_at": now,
                }
                for e in targets
            ],
        )
        if targets:
            uow.wake_dispatchers()
    return len(targets)
