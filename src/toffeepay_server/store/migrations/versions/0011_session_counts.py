"""session counts per game, mode and status kept by triggers; list indexes that end in the page order

Revision ID: session_counts
Revises: dashboard_reveal

`session_counts` holds how many sessions each (game_id, mode, status) has. Triggers on
`sessions` keep it in the same transaction as every insert, status change and delete, so
no write path can forget it and it commits with the change or not at all. On PostgreSQL
each connection adds to its own shard of a status's count (its backend pid modulo
SHARDS), so concurrent CreateSession transactions of one game do not queue on one row;
readers sum the shards. SQLite has one writer at a time: one shard (0).

The list indexes end in (created_at, id), the order of every list, so a first page reads
only its own rows; the user index carries the status, so a user's count by status reads the
index alone; the expiry index carries the scope, so a game's lapsed sessions are counted
from it.
"""

import sqlalchemy as sa
from alembic import op

revision = "session_counts"
down_revision = "dashboard_reveal"
branch_labels = None
depends_on = None

SHARDS = 16

_SQLITE_ADD = (
    "INSERT INTO session_counts (game_id, mode, status, shard, n) VALUES (NEW.game_id, NEW.mode, NEW.status, 0, 1) "
    "ON CONFLICT (game_id, mode, status, shard) DO UPDATE SET n = n + 1;"
)
_SQLITE_REMOVE = (
    "UPDATE session_counts SET n = n - 1 "
    "WHERE game_id = OLD.game_id AND mode = OLD.mode AND status = OLD.status AND shard = 0;"
)
_CHANGED = "OLD.status IS NOT NEW.status OR OLD.game_id IS NOT NEW.game_id OR OLD.mode IS NOT NEW.mode"

SQLITE_TRIGGERS = [
    f"CREATE TRIGGER session_counts_insert AFTER INSERT ON sessions BEGIN {_SQLITE_ADD} END",
    "CREATE TRIGGER session_counts_update AFTER UPDATE OF game_id, mode, status ON sessions "
    f"WHEN {_CHANGED} BEGIN {_SQLITE_REMOVE} {_SQLITE_ADD} END",
    f"CREATE TRIGGER session_counts_delete AFTER DELETE ON sessions BEGIN {_SQLITE_REMOVE} END",
]

POSTGRES_TRIGGERS = [
    f"""
    CREATE FUNCTION session_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        my_shard integer := pg_backend_pid() % {SHARDS};
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            INSERT INTO session_counts AS c (game_id, mode, status, shard, n)
            VALUES (OLD.game_id, OLD.mode, OLD.status, my_shard, -1)
            ON CONFLICT (game_id, mode, status, shard) DO UPDATE SET n = c.n - 1;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            INSERT INTO session_counts AS c (game_id, mode, status, shard, n)
            VALUES (NEW.game_id, NEW.mode, NEW.status, my_shard, 1)
            ON CONFLICT (game_id, mode, status, shard) DO UPDATE SET n = c.n + 1;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    "CREATE TRIGGER session_counts_insert_delete AFTER INSERT OR DELETE ON sessions "
    "FOR EACH ROW EXECUTE FUNCTION session_counts_track()",
    "CREATE TRIGGER session_counts_update AFTER UPDATE OF game_id, mode, status ON sessions FOR EACH ROW "
    "WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.game_id IS DISTINCT FROM NEW.game_id "
    "OR OLD.mode IS DISTINCT FROM NEW.mode) EXECUTE FUNCTION session_counts_track()",
]

BACKFILL = (
    "INSERT INTO session_counts (game_id, mode, status, shard, n) "
    "SELECT game_id, mode, status, 0, count(*) FROM sessions GROUP BY game_id, mode, status"
)

# (name, old columns, new columns)
INDEXES = [
    ("ix_sessions_scope_created", ["game_id", "mode", "created_at"], ["game_id", "mode", "created_at", "id"]),
    (
        "ix_sessions_scope_user",
        ["game_id", "mode", "user_id", "created_at"],
        ["game_id", "mode", "user_id", "created_at", "id", "status"],
    ),
    (
        "ix_sessions_scope_status",
        ["game_id", "mode", "status", "created_at"],
        ["game_id", "mode", "status", "created_at", "id"],
    ),
    ("ix_sessions_pending_expiry", ["status", "expires_at"], ["status", "expires_at", "game_id", "mode"]),
]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "session_counts",
        sa.Column("game_id", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("game_id", "mode", "status", "shard"),
    )
    if postgres:
        # Writers wait until this commits: the counts start from every committed session, and
        # every later write passes through the triggers.
        op.execute("LOCK TABLE sessions IN SHARE ROW EXCLUSIVE MODE")
    for statement in POSTGRES_TRIGGERS if postgres else SQLITE_TRIGGERS:
        op.execute(statement)
    op.execute(BACKFILL)
    for name, _old, new in INDEXES:
        op.drop_index(name, table_name="sessions")
        op.create_index(name, "sessions", new, unique=False)


def downgrade() -> None:
    for name, old, _new in INDEXES:
        op.drop_index(name, table_name="sessions")
        op.create_index(name, "sessions", old, unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER session_counts_update ON sessions")
        op.execute("DROP TRIGGER session_counts_insert_delete ON sessions")
        op.execute("DROP FUNCTION session_counts_track()")
    else:
        for name in ("session_counts_insert", "session_counts_update", "session_counts_delete"):
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("session_counts")
