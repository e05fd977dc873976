"""In-stock serials counted per lot and location, kept by triggers.

FEFO and FIFO at picking compare the other lots of the scanned GTIN with stock. For a
serial-tracked product the stock of a lot is its serials: counting them for every scan
read every in-stock serial of the GTIN (300,000 serials: 184 ms a scan). ``serial_stock``
holds the count per (GTIN, lot, location) and the earliest arrival among them, like
``lot_stock`` for lot-tracked products; triggers on ``serials`` keep it exact whatever
writes the serials (a scan, a cache import, a cache-sync snapshot or delta, a hold).

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_IN = "{r}.state = 'in_stock' AND {r}.lot IS NOT NULL"
_ADD = (
    "INSERT INTO serial_stock(gtin, lot, location, quantity, received_at) "
    "SELECT NEW.gtin, NEW.lot, NEW.location, 1, NEW.updated_at WHERE "
    + _IN.format(r="NEW")
    + " ON CONFLICT(gtin, lot, location) DO UPDATE SET quantity = quantity + 1, "
    "received_at = MIN(COALESCE(received_at, excluded.received_at), excluded.received_at);"
)
_TAKE = (
    "UPDATE serial_stock SET quantity = quantity - 1 WHERE "
    + _IN.format(r="OLD")
    + " AND gtin = OLD.gtin AND lot = OLD.lot AND location = OLD.location;"
    " DELETE FROM serial_stock WHERE "
    + _IN.format(r="OLD")
    + " AND gtin = OLD.gtin AND lot = OLD.lot AND location = OLD.location AND quantity <= 0;"
)
_CHANGED = (
    "OLD.gtin IS NOT NEW.gtin OR OLD.lot IS NOT NEW.lot OR OLD.state IS NOT NEW.state "
    "OR OLD.location IS NOT NEW.location"
)
TRIGGERS = {
    "trg_serial_stock_insert": (
        f"AFTER INSERT ON serials WHEN {_IN.format(r='NEW')} BEGIN {_ADD} END"
    ),
    "trg_serial_stock_delete": (
        f"AFTER DELETE ON serials WHEN {_IN.format(r='OLD')} BEGIN {_TAKE} END"
    ),
    "trg_serial_stock_update": (
        "AFTER UPDATE OF gtin, lot, state, location ON serials "
        f"WHEN ({_CHANGED}) AND (({_IN.format(r='OLD')}) OR ({_IN.format(r='NEW')})) "
        f"BEGIN {_TAKE} {_ADD} END"
    ),
}


def upgrade() -> None:
    op.execute(
        "CREATE TABLE serial_stock (gtin VARCHAR(14) NOT NULL, lot VARCHAR NOT NULL, "
        "location VARCHAR NOT NULL, quantity INTEGER NOT NULL, received_at FLOAT, "
        "PRIMARY KEY (gtin, lot, location)) WITHOUT ROWID"
    )
    op.execute(
        "INSERT INTO serial_stock(gtin, lot, location, quantity, received_at) "
        "SELECT gtin, lot, location, COUNT(*), MIN(updated_at) FROM serials "
        "WHERE state = 'in_stock' AND lot IS NOT NULL GROUP BY gtin, lot, location"
    )
    for name, body in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade() -> None:
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE serial_stock")
