"""Payments: the attempt to pay a session (`get`), and the succeeded ones (`list`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .._proto.pay.v1.payment_connect import PaymentServiceClient, PaymentServiceClientSync
from .._proto.pay.v1.payment_pb import GetPaymentRequest, ListPaymentsRequest
from .._proto.pay.v1.resources_pb import Payment
from .._transport import AsyncTransport, SyncTransport
from ..pagination import AsyncPage, Page
from . import _params


def _lister(
    game_id: str | None, user_id: str | None, from_: datetime | None, to: datetime | None, limit: int | None
) -> Any:
    def make(offset: int) -> ListPaymentsRequest:
        return ListPaymentsRequest(
            game_id=game_id,
            user_id=user_id,
            from_=_params.timestamp(from_, "from_"),
            to=_params.timestamp(to, "to"),
            limit=limit or 0,
            offset=offset,
        )

    return make


class Payments:
    """`client.payments`: get, list."""

    def __init__(self, transport: SyncTransport) -> None:
        self._t = transport
        self._rpc = transport.client(PaymentServiceClientSync)

    def get(self, id: str, *, timeout: float | None = None) -> Payment:
        """One payment, whatever its status."""
        return self._t.call(self._rpc.get_payment, GetPaymentRequest(id=id), timeout)

    def list(
        self,
        *,
        game_id: str | None = None,
        user_id: str | None = None,
        from_: datetime | None = None,
        to: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
        timeout: float | None = None,
    ) -> Page[Payment]:
        """A page of succeeded payments, newest first."""
        make = _lister(game_id, user_id, from_, to, limit)
        return self._t.page(self._rpc.list_payments, make, "payments", offset, timeout)


class AsyncPayments:
    """`client.payments` of `AsyncToffeePay`."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport
        self._rpc = transport.client(PaymentServiceClient)

    async def get(self, id: str, *, timeout: float | None = None) -> Payment:
        """One payment, whatever its status."""
        return await self._t.call(self._rpc.get_payment, GetPaymentRequest(id=id), timeout)

    async def list(
        self,
        *,
        game_id: str | None = None,
        user_id: str | None = None,
        from_: datetime | None = None,
        to: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
        timeout: float | None = None,
    ) -> AsyncPage[Payment]:
        """A page of succeeded payments, newest first."""
        make = _lister(game_id, user_id, from_, to, limit)
        return await self._t.page(self._rpc.list_payments, make, "payments", offset, timeout)
