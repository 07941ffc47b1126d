"""idempotency claims carry their owner

Revision ID: idempotency_owner
Revises: fulfilment
"""

import sqlalchemy as sa
from alembic import op

revision = "idempotency_owner"
down_revision = "fulfilment"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_column("owner")
