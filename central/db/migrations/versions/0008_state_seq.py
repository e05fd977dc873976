"""Where a unit is now remembers which gateway event put it there (gateway and seq).

Revision ID: 0008
Revises: 0007

Event times are milliseconds. Two events of one unit from one gateway in the same
millisecond are ordered by the gateway's ``seq``; when the later one was stored first
(another batch, a redelivery), the earlier one must not overwrite it. Rows written
before this migration have no seq: at a tie they take the event stored last, as before.
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("serial_state", "sscc_state"):
        op.execute(f"ALTER TABLE {table} ADD COLUMN last_gateway_id text")
        op.execute(f"ALTER TABLE {table} ADD COLUMN last_seq bigint")


def downgrade() -> None:
    for table in ("serial_state", "sscc_state"):
        op.execute(f"ALTER TABLE {table} DROP COLUMN last_seq")
        op.execute(f"ALTER TABLE {table} DROP COLUMN last_gateway_id")
