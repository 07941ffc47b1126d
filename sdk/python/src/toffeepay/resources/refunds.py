"""Refunds: money given back for a succeeded payment, in full or in part."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .._proto.pay.v1.payment_connect import PaymentServiceClient, PaymentServiceClientSync
from .._proto.pay.v1.payment_pb import GetRefundRequest, ListRefundsRequest, RefundPaymentRequest
from .._proto.pay.v1.resources_pb import Refund
from .._transport import AsyncTransport, SyncTransport
from ..pagination import AsyncPage, Page
from . import _params


def _lister(payment_id: str | None, from_: datetime | None, to: datetime | None, limit: int | None) -> Any:
    def make(offset: int) -> ListRefundsRequest:
        return ListRefundsRequest(
            payment_id=payment_id,
            from_=_params.timestamp(from_),
            to=_params.timestamp(to),
            limit=limit or 0,
            offset=offset,
        )

    return make


class Refunds:
    """`client.refunds`: create, get, list."""

    def __init__(self, transport: SyncTransport) -> None:
        self._t = transport
        self._rpc = transport.client(PaymentServiceClientSync)

    def create(
        self,
        payment_id: str,
        *,
        amount: int | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Refund:
        """Refund a succeeded payment: `amount` in minor units (default: all that is left), `reason`
        one of requested_by_customer (default), duplicate, fraudulent, other.

        The refund starts `pending`; `refund.succeeded` or `refund.failed` follows.
        """
        request = RefundPaymentRequest(payment_id=payment_id, amount=amount, reason=reason)
        return self._t.mutate(self._rpc.refund_payment, request, idempotency_key, timeout)

    def get(self, id: str, *, timeout: float | None = None) -> Refund:
        """One refund."""
        return self._t.call(self._rpc.get_refund, GetRefundRequest(id=id), timeout)

    def list(
        self,
        *,
        payment_id: str | None = None,
        from_: datetime | None = None,
        to: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
        timeout: float | None = None,
    ) -> Page[Refund]:
        """A page of refunds, newest first (100 per page unless `limit` says otherwise)."""
        return self._t.page(self._rpc.list_refunds, _lister(payment_id, from_, to, limit), "refunds", offset, timeout)


class AsyncRefunds:
    """`client.refunds` of `AsyncToffeePay`."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport
        self._rpc = transport.client(PaymentServiceClient)

    async def create(
        self,
        payment_id: str,
        *,
        amount: int | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Refund:
        """Refund a succeeded payment (see `Refunds.create`)."""
        request = RefundPaymentRequest(payment_id=payment_id, amount=amount, reason=reason)
        return await self._t.mutate(self._rpc.refund_payment, request, idempotency_key, timeout)

    async def get(self, id: str, *, timeout: float | None = None) -> Refund:
        """One refund."""
        return await self._t.call(self._rpc.get_refund, GetRefundRequest(id=id), timeout)

    async def list(
        self,
        *,
        payment_id: str | None = None,
        from_: datetime | None = None,
        to: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
        timeout: float | None = None,
    ) -> AsyncPage[Refund]:
        """A page of refunds, newest first."""
        return await self._t.page(
            self._rpc.list_refunds, _lister(payment_id, from_, to, limit), "refunds", offset, timeout
        )
