"""return tokens: the installation's Ed25519 signing keys

Revision ID: return_tokens
Revises: idempotency_owner
"""

import sqlalchemy as sa
from alembic import op

revision = "return_tokens"
down_revision = "idempotency_owner"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("public_x", sa.String(length=64), nullable=False),
        sa.Column("private_key", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("retired_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("kid"),
        sa.UniqueConstraint("generation"),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
