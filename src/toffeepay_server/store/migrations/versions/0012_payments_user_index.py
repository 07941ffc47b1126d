"""payments: an index for one user's payments of a status, newest first

Revision ID: payments_user_index
Revises: session_counts
"""

from alembic import op

revision = "payments_user_index"
down_revision = "session_counts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_payments_scope_user", "payments", ["game_id", "mode", "status", "user_id", "created_at", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_payments_scope_user", table_name="payments")
