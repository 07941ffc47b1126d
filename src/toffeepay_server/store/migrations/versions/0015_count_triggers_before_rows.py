"""PostgreSQL: session counts kept by BEFORE triggers, so a write locks its count before the events lock

Revision ID: count_triggers_before_rows
Revises: payment_counts

A new session is written with its event in one statement (the row, then the per-game events
lock, then the event). AFTER row triggers run at the end of a statement, so that statement
updated its count row after taking the events lock, while a transaction that changed a
session's status (its count updated at the end of the UPDATE) waited for the events lock
holding its count row: a deadlock when the two shared a count shard. BEFORE row triggers run
as each row is written, so every writer now takes its count row first and the events lock
last. SQLite, one writer at a time, keeps its triggers.

A BEFORE trigger also counts a row that an `ON CONFLICT DO NOTHING` then leaves out, so
sessions are never inserted that way.
"""

from alembic import op

revision = "count_triggers_before_rows"
down_revision = "payment_counts"
branch_labels = None
depends_on = None

SHARDS = 16


def _triggers(timing: str) -> list[str]:
    """session_counts' function and triggers, run BEFORE or AFTER each row is written. A
    BEFORE trigger returns the row to write (NEW, or OLD for a delete); an AFTER one NULL."""
    returns = (
        "RETURN NEW;\n        END IF;\n        RETURN OLD;" if timing == "BEFORE" else "END IF;\n        RETURN NULL;"
    )
    return [
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
        {returns}
    END
    $$
    """,
        f"CREATE TRIGGER session_counts_insert_delete {timing} INSERT OR DELETE ON sessions "
        "FOR EACH ROW EXECUTE FUNCTION session_counts_track()",
        f"CREATE TRIGGER session_counts_update {timing} UPDATE OF game_id, mode, status ON sessions FOR EACH ROW "
        "WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.game_id IS DISTINCT FROM NEW.game_id "
        "OR OLD.mode IS DISTINCT FROM NEW.mode) EXECUTE FUNCTION session_counts_track()",
    ]


POSTGRES_TRIGGERS = _triggers("BEFORE")

_DROP = [
    "DROP TRIGGER session_counts_update ON sessions",
    "DROP TRIGGER session_counts_insert_delete ON sessions",
    "DROP FUNCTION session_counts_track()",
]


def _replace(triggers: list[str]) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # One transaction: no session is written between the two sets of triggers.
    op.execute("LOCK TABLE sessions IN SHARE ROW EXCLUSIVE MODE")
    for statement in _DROP + triggers:
        op.execute(statement)


def upgrade() -> None:
    _replace(POSTGRES_TRIGGERS)


def downgrade() -> None:
    _replace(_triggers("AFTER"))
