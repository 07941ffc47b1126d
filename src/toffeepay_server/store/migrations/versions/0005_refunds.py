"""refunds: the refunds table, and what a payment had refunded

Revision ID: refunds
Revises: return_tokens
"""

import sqlalchemy as sa
from alembic import op

revision = "refunds"
down_revision = "return_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "refunds",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("session_id", sa.String(length=40), nullable=False),
        sa.Column("game_id", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("processor", sa.String(length=16), nullable=False),
        sa.Column("processor_ref", sa.String(length=255), nullable=True),
        sa.Column("failure_code", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("succeeded_at", sa.BigInteger(), nullable=True),
        sa.Column("failed_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("processor", "processor_ref", name="uq_refunds_processor_ref"),
    )
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.create_index("ix_refunds_scope_created", ["game_id", "mode", "created_at"], unique=False)
        batch_op.create_index("ix_refunds_payment", ["payment_id", "status"], unique=False)
        batch_op.create_index("ix_refunds_pending", ["processor", "status"], unique=False)
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("amount_refunded", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("refunded_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_column("refunded_at")
        batch_op.drop_column("amount_refunded")
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_index("ix_refunds_pending")
        batch_op.drop_index("ix_refunds_payment")
        batch_op.drop_index("ix_refunds_scope_created")
    op.drop_table("refunds")
