"""Disputes (chargebacks) reported by the processor."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .._proto.pay.v1.payment_connect import PaymentServiceClient, PaymentServiceClientSync
from .._proto.pay.v1.payment_pb import ListDisputesRequest
from .._proto.pay.v1.resources_pb import Dispute
from .._transport import AsyncTransport, SyncTransport
from ..pagination import AsyncPage, Page
from . import _params


def _lister(payment_id: str | None, from_: datetime | None, to: datetime | None, limit: int | None) -> Any:
    def make(offset: int) -> ListDisputesRequest:
        return ListDisputesRequest(
            payment_id=payment_id,
            from_=_params.timestamp(from_, "from_"),
            to=_params.timestamp(to, "to"),
            limit=limit or 0,
            offset=offset,
        )

    return make


class Disputes:
    """`client.disputes`: list."""

    def __init__(self, transport: SyncTransport) -> None:
        self._t = transport
        self._rpc = transport.client(PaymentServiceClientSync)

    def list(
        self,
        *,
        payment_id: str | None = None,
        from_: datetime | None = None,
        to: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
        timeout: float | None = None,
    ) -> Page[Dispute]:
        """A page of disputes, newest first (100 per page unless `limit` says otherwise)."""
        return self._t.page(self._rpc.list_disputes, _lister(payment_id, from_, to, limit), "disputes", offset, timeout)


class AsyncDisputes:
    """`client.disputes` of `AsyncToffeePay`."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport
        self._rpc = transport.client(PaymentServiceClient)

    async def list(
        self,
        *,
        payment_id: str | None = None,
        from_: datetime | None = None,
        to: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
        timeout: float | None = None,
    ) -> AsyncPage[Dispute]:
        """A page of disputes, newest first."""
        return await self._t.page(
            self._rpc.list_disputes, _lister(payment_id, from_, to, limit), "disputes", offset, timeout
        )
