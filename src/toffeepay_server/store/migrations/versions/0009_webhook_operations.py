"""webhook operations: endpoint health and chaos, attempt details, delivery triggers, replays

Revision ID: webhook_operations
Revises: dashboard_indexes
"""

import sqlalchemy as sa
from alembic import op
from typeid import TypeID

revision = "webhook_operations"
down_revision = "dashboard_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.add_column(sa.Column("disabled_reason", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("failing_since", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("last_success_at", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("last_failure_at", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("failing_reported_at", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("chaos", sa.Text(), nullable=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("trigger", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("replay_id", sa.String(length=40), nullable=True))
        batch.create_index("ix_deliveries_replay", ["replay_id", "status"], unique=False)
    with op.batch_alter_table("delivery_attempts") as batch:
        batch.add_column(sa.Column("attempt_id", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("event_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("endpoint_id", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("attempt_number", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("trigger", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("next_attempt_at", sa.BigInteger(), nullable=True))
    # Attempts recorded before: what was sent where comes from their delivery; each gets a public id.
    op.execute(
        "UPDATE delivery_attempts SET "
        "event_id = (SELECT d.event_id FROM deliveries d WHERE d.id = delivery_attempts.delivery_id), "
        "endpoint_id = (SELECT d.endpoint_id FROM deliveries d WHERE d.id = delivery_attempts.delivery_id), "
        "trigger = 'scheduled'"
    )
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id FROM delivery_attempts ORDER BY delivery_id, id")).fetchall()
    for (attempt_pk,) in rows:
        public = str(TypeID(prefix="atmpt"))
        conn.execute(
            sa.text("UPDATE delivery_attempts SET attempt_id = :a WHERE id = :i"), {"a": public, "i": attempt_pk}
        )
    with op.batch_alter_table("delivery_attempts") as batch:
        batch.create_index("ix_attempts_public_id", ["attempt_id"], unique=True)
        batch.create_index("ix_attempts_endpoint", ["endpoint_id", "attempted_at"], unique=False)
        batch.create_index("ix_attempts_event", ["event_id", "attempted_at"], unique=False)
    op.create_table(
        "replays",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("game_id", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("endpoint_id", sa.String(length=40), nullable=False),
        sa.Column("types", sa.Text(), nullable=False),
        sa.Column("created_from", sa.BigInteger(), nullable=False),
        sa.Column("created_to", sa.BigInteger(), nullable=True),
        sa.Column("only_failed", sa.Boolean(), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("upto", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("fed", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("replays") as batch:
        batch.create_index("ix_replays_unfinished", ["finished_at", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_table("replays")
    with op.batch_alter_table("delivery_attempts") as batch:
        for index in ("ix_attempts_event", "ix_attempts_endpoint", "ix_attempts_public_id"):
            batch.drop_index(index)
        for column in ("next_attempt_at", "trigger", "attempt_number", "endpoint_id", "event_id", "attempt_id"):
            batch.drop_column(column)
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_replay")
        batch.drop_column("replay_id")
        batch.drop_column("trigger")
    with op.batch_alter_table("webhook_endpoints") as batch:
        for column in ("chaos", "failing_reported_at", "last_failure_at", "last_success_at", "failing_since"):
            batch.drop_column(column)
        batch.drop_column("disabled_reason")
