"""The central tables (SQLAlchemy Core), mirrored by the Alembic migrations.

Raw events are kept (``events``, JSONB, partitioned by month on ``event_time``);
``event_ids`` makes ingest idempotent across partitions. Each event's items are
normalised into ``event_items``. The projection (current state) and the lineage edges
are updated in the same transaction as the event.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

#: One row per event ever ingested (idempotency by event_id, across partitions).
event_ids = Table(
    "event_ids",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("gateway_id", String, nullable=False),
    Column("seq", BigInteger, nullable=False),
)

#: The raw events, as published (partitioned by month; see the migration).
events = Table(
    "events",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("event_time", DateTime(timezone=True), primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("site", String, nullable=False),
    Column("gateway_id", String, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("station", String, nullable=False),
    Column("movement", String, nullable=False),
    Column("event_type", String, nullable=False),
    Column("biz_step", String, nullable=False),
    Column("payload", JSONB, nullable=False),
)

#: Every item of every event, normalised. ``role``: item, input, output (transformations).
event_items = Table(
    "event_items",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("site", String, nullable=False),
    Column("gateway_id", String, nullable=False),
    Column("movement", String, nullable=False),
    Column("role", String, nullable=False),
    Column("gtin", String(14)),
    Column("lot", String),
    Column("serial", String),
    Column("sscc", String(18)),
    Column("parent_sscc", String(18)),
    Column("quantity", Numeric),
    Column("uom", String),
    Column("from_type", String),
    Column("from_id", String),
    Column("to_type", String),
    Column("to_id", String),
    Column("corrected", Boolean, nullable=False, server_default="false"),
)

#: Current state of each serial: where it is (site + location) or who holds it.
serial_state = Table(
    "serial_state",
    metadata,
    Column("gtin", String(14), primary_key=True),
    Column("serial", String, primary_key=True),
    Column("lot", String),
    Column("site", String),
    Column("location", String),
    Column("holder", String),  # a party when it left a site
    Column("state", String, nullable=False),  # at_site | shipped | consumed | destroyed
    Column("last_event_time", DateTime(timezone=True), nullable=False),
    Column("last_event_id", String(36), nullable=False),
    # which gateway event put it here: a tie at the millisecond goes by the gateway's seq
    Column("last_gateway_id", String),
    Column("last_seq", BigInteger),
)

#: Quantity of each lot (or untracked GTIN, lot '') per site and location (sum of deltas).
lot_stock = Table(
    "lot_stock",
    metadata,
    Column("gtin", String(14), primary_key=True),
    Column("lot", String, primary_key=True),
    Column("site", String, primary_key=True),
    Column("location", String, primary_key=True),
    Column("quantity", Numeric, nullable=False),
)

#: Current state of each pallet.
sscc_state = Table(
    "sscc_state",
    metadata,
    Column("sscc", String(18), primary_key=True),
    Column("site", String),
    Column("location", String),
    Column("holder", String),
    Column("state", String, nullable=False),  # at_site | shipped | consumed
    Column("last_event_time", DateTime(timezone=True), nullable=False),
    Column("last_gateway_id", String),
    Column("last_seq", BigInteger),
)

#: Lineage: a parent pallet holds a child (serial, lot quantity or pallet) from..until.
aggregation_edges = Table(
    "aggregation_edges",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("parent_sscc", String(18), nullable=False),
    Column("gtin", String(14)),
    Column("lot", String),
    Column("serial", String),
    Column("child_sscc", String(18)),
    Column("quantity", Numeric),
    Column("added_at", DateTime(timezone=True), nullable=False),
    Column("removed_at", DateTime(timezone=True)),
    Column("event_id", String(36), nullable=False),
)

#: Lineage: inputs of a transformation → its outputs.
transformation_edges = Table(
    "transformation_edges",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("transformation_id", String, nullable=False),
    Column("direction", String, nullable=False),  # input | output
    Column("gtin", String(14)),
    Column("lot", String),
    Column("serial", String),
    Column("quantity", Numeric),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("event_id", String(36), nullable=False),
)

#: Gateways: identity, last status, seq high-water mark, cache version applied.
gateways = Table(
    "gateways",
    metadata,
    Column("gateway_id", String, primary_key=True),
    Column("site", String, nullable=False),
    Column("online", Boolean),
    Column("last_seen", DateTime(timezone=True)),
    Column("status", JSONB),
    Column("metrics", JSONB),
    Column("seq_high", BigInteger, nullable=False, server_default="0"),
    Column("cache_version", BigInteger),
    # 0002 (ingest): when the status was applied, metrics and cache-version report times
    Column("status_time", DateTime(timezone=True)),
    Column("metrics_time", DateTime(timezone=True)),
    Column("outbox_depth", Integer),
    Column("oldest_unsent_age_s", Float),
    Column("cache_version_time", DateTime(timezone=True)),
)

#: Missing seq ranges per gateway: open until the late events arrive.
seq_gaps = Table(
    "seq_gaps",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("gateway_id", String, nullable=False),
    Column("from_seq", BigInteger, nullable=False),
    Column("to_seq", BigInteger, nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True)),
)

#: Payloads that failed the contract: kept with the reason, never dropped.
quarantine = Table(
    "quarantine",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("topic", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("digest", String(64), unique=True),  # 0002: sha256 of topic + payload
)

#: Alerts from gateways (rejected scans, device alarms), as published.
alerts = Table(
    "alerts",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("gateway_id", String, nullable=False),
    Column("site", String, nullable=False),
    Column("alert", String, nullable=False),
    Column("severity", String, nullable=False),
    Column("payload", JSONB, nullable=False),
)

#: Master data: products (tracking, warning days), lots (expiry, status).
products = Table(
    "products",
    metadata,
    Column("gtin", String(14), primary_key=True),
    Column("description", Text, nullable=False, server_default=""),
    Column("tracking", String, nullable=False),
    Column("expiry_warning_days", Integer, nullable=False, server_default="30"),
    # 0004 (FSMA 204): the product description fields
    Column("product_name", Text),
    Column("brand", Text),
    Column("commodity", Text),
    Column("variety", Text),
    Column("pack_size", Text),
    Column("pack_style", Text),
)
lots = Table(
    "lots",
    metadata,
    Column("gtin", String(14), primary_key=True),
    Column("lot", String, primary_key=True),
    Column("expiry", Date),
    Column("status", String, nullable=False, server_default="active"),
    # 0004 (FSMA 204): who assigned the lot code (a site or partner id), or a reference to it
    Column("tlc_source", Text),
    Column("tlc_source_reference", Text),
)


#: 0007: serials known before any event (``expected``) or void (``destroyed``).
serials = Table(
    "serials",
    metadata,
    Column("gtin", String(14), primary_key=True),
    Column("serial", Text, primary_key=True),
    Column("lot", Text),
    Column("state", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
#: 0007: despatch advices: what a pallet on its way holds, and the site it goes to (NULL: any).
despatch_advices = Table(
    "despatch_advices",
    metadata,
    Column("sscc", String(18), primary_key=True),
    Column("desadv_id", Text, nullable=False),
    Column("ship_to", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
despatch_advice_lines = Table(
    "despatch_advice_lines",
    metadata,
    Column("sscc", String(18), primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("gtin", String(14), nullable=False),
    Column("lot", Text),
    Column("serial", Text),
    Column("quantity", Integer, nullable=False),
)


def _place_columns() -> list[Column[Any]]:
    return [
        Column("name", Text, nullable=False),
        Column("street", Text),
        Column("city", Text),
        Column("region", Text),
        Column("postal_code", Text),
        Column("country", Text),
        Column("phone", Text),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ]


#: 0004 (FSMA 204): our sites (the ``site`` of events) with their location description.
sites = Table(
    "sites",
    metadata,
    Column("site", Text, primary_key=True),
    Column("gln", String(13), unique=True),
    *_place_columns(),
)

#: 0004 (FSMA 204): trading partners (an event's party id, usually a GLN) and where they are.
partners = Table(
    "partners",
    metadata,
    Column("party", Text, primary_key=True),
    Column("gln", String(13)),
    *_place_columns(),
)

#: 0002 (ingest): each gateway device's latest status (scanner, printer).
gateway_devices = Table(
    "gateway_devices",
    metadata,
    Column("gateway_id", String, primary_key=True),
    Column("device", String, primary_key=True),
    Column("kind", String, nullable=False),
    Column("state", String, nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("payload", JSONB, nullable=False),
)

#: 0002 (ingest): every cache snapshot/delta ack a gateway sent (who applied what, when).
cache_acks = Table(
    "cache_acks",
    metadata,
    Column("gateway_id", String, primary_key=True),
    Column("site", String, nullable=False),
    Column("kind", String, primary_key=True),
    Column("version", BigInteger, primary_key=True),
    Column("ok", Boolean, nullable=False),
    Column("error", Text),
    Column("request_id", String),
    Column("acked_at", DateTime(timezone=True), primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

#: 0005 (EPCIS): every capture job with the document as received (refused ones too).
epcis_captures = Table(
    "epcis_captures",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("capture_id", Text, nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("actor", Text, nullable=False),
    Column("running", Boolean, nullable=False),
    Column("success", Boolean, nullable=False),
    Column("error_behaviour", Text, nullable=False, server_default="rollback"),
    Column("errors", JSONB, nullable=False),
    Column("events_total", Integer, nullable=False, server_default="0"),
    Column("events_new", Integer, nullable=False, server_default="0"),
    Column("events_duplicate", Integer, nullable=False, server_default="0"),
    Column("content_type", Text),
    Column("sha256", Text, nullable=False),
    Column("document", Text, nullable=False),
)

#: 0005 (EPCIS): captured events (their items and lineage are in event_items and the
#: edge tables under ``ref``).
epcis_events = Table(
    "epcis_events",
    metadata,
    Column("ref", String(36), primary_key=True),
    Column("event_id", Text, nullable=False, unique=True),
    Column("capture_id", Text, nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("record_time", DateTime(timezone=True), nullable=False),
    Column("event_type", Text, nullable=False),
    Column("action", Text),
    Column("biz_step", Text),
    Column("disposition", Text),
    Column("biz_location", Text),
    Column("read_point", Text),
    Column("parent_gtin", String(14)),
    Column("parent_serial", Text),
    Column("parent_sscc", String(18)),
    Column("parent_id", Text),
    Column("payload", JSONB, nullable=False),
)

#: 0005 (EPCIS): server secrets (the key that signs nextPageToken).
epcis_keys = Table(
    "epcis_keys",
    metadata,
    Column("name", Text, primary_key=True),
    Column("secret", LargeBinary, nullable=False),
)

#: 0005 (EPCIS): which gateway event corrects which (kept by the trigger
#: ``events_epcis_corrections`` on ``events``), for error declarations in query answers.
epcis_corrections = Table(
    "epcis_corrections",
    metadata,
    Column("target", String(36), primary_key=True),
    Column("event_id", String(36), primary_key=True),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("movement", Text, nullable=False),
    Column("reason", Text),
    Column("note", Text),
    Column("declared", Text, nullable=False),
)
