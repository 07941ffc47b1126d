"""Webhook endpoints and the event log of the key's game and mode."""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .._proto.pay.v1.webhook_connect import WebhookServiceClient, WebhookServiceClientSync
from .._proto.pay.v1.webhook_pb import (
    Chaos,
    CreateEndpointRequest,
    CreateEndpointResponse,
    DeleteEndpointRequest,
    DeliveryAttempt,
    Endpoint,
    Event,
    EventFilter,
    ListDeliveryAttemptsRequest,
    ListEndpointsRequest,
    ListEventsRequest,
    ReplayEventsRequest,
    ResendEventRequest,
    RotateSecretRequest,
    RotateSecretResponse,
    SendTestEventRequest,
    UpdateEndpointRequest,
)
from .._transport import AsyncTransport, SyncTransport
from ..pagination import AsyncPage, Page
from ..types import EndpointFormat
from . import _params


def event_to_dict(event: Event) -> dict[str, Any]:
    """An event as its JSON webhook body carries it: {"id", "event", "timestamp", "mode", "data"},
    and for an event about a session also its top-level session_id, user_id, game_id, status and item."""
    body: dict[str, Any] = {"id": event.id, "event": event.event}
    if event.timestamp is not None:
        body["timestamp"] = json.loads(event.timestamp.to_json())
    body["mode"] = event.mode
    for name in ("session_id", "user_id", "game_id", "status"):
        if event.has_field(name):
            body[name] = getattr(event, name)
    if event.has_field("item") and (item := event.item) is not None:
        body["item"] = {"title": item.title, "price": item.price, "currency": item.currency}
    body["data"] = _whole_numbers(event.data.to_python()) if event.data is not None else {}
    return body


def _whole_numbers(value: Any) -> Any:
    """JSON numbers cross a Struct as floats; the API only sends whole ones (amounts, sequences)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value


def _chaos(chaos: dict[str, int] | None) -> Chaos | None:
    """{"duplicate_percent", "delay_max_seconds", "bad_signature_percent"} as the API's message."""
    return None if chaos is None else Chaos(**chaos)


def _create(
    url: str,
    format: EndpointFormat,
    events: Iterable[str] | None,
    description: str | None,
    chaos: dict[str, int] | None = None,
) -> CreateEndpointRequest:
    return CreateEndpointRequest(
        url=url, format=format, events=list(events or ()), description=description, chaos=_chaos(chaos)
    )


def _update(
    id: str,
    url: str | None,
    format: EndpointFormat | None,
    events: Iterable[str] | None,
    enabled: bool | None,
    description: str | None,
    chaos: dict[str, int] | None = None,
) -> UpdateEndpointRequest:
    return UpdateEndpointRequest(
        id=id,
        url=url,
        format=format,
        filter=None if events is None else EventFilter(events=list(events)),
        enabled=enabled,
        description=description,
        chaos=_chaos(chaos),
    )


def _attempts_lister(
    endpoint_id: str | None,
    event_id: str | None,
    status: str | None,
    from_: datetime | None,
    to: datetime | None,
    limit: int | None,
    trigger: str | None = None,
) -> Any:
    def make(offset: int) -> ListDeliveryAttemptsRequest:
        return ListDeliveryAttemptsRequest(
            trigger=trigger,
            endpoint_id=endpoint_id,
            event_id=event_id,
            status=status,
            from_=_params.timestamp(from_),
            to=_params.timestamp(to),
            limit=limit or 0,
            offset=offset,
        )

    return make


def _replay(
    from_: datetime, to: datetime | None, types: Iterable[str] | None, endpoint_id: str | None, only_failed: bool
) -> ReplayEventsRequest:
    return ReplayEventsRequest(
        from_=_params.timestamp(from_),
        to=_params.timestamp(to),
        types=list(types or ()),
        endpoint_id=endpoint_id,
        only_failed=only_failed,
    )


def _lister(
    types: Iterable[str] | None, from_: datetime | None, to: datetime | None, after: str | None, limit: int | None
) -> Any:
    def make(offset: int) -> ListEventsRequest:
        return ListEventsRequest(
            types=list(types or ()),
            from_=_params.timestamp(from_, "from_"),
            to=_params.timestamp(to, "to"),
            after=after,
            limit=limit or 0,
            offset=offset,
        )

    return make


class Endpoints:
    """`client.webhooks.endpoints`: create, list, update, delete, rotate_secret."""

    def __init__(self, transport: SyncTransport, rpc: WebhookServiceClientSync) -> None:
        self._t = transport
        self._rpc = rpc

    def create(
        self,
        *,
        url: str,
        format: EndpointFormat = "json",
        events: Iterable[str] | None = None,
        description: str | None = None,
        chaos: dict[str, int] | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> CreateEndpointResponse:
        """Register an endpoint; the response's `secret` (whsec_...) is shown only this once.

        `format` is json or legacy_form; `events` limits the event types sent (all when empty);
        `chaos` (sandbox only) is {"duplicate_percent", "delay_max_seconds", "bad_signature_percent"}.
        """
        request = _create(url, format, events, description, chaos)
        return self._t.mutate(self._rpc.create_endpoint, request, idempotency_key, timeout)

    def list(self, *, timeout: float | None = None) -> builtins.list[Endpoint]:
        """Every endpoint of the key's game and mode."""
        return builtins.list(self._t.call(self._rpc.list_endpoints, ListEndpointsRequest(), timeout).endpoints)

    def update(
        self,
        id: str,
        *,
        url: str | None = None,
        format: EndpointFormat | None = None,
        events: Iterable[str] | None = None,
        enabled: bool | None = None,
        description: str | None = None,
        chaos: dict[str, int] | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Endpoint:
        """Change only the given fields; `events=[]` means every event type, `enabled=True`
        enables a disabled endpoint again, all-zero `chaos` turns chaos off."""
        request = _update(id, url, format, events, enabled, description, chaos)
        return self._t.mutate(self._rpc.update_endpoint, request, idempotency_key, timeout)

    def send_test_event(
        self, id: str, *, idempotency_key: str | None = None, timeout: float | None = None
    ) -> DeliveryAttempt:
        """Sign and send a `ping` event to the endpoint now; returns the attempt (trigger `test`)."""
        request = SendTestEventRequest(endpoint_id=id)
        return self._t.mutate(self._rpc.send_test_event, request, idempotency_key, timeout)

    def attempts(
        self,
        *,
        endpoint_id: str | None = None,
        event_id: str | None = None,
        status: str | None = None,
        from_: datetime | None = None,
        to: datetime | None = None,
        trigger: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        timeout: float | None = None,
    ) -> Page[DeliveryAttempt]:
        """Delivery attempts, newest first: status, latency, the answer's first 1 KB, the trigger
        (`scheduled`, `manual`, `replay` or `test`)."""
        make = _attempts_lister(endpoint_id, event_id, status, from_, to, limit, trigger)
        return self._t.page(self._rpc.list_delivery_attempts, make, "attempts", offset, timeout)

    def delete(self, id: str, *, idempotency_key: str | None = None, timeout: float | None = None) -> None:
        """Stop delivering to this endpoint and forget it."""
        request = DeleteEndpointRequest(id=id)
        self._t.mutate(self._rpc.delete_endpoint, request, idempotency_key, timeout)

    def rotate_secret(
        self,
        id: str,
        *,
        overlap_seconds: int | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> RotateSecretResponse:
        """A new secret; the previous one keeps signing for `overlap_seconds` (default 24 hours)."""
        request = RotateSecretRequest(id=id, overlap_seconds=overlap_seconds)
        return self._t.mutate(self._rpc.rotate_secret, request, idempotency_key, timeout)


class Events:
    """`client.webhooks.events`: list, resend (events are kept 30 days)."""

    def __init__(self, transport: SyncTransport, rpc: WebhookServiceClientSync) -> None:
        self._t = transport
        self._rpc = rpc

    def list(
        self,
        *,
        types: Iterable[str] | None = None,
        from_: datetime | None = None,
        to: datetime | None = None,
        after: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        timeout: float | None = None,
    ) -> Page[Event]:
        """A page of events; with `after` (an event id), those that committed after it, oldest first."""
        return self._t.page(self._rpc.list_events, _lister(types, from_, to, after, limit), "events", offset, timeout)

    def resend(
        self,
        id: str,
        *,
        endpoint_id: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> int:
        """Deliver an event again (to one endpoint, or to every matching one); returns the deliveries scheduled."""
        request = ResendEventRequest(id=id, endpoint_id=endpoint_id)
        response = self._t.mutate(self._rpc.resend_event, request, idempotency_key, timeout)
        return response.deliveries

    def replay(
        self,
        *,
        from_: datetime,
        to: datetime | None = None,
        types: Iterable[str] | None = None,
        endpoint_id: str | None = None,
        only_failed: bool = False,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> int:
        """Deliver the events created since `from_` again (same ids, trigger `replay`), to one
        endpoint or to every enabled one that wants them; returns the deliveries scheduled."""
        request = _replay(from_, to, types, endpoint_id, only_failed)
        return self._t.mutate(self._rpc.replay_events, request, idempotency_key, timeout).replayed


class Webhooks:
    """`client.webhooks`: `endpoints` and `events`."""

    def __init__(self, transport: SyncTransport) -> None:
        rpc = transport.client(WebhookServiceClientSync)
        self.endpoints = Endpoints(transport, rpc)
        self.events = Events(transport, rpc)


class AsyncEndpoints:
    """`client.webhooks.endpoints` of `AsyncToffeePay`."""

    def __init__(self, transport: AsyncTransport, rpc: WebhookServiceClient) -> None:
        self._t = transport
        self._rpc = rpc

    async def create(
        self,
        *,
        url: str,
        format: EndpointFormat = "json",
        events: Iterable[str] | None = None,
        description: str | None = None,
        chaos: dict[str, int] | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> CreateEndpointResponse:
        """Register an endpoint; the response's `secret` is shown only this once."""
        request = _create(url, format, events, description, chaos)
        return await self._t.mutate(self._rpc.create_endpoint, request, idempotency_key, timeout)

    async def list(self, *, timeout: float | None = None) -> builtins.list[Endpoint]:
        """Every endpoint of the key's game and mode."""
        return builtins.list((await self._t.call(self._rpc.list_endpoints, ListEndpointsRequest(), timeout)).endpoints)

    async def update(
        self,
        id: str,
        *,
        url: str | None = None,
        format: EndpointFormat | None = None,
        events: Iterable[str] | None = None,
        enabled: bool | None = None,
        description: str | None = None,
        chaos: dict[str, int] | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Endpoint:
        """Change only the given fields."""
        request = _update(id, url, format, events, enabled, description, chaos)
        return await self._t.mutate(self._rpc.update_endpoint, request, idempotency_key, timeout)

    async def send_test_event(
        self, id: str, *, idempotency_key: str | None = None, timeout: float | None = None
    ) -> DeliveryAttempt:
        """Sign and send a `ping` event to the endpoint now; returns the attempt."""
        request = SendTestEventRequest(endpoint_id=id)
        return await self._t.mutate(self._rpc.send_test_event, request, idempotency_key, timeout)

    async def attempts(
        self,
        *,
        endpoint_id: str | None = None,
        event_id: str | None = None,
        status: str | None = None,
        from_: datetime | None = None,
        to: datetime | None = None,
        trigger: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        timeout: float | None = None,
    ) -> AsyncPage[DeliveryAttempt]:
        """Delivery attempts, newest first."""
        make = _attempts_lister(endpoint_id, event_id, status, from_, to, limit, trigger)
        return await self._t.page(self._rpc.list_delivery_attempts, make, "attempts", offset, timeout)

    async def delete(self, id: str, *, idempotency_key: str | None = None, timeout: float | None = None) -> None:
        """Stop delivering to this endpoint and forget it."""
        request = DeleteEndpointRequest(id=id)
        await self._t.mutate(self._rpc.delete_endpoint, request, idempotency_key, timeout)

    async def rotate_secret(
        self,
        id: str,
        *,
        overlap_seconds: int | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> RotateSecretResponse:
        """A new secret; the previous one keeps signing for `overlap_seconds`."""
        request = RotateSecretRequest(id=id, overlap_seconds=overlap_seconds)
        return await self._t.mutate(self._rpc.rotate_secret, request, idempotency_key, timeout)


class AsyncEvents:
    """`client.webhooks.events` of `AsyncToffeePay`."""

    def __init__(self, transport: AsyncTransport, rpc: WebhookServiceClient) -> None:
        self._t = transport
        self._rpc = rpc

    async def list(
        self,
        *,
        types: Iterable[str] | None = None,
        from_: datetime | None = None,
        to: datetime | None = None,
        after: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        timeout: float | None = None,
    ) -> AsyncPage[Event]:
        """A page of events; with `after`, those that committed after it, oldest first."""
        return await self._t.page(
            self._rpc.list_events, _lister(types, from_, to, after, limit), "events", offset, timeout
        )

    async def resend(
        self,
        id: str,
        *,
        endpoint_id: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> int:
        """Deliver an event again; returns the deliveries scheduled."""
        request = ResendEventRequest(id=id, endpoint_id=endpoint_id)
        response = await self._t.mutate(self._rpc.resend_event, request, idempotency_key, timeout)
        return response.deliveries

    async def replay(
        self,
        *,
        from_: datetime,
        to: datetime | None = None,
        types: Iterable[str] | None = None,
        endpoint_id: str | None = None,
        only_failed: bool = False,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> int:
        """Deliver the events created since `from_` again; returns the deliveries scheduled."""
        request = _replay(from_, to, types, endpoint_id, only_failed)
        return (await self._t.mutate(self._rpc.replay_events, request, idempotency_key, timeout)).replayed


class AsyncWebhooks:
    """`client.webhooks` of `AsyncToffeePay`."""

    def __init__(self, transport: AsyncTransport) -> None:
        rpc = transport.client(WebhookServiceClient)
        self.endpoints = AsyncEndpoints(transport, rpc)
        self.events = AsyncEvents(transport, rpc)
