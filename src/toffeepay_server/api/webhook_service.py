"""pay.v1.WebhookService: endpoints and the event log of the caller's game and mode."""

from __future__ import annotations

from typing import Any

from toffeepay._proto.pay.v1 import webhook_pb as pb

from ..domain import listing
from ..domain.errors import DomainError, Reason
from ..services import webhooks
from ..services.context import ServiceContext
from . import auth, convert


def _id(request: Any) -> str:
    if not request.id:
        raise DomainError(Reason.INVALID_ARGUMENT, "id is required")
    return request.id


class WebhookService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def create_endpoint(self, request: pb.CreateEndpointRequest, ctx: Any, /) -> pb.CreateEndpointResponse:
        principal = auth.principal()
        created, secret = await webhooks.create_endpoint(
            self.ctx,
            game_id=principal.game_id,
            mode=principal.mode,
            url=request.url,
            format=request.format,
            events=list(request.events),
            description=convert.optional(request, "description"),
            chaos=convert.chaos(request),
        )
        return pb.CreateEndpointResponse(endpoint=convert.endpoint(created), secret=secret)

    async def list_endpoints(self, request: pb.ListEndpointsRequest, ctx: Any, /) -> pb.ListEndpointsResponse:
        principal = auth.principal()
        found = await webhooks.list_endpoints(self.ctx, game_id=principal.game_id, mode=principal.mode)
        return pb.ListEndpointsResponse(
            endpoints=[convert.endpoint(e) for e in found], total=len(found), has_more=False
        )

    async def update_endpoint(self, request: pb.UpdateEndpointRequest, ctx: Any, /) -> pb.Endpoint:
        updated = await webhooks.update_endpoint(
            self.ctx,
            auth.principal(),
            _id(request),
            url=convert.optional(request, "url"),
            format=convert.optional(request, "format"),
            events=list(request.filter.events) if request.filter is not None else None,
            enabled=convert.optional(request, "enabled"),
            description=convert.optional(request, "description"),
            chaos=convert.chaos(request),
        )
        return convert.endpoint(updated)

    async def delete_endpoint(self, request: pb.DeleteEndpointRequest, ctx: Any, /) -> pb.DeleteEndpointResponse:
        await webhooks.delete_endpoint(self.ctx, _id(request), auth.principal())
        return pb.DeleteEndpointResponse()

    async def rotate_secret(self, request: pb.RotateSecretRequest, ctx: Any, /) -> pb.RotateSecretResponse:
        secret, previous_expires_at = await webhooks.rotate_secret(
            self.ctx, _id(request), auth.principal(), overlap_seconds=convert.optional(request, "overlap_seconds")
        )
        return pb.RotateSecretResponse(secret=secret, previous_secret_expires_at=convert.ts(previous_expires_at))

    async def list_events(self, request: pb.ListEventsRequest, ctx: Any, /) -> pb.ListEventsResponse:
        page = listing.page(
            request.limit, request.offset, convert.when(request, "from"), convert.when(request, "to"), default_limit=50
        )
        bodies, total = await webhooks.list_events(
            self.ctx, auth.principal(), types=list(request.types), after=convert.optional(request, "after"), page=page
        )
        return pb.ListEventsResponse(
            events=[convert.event(b) for b in bodies], total=total, has_more=page.offset + len(bodies) < total
        )

    async def resend_event(self, request: pb.ResendEventRequest, ctx: Any, /) -> pb.ResendEventResponse:
        scheduled = await webhooks.resend_event(
            self.ctx, auth.principal(), _id(request), convert.optional(request, "endpoint_id")
        )
        return pb.ResendEventResponse(deliveries=scheduled)

    async def list_delivery_attempts(
        self, request: pb.ListDeliveryAttemptsRequest, ctx: Any, /
    ) -> pb.ListDeliveryAttemptsResponse:
        page = listing.page(
            request.limit, request.offset, convert.when(request, "from"), convert.when(request, "to"), default_limit=50
        )
        found, total = await webhooks.list_attempts(
            self.ctx,
            auth.principal(),
            endpoint_id=convert.optional(request, "endpoint_id"),
            event_id=convert.optional(request, "event_id"),
            status=convert.optional(request, "status"),
            trigger=convert.optional(request, "trigger"),
            page=page,
        )
        return pb.ListDeliveryAttemptsResponse(
            attempts=[convert.attempt(a) for a in found], total=total, has_more=page.offset + len(found) < total
        )

    async def replay_events(self, request: pb.ReplayEventsRequest, ctx: Any, /) -> pb.ReplayEventsResponse:
        replay = await webhooks.replay_events(
            self.ctx,
            auth.principal(),
            created_from=convert.when(request, "from"),
            created_to=convert.when(request, "to"),
            types=list(request.types),
            endpoint_id=convert.optional(request, "endpoint_id"),
            only_failed=request.only_failed,
        )
        return pb.ReplayEventsResponse(replayed=replay.replayed)

    async def send_test_event(self, request: pb.SendTestEventRequest, ctx: Any, /) -> pb.DeliveryAttempt:
        if not request.endpoint_id:
            raise DomainError(Reason.INVALID_ARGUMENT, "endpoint_id is required")
        return convert.attempt(await webhooks.send_test_event(self.ctx, auth.principal(), request.endpoint_id))
