"""FIFO: when each lot first arrived at each location.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lot_stock") as batch:
        batch.add_column(sa.Column("received_at", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("lot_stock") as batch:
        batch.drop_column("received_at")
