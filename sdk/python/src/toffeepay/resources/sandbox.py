"""Test helpers (sandbox keys only): pay, expire, dispute, refund with a chosen outcome."""

from __future__ import annotations

from .._proto.pay.v1.resources_pb import Dispute, Payment, Refund, Session
from .._proto.pay.v1.sandbox_connect import SandboxServiceClient, SandboxServiceClientSync
from .._proto.pay.v1.sandbox_pb import (
    CreateDisputeRequest,
    CreateRefundRequest,
    ExpireSessionRequest,
    PaySessionRequest,
)
from .._transport import AsyncTransport, SyncTransport
from ..types import PaymentMethod, SandboxOutcome


class Sandbox:
    """`client.sandbox`: pay_session, expire_session, create_dispute, create_refund. Live keys get `sandbox_only`."""

    def __init__(self, transport: SyncTransport) -> None:
        self._t = transport
        self._rpc = transport.client(SandboxServiceClientSync)

    def pay_session(
        self,
        session_id: str,
        *,
        method: PaymentMethod = "card",
        outcome: SandboxOutcome = "succeeded",
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Payment:
        """Pay a pending session; `outcome` is succeeded, insufficient_funds, card_declined or partial."""
        request = PaySessionRequest(session_id=session_id, method=method, outcome=outcome)
        return self._t.mutate(self._rpc.pay_session, request, idempotency_key, timeout)

    def expire_session(
        self, session_id: str, *, idempotency_key: str | None = None, timeout: float | None = None
    ) -> Session:
        """Move a pending session past its expiry now."""
        request = ExpireSessionRequest(session_id=session_id)
        return self._t.mutate(self._rpc.expire_session, request, idempotency_key, timeout)

    def create_dispute(
        self,
        payment_id: str,
        *,
        reason: str = "fraudulent",
        amount: int | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Dispute:
        """Report a dispute against a payment, as a processor would (amount defaults to the payment's)."""
        request = CreateDisputeRequest(payment_id=payment_id, reason=reason, amount=amount)
        return self._t.mutate(self._rpc.create_dispute, request, idempotency_key, timeout)

    def create_refund(
        self,
        payment_id: str,
        *,
        amount: int | None = None,
        reason: str | None = None,
        outcome: str = "succeeded",
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Refund:
        """Refund as `client.refunds.create` does, with the sandbox's answer chosen: succeeded or failed."""
        request = CreateRefundRequest(payment_id=payment_id, amount=amount, reason=reason, outcome=outcome)
        return self._t.mutate(self._rpc.create_refund, request, idempotency_key, timeout)


class AsyncSandbox:
    """`client.sandbox` of `AsyncToffeePay`."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport
        self._rpc = transport.client(SandboxServiceClient)

    async def pay_session(
        self,
        session_id: str,
        *,
        method: PaymentMethod = "card",
        outcome: SandboxOutcome = "succeeded",
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Payment:
        """Pay a pending session through the sandbox processor."""
        request = PaySessionRequest(session_id=session_id, method=method, outcome=outcome)
        return await self._t.mutate(self._rpc.pay_session, request, idempotency_key, timeout)

    async def expire_session(
        self, session_id: str, *, idempotency_key: str | None = None, timeout: float | None = None
    ) -> Session:
        """Move a pending session past its expiry now."""
        request = ExpireSessionRequest(session_id=session_id)
        return await self._t.mutate(self._rpc.expire_session, request, idempotency_key, timeout)

    async def create_dispute(
        self,
        payment_id: str,
        *,
        reason: str = "fraudulent",
        amount: int | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Dispute:
        """Report a dispute against a payment, as a processor would."""
        request = CreateDisputeRequest(payment_id=payment_id, reason=reason, amount=amount)
        return await self._t.mutate(self._rpc.create_dispute, request, idempotency_key, timeout)

    async def create_refund(
        self,
        payment_id: str,
        *,
        amount: int | None = None,
        reason: str | None = None,
        outcome: str = "succeeded",
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Refund:
        """Refund with the sandbox's answer chosen: succeeded or failed."""
        request = CreateRefundRequest(payment_id=payment_id, amount=amount, reason=reason, outcome=outcome)
        return await self._t.mutate(self._rpc.create_refund, request, idempotency_key, timeout)
