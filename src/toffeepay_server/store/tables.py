"""The schema. Migrations in store/migrations/ create exactly these tables."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from .types import Instant, JsonText, Sealed, SealedBytes

metadata = MetaData()

games = Table(
    "games",
    metadata,
    Column("game_id", String(64), primary_key=True),
    Column("created_at", Instant, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("game_id", String(64), ForeignKey("games.game_id"), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("display_prefix", String(20), nullable=False),
    Column("created_at", Instant, nullable=False),
    Column("revoked_at", Instant),
    # Recorded at most once a minute per key, for the dashboard.
    Column("last_used_at", Instant),
    Index("ix_api_keys_game_mode", "game_id", "mode"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("game_id", String(64), ForeignKey("games.game_id"), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("title", String(200), nullable=False),
    Column("price", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("image", Text),
    Column("return_url", Text),
    Column("metadata", JsonText, nullable=False),
    Column("payment_id", String(40)),
    Column("event_sequence", Integer, nullable=False),
    Column("expires_at", Instant, nullable=False),
    Column("created_at", Instant, nullable=False),
    Column("paid_at", Instant),
    Column("failed_at", Instant),
    Column("cancelled_at", Instant),
    Column("expired_at", Instant),
    Column("fulfilled_at", Instant),
    Column("fulfillment_overdue_at", Instant),
    # The lists, newest first: each ends in the page order (created_at, id), so a first page reads
    # only its own rows. A user's carries the status: counting a user's sessions by status reads it alone.
    Index("ix_sessions_scope_created", "game_id", "mode", "created_at", "id"),
    Index("ix_sessions_scope_user", "game_id", "mode", "user_id", "created_at", "id", "status"),
    Index("ix_sessions_scope_status", "game_id", "mode", "status", "created_at", "id"),
    # The dashboard's paid sessions not fulfilled.
    Index("ix_sessions_scope_unfulfilled", "game_id", "mode", "status", "fulfilled_at", "created_at"),
    # Lapsed sessions: the sweeper's, and a game's count of those not swept yet.
    Index("ix_sessions_pending_expiry", "status", "expires_at", "game_id", "mode"),
    # Paid sessions the game has not fulfilled, found by the sweeper once past the grace period.
    Index("ix_sessions_fulfilment_due", "status", "fulfilled_at", "fulfillment_overdue_at", "paid_at"),
)

# How many sessions each game has in each status, kept by triggers on `sessions` in the same
# transaction as every insert, status change and delete (migration session_counts): list totals
# read it instead of counting rows. On PostgreSQL a status's count is split into shards (one per
# connection, by backend pid) so concurrent writers of one game do not queue on one row; its
# count is the sum of its shards, any one of which may be negative.
session_counts = Table(
    "session_counts",
    metadata,
    Column("game_id", String(64), primary_key=True),
    Column("mode", String(8), primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("shard", Integer, primary_key=True),
    Column("n", BigInteger, nullable=False),
)

# How many payments each game has in each status, kept by triggers on `payments` as
# `session_counts` is (migration payment_counts): ListPayments' total reads it.
payment_counts = Table(
    "payment_counts",
    metadata,
    Column("game_id", String(64), primary_key=True),
    Column("mode", String(8), primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("shard", Integer, primary_key=True),
    Column("n", BigInteger, nullable=False),
)

payments = Table(
    "payments",
    metadata,
    Column("id", String(40), primary_key=True),
    # One payment per session, enforced by the database itself.
    Column("session_id", String(40), ForeignKey("sessions.id"), nullable=False, unique=True),
    Column("game_id", String(64), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("amount", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("method", String(16), nullable=False),
    Column("details", String(200), nullable=False),
    Column("processor", String(16), nullable=False),
    Column("processor_ref", String(255)),
    Column("failure_code", String(32)),
    Column("failure_message", Text),
    Column("amount_received", Integer),
    Column("created_at", Instant, nullable=False),
    Column("succeeded_at", Instant),
    Column("failed_at", Instant),
    # What succeeded refunds gave back, and when the last of the amount was.
    Column("amount_refunded", Integer, nullable=False, server_default="0"),
    Column("refunded_at", Instant),
    UniqueConstraint("processor", "processor_ref", name="uq_payments_processor_ref"),
    Index("ix_payments_scope_created", "game_id", "mode", "status", "created_at"),
    # One user's payments of a status (ListPayments by user_id), newest first: the page reads its own rows.
    Index("ix_payments_scope_user", "game_id", "mode", "status", "user_id", "created_at", "id"),
    # Revenue per day: covers the dashboard's totals without reading the rows.
    Index("ix_payments_scope_succeeded", "game_id", "mode", "status", "succeeded_at", "currency", "amount"),
    # Payments still waiting for their processor, found by the sweeper.
    Index("ix_payments_in_flight", "processor", "status"),
)

disputes = Table(
    "disputes",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("game_id", String(64)),
    Column("mode", String(8), nullable=False),
    Column("payment_id", String(40)),
    Column("session_id", String(40)),
    Column("user_id", String(255)),
    Column("reason", Text, nullable=False),
    Column("amount", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("processor", String(16), nullable=False),
    Column("processor_dispute_id", String(255), nullable=False),
    Column("created_at", Instant, nullable=False),
    UniqueConstraint("processor", "processor_dispute_id", name="uq_disputes_processor_ref"),
    Index("ix_disputes_scope_created", "game_id", "mode", "created_at"),
)

refunds = Table(
    "refunds",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("payment_id", String(40), ForeignKey("payments.id"), nullable=False),
    Column("session_id", String(40), nullable=False),
    Column("game_id", String(64), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("amount", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", String(32), nullable=False),
    # pending | succeeded | failed
    Column("status", String(16), nullable=False),
    Column("processor", String(16), nullable=False),
    Column("processor_ref", String(255)),
    Column("failure_code", String(32)),
    Column("created_at", Instant, nullable=False),
    Column("succeeded_at", Instant),
    Column("failed_at", Instant),
    UniqueConstraint("processor", "processor_ref", name="uq_refunds_processor_ref"),
    Index("ix_refunds_scope_created", "game_id", "mode", "created_at"),
    Index("ix_refunds_payment", "payment_id", "status"),
    # Refunds still waiting for their processor, found by the sweeper.
    Index("ix_refunds_pending", "processor", "status"),
)

# The outbox: each row commits with the state change it reports.
events = Table(
    "events",
    metadata,
    Column("position", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("game_id", String(64), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("type", String(32), nullable=False),
    Column("session_id", String(40)),
    Column("sequence", Integer),
    Column("body", JsonText, nullable=False),
    Column("created_at", Instant, nullable=False),
    # Set once deliveries were fanned out to the endpoints that want it.
    Column("fanned_out_at", Instant),
    Index("ix_events_scope_position", "game_id", "mode", "position"),
    Index("ix_events_pending_fanout", "fanned_out_at", "position"),
    Index("ix_events_session", "session_id", "sequence"),
    Index("ix_events_created", "created_at"),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("game_id", String(64), ForeignKey("games.game_id"), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("url", Text, nullable=False),
    Column("format", String(16), nullable=False),
    Column("events", JsonText, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("description", Text),
    # Encrypted with the installation key, as are the other secrets below.
    Column("secret", Sealed("webhook_endpoints.secret"), nullable=False),
    Column("previous_secret", Sealed("webhook_endpoints.previous_secret")),
    Column("previous_secret_expires_at", Instant),
    Column("created_at", Instant, nullable=False),
    Column("deleted_at", Instant),
    # Health: why it was disabled (failing | manual), the first failure of the current run of
    # failures, the last success and failure, and when that run was reported (endpoint.failing).
    Column("disabled_reason", String(16)),
    Column("failing_since", Instant),
    Column("last_success_at", Instant),
    Column("last_failure_at", Instant),
    Column("failing_reported_at", Instant),
    # Sandbox chaos settings {duplicate_percent, delay_max_seconds, bad_signature_percent}.
    Column("chaos", JsonText),
    Index("ix_endpoints_scope", "game_id", "mode"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("event_id", String(36), nullable=False),
    Column("endpoint_id", String(40), ForeignKey("webhook_endpoints.id"), nullable=False),
    # pending | succeeded | failed (gave up)
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Instant),
    # A claim by one dispatcher, so no two send the same attempt.
    Column("claimed_by", String(64)),
    Column("claimed_until", Instant),
    Column("created_at", Instant, nullable=False),
    Column("updated_at", Instant, nullable=False),
    # scheduled (fan-out, the default) | manual (ResendEvent) | replay | test
    Column("trigger", String(16)),
    Column("replay_id", String(40)),
    Index("ix_deliveries_due", "status", "next_attempt_at"),
    Index("ix_deliveries_event", "event_id"),
    Index("ix_deliveries_replay", "replay_id", "status"),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("delivery_id", String(40), ForeignKey("deliveries.id"), nullable=False),
    Column("attempted_at", Instant, nullable=False),
    Column("status_code", Integer),
    Column("latency_ms", Integer, nullable=False),
    Column("response_excerpt", Text),
    Column("error", Text),
    # The public id (atmpt_...), what was sent where, and what came next.
    Column("attempt_id", String(40)),
    Column("event_id", String(36)),
    Column("endpoint_id", String(40)),
    Column("attempt_number", Integer),
    Column("trigger", String(16)),
    Column("next_attempt_at", Instant),
    Index("ix_attempts_delivery", "delivery_id", "attempted_at"),
    Index("ix_attempts_public_id", "attempt_id", unique=True),
    Index("ix_attempts_endpoint", "endpoint_id", "attempted_at"),
    Index("ix_attempts_event", "event_id", "attempted_at"),
)

# A replay (ReplayEvents) to one endpoint, fed to the outbox in batches so a large one never
# crowds out normal deliveries: events of the scope after `cursor` up to `upto` (positions).
replays = Table(
    "replays",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("game_id", String(64), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("endpoint_id", String(40), nullable=False),
    Column("types", JsonText, nullable=False),
    Column("created_from", Instant, nullable=False),
    Column("created_to", Instant),
    Column("only_failed", Boolean, nullable=False),
    Column("cursor", BigInteger, nullable=False),
    Column("upto", BigInteger, nullable=False),
    Column("total", Integer, nullable=False),
    Column("fed", Integer, nullable=False),
    Column("created_at", Instant, nullable=False),
    Column("finished_at", Instant),
    Index("ix_replays_unfinished", "finished_at", "created_at"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("api_key_id", String(40), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    # The claim's holder: only it may store the answer or release the key.
    Column("owner", String(32)),
    # running | done
    Column("state", String(8), nullable=False),
    Column("locked_until", Instant, nullable=False),
    Column("response_status", Integer),
    Column("response_headers", JsonText),
    Column("response_body", SealedBytes("idempotency_keys.response_body")),
    Column("created_at", Instant, nullable=False),
    Index("ix_idempotency_created", "created_at"),
)

# Secrets of the installation generated on first use (when not configured), shared by every process.
installation_secrets = Table(
    "installation_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Sealed("installation_secrets.value"), nullable=False),
    Column("created_at", Instant, nullable=False),
)

# The installation's Ed25519 keys that sign return tokens; the newest not retired signs.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    # 1, 2, 3... one per rotation; unique, so two processes creating the first key agree.
    Column("generation", Integer, nullable=False, unique=True),
    Column("public_x", String(64), nullable=False),
    # The private key as a JWK, sealed like the installation's other secrets.
    Column("private_key", Text, nullable=False),
    Column("created_at", Instant, nullable=False),
    Column("retired_at", Instant),
)

# Processor notifications already handled (Stripe event ids), so a redelivery is a no-op.
processor_notifications = Table(
    "processor_notifications",
    metadata,
    Column("processor", String(16), primary_key=True),
    Column("notification_id", String(255), primary_key=True),
    Column("received_at", Instant, nullable=False),
)

# Dashboard accounts, their roles per game, their signed-in sessions, and the audit log.
users = Table(
    "users",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    # Argon2id, in the PHC string format (parameters and salt included).
    Column("password_hash", String(255), nullable=False),
    Column("operator", Boolean, nullable=False),
    Column("created_at", Instant, nullable=False),
)

memberships = Table(
    "memberships",
    metadata,
    Column("user_id", String(40), ForeignKey("users.id"), primary_key=True),
    Column("game_id", String(64), ForeignKey("games.game_id"), primary_key=True),
    # viewer | developer | owner
    Column("role", String(16), nullable=False),
    Column("created_at", Instant, nullable=False),
    Index("ix_memberships_game", "game_id"),
)

dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    # SHA-256 of the cookie's token: the token itself is never stored.
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False),
    Column("created_at", Instant, nullable=False),
    Column("last_seen_at", Instant, nullable=False),
    Column("address", String(64)),
    # A new secret (webhook secret, API key) to show once on the page the action redirects to.
    Column("reveal", Sealed("dashboard_sessions.reveal")),
    Index("ix_dashboard_sessions_user", "user_id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", Instant, nullable=False),
    # Who: the account's email, or "command line" for the operator's CLI.
    Column("actor", String(254), nullable=False),
    Column("user_id", String(40)),
    Column("game_id", String(64)),
    Column("mode", String(8)),
    Column("action", String(64), nullable=False),
    Column("target", String(255)),
    Column("details", JsonText, nullable=False),
    # From where: the client address of the request.
    Column("address", String(64)),
    Index("ix_audit_game", "game_id", "id"),
)
