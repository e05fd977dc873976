"""History indexes only where the column is set; no created_at index.

Every index entry is B-tree pages written in each scan's transaction. A movement item
has a lot or a serial and seldom an SSCC or a parent, so the partial indexes skip most
rows; retention deletes the oldest rows by id, which needs no index of its own.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_PARTIAL = {
    "ix_history_lot": (["gtin", "lot"], "lot IS NOT NULL"),
    "ix_history_serial": (["gtin", "serial"], "serial IS NOT NULL"),
    "ix_history_sscc": (["sscc"], "sscc IS NOT NULL"),
    "ix_history_parent": (["parent"], "parent IS NOT NULL"),
}


def upgrade() -> None:
    op.drop_index("ix_history_created", table_name="history")
    for name, (cols, where) in _PARTIAL.items():
        op.drop_index(name, table_name="history")
        op.create_index(name, "history", cols, sqlite_where=sa.text(where))


def downgrade() -> None:
    for name, (cols, _where) in _PARTIAL.items():
        op.drop_index(name, table_name="history")
        op.create_index(name, "history", cols)
    op.create_index("ix_history_created", "history", ["created_at"])
