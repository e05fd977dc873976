"""Holds and recalls pushed to the gateways, API tokens, the append-only audit log.

Revision ID: 0003
Revises: 0002

``cache_acks`` belongs to ingest (0002: it records every gateway's ``cache/ack``); the
recall status reads it.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DDL = """
CREATE TABLE blocks (
    id bigserial PRIMARY KEY,
    block_id text NOT NULL UNIQUE,
    kind text NOT NULL CHECK (kind IN ('hold', 'recall')),
    gtin varchar(14),
    lot text,
    serial text,
    sscc varchar(18),
    reason text NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    all_sites boolean NOT NULL,
    released_at timestamptz,
    released_by text,
    release_reason text,
    CHECK ((gtin IS NOT NULL AND (lot IS NOT NULL) <> (serial IS NOT NULL) AND sscc IS NULL)
        OR (sscc IS NOT NULL AND gtin IS NULL AND lot IS NULL AND serial IS NULL))
);
CREATE INDEX ix_blocks_lot ON blocks (gtin, lot) WHERE released_at IS NULL;
CREATE INDEX ix_blocks_serial ON blocks (gtin, serial) WHERE released_at IS NULL;

CREATE TABLE block_sites (
    block_id text NOT NULL REFERENCES blocks (block_id),
    site text NOT NULL,
    PRIMARY KEY (block_id, site)
);
CREATE INDEX ix_block_sites_site ON block_sites (site);

CREATE TABLE cache_sites (
    site text PRIMARY KEY,
    version bigint NOT NULL
);
CREATE TABLE cache_outbox (
    site text NOT NULL,
    version bigint NOT NULL,
    id bigserial UNIQUE,
    from_version bigint NOT NULL,
    block_id text,
    action text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (site, version)
);
CREATE INDEX ix_cache_outbox_block ON cache_outbox (block_id);

CREATE TABLE cache_gateways (
    gateway_id text PRIMARY KEY,
    site text NOT NULL,
    version bigint,
    reported_at timestamptz NOT NULL
);

-- cache_acks: created by 0002 (ingest records the acks; the pusher reads them)

CREATE TABLE api_tokens (
    token_id text PRIMARY KEY,
    name text NOT NULL UNIQUE,
    role text NOT NULL CHECK (role IN ('viewer', 'recall-manager', 'admin')),
    salt bytea NOT NULL,
    digest bytea NOT NULL,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);

CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    target jsonb NOT NULL,
    reason text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
"""


def upgrade() -> None:
    op.execute(DDL)


def downgrade() -> None:
    for t in ("audit_log", "api_tokens", "cache_gateways", "cache_outbox", "cache_sites"):
        op.execute(f"DROP TABLE IF EXISTS {t}")
    op.execute("DROP TABLE IF EXISTS block_sites")
    op.execute("DROP TABLE IF EXISTS blocks")
    op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
