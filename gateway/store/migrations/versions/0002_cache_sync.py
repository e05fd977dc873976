"""Cache sync from the central side: central lot status, holds, recalls, serial holds.

``lots.status`` stays the one field the scan path reads; it is derived from the
central lot status (``sync_lot_status``) plus every hold and recall covering the
lot. A trigger gives lots created later (a local receipt) the status their
GTIN-wide holds/recalls demand, and records the status it was created with as
its central status (so a hold lifted later restores it). Existing lots get the same.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

#: Local status -> central status, for lots the central side has not described yet.
_CENTRAL_OF = (
    "CASE {s} WHEN 'hold' THEN 'quarantined' WHEN 'recalled' THEN 'recalled' ELSE 'released' END"
)

_TRIGGER = f"""
CREATE TRIGGER trg_lots_sync_blocks AFTER INSERT ON lots
BEGIN
    INSERT OR IGNORE INTO sync_lot_status(gtin, lot, status)
        VALUES (NEW.gtin, NEW.lot, {_CENTRAL_OF.format(s="NEW.status")});
    UPDATE lots SET status = CASE
        WHEN EXISTS (SELECT 1 FROM sync_recalls r
                     WHERE r.gtin = NEW.gtin AND r.lot IN ('', NEW.lot)) THEN 'recalled'
        WHEN c.status = 'recalled' THEN 'recalled'
        WHEN EXISTS (SELECT 1 FROM sync_holds h
                     WHERE h.gtin = NEW.gtin AND h.serial IS NULL
                       AND (h.lot IS NULL OR h.lot = NEW.lot)) THEN 'hold'
        WHEN c.status IN ('quarantined', 'blocked', 'expired') THEN 'hold'
        ELSE 'active' END
    FROM (SELECT status FROM sync_lot_status WHERE gtin = NEW.gtin AND lot = NEW.lot) AS c
    WHERE id = NEW.id;
END
"""


def upgrade() -> None:
    op.create_table(
        "sync_lot_status",
        sa.Column("gtin", sa.String(14), primary_key=True),
        sa.Column("lot", sa.String, primary_key=True),
        sa.Column("status", sa.String, nullable=False),
    )
    op.create_table(
        "sync_holds",
        sa.Column("hold_id", sa.String, primary_key=True),
        sa.Column("gtin", sa.String(14)),
        sa.Column("lot", sa.String),
        sa.Column("serial", sa.String),
        sa.Column("sscc", sa.String(18)),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("since", sa.String, nullable=False),
        sa.Column("serial_prev_state", sa.String),
    )
    op.create_index("ix_sync_holds_gtin", "sync_holds", ["gtin", "lot"])
    op.create_table(
        "sync_recalls",
        sa.Column("recall_id", sa.String, primary_key=True),
        sa.Column("gtin", sa.String(14), nullable=False),
        sa.Column("lot", sa.String, primary_key=True),  # '' = every lot of the GTIN
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("since", sa.String, nullable=False),
    )
    op.create_index("ix_sync_recalls_gtin", "sync_recalls", ["gtin", "lot"])
    op.execute(
        "INSERT INTO sync_lot_status(gtin, lot, status) "
        f"SELECT gtin, lot, {_CENTRAL_OF.format(s='status')} FROM lots"
    )
    op.execute(_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS trg_lots_sync_blocks")
    for t in ("sync_recalls", "sync_holds", "sync_lot_status"):
        op.drop_table(t)
