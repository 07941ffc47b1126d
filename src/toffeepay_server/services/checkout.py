"""What the payment page shows: a session, as a reader sees it now, and its payment."""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.errors import DomainError, Reason
from ..domain.payments import Payment
from ..domain.sessions import Session
from ..store import payments as payment_store
from ..store import sessions as store
from .context import ServiceContext


@dataclass(frozen=True, slots=True)
class Checkout:
    session: Session
    payment: Payment | None


async def load(ctx: ServiceContext, session_id: str, *, with_image: bool = False) -> Checkout:
    """The session behind a payment page URL (any game, any mode: the id is the capability)."""
    async with ctx.db.read() as conn:
        session = await store.get_session(conn, session_id, with_image=with_image)
        if session is None:
            raise DomainError(Reason.NOT_FOUND, f"no session {session_id!r}")
        payment = await payment_store.get_payment(conn, session.payment_id) if session.payment_id else None
    return Checkout(session.as_seen(ctx.clock()), payment)
