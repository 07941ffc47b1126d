"""secrets encrypted at rest with the installation key

Webhook secrets, installation secrets (the payment page's and the dashboard's CSRF key),
return-token signing keys and stored idempotent answers (which may hold a secret shown
once) are sealed with AES-GCM; rows written in clear before are sealed here.

Revision ID: encrypt_secrets
Revises: dashboard
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import context, op

from toffeepay_server.store.secret_box import BYTES_PREFIX, PREFIX, Keyring, SecretBox

revision = "encrypt_secrets"
down_revision = "dashboard"
branch_labels = None
depends_on = None

_TEXT = [
    ("webhook_endpoints", "id", "secret"),
    ("webhook_endpoints", "id", "previous_secret"),
    ("installation_secrets", "name", "value"),
    ("signing_keys", "kid", "private_key"),
]


class _LazyBox:
    """The key is read (or the key file created) only when a row needs it."""

    def __init__(self) -> None:
        self._box: SecretBox | None = None

    def __call__(self) -> SecretBox:
        if self._box is None:
            keyring = context.config.attributes.get("toffeepay_keyring") or Keyring.from_env()
            self._box = keyring.box()
        return self._box


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # Pages freed below (the rewritten tables, the replaced values) are zeroed, not left
        # holding the secrets in clear.
        op.execute("PRAGMA secure_delete = ON")
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.alter_column("secret", type_=sa.Text(), existing_type=sa.String(length=80), existing_nullable=False)
        batch.alter_column("previous_secret", type_=sa.Text(), existing_type=sa.String(length=80))
    with op.batch_alter_table("installation_secrets") as batch:
        batch.alter_column("value", type_=sa.Text(), existing_type=sa.String(length=128), existing_nullable=False)
    bind = op.get_bind()
    box = _LazyBox()
    sealed_any = False
    for table, key, column in _TEXT:
        rows = bind.execute(sa.text(f"SELECT {key}, {column} FROM {table} WHERE {column} IS NOT NULL")).all()
        for row_key, value in rows:
            if value.startswith(PREFIX):
                continue
            sealed = box().seal(value, f"{table}.{column}")
            bind.execute(sa.text(f"UPDATE {table} SET {column} = :v WHERE {key} = :k"), {"v": sealed, "k": row_key})
            sealed_any = True
    rows = bind.execute(
        sa.text("SELECT api_key_id, key, response_body FROM idempotency_keys WHERE response_body IS NOT NULL")
    ).all()
    for api_key_id, key, body in rows:
        if bytes(body).startswith(BYTES_PREFIX):
            continue
        bind.execute(
            sa.text("UPDATE idempotency_keys SET response_body = :b WHERE api_key_id = :a AND key = :k"),
            {"b": box().seal_bytes(bytes(body), "idempotency_keys.response_body"), "a": api_key_id, "k": key},
        )
        sealed_any = True
    if sealed_any:
        # A canary the server opens at start, so it refuses to run with another key.
        now = datetime.now(UTC)
        micros = int(now.timestamp()) * 1_000_000 + now.microsecond
        exists = bind.execute(sa.text("SELECT 1 FROM installation_secrets WHERE name = 'key_check'")).first()
        if exists is None:
            bind.execute(
                sa.text("INSERT INTO installation_secrets (name, value, created_at) VALUES ('key_check', :v, :t)"),
                {"v": box().seal("key_check", "installation_secrets.value"), "t": micros},
            )


def downgrade() -> None:
    bind = op.get_bind()
    box = _LazyBox()
    for table, key, column in _TEXT:
        rows = bind.execute(sa.text(f"SELECT {key}, {column} FROM {table} WHERE {column} IS NOT NULL")).all()
        for row_key, value in rows:
            if value.startswith(PREFIX):
                plain = box().open(value, f"{table}.{column}")
                bind.execute(sa.text(f"UPDATE {table} SET {column} = :v WHERE {key} = :k"), {"v": plain, "k": row_key})
    rows = bind.execute(
        sa.text("SELECT api_key_id, key, response_body FROM idempotency_keys WHERE response_body IS NOT NULL")
    ).all()
    for api_key_id, key, body in rows:
        if bytes(body).startswith(BYTES_PREFIX):
            bind.execute(
                sa.text("UPDATE idempotency_keys SET response_body = :b WHERE api_key_id = :a AND key = :k"),
                {"b": box().open_bytes(bytes(body), "idempotency_keys.response_body"), "a": api_key_id, "k": key},
            )
    with op.batch_alter_table("installation_secrets") as batch:
        batch.alter_column("value", type_=sa.String(length=128), existing_type=sa.Text(), existing_nullable=False)
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.alter_column("secret", type_=sa.String(length=80), existing_type=sa.Text(), existing_nullable=False)
        batch.alter_column("previous_secret", type_=sa.String(length=80), existing_type=sa.Text())
