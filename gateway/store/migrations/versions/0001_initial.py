"""Initial schema: cache (products, locations, lots, lot_stock, serials), outbox, print jobs.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "products",
        sa.Column("gtin", sa.String(14), primary_key=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("tracking", sa.String, nullable=False),
        sa.Column("expiry_warning_days", sa.Integer, nullable=False, server_default="30"),
        sa.Column("updated_at", sa.Float, nullable=False, server_default="0"),
        sa.CheckConstraint("tracking IN ('none','serial','lot')", name="ck_products_tracking"),
    )
    op.create_table(
        "locations",
        sa.Column("code", sa.String, primary_key=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("gln", sa.String, nullable=False, server_default=""),
    )
    op.create_table(
        "lots",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("gtin", sa.String(14), nullable=False),
        sa.Column("lot", sa.String, nullable=False),
        sa.Column("expiry", sa.String(10)),
        sa.Column("status", sa.String, nullable=False, server_default="active"),
        sa.Column("updated_at", sa.Float, nullable=False, server_default="0"),
        sa.UniqueConstraint("gtin", "lot", name="uq_lots_gtin_lot"),
        sa.CheckConstraint("status IN ('active','hold','recalled')", name="ck_lots_status"),
    )
    op.create_index("ix_lots_gtin_expiry", "lots", ["gtin", "expiry"])
    op.create_table(
        "lot_stock",
        sa.Column("lot_id", sa.Integer, sa.ForeignKey("lots.id"), primary_key=True),
        sa.Column("location", sa.String, primary_key=True),
        sa.Column("quantity", sa.Integer, nullable=False),
    )
    op.create_table(
        "serials",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("gtin", sa.String(14), nullable=False),
        sa.Column("serial", sa.String, nullable=False),
        sa.Column("lot", sa.String),
        sa.Column("state", sa.String, nullable=False),
        sa.Column("location", sa.String, nullable=False, server_default=""),
        sa.Column("updated_at", sa.Float, nullable=False, server_default="0"),
        sa.UniqueConstraint("gtin", "serial", name="uq_serials_gtin_serial"),
    )
    op.create_table(
        "outbox",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("topic", sa.String, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("published_at", sa.Float),
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["seq"],
        sqlite_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "print_jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("idempotency_key", sa.String, nullable=False, unique=True),
        sa.Column("printer", sa.String, nullable=False),
        sa.Column("template", sa.String, nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("zpl", sa.Text),
        sa.Column("state", sa.String, nullable=False, server_default="queued"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("is_reprint", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("reprint_of", sa.Integer, sa.ForeignKey("print_jobs.id")),
        sa.Column("event_id", sa.String(36)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.CheckConstraint(
            "state IN ('queued','sending','sent','confirmed','held','failed','unknown')",
            name="ck_print_jobs_state",
        ),
    )
    op.create_index("ix_print_jobs_printer_state", "print_jobs", ["printer", "state", "id"])


def downgrade() -> None:
    for t in (
        "print_jobs",
        "outbox",
        "serials",
        "lot_stock",
        "lots",
        "locations",
        "products",
        "meta",
    ):
        op.drop_table(t)
