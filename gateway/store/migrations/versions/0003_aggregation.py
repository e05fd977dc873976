"""Pallet aggregations; the printer's label counter before a job was sent.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "aggregations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("parent_sscc", sa.String(18), nullable=False),
        sa.Column("gtin", sa.String(14)),
        sa.Column("serial", sa.String),
        sa.Column("lot", sa.String),
        sa.Column("child_sscc", sa.String(18)),
        sa.Column("quantity", sa.Integer, nullable=False, server_default="1"),
        sa.Column("packed_seq", sa.Integer, nullable=False),
        sa.Column("packed_at", sa.Float, nullable=False),
        sa.Column("unpacked_at", sa.Float),
    )
    op.create_index("ix_aggregations_parent", "aggregations", ["parent_sscc", "unpacked_at"])
    with op.batch_alter_table("print_jobs") as batch:
        batch.add_column(sa.Column("printer_counter", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("print_jobs") as batch:
        batch.drop_column("printer_counter")
    op.drop_index("ix_aggregations_parent", "aggregations")
    op.drop_table("aggregations")
