"""Webhook endpoints of a game and mode, and its event log (ListEvents, ResendEvent)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

from ..domain import events as event_rules
from ..domain import ids
from ..domain import webhooks as rules
from ..domain.deliveries import DeliveryStatus, after_attempt
from ..domain.errors import DomainError, Reason
from ..domain.keys import Mode, Principal
from ..domain.listing import Page
from ..domain.webhooks import Endpoint
from ..store import games as games_store
from ..store import outbox as outbox_store
from ..store import webhooks as store
from ..store.database import UnitOfWork
from .context import ServiceContext
from .outbox import Job, attempt_row, delivery_row, record_health

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
    chaos: rules.Chaos | None = None,
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
        chaos=rules.check_chaos(chaos, mode.value),
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
    chaos: rules.Chaos | None = None,
) -> Endpoint:
    """Change only what is given; an empty event list means all events, all-zero chaos none.

    Enabling clears the endpoint's run of failures; disabling keeps its pending deliveries
    waiting until it is enabled again.
    """
    changes: dict[str, Any] = {}
    if url is not None:
        changes["url"] = await check_url(ctx, url, principal.mode)
    if format is not None:
        changes["format"] = rules.check_format(format)
    if events is not None:
        changes["events"] = rules.check_event_types(events)
    if description is not None:
        changes["description"] = rules.check_description(description)
    if chaos is not None:
        changes["chaos"] = rules.check_chaos(chaos, principal.mode.value)
    async with ctx.db.transaction() as uow:
        current = await _locked(uow, endpoint_id, principal)
        endpoint = replace(current, **changes)
        if enabled is not None:
            endpoint = endpoint.enable() if enabled else endpoint.disable(rules.DisabledReason.MANUAL)
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
    count_limit: int | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Event bodies of the last 30 days: newest first, or oldest first after a cursor event.

    `count_limit`: stop counting matches there (the dashboard's list; see store.paging.page_of).
    """
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
            count_limit=count_limit,
        )


async def resend_event(ctx: ServiceContext, principal: Principal, event_id: str, endpoint_id: str | None) -> int:
    """Schedule the event again, to one endpoint or to every endpoint that wants it; returns how many."""
    scope = {"game_id": principal.game_id, "mode": principal.mode.value}
    async with ctx.db.transaction() as uow:
        event = await outbox_store.get_event(uow.conn, event_id, **scope)
        if event is None:
            raise DomainError(Reason.NOT_FOUND, f"no event {event_id[:64]!r} (events are kept 30 days)")
        if endpoint_id is not None:
            endpoint = await _locked(uow, endpoint_id, principal)
            if not endpoint.enabled:
                raise DomainError(Reason.ENDPOINT_DISABLED, _disabled_message(endpoint))
            targets = [endpoint] if endpoint.carries(event.type) else []
        else:
            targets = [e for e in await store.list_endpoints(uow.conn, **scope) if e.enabled and e.wants(event.type)]
        now = ctx.clock()
        await outbox_store.insert_deliveries(
            uow.conn,
            [delivery_row(ctx.new_id(ids.DELIVERY), event.id, e.id, now, now, trigger="manual") for e in targets],
        )
        if targets:
            uow.wake_dispatchers()
    return len(targets)


def _disabled_message(endpoint: Endpoint) -> str:
    why = "after failing every attempt" if endpoint.disabled_reason is rules.DisabledReason.FAILING else "by request"
    return (
        f"endpoint {endpoint.id} is disabled ({why}) and receives nothing; "
        "enable it with UpdateEndpoint {enabled: true}, then replay what it missed with ReplayEvents"
    )


def attempt_from_row(row: Any) -> rules.Attempt:
    return rules.Attempt(
        id=row.attempt_id,
        event_id=row.event_id,
        endpoint_id=row.endpoint_id,
        attempt_number=row.attempt_number or 1,
        succeeded=row.error is None and row.status_code is not None and 200 <= row.status_code < 300,
        http_status=row.status_code,
        latency_ms=row.latency_ms,
        response_excerpt=row.response_excerpt,
        error=row.error,
        trigger=row.trigger or "scheduled",
        created_at=row.attempted_at,
        next_attempt_at=row.next_attempt_at,
    )


async def list_attempts(
    ctx: ServiceContext,
    principal: Principal,
    *,
    endpoint_id: str | None = None,
    event_id: str | None = None,
    status: str | None = None,
    trigger: str | None = None,
    page: Page,
) -> tuple[list[rules.Attempt], int]:
    """Delivery attempts to the caller's endpoints, newest first."""
    if status is not None and status not in rules.ATTEMPT_STATUSES:
        raise DomainError(Reason.INVALID_STATUS, f"status must be succeeded or failed, got {status[:40]!r}")
    if trigger is not None and trigger not in rules.TRIGGERS:
        raise DomainError(
            Reason.INVALID_ARGUMENT, f"trigger must be one of {', '.join(rules.TRIGGERS)}, got {trigger[:40]!r}"
        )
    async with ctx.db.read() as conn:
        rows, total = await outbox_store.list_attempts(
            conn,
            game_id=principal.game_id,
            mode=principal.mode.value,
            endpoint_id=endpoint_id,
            event_id=event_id,
            status=status,
            created_from=page.created_from,
            created_to=page.created_to,
            limit=page.limit,
            offset=page.offset,
            trigger=trigger,
        )
    return [attempt_from_row(r) for r in rows], total


@dataclass(frozen=True, slots=True)
class Replay:
    """What ReplayEvents scheduled: one replay per endpoint, and the deliveries in all."""

    ids: tuple[str, ...]
    replayed: int


async def replay_events(
    ctx: ServiceContext,
    principal: Principal,
    *,
    created_from: datetime | None,
    created_to: datetime | None = None,
    types: Sequence[str] = (),
    endpoint_id: str | None = None,
    only_failed: bool = False,
) -> Replay:
    """Deliver again every matching event of the caller's game and mode (same id, trigger
    `replay`) to one endpoint or to every enabled endpoint that wants it; `only_failed` takes
    the events whose last delivery to that endpoint failed. Large replays are fed to the
    dispatcher in batches, so normal deliveries keep flowing."""
    if created_from is None:
        raise DomainError(Reason.INVALID_TIME_RANGE, "from is required: replay events created since when?")
    if created_to is not None and created_to < created_from:
        raise DomainError(Reason.INVALID_TIME_RANGE, "from is after to")
    wanted = rules.check_event_types(types)
    scope = {"game_id": principal.game_id, "mode": principal.mode.value}
    now = ctx.clock()
    async with ctx.db.transaction() as uow:
        if endpoint_id is not None:
            endpoint = await _locked(uow, endpoint_id, principal)
            if not endpoint.enabled:
                raise DomainError(Reason.ENDPOINT_DISABLED, _disabled_message(endpoint))
            targets = [endpoint]
        else:
            targets = [e for e in await store.list_endpoints(uow.conn, **scope) if e.enabled]
        upto = await outbox_store.latest_position(uow.conn, **scope)
        ids_made, replayed = [], 0
        for target in targets:
            effective = [t for t in (wanted or event_rules.EVENT_TYPES) if target.wants(t)]
            if not effective:
                continue
            selection = {
                **scope,
                "endpoint_id": target.id,
                "types": effective,
                "created_from": created_from,
                "created_to": created_to,
                "only_failed": only_failed,
            }
            total = await outbox_store.count_replay(uow.conn, upto=upto, **selection)
            if about := [t for t in effective if t in event_rules.ENDPOINT_EVENTS]:
                # An endpoint's own failing/disabled events never go to it.
                own = await outbox_store.replay_rows(uow.conn, upto=upto, **{**selection, "types": about})
                total -= sum(1 for r in own if json.loads(r.raw_body)["data"].get("endpoint_id") == target.id)
            if not total:
                continue
            replay_id = ctx.new_id(ids.REPLAY)
            await outbox_store.insert_replay(
                uow.conn,
                {
                    "id": replay_id,
                    **scope,
                    "endpoint_id": target.id,
                    "types": effective,
                    "created_from": created_from,
                    "created_to": created_to,
                    "only_failed": only_failed,
                    "cursor": 0,
                    "upto": upto,
                    "total": total,
                    "fed": 0,
                    "created_at": now,
                    "finished_at": None,
                },
            )
            ids_made.append(replay_id)
            replayed += total
        if ids_made:
            uow.wake_dispatchers()
    return Replay(tuple(ids_made), replayed)


async def replay_progress(ctx: ServiceContext, replay: Replay) -> tuple[int, int]:
    """(deliveries of the replay attempted so far, deliveries in all)."""
    if not replay.ids:
        return 0, 0
    async with ctx.db.read() as conn:
        return await outbox_store.replay_progress(conn, replay.ids)


async def send_test_event(ctx: ServiceContext, principal: Principal, endpoint_id: str) -> rules.Attempt:
    """Sign and send a `ping` to the endpoint now (outside the outbox); record and return the attempt."""
    if ctx.webhook_sender is None:
        raise RuntimeError("no webhook sender is configured")
    async with ctx.db.read() as conn:
        endpoint = await store.get_endpoint(conn, endpoint_id, game_id=principal.game_id, mode=principal.mode.value)
    if endpoint is None:
        raise DomainError(Reason.NOT_FOUND, f"no webhook endpoint {endpoint_id!r}")
    if not endpoint.enabled:
        raise DomainError(Reason.ENDPOINT_DISABLED, _disabled_message(endpoint))
    if not endpoint.carries(event_rules.PING):
        raise DomainError(
            Reason.INVALID_FORMAT, "legacy_form endpoints receive only payment outcomes; a test event is JSON"
        )
    now = ctx.clock()
    event_id = ctx.new_event_id()
    body = {
        "id": event_id,
        "event": event_rules.PING,
        "timestamp": event_rules.rfc3339(now),
        "mode": endpoint.mode,
        "data": {"endpoint_id": endpoint.id},
    }
    job = Job(
        ctx.new_id(ids.DELIVERY),
        1,
        now,
        event_id,
        event_rules.PING,
        json.dumps(body, separators=(",", ":")),
        endpoint,
        "test",
    )
    outcome = await ctx.webhook_sender(job)
    row = attempt_row(ctx, outcome)
    async with ctx.db.transaction() as uow:
        delivery = delivery_row(job.delivery_id, event_id, endpoint.id, now, now, trigger="test")
        status = after_attempt(DeliveryStatus.PENDING, succeeded=outcome.succeeded, next_attempt_at=None)
        delivery.update(status=status.value, attempts=1, next_attempt_at=None)
        await record_health(uow, [outcome])
        await outbox_store.insert_deliveries(uow.conn, [delivery])
        await outbox_store.record(uow.conn, [row], [])
    return attempt_from_row(SimpleNamespace(**row))
