"""EPCIS 2.0: capture jobs (raw documents), captured events, the page-token key, indexes
for the query interface over gateway events.

Revision ID: 0005
Revises: 0004

Captured events keep their EPCIS JSON in ``epcis_events``; their items and lineage go
into ``event_items``, ``aggregation_edges`` and ``transformation_edges`` (keyed by
``epcis_events.ref``), so trace and recall read them like gateway events.
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DDL = """
CREATE TABLE epcis_captures (
    id bigserial PRIMARY KEY,
    capture_id text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    finished_at timestamptz,
    actor text NOT NULL,
    running boolean NOT NULL,
    success boolean NOT NULL,
    error_behaviour text NOT NULL DEFAULT 'rollback',
    errors jsonb NOT NULL DEFAULT '[]'::jsonb,
    events_total integer NOT NULL DEFAULT 0,
    events_new integer NOT NULL DEFAULT 0,
    events_duplicate integer NOT NULL DEFAULT 0,
    content_type text,
    sha256 text NOT NULL,
    document text NOT NULL
);

CREATE TABLE epcis_events (
    ref varchar(36) PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    capture_id text NOT NULL REFERENCES epcis_captures (capture_id),
    event_time timestamptz NOT NULL,
    record_time timestamptz NOT NULL,
    event_type text NOT NULL,
    action text,
    biz_step text,
    disposition text,
    biz_location text,
    read_point text,
    parent_gtin varchar(14),
    parent_serial text,
    parent_sscc varchar(18),
    parent_id text,
    payload jsonb NOT NULL
);
CREATE INDEX ix_epcis_events_time ON epcis_events (event_time, ref);
CREATE INDEX ix_epcis_events_record ON epcis_events (record_time);
CREATE INDEX ix_epcis_events_step ON epcis_events (biz_step, event_time);
CREATE INDEX ix_epcis_events_location ON epcis_events (biz_location);
CREATE INDEX ix_epcis_events_parent_sscc ON epcis_events (parent_sscc)
    WHERE parent_sscc IS NOT NULL;
CREATE INDEX ix_epcis_events_parent_serial ON epcis_events (parent_gtin, parent_serial)
    WHERE parent_serial IS NOT NULL;
CREATE INDEX ix_epcis_events_payload ON epcis_events USING gin (payload jsonb_path_ops);

CREATE TABLE epcis_keys (
    name text PRIMARY KEY,
    secret bytea NOT NULL
);

-- the query interface over gateway events: by business step, by pallet (parentID)
CREATE INDEX ix_events_step_time ON events (biz_step, event_time);
CREATE INDEX ix_events_parent_sscc ON events ((payload -> 'parent' ->> 'sscc'))
    WHERE event_type = 'AggregationEvent';
CREATE INDEX ix_events_received ON events (received_at);
-- error declarations: which event corrects which (kept by a trigger as events arrive, so
-- a query page looks its events up by id instead of searching every partition's payloads)
CREATE TABLE epcis_corrections (
    target varchar(36) NOT NULL,
    event_id varchar(36) NOT NULL,
    event_time timestamptz NOT NULL,
    movement text NOT NULL,
    reason text,
    note text,
    declared text NOT NULL,
    PRIMARY KEY (target, event_id)
);
CREATE FUNCTION epcis_note_corrections() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF jsonb_typeof(NEW.payload -> 'corrects') = 'array' THEN
        INSERT INTO epcis_corrections (target, event_id, event_time, movement, reason, note,
                                       declared)
        SELECT t, NEW.event_id, NEW.event_time, NEW.movement,
               NEW.payload ->> 'correction_reason', NEW.payload ->> 'correction_note',
               NEW.payload ->> 'event_time'
          FROM jsonb_array_elements_text(NEW.payload -> 'corrects') AS t
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER events_epcis_corrections AFTER INSERT ON events
    FOR EACH ROW WHEN (jsonb_typeof(NEW.payload -> 'corrects') = 'array')
    EXECUTE FUNCTION epcis_note_corrections();
INSERT INTO epcis_corrections (target, event_id, event_time, movement, reason, note, declared)
SELECT t, e.event_id, e.event_time, e.movement, e.payload ->> 'correction_reason',
       e.payload ->> 'correction_note', e.payload ->> 'event_time'
  FROM events e CROSS JOIN LATERAL jsonb_array_elements_text(
        CASE WHEN jsonb_typeof(e.payload -> 'corrects') = 'array'
             THEN e.payload -> 'corrects' ELSE '[]' END) AS t
ON CONFLICT DO NOTHING;
"""


def upgrade() -> None:
    op.execute(DDL)
    op.get_bind().execute(
        sa.text("INSERT INTO epcis_keys (name, secret) VALUES ('page-token', :s)"),
        {"s": secrets.token_bytes(32)},
    )


def downgrade() -> None:
    # captured events leave with their items and lineage (gateway events stay)
    for t in ("event_items", "aggregation_edges", "transformation_edges"):
        op.execute(f"DELETE FROM {t} WHERE event_id IN (SELECT ref FROM epcis_events)")
    op.execute("DROP TRIGGER IF EXISTS events_epcis_corrections ON events")
    op.execute("DROP FUNCTION IF EXISTS epcis_note_corrections()")
    op.execute("DROP TABLE IF EXISTS epcis_corrections")
    for ix in ("ix_events_received", "ix_events_parent_sscc", "ix_events_step_time"):
        op.execute(f"DROP INDEX IF EXISTS {ix}")
    for t in ("epcis_keys", "epcis_events", "epcis_captures"):
        op.execute(f"DROP TABLE IF EXISTS {t}")
