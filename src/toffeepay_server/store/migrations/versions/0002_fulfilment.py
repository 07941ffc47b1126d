"""fulfilment: when the game granted a paid session, and when it was reported overdue

Revision ID: fulfilment
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "fulfilment"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fulfilled_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("fulfillment_overdue_at", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            "ix_sessions_fulfilment_due",
            ["status", "fulfilled_at", "fulfillment_overdue_at", "paid_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_fulfilment_due")
        batch_op.drop_column("fulfillment_overdue_at")
        batch_op.drop_column("fulfilled_at")
