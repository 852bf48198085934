"""The schema, in SQLAlchemy Core. Alembic migrations in `migrations/` create exactly this.

Uniqueness that matters is the database's job, not the code's:
- one live render per signature (a partial unique index that excludes failed renders),
- one charge per asset (a partial unique index on the ledger).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

ledger = Table(
    "ledger_entries",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("account_id", String(40), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("type", String(10), nullable=False),
    Column("amount", Integer, nullable=False),
    Column("asset_id", String(40), nullable=True),
    Column("reason", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(
        "uq_ledger_one_charge_per_asset",
        "asset_id",
        unique=True,
        sqlite_where=text("type = 'charge'"),
        postgresql_where=text("type = 'charge'"),
    ),
    Index("ix_ledger_account", "account_id", "seq"),
)

assets = Table(
    "assets",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("account_id", String(40), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("client_audio", Boolean, nullable=False),
    Column("state", String(20), nullable=False),
    Column("video_part", String(20), nullable=True),
    Column("audio_part", String(20), nullable=True),
    Column("charged", Boolean, nullable=False, server_default=text("false")),
    Column("duration", Float, nullable=True),
    Column("video", JSON, nullable=True),
    Column("audio", JSON, nullable=True),
    Column("error", JSON, nullable=True),
    Column("poster", Boolean, nullable=False, server_default=text("false")),  # a poster frame is stored
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_assets_account", "account_id", "seq"),
    Index("ix_assets_state", "state"),
)

#: Idempotency-Key of POST /v1/assets and POST /v1/assets/{id}/cuts: one row per account and
#: key (the primary key makes concurrent requests with one key create one resource).
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("account_id", String(40), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("resource_id", String(40), nullable=False),
    Column("finished", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_idempotency_keys_created", "created_at"),
)

cuts = Table(
    "cuts",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("account_id", String(40), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("asset_id", String(40), ForeignKey("assets.id", ondelete="CASCADE"), nullable=False),
    Column("state", String(20), nullable=False),
    Column("method", String(20), nullable=False),
    Column("segments", JSON, nullable=False),
    Column("silence", JSON, nullable=True),
    Column("error", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_cuts_asset", "asset_id", "seq"),
    Index("ix_cuts_state", "state"),
)

renders = Table(
    "renders",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("account_id", String(40), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("asset_id", String(40), ForeignKey("assets.id", ondelete="CASCADE"), nullable=False),
    Column("cut_id", String(40), ForeignKey("cuts.id", ondelete="CASCADE"), nullable=True),
    Column("signature", String(64), nullable=False),
    Column("output", JSON, nullable=False),
    Column("state", String(20), nullable=False),
    Column("progress", Float, nullable=False, server_default=text("0")),
    Column("error", JSON, nullable=True),
    Column("result", JSON, nullable=True),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("encoder_token", String(64), nullable=True),  # SHA-256 of its encoder pods' token (Kubernetes)
    Index(
        "uq_renders_live_signature",
        "signature",
        unique=True,
        sqlite_where=text("state <> 'failed'"),
        postgresql_where=text("state <> 'failed'"),
    ),
    Index("ix_renders_account", "account_id", "seq"),
    Index("ix_renders_state", "state", "seq"),
    Index("ix_renders_state_account", "state", "account_id", "seq"),  # the fair claim
)

# -- webhooks: endpoints, the event outbox, deliveries and their attempts ------------------------

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("account_id", String(40), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("url", Text, nullable=False),
    Column("events", JSON, nullable=False),
    Column("secret", String(80), nullable=False),
    Column("previous_secret", String(80), nullable=True),
    Column("previous_secret_expires_at", DateTime(timezone=True), nullable=True),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("disabled_reason", Text, nullable=True),
    Column("consecutive_failures", Integer, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_webhook_endpoints_account", "account_id", "seq"),
)

events = Table(
    "events",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("account_id", String(40), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("type", String(40), nullable=False),
    Column("data", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_events_account", "account_id", "seq"),
)

deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("event_id", String(40), ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("endpoint_id", String(40), ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False),
    Column("state", String(20), nullable=False),  # pending | succeeded | failed
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Index("ix_deliveries_due", "state", "next_attempt_at"),
    Index("ix_deliveries_endpoint", "endpoint_id", "seq"),
)

delivery_attempts = Table(
    "webhook_delivery_attempts",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("delivery_id", String(40), ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("latency_ms", Float, nullable=False),
    Column("error", Text, nullable=True),
    Index("ix_attempts_delivery", "delivery_id", "seq"),
)
