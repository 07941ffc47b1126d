"""Payment sessions: one per purchase; create it, send the player to its `url`, then ask."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .._proto.pay.v1.payment_connect import PaymentServiceClient, PaymentServiceClientSync
from .._proto.pay.v1.payment_pb import (
    CancelSessionRequest,
    CreateSessionRequest,
    CreateSessionResponse,
    FulfillSessionRequest,
    GetSessionRequest,
    GetSessionStatusRequest,
    GetSessionStatusResponse,
    ListSessionsRequest,
)
from .._proto.pay.v1.resources_pb import Item, Session
from .._transport import AsyncTransport, SyncTransport
from ..pagination import AsyncPage, Page
from ..types import ItemParams, SessionStatus
from . import _params


def _create(
    game_id: str,
    user_id: str,
    item: Item | ItemParams,
    return_url: str | None,
    metadata: Mapping[str, str] | None,
    expires_at: datetime | None,
) -> CreateSessionRequest:
    return CreateSessionRequest(
        game_id=game_id,
        user_id=user_id,
        item=_params.item(item),
        return_url=return_url,
        metadata=_params.text_map(metadata, "metadata"),
        expires_at=_params.timestamp(expires_at, "expires_at"),
    )


def _lister(
    game_id: str | None,
    user_id: str | None,
    status: SessionStatus | None,
    from_: datetime | None,
    to: datetime | None,
    limit: int | None,
    fulfilled: bool | None,
) -> Any:
    def make(offset: int) -> ListSessionsRequest:
        return ListSessionsRequest(
            game_id=game_id,
            user_id=user_id,
            status=status,
            fulfilled=fulfilled,
            from_=_params.timestamp(from_, "from_"),
            to=_params.timestamp(to, "to"),
            limit=limit or 0,
            offset=offset,
        )

    return make


class Sessions:
    """`client.sessions`: create, get, status, cancel, fulfill, list."""

    def __init__(self, transport: SyncTransport) -> None:
        self._t = transport
        self._rpc = transport.client(PaymentServiceClientSync)

    def create(
        self,
        *,
        game_id: str,
        user_id: str,
        item: Item | ItemParams,
        return_url: str | None = None,
        metadata: Mapping[str, str] | None = None,
        expires_at: datetime | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> CreateSessionResponse:
        """Create a session; returns its `id` and the payment page `url`.

        `item` is {"title", "price" (minor units), "currency", "image"?}. `expires_at`
        may ask for 2 minutes to 24 hours (default 30 minutes).
        """
        request = _create(game_id, user_id, item, return_url, metadata, expires_at)
        return self._t.mutate(self._rpc.create_session, request, idempotency_key, timeout)

    def get(self, id: str, *, timeout: float | None = None) -> Session:
        """The whole session."""
        return self._t.call(self._rpc.get_session, GetSessionRequest(id=id), timeout)

    def status(self, id: str, *, timeout: float | None = None) -> GetSessionStatusResponse:
        """Only the status: pending, paid, failed, cancelled or expired."""
        return self._t.call(self._rpc.get_session_status, GetSessionStatusRequest(id=id), timeout)

    def cancel(self, id: str, *, idempotency_key: str | None = None, timeout: float | None = None) -> None:
        """Cancel a pending session; its payment page stops taking payment at once."""
        self._t.mutate(self._rpc.cancel_session, CancelSessionRequest(id=id), idempotency_key, timeout)

    def fulfill(self, id: str, *, idempotency_key: str | None = None, timeout: float | None = None) -> Session:
        """Report that the game granted a paid session's purchase; returns the session with `fulfilled_at`.

        Call it after granting: a second call returns the same session. A session that is not
        paid raises `FailedPreconditionError` (`session_not_paid`).
        """
        request = FulfillSessionRequest(id=id)
        return self._t.mutate(self._rpc.fulfill_session, request, idempotency_key, timeout)

    def list(
        self,
        *,
        game_id: str | None = None,
        user_id: str | None = None,
        status: SessionStatus | None = None,
        from_: datetime | None = None,
        to: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
        fulfilled: bool | None = None,
        timeout: float | None = None,
    ) -> Page[Session]:
        """A page of sessions, newest first; `from_`/`to` bound `created_at` (inclusive).

        `fulfilled=False`: paid sessions the game has not fulfilled; `True`: fulfilled ones.
        """
        make = _lister(game_id, user_id, status, from_, to, limit, fulfilled)
        return self._t.page(self._rpc.list_sessions, make, "sessions", offset, timeout)


class AsyncSessions:
    """`client.sessions` of `AsyncToffeePay`: the same methods, awaitable."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport
        self._rpc = transport.client(PaymentServiceClient)

    async def create(
        self,
        *,
        game_id: str,
        user_id: str,
        item: Item | ItemParams,
        return_url: str | None = None,
        metadata: Mapping[str, str] | None = None,
        expires_at: datetime | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> CreateSessionResponse:
        """Create a session; returns its `id` and the payment page `url`."""
        request = _create(game_id, user_id, item, return_url, metadata, expires_at)
        return await self._t.mutate(self._rpc.create_session, request, idempotency_key, timeout)

    async def get(self, id: str, *, timeout: float | None = None) -> Session:
        """The whole session."""
        return await self._t.call(self._rpc.get_session, GetSessionRequest(id=id), timeout)

    async def status(self, id: str, *, timeout: float | None = None) -> GetSessionStatusResponse:
        """Only the status: pending, paid, failed, cancelled or expired."""
        return await self._t.call(self._rpc.get_session_status, GetSessionStatusRequest(id=id), timeout)

    async def cancel(self, id: str, *, idempotency_key: str | None = None, timeout: float | None = None) -> None:
        """Cancel a pending session."""
        await self._t.mutate(self._rpc.cancel_session, CancelSessionRequest(id=id), idempotency_key, timeout)

    async def fulfill(self, id: str, *, idempotency_key: str | None = None, timeout: float | None = None) -> Session:
        """Report that the game granted a paid session's purchase; returns the session with `fulfilled_at`."""
        request = FulfillSessionRequest(id=id)
        return await self._t.mutate(self._rpc.fulfill_session, request, idempotency_key, timeout)

    async def list(
        self,
        *,
        game_id: str | None = None,
        user_id: str | None = None,
        status: SessionStatus | None = None,
        from_: datetime | None = None,
        to: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
        fulfilled: bool | None = None,
        timeout: float | None = None,
    ) -> AsyncPage[Session]:
        """A page of sessions, newest first."""
        make = _lister(game_id, user_id, status, from_, to, limit, fulfilled)
        return await self._t.page(self._rpc.list_sessions, make, "sessions", offset, timeout)
