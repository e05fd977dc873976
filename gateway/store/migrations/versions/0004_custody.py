"""Custody: stock of untracked products per location, serial holds, local movement history.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "item_stock",
        sa.Column("gtin", sa.String(14), primary_key=True),
        sa.Column("location", sa.String, primary_key=True),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.CheckConstraint("quantity >= 0", name="ck_item_stock_quantity"),
    )
    with op.batch_alter_table("serials") as batch:
        batch.add_column(sa.Column("held", sa.Boolean, nullable=False, server_default="0"))
    with op.batch_alter_table("lots") as batch:
        batch.add_column(sa.Column("local_hold", sa.Boolean, nullable=False, server_default="0"))
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("local_hold", sa.Boolean, nullable=False, server_default="0"))
    op.create_table(
        "history",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event_time", sa.String, nullable=False),
        sa.Column("movement", sa.String, nullable=False),
        sa.Column("biz_step", sa.String, nullable=False),
        sa.Column("station", sa.String, nullable=False),
        sa.Column("gtin", sa.String(14)),
        sa.Column("lot", sa.String),
        sa.Column("serial", sa.String),
        sa.Column("sscc", sa.String(18)),
        sa.Column("parent", sa.String(18)),
        sa.Column("quantity", sa.Float),
        sa.Column("uom", sa.String),
        sa.Column("from_type", sa.String),
        sa.Column("from_id", sa.String),
        sa.Column("to_type", sa.String),
        sa.Column("to_id", sa.String),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_history_lot", "history", ["gtin", "lot"])
    op.create_index("ix_history_serial", "history", ["gtin", "serial"])
    op.create_index("ix_history_sscc", "history", ["sscc"])
    op.create_index("ix_history_parent", "history", ["parent"])
    op.create_index("ix_history_created", "history", ["created_at"])


def downgrade() -> None:
    op.drop_table("history")
    with op.batch_alter_table("products") as batch:
        batch.drop_column("local_hold")
    with op.batch_alter_table("lots") as batch:
        batch.drop_column("local_hold")
    with op.batch_alter_table("serials") as batch:
        batch.drop_column("held")
    op.drop_table("item_stock")
