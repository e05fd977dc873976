"""Cache-sync tables (migration 0002), kept apart from ``schema.py``.

- ``sync_lot_status``: the lot status the central side last published (its enum).
- ``sync_holds``: holds by scope (GTIN, GTIN+lot, GTIN+serial or SSCC); for a serial
  hold, the serial's state before the hold so it can be restored.
- ``sync_recalls``: one row per recalled lot; ``lot = ''`` recalls every lot of the GTIN.

``lots.status`` is derived from these (see ``gateway.store.cache_sync``); the trigger
``trg_lots_sync_blocks`` applies GTIN-wide holds/recalls to lots created later.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table, Text, text

from gateway.store.schema import metadata

sync_lot_status = Table(
    "sync_lot_status",
    metadata,
    Column("gtin", String(14), primary_key=True),
    Column("lot", String, primary_key=True),
    Column("status", String, nullable=False),
)

sync_holds = Table(
    "sync_holds",
    metadata,
    Column("hold_id", String, primary_key=True),
    Column("gtin", String(14)),
    Column("lot", String),
    Column("serial", String),
    Column("sscc", String(18)),
    Column("reason", Text, nullable=False, server_default=""),
    Column("since", String, nullable=False),
    Column("serial_prev_state", String),
)
Index("ix_sync_holds_gtin", sync_holds.c.gtin, sync_holds.c.lot)
Index("ix_sync_holds_sscc", sync_holds.c.sscc, sqlite_where=text("sscc IS NOT NULL"))

sync_recalls = Table(
    "sync_recalls",
    metadata,
    Column("recall_id", String, primary_key=True),
    Column("gtin", String(14), nullable=False),
    Column("lot", String, primary_key=True),
    Column("reason", Text, nullable=False, server_default=""),
    Column("since", String, nullable=False),
)
Index("ix_sync_recalls_gtin", sync_recalls.c.gtin, sync_recalls.c.lot)
