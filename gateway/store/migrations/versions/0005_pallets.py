"""Pallets: where each SSCC is and whether it is here, shipped, expected or held.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pallets",
        sa.Column("sscc", sa.String(18), primary_key=True),
        sa.Column("state", sa.String, nullable=False),
        sa.Column("location", sa.String, nullable=False, server_default=""),
        sa.Column("local_hold", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.Float, nullable=False, server_default="0"),
        sa.CheckConstraint(
            "state IN ('expected','at_site','shipped','consumed')", name="ck_pallets_state"
        ),
    )
    op.create_index("ix_aggregations_serial", "aggregations", ["gtin", "serial", "unpacked_at"])


def downgrade() -> None:
    op.drop_index("ix_aggregations_serial", "aggregations")
    op.drop_table("pallets")
