"""payment counts per game, mode and status kept by triggers

Revision ID: payment_counts
Revises: key_changes

`payment_counts` holds how many payments each (game_id, mode, status) has, kept by triggers
on `payments` in the same transaction as every insert, status change and delete, as
`session_counts` is for sessions: ListPayments' total without a user or a time window reads
a few rows instead of counting every succeeded payment of the game. On PostgreSQL each
connection adds to its own shard (backend pid modulo SHARDS); SQLite has one shard (0).
On PostgreSQL the triggers run BEFORE each row is written, so a transaction locks its count
row as it writes the payment, before it takes a game's events lock (see migration
count_triggers_before_rows); payments are never inserted with `ON CONFLICT DO NOTHING`, which
such a trigger would count.
"""

import sqlalchemy as sa
from alembic import op

revision = "payment_counts"
down_revision = "key_changes"
branch_labels = None
depends_on = None

SHARDS = 16

_SQLITE_ADD = (
    "INSERT INTO payment_counts (game_id, mode, status, shard, n) VALUES (NEW.game_id, NEW.mode, NEW.status, 0, 1) "
    "ON CONFLICT (game_id, mode, status, shard) DO UPDATE SET n = n + 1;"
)
_SQLITE_REMOVE = (
    "UPDATE payment_counts SET n = n - 1 "
    "WHERE game_id = OLD.game_id AND mode = OLD.mode AND status = OLD.status AND shard = 0;"
)
_CHANGED = "OLD.status IS NOT NEW.status OR OLD.game_id IS NOT NEW.game_id OR OLD.mode IS NOT NEW.mode"

SQLITE_TRIGGERS = [
    f"CREATE TRIGGER payment_counts_insert AFTER INSERT ON payments BEGIN {_SQLITE_ADD} END",
    "CREATE TRIGGER payment_counts_update AFTER UPDATE OF game_id, mode, status ON payments "
    f"WHEN {_CHANGED} BEGIN {_SQLITE_REMOVE} {_SQLITE_ADD} END",
    f"CREATE TRIGGER payment_counts_delete AFTER DELETE ON payments BEGIN {_SQLITE_REMOVE} END",
]

POSTGRES_TRIGGERS = [
    f"""
    CREATE FUNCTION payment_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        my_shard integer := pg_backend_pid() % {SHARDS};
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            INSERT INTO payment_counts AS c (game_id, mode, status, shard, n)
            VALUES (OLD.game_id, OLD.mode, OLD.status, my_shard, -1)
            ON CONFLICT (game_id, mode, status, shard) DO UPDATE SET n = c.n - 1;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            INSERT INTO payment_counts AS c (game_id, mode, status, shard, n)
            VALUES (NEW.game_id, NEW.mode, NEW.status, my_shard, 1)
            ON CONFLICT (game_id, mode, status, shard) DO UPDATE SET n = c.n + 1;
            RETURN NEW;
        END IF;
        RETURN OLD;
    END
    $$
    """,
    "CREATE TRIGGER payment_counts_insert_delete BEFORE INSERT OR DELETE ON payments "
    "FOR EACH ROW EXECUTE FUNCTION payment_counts_track()",
    "CREATE TRIGGER payment_counts_update BEFORE UPDATE OF game_id, mode, status ON payments FOR EACH ROW "
    "WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.game_id IS DISTINCT FROM NEW.game_id "
    "OR OLD.mode IS DISTINCT FROM NEW.mode) EXECUTE FUNCTION payment_counts_track()",
]

BACKFILL = (
    "INSERT INTO payment_counts (game_id, mode, status, shard, n) "
    "SELECT game_id, mode, status, 0, count(*) FROM payments GROUP BY game_id, mode, status"
)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "payment_counts",
        sa.Column("game_id", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("game_id", "mode", "status", "shard"),
    )
    if postgres:
        # Writers wait until this commits: the counts start from every committed payment, and
        # every later write passes through the triggers.
        op.execute("LOCK TABLE payments IN SHARE ROW EXCLUSIVE MODE")
    for statement in POSTGRES_TRIGGERS if postgres else SQLITE_TRIGGERS:
        op.execute(statement)
    op.execute(BACKFILL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER payment_counts_update ON payments")
        op.execute("DROP TRIGGER payment_counts_insert_delete ON payments")
        op.execute("DROP FUNCTION payment_counts_track()")
    else:
        for name in ("payment_counts_insert", "payment_counts_update", "payment_counts_delete"):
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("payment_counts")
