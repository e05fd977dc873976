"""Master data the gateways need besides products and lots: serials and despatch advices.

Revision ID: 0007
Revises: 0006

``serials`` are the serials central knows of before any event (a supplier's list, an
ASN): ``expected`` (known, not received) or ``destroyed`` (void: refused everywhere).
``despatch_advices`` say what a pallet (SSCC) on its way holds (``despatch_advice_lines``)
and, optionally, the site it is shipped to (``ship_to``; NULL: every site).
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DDL = """
CREATE TABLE serials (
    gtin varchar(14) NOT NULL,
    serial text NOT NULL,
    lot text,
    state text NOT NULL CHECK (state IN ('expected', 'destroyed')),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gtin, serial)
);
CREATE TABLE despatch_advices (
    sscc varchar(18) PRIMARY KEY,
    desadv_id text NOT NULL,
    ship_to text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_despatch_advices_ship_to ON despatch_advices (ship_to);
CREATE TABLE despatch_advice_lines (
    sscc varchar(18) NOT NULL REFERENCES despatch_advices (sscc) ON DELETE CASCADE,
    line integer NOT NULL,
    gtin varchar(14) NOT NULL,
    lot text,
    serial text,
    quantity integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (sscc, line)
);
"""


def upgrade() -> None:
    op.execute(DDL)


def downgrade() -> None:
    for t in ("despatch_advice_lines", "despatch_advices", "serials"):
        op.execute(f"DROP TABLE IF EXISTS {t}")
