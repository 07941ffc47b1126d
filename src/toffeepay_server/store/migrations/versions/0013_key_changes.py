"""api_keys: PostgreSQL tells listening servers when a key is revoked or changed

Revision ID: key_changes
Revises: payments_user_index
"""

from alembic import op

revision = "key_changes"
down_revision = "payments_user_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite servers notice every commit through PRAGMA data_version
    op.execute(
        """
        CREATE FUNCTION toffeepay_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('toffeepay_keys', '');
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER api_keys_changed
        AFTER UPDATE OF revoked_at, key_hash, game_id, mode OR DELETE OR TRUNCATE ON api_keys
        FOR EACH STATEMENT EXECUTE FUNCTION toffeepay_keys_changed()
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS api_keys_changed ON api_keys")
    op.execute("DROP FUNCTION IF EXISTS toffeepay_keys_changed()")
