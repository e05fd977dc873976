"""Expiry alerts already raised today (one per kind, lot and location per day).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "expiry_alerts",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("kind", sa.String, primary_key=True),
        sa.Column("gtin", sa.String(14), primary_key=True),
        sa.Column("lot", sa.String, primary_key=True),
        sa.Column("location", sa.String, primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("expiry_alerts")
