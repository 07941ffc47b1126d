"""indexes of the dashboard: sessions by status and fulfilment, revenue per day

Revision ID: dashboard_indexes
Revises: encrypt_secrets
"""

from alembic import op

revision = "dashboard_indexes"
down_revision = "encrypt_secrets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_sessions_scope_status", "sessions", ["game_id", "mode", "status", "created_at"], unique=False)
    op.create_index(
        "ix_sessions_scope_unfulfilled",
        "sessions",
        ["game_id", "mode", "status", "fulfilled_at", "created_at"],
        unique=False,
    )
    op.create_index(
        "ix_payments_scope_succeeded",
        "payments",
        ["game_id", "mode", "status", "succeeded_at", "currency", "amount"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_payments_scope_succeeded", table_name="payments")
    op.drop_index("ix_sessions_scope_unfulfilled", table_name="sessions")
    op.drop_index("ix_sessions_scope_status", table_name="sessions")
