"""Places and partners for FSMA 204: sites, trading partners, product description fields.

Revision ID: 0004
Revises: 0003

``sites`` describes each site events name in ``site`` (our own locations); ``partners``
the suppliers and customers events name as a party (``from``/``to`` ``{"type": "party"}``),
keyed by that id (usually a GLN). Products gain the FSMA product description fields and
lots their traceability lot code source (a site or partner id) and source reference.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DDL = """
CREATE TABLE sites (
    site text PRIMARY KEY,
    gln varchar(13) UNIQUE,
    name text NOT NULL,
    street text,
    city text,
    region text,
    postal_code text,
    country text,
    phone text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE partners (
    party text PRIMARY KEY,
    gln varchar(13),
    name text NOT NULL,
    street text,
    city text,
    region text,
    postal_code text,
    country text,
    phone text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_partners_gln ON partners (gln) WHERE gln IS NOT NULL;
ALTER TABLE products
    ADD COLUMN product_name text,
    ADD COLUMN brand text,
    ADD COLUMN commodity text,
    ADD COLUMN variety text,
    ADD COLUMN pack_size text,
    ADD COLUMN pack_style text;
ALTER TABLE lots
    ADD COLUMN tlc_source text,
    ADD COLUMN tlc_source_reference text;
"""


def upgrade() -> None:
    op.execute(DDL)


def downgrade() -> None:
    op.execute("ALTER TABLE lots DROP COLUMN tlc_source, DROP COLUMN tlc_source_reference")
    op.execute(
        "ALTER TABLE products DROP COLUMN product_name, DROP COLUMN brand, "
        "DROP COLUMN commodity, DROP COLUMN variety, DROP COLUMN pack_size, "
        "DROP COLUMN pack_style"
    )
    op.execute("DROP TABLE IF EXISTS partners")
    op.execute("DROP TABLE IF EXISTS sites")
