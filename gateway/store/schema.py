"""Table definitions (SQLAlchemy Core). Alembic migrations create them; code reads them here."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

#: Small key/value facts: last_seq, boot_counter, cache_version, ...
meta = Table(
    "meta",
    metadata,
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),
)

products = Table(
    "products",
    metadata,
    Column("gtin", String(14), primary_key=True),
    Column("description", Text, nullable=False, server_default=""),
    Column("tracking", String, nullable=False),
    Column("expiry_warning_days", Integer, nullable=False, server_default="30"),
    Column("updated_at", Float, nullable=False, server_default="0"),
    Column("local_hold", Boolean, nullable=False, server_default="0"),  # HOLD of the GTIN here
    CheckConstraint("tracking IN ('none','serial','lot')", name="ck_products_tracking"),
)

locations = Table(
    "locations",
    metadata,
    Column("code", String, primary_key=True),
    Column("description", Text, nullable=False, server_default=""),
    Column("gln", String, nullable=False, server_default=""),
)

lots = Table(
    "lots",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("gtin", String(14), nullable=False),
    Column("lot", String, nullable=False),
    Column("expiry", String(10)),  # ISO date or NULL
    Column("status", String, nullable=False, server_default="active"),
    Column("updated_at", Float, nullable=False, server_default="0"),
    Column("local_hold", Boolean, nullable=False, server_default="0"),  # HOLD scanned here
    UniqueConstraint("gtin", "lot", name="uq_lots_gtin_lot"),
    CheckConstraint("status IN ('active','hold','recalled')", name="ck_lots_status"),
)
Index("ix_lots_gtin_expiry", lots.c.gtin, lots.c.expiry)

#: Quantity of a lot per storage location (a location "" means "at the site, not put away").
lot_stock = Table(
    "lot_stock",
    metadata,
    Column("lot_id", Integer, ForeignKey("lots.id"), primary_key=True),
    Column("location", String, primary_key=True),
    Column("quantity", Integer, nullable=False),
    Column("received_at", Float),  # first arrival at this location (FIFO)
)

serials = Table(
    "serials",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("gtin", String(14), nullable=False),
    Column("serial", String, nullable=False),
    Column("lot", String),
    Column("state", String, nullable=False),
    Column("location", String, nullable=False, server_default=""),
    Column("updated_at", Float, nullable=False, server_default="0"),
    Column("held", Boolean, nullable=False, server_default="0"),  # HOLD scanned here
    UniqueConstraint("gtin", "serial", name="uq_serials_gtin_serial"),
)
Index("ix_serials_lot", serials.c.gtin, serials.c.lot, sqlite_where=text("lot IS NOT NULL"))

#: In-stock serials per lot and location (the stock of a serial-tracked lot), kept by
#: triggers on ``serials`` (migration 0010); ``received_at`` is the earliest arrival.
serial_stock = Table(
    "serial_stock",
    metadata,
    Column("gtin", String(14), primary_key=True),
    Column("lot", String, primary_key=True),
    Column("location", String, primary_key=True),
    Column("quantity", Integer, nullable=False),
    Column("received_at", Float),
    sqlite_with_rowid=False,
)

#: Quantity of an untracked product (no lot, no serial) per storage location.
item_stock = Table(
    "item_stock",
    metadata,
    Column("gtin", String(14), primary_key=True),
    Column("location", String, primary_key=True),
    Column("quantity", Integer, nullable=False),
    CheckConstraint("quantity >= 0", name="ck_item_stock_quantity"),
)

#: Every movement item this gateway recorded, kept ``storage.history_days`` for
#: ``traceway trace`` (independent of outbox pruning).
history = Table(
    "history",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("event_time", String, nullable=False),
    Column("movement", String, nullable=False),
    Column("biz_step", String, nullable=False),
    Column("station", String, nullable=False),
    Column("gtin", String(14)),
    Column("lot", String),
    Column("serial", String),
    Column("sscc", String(18)),
    Column("parent", String(18)),
    Column("quantity", Float),
    Column("uom", String),
    Column("from_type", String),
    Column("from_id", String),
    Column("to_type", String),
    Column("to_id", String),
    Column("created_at", Float, nullable=False),
)
# Partial indexes: a movement item has a lot or a serial, seldom an SSCC or a parent,
# and every index entry is pages written per scan. ``x = ?`` implies ``x IS NOT NULL``,
# so the trace queries use them; retention deletes by id (insertion order), unindexed.
Index("ix_history_lot", history.c.gtin, history.c.lot, sqlite_where=text("lot IS NOT NULL"))
Index(
    "ix_history_serial",
    history.c.gtin,
    history.c.serial,
    sqlite_where=text("serial IS NOT NULL"),
)
Index("ix_history_sscc", history.c.sscc, sqlite_where=text("sscc IS NOT NULL"))
Index("ix_history_parent", history.c.parent, sqlite_where=text("parent IS NOT NULL"))

#: Every event and alert, written in the same transaction as the cache change that caused it.
outbox = Table(
    "outbox",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("kind", String, nullable=False),  # event | alert
    Column("topic", String, nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("published_at", Float),
)
Index(
    "ix_outbox_unpublished",
    outbox.c.seq,
    sqlite_where=text("published_at IS NULL"),
)

#: Label print jobs, created in the same transaction as the event that caused them.
print_jobs = Table(
    "print_jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("idempotency_key", String, nullable=False, unique=True),
    Column("printer", String, nullable=False),
    Column("template", String, nullable=False),
    Column("fields", Text, nullable=False),  # JSON object
    Column("zpl", Text),  # rendered ZPL, set when first rendered
    Column("state", String, nullable=False, server_default="queued"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("is_reprint", Boolean, nullable=False, server_default="0"),
    Column("reprint_of", Integer, ForeignKey("print_jobs.id")),
    Column("event_id", String(36)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("error", Text, nullable=False, server_default=""),
    Column("printer_counter", Integer),  # label counter read just before sending
    CheckConstraint(
        "state IN ('queued','sending','sent','confirmed','held','failed','unknown')",
        name="ck_print_jobs_state",
    ),
)
Index("ix_print_jobs_printer_state", print_jobs.c.printer, print_jobs.c.state, print_jobs.c.id)

#: Items packed onto a pallet (SSCC): aggregation ADD creates rows, DELETE closes them.
aggregations = Table(
    "aggregations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("parent_sscc", String(18), nullable=False),
    Column("gtin", String(14)),
    Column("serial", String),
    Column("lot", String),
    Column("child_sscc", String(18)),
    Column("quantity", Integer, nullable=False, server_default="1"),
    Column("packed_seq", Integer, nullable=False),
    Column("packed_at", Float, nullable=False),
    Column("unpacked_at", Float),
)
Index("ix_aggregations_parent", aggregations.c.parent_sscc, aggregations.c.unpacked_at)
Index(
    "ix_aggregations_serial",
    aggregations.c.gtin,
    aggregations.c.serial,
    aggregations.c.unpacked_at,
)

#: Pallets (SSCC) this gateway knows: here, shipped, consumed, or expected (despatch advice).
pallets = Table(
    "pallets",
    metadata,
    Column("sscc", String(18), primary_key=True),
    Column("state", String, nullable=False),
    Column("location", String, nullable=False, server_default=""),
    Column("local_hold", Boolean, nullable=False, server_default="0"),
    Column("updated_at", Float, nullable=False, server_default="0"),
    CheckConstraint(
        "state IN ('expected','at_site','shipped','consumed')", name="ck_pallets_state"
    ),
)

#: Expiry alerts raised today (``day`` is the local date), so that neither the next check
#: nor a restart the same day raises them again; older days are deleted by the check.
expiry_alerts = Table(
    "expiry_alerts",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("kind", String, primary_key=True),
    Column("gtin", String(14), primary_key=True),
    Column("lot", String, primary_key=True),
    Column("location", String, primary_key=True),
    Column("seq", Integer, nullable=False),  # the alert's seq in the outbox
)
