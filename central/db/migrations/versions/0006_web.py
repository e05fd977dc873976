"""The web UI: people who log in (scrypt password hashes), their server-side sessions,
and an index that pages a lot's movements.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

DDL = """
CREATE TABLE web_users (
    username text PRIMARY KEY,
    role text NOT NULL CHECK (role IN ('viewer', 'recall-manager', 'admin')),
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL,
    disabled_at timestamptz,
    failed_logins integer NOT NULL DEFAULT 0,
    locked_until timestamptz
);
CREATE TABLE web_sessions (
    session_hash bytea PRIMARY KEY,
    username text NOT NULL REFERENCES web_users (username),
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    ended_at timestamptz
);
CREATE INDEX ix_web_sessions_user ON web_sessions (username);
-- the unit page pages a lot's movements newest first without sorting all of them
CREATE INDEX ix_items_lot_time ON event_items (gtin, lot, event_time DESC, id DESC);
"""


def upgrade() -> None:
    op.execute(DDL)


def downgrade() -> None:
    op.execute("DROP INDEX ix_items_lot_time; DROP TABLE web_sessions; DROP TABLE web_users;")
