"""dashboard: a secret to show once after a redirect (new webhook secret or API key)

Revision ID: dashboard_reveal
Revises: webhook_operations
"""

import sqlalchemy as sa
from alembic import op

revision = "dashboard_reveal"
down_revision = "webhook_operations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dashboard_sessions") as batch:
        batch.add_column(sa.Column("reveal", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dashboard_sessions") as batch:
        batch.drop_column("reveal")
