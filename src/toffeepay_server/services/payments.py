"""Reading payments and disputes."""

from __future__ import annotations

from ..domain.errors import DomainError, Reason
from ..domain.keys import Principal
from ..domain.listing import Page
from ..domain.payments import Dispute, Payment
from ..store import payments as store
from .context import ServiceContext


async def get_payment(ctx: ServiceContext, principal: Principal, payment_id: str) -> Payment:
    async with ctx.db.read() as conn:
        payment = await store.get_payment(conn, payment_id, game_id=principal.game_id, mode=principal.mode.value)
    if payment is None:
        raise DomainError(Reason.NOT_FOUND, f"no payment {payment_id!r}")
    return payment


async def list_payments(ctx: ServiceContext, principal: Principal, *, user_id: str | None, page: Page) -> tuple[list[Payment], int]:
    async with ctx.db.read() as conn:
        return await store.list_succeeded_payments(
            conn, game_id=principal.game_id, mode=principal.mode.value, user_id=user_id,
            created_from=page.created_from, created_to=page.created_to, limit=page.limit, offset=page.offset,
        )


async def list_disputes(ctx: ServiceContext, principal: Principal, *, payment_id: str | None, page: Page) -> tuple[list[Dispute], int]:
    async with ctx.db.read() as conn:
        return await store.list_disputes(
            conn, game_id=principal.game_id, mode=principal.mode.value, payment_id=payment_id,
            created_from=page.created_from, created_to=page.created_to, limit=page.limit, offset=page.offset,
        )
