"""Webhook endpoints and the event log of the key's game and mode."""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .._proto.pay.v1.webhook_connect import WebhookServiceClient, WebhookServiceClientSync
from .._proto.pay.v1.webhook_pb import (
    CreateEndpointRequest,
    CreateEndpointResponse,
    DeleteEndpointRequest,
    Endpoint,
    Event,
    EventFilter,
    ListEndpointsRequest,
    ListEventsRequest,
    ResendEventRequest,
    RotateSecretRequest,
    RotateSecretResponse,
    UpdateEndpointRequest,
)
from .._transport import AsyncTransport, SyncTransport
from ..pagination import AsyncPage, Page
from ..types import EndpointFormat
from . import _params


def event_to_dict(event: Event) -> dict[str, Any]:
    """An event as its JSON webhook body carries it: {"id", "event", "timestamp", "mode", "data"}."""
    body: dict[str, Any] = {"id": event.id, "event": event.event}
    if event.timestamp is not None:
        body["timestamp"] = json.loads(event.timestamp.to_json())
    body["mode"] = event.mode
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


def _create(
    url: str, format: EndpointFormat, events: Iterable[str] | None, description: str | None
) -> CreateEndpointRequest:
    return CreateEndpointRequest(url=url, format=format, events=list(events or ()), description=description)


def _update(
    id: str,
    url: str | None,
    format: EndpointFormat | None,
    events: Iterable[str] | None,
    enabled: bool | None,
    description: str | None,
) -> UpdateEndpointRequest:
    return UpdateEndpointRequest(
        id=id,
        url=url,
        format=format,
        filter=None if events is None else EventFilter(events=list(events)),
        enabled=enabled,
        description=description,
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
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> CreateEndpointResponse:
        """Register an endpoint; the response's `secret` (whsec_...) is shown only this once.

        `format` is json or legacy_form; `events` limits the event types sent (all when empty).
        """
        request = _create(url, format, events, description)
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
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Endpoint:
        """Change only the given fields; `events=[]` means every event type."""
        request = _update(id, url, format, events, enabled, description)
        return self._t.mutate(self._rpc.update_endpoint, request, idempotency_key, timeout)

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
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> CreateEndpointResponse:
        """Register an endpoint; the response's `secret` is shown only this once."""
        request = _create(url, format, events, description)
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
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Endpoint:
        """Change only the given fields."""
        request = _update(id, url, format, events, enabled, description)
        return await self._t.mutate(self._rpc.update_endpoint, request, idempotency_key, timeout)

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


class AsyncWebhooks:
    """`client.webhooks` of `AsyncToffeePay`."""

    def __init__(self, transport: AsyncTransport) -> None:
        rpc = transport.client(WebhookServiceClient)
        self.endpoints = AsyncEndpoints(transport, rpc)
        self.events = AsyncEvents(transport, rpc)
