"""Ingest: gateway health columns, device states, cache acks, quarantine digest.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DDL = """
ALTER TABLE gateways
    ADD COLUMN status_time timestamptz,
    ADD COLUMN metrics_time timestamptz,
    ADD COLUMN outbox_depth integer,
    ADD COLUMN oldest_unsent_age_s double precision,
    ADD COLUMN cache_version_time timestamptz;
CREATE TABLE gateway_devices (
    gateway_id text NOT NULL,
    device text NOT NULL,
    kind text NOT NULL,
    state text NOT NULL,
    time timestamptz NOT NULL,
    payload jsonb NOT NULL,
    PRIMARY KEY (gateway_id, device)
);
CREATE TABLE cache_acks (
    gateway_id text NOT NULL,
    site text NOT NULL,
    kind text NOT NULL,
    version bigint NOT NULL,
    ok boolean NOT NULL,
    error text,
    request_id text,
    acked_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (gateway_id, kind, version, acked_at)
);
CREATE INDEX ix_cache_acks_version ON cache_acks (version);
ALTER TABLE quarantine ADD COLUMN digest varchar(64);
CREATE UNIQUE INDEX ux_quarantine_digest ON quarantine (digest);
"""


def upgrade() -> None:
    op.execute(DDL)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ux_quarantine_digest")
    op.execute("ALTER TABLE quarantine DROP COLUMN IF EXISTS digest")
    op.execute("DROP TABLE IF EXISTS cache_acks")
    op.execute("DROP TABLE IF EXISTS gateway_devices")
    op.execute(
        "ALTER TABLE gateways DROP COLUMN status_time, DROP COLUMN metrics_time, "
        "DROP COLUMN outbox_depth, DROP COLUMN oldest_unsent_age_s, "
        "DROP COLUMN cache_version_time"
    )
