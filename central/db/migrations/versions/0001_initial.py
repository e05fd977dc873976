"""The central schema: raw events (partitioned by month), items, projection, lineage.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

DDL = """
CREATE TABLE event_ids (
    event_id varchar(36) PRIMARY KEY,
    event_time timestamptz NOT NULL,
    gateway_id text NOT NULL,
    seq bigint NOT NULL
);
CREATE TABLE events (
    event_id varchar(36) NOT NULL,
    event_time timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    site text NOT NULL,
    gateway_id text NOT NULL,
    seq bigint NOT NULL,
    station text NOT NULL,
    movement text NOT NULL,
    event_type text NOT NULL,
    biz_step text NOT NULL,
    payload jsonb NOT NULL,
    PRIMARY KEY (event_id, event_time)
) PARTITION BY RANGE (event_time);
CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE INDEX ix_events_gateway_seq ON events (gateway_id, seq);
CREATE INDEX ix_events_time ON events (event_time);

CREATE TABLE event_items (
    id bigserial PRIMARY KEY,
    event_id varchar(36) NOT NULL,
    event_time timestamptz NOT NULL,
    site text NOT NULL,
    gateway_id text NOT NULL,
    movement text NOT NULL,
    role text NOT NULL,
    gtin varchar(14),
    lot text,
    serial text,
    sscc varchar(18),
    parent_sscc varchar(18),
    quantity numeric,
    uom text,
    from_type text,
    from_id text,
    to_type text,
    to_id text,
    corrected boolean NOT NULL DEFAULT false
);
CREATE INDEX ix_items_lot ON event_items (gtin, lot);
CREATE INDEX ix_items_serial ON event_items (gtin, serial) WHERE serial IS NOT NULL;
CREATE INDEX ix_items_sscc ON event_items (sscc) WHERE sscc IS NOT NULL;
CREATE INDEX ix_items_parent ON event_items (parent_sscc) WHERE parent_sscc IS NOT NULL;
CREATE INDEX ix_items_event ON event_items (event_id);

CREATE TABLE serial_state (
    gtin varchar(14) NOT NULL,
    serial text NOT NULL,
    lot text,
    site text,
    location text,
    holder text,
    state text NOT NULL,
    last_event_time timestamptz NOT NULL,
    last_event_id varchar(36) NOT NULL,
    PRIMARY KEY (gtin, serial)
);
CREATE INDEX ix_serial_state_lot ON serial_state (gtin, lot);

CREATE TABLE lot_stock (
    gtin varchar(14) NOT NULL,
    lot text NOT NULL,
    site text NOT NULL,
    location text NOT NULL,
    quantity numeric NOT NULL,
    PRIMARY KEY (gtin, lot, site, location)
);

CREATE TABLE sscc_state (
    sscc varchar(18) PRIMARY KEY,
    site text,
    location text,
    holder text,
    state text NOT NULL,
    last_event_time timestamptz NOT NULL
);

CREATE TABLE aggregation_edges (
    id bigserial PRIMARY KEY,
    parent_sscc varchar(18) NOT NULL,
    gtin varchar(14),
    lot text,
    serial text,
    child_sscc varchar(18),
    quantity numeric,
    added_at timestamptz NOT NULL,
    removed_at timestamptz,
    event_id varchar(36) NOT NULL
);
CREATE INDEX ix_agg_parent ON aggregation_edges (parent_sscc);
CREATE INDEX ix_agg_child_lot ON aggregation_edges (gtin, lot);
CREATE INDEX ix_agg_child_serial ON aggregation_edges (gtin, serial) WHERE serial IS NOT NULL;
CREATE INDEX ix_agg_child_sscc ON aggregation_edges (child_sscc) WHERE child_sscc IS NOT NULL;

CREATE TABLE transformation_edges (
    id bigserial PRIMARY KEY,
    transformation_id text NOT NULL,
    direction text NOT NULL CHECK (direction IN ('input', 'output')),
    gtin varchar(14),
    lot text,
    serial text,
    quantity numeric,
    event_time timestamptz NOT NULL,
    event_id varchar(36) NOT NULL
);
CREATE INDEX ix_xform_id ON transformation_edges (transformation_id, direction);
CREATE INDEX ix_xform_lot ON transformation_edges (gtin, lot);
CREATE INDEX ix_xform_serial ON transformation_edges (gtin, serial) WHERE serial IS NOT NULL;

CREATE TABLE gateways (
    gateway_id text PRIMARY KEY,
    site text NOT NULL,
    online boolean,
    last_seen timestamptz,
    status jsonb,
    metrics jsonb,
    seq_high bigint NOT NULL DEFAULT 0,
    cache_version bigint
);
CREATE TABLE seq_gaps (
    id bigserial PRIMARY KEY,
    gateway_id text NOT NULL,
    from_seq bigint NOT NULL,
    to_seq bigint NOT NULL,
    opened_at timestamptz NOT NULL,
    closed_at timestamptz
);
CREATE INDEX ix_gaps_open ON seq_gaps (gateway_id) WHERE closed_at IS NULL;

CREATE TABLE quarantine (
    id bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL,
    topic text NOT NULL,
    payload text NOT NULL,
    reason text NOT NULL
);
CREATE TABLE alerts (
    event_id varchar(36) PRIMARY KEY,
    event_time timestamptz NOT NULL,
    gateway_id text NOT NULL,
    site text NOT NULL,
    alert text NOT NULL,
    severity text NOT NULL,
    payload jsonb NOT NULL
);
CREATE TABLE products (
    gtin varchar(14) PRIMARY KEY,
    description text NOT NULL DEFAULT '',
    tracking text NOT NULL,
    expiry_warning_days integer NOT NULL DEFAULT 30
);
CREATE TABLE lots (
    gtin varchar(14) NOT NULL,
    lot text NOT NULL,
    expiry date,
    status text NOT NULL DEFAULT 'active',
    PRIMARY KEY (gtin, lot)
);
"""


def upgrade() -> None:
    op.execute(DDL)


def downgrade() -> None:
    for t in (
        "lots", "products", "alerts", "quarantine", "seq_gaps", "gateways",
        "transformation_edges", "aggregation_edges", "sscc_state", "lot_stock",
        "serial_state", "event_items", "events", "event_ids",
    ):  # fmt: skip
        op.execute(f"DROP TABLE IF EXISTS {t} CASCADE")
