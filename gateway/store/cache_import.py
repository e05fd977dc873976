"""Loading master data (products, lots, serials) from CSV files: all or nothing.

Columns (a header row is required; extra columns are an error, order is free; values are
separated by commas, and a file separated by semicolons or tabs gets a hint saying so):

- products.csv: ``gtin``, ``description``, ``tracking`` (none|serial|lot),
  ``expiry_warning_days`` (optional, 0 to 3650, default 30)
- lots.csv: ``gtin``, ``lot``, ``expiry`` (YYYY-MM-DD, optional), ``status``
  (active|hold|recalled, default active), ``location`` (optional), ``quantity``
  (optional, default 0: stock of the lot at that location). One row per (GTIN, lot,
  location); the rows of one lot agree on expiry and status. A row with an empty lot is
  stock of an untracked product (tracking none) at that location (``item_stock``); a
  serial-tracked lot has no quantity here (its stock is its serials).
- serials.csv: ``gtin``, ``serial``, ``lot`` (optional), ``state`` (default in_stock),
  ``location`` (optional)

GTINs may be 8, 12, 13 or 14 digits and are stored as 14; check digits are checked.
Every bad row is reported with its file and line (a duplicate also names the line it
repeats); nothing is written unless all are good.

How (a million serials in seconds, in bounded memory): each file is streamed row by row;
a row is checked on its own (pure functions below) and the good ones go, in chunks of
``BATCH`` rows (``executemany``), into TEMP staging tables (SQLite's temporary file, not
the database, not Python memory). What spans rows is SQL on the staging tables:
duplicates (``MIN(line)`` per key), rows of one lot that disagree, the lot column against
the products' tracking, unknown GTINs. Problems are staged too and reported in file and
line order. Only when there are none, ONE write transaction (``BEGIN IMMEDIATE``) merges
the staging tables into the cache with set-based upserts, so the gateway's writer waits
only for that.
"""

from __future__ import annotations

import csv
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from gateway.store.schema import products

#: Largest quantity of one row, and largest warning window (days) of a product: beyond
#: them a value is a typo, and would overflow SQLite or date arithmetic.
MAX_QUANTITY = 1_000_000_000
MAX_WARNING_DAYS = 3650
SERIAL_STATES = ("in_stock", "picked", "shipped", "consumed", "destroyed", "expected")
COLUMNS = {
    "products": ({"gtin", "tracking"}, {"description", "expiry_warning_days"}),
    "lots": ({"gtin", "lot"}, {"expiry", "status", "location", "quantity"}),
    "serials": ({"gtin", "serial"}, {"lot", "state", "location"}),
}
#: The order in which a row's values reach the row checks (absent column: "").
ORDER = {
    "products": ("gtin", "description", "tracking", "expiry_warning_days"),
    "lots": ("gtin", "lot", "expiry", "status", "location", "quantity"),
    "serials": ("gtin", "serial", "lot", "state", "location"),
}
#: Rows per ``executemany`` into a staging table.
BATCH = 5000
#: Problems listed in an ``ImportError_`` (``total`` counts them all).
MAX_REPORTED = 1000
#: Order of the problems: each file's own, then the checks against the cache.
_PHASE = {"products": 1, "lots": 2, "serials": 3}
_LOT_TRACKING, _SERIAL_PRODUCT = 4, 5
_END = 1 << 62  # sorts a problem that ends the reading of a file after its rows


class ImportError_(Exception):
    """One or more bad rows; ``problems`` lists ``file:line: message`` (the first
    ``MAX_REPORTED``), ``total`` counts them all."""

    def __init__(self, problems: list[str], total: int | None = None) -> None:
        self.problems = problems
        self.total = len(problems) if total is None else total
        super().__init__("\n".join(problems))


def gs1_check_digit(body: str) -> int:
    """The GS1 mod-10 check digit for the digits in ``body``."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        total += int(ch) * (3 if i % 2 == 0 else 1)
    return (10 - total % 10) % 10


def normalize_gtin(value: str) -> str:
    """A GTIN-8/12/13/14 as 14 digits; ValueError when malformed or the check digit is wrong."""
    v = value.strip()
    if not v.isdigit() or len(v) not in (8, 12, 13, 14):
        raise ValueError(f"GTIN {value!r} must be 8, 12, 13 or 14 digits")
    v = v.zfill(14)
    if gs1_check_digit(v[:-1]) != int(v[-1]):
        raise ValueError(
            f"GTIN {value} has a wrong check digit (expected {gs1_check_digit(v[:-1])})"
        )
    return v


#: A million serials name a few thousand GTINs: check each spelling once.
_gtin = lru_cache(maxsize=1 << 16)(normalize_gtin)


@dataclass(frozen=True)
class ImportCounts:
    """Rows imported per kind; ``items`` counts untracked stock rows (empty lot)."""

    products: int = 0
    lots: int = 0
    serials: int = 0
    items: int = 0


def separator_hint(header: Sequence[str]) -> str:
    """A hint when a header row was split on commas but uses another separator."""
    for sep, name in ((";", "semicolons (;)"), ("\t", "tabs")):
        if any(sep in h for h in header):
            return (
                f"the header is separated by {name}, not commas: save the file as "
                "comma-separated CSV (in a spreadsheet: CSV UTF-8, comma delimited)"
            )
    return ""


Report = Callable[[int, str], None]  # (line to sort by, the whole problem text)


def read_rows(path: Path, kind: str, report: Report) -> Iterator[tuple[int, list[str]]]:
    """Stream ``(line, values in ORDER[kind])`` of a CSV file; header and file problems
    go to ``report``. Blank lines are skipped; a missing trailing value is ""."""
    required, optional = COLUMNS[kind]
    try:
        f = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        report(0, f"{path}: cannot read: {exc.strerror}")
        return
    with f:
        reader = csv.reader(f)
        try:
            names = next(reader, [])
            missing = required - set(names)
            extra = set(names) - required - optional
            if missing or extra:
                if missing:
                    report(1, f"{path}:1: missing column(s): {', '.join(sorted(missing))}")
                if extra:
                    report(1, f"{path}:1: unknown column(s): {', '.join(sorted(extra))}")
                hint = separator_hint(names)
                if hint:
                    report(1, f"{path}:1: {hint}")
                return
            at = {name: i for i, name in enumerate(names)}
            where = [at.get(name, -1) for name in ORDER[kind]]
            width = len(names)
            for row in reader:
                n = len(row)
                if n == 0:
                    continue
                if n > width:
                    report(reader.line_num, f"{path}:{reader.line_num}: too many values")
                    continue
                yield reader.line_num, [row[i].strip() if 0 <= i < n else "" for i in where]
        except UnicodeDecodeError as exc:
            report(_END, f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})")
        except csv.Error as exc:
            report(reader.line_num, f"{path}:{reader.line_num}: not a valid CSV line ({exc})")


# -- one row on its own (pure) ----------------------------------------------------------------
def _int(value: str, name: str, default: int, maximum: int, minimum: int = 0) -> int:
    if value == "":
        return default
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a whole number") from None
    if n < minimum:
        raise ValueError(f"{name} must be at least {minimum}")
    if n > maximum:
        raise ValueError(f"{name} must be at most {maximum}")
    return n


def product_row(v: Sequence[str]) -> tuple[str, str, str, int]:
    """(gtin, description, tracking, expiry_warning_days) of a products row; ValueError."""
    gtin = _gtin(v[0])
    tracking = v[2].lower()
    if tracking not in ("none", "serial", "lot"):
        raise ValueError(f"tracking {v[2]!r} must be none, serial or lot")
    days = _int(v[3], "expiry_warning_days", 30, MAX_WARNING_DAYS)
    return gtin, v[1], tracking, days


def lot_row(v: Sequence[str]) -> tuple[str, str, str | None, str, str, int]:
    """(gtin, lot, expiry, status, location, quantity) of a lots row; ValueError."""
    gtin, lot = _gtin(v[0]), v[1]
    if len(lot) > 20:
        raise ValueError("lot must be at most 20 characters")
    expiry = v[2]
    if expiry:
        try:
            date.fromisoformat(expiry)
        except ValueError:
            raise ValueError(f"expiry {expiry!r} is not a YYYY-MM-DD date") from None
    status = v[3] or "active"
    if status not in ("active", "hold", "recalled"):
        raise ValueError(f"status {status!r} must be active, hold or recalled")
    return gtin, lot, expiry or None, status, v[4], _int(v[5], "quantity", 0, MAX_QUANTITY)


def serial_row(v: Sequence[str]) -> tuple[str, str, str | None, str, str]:
    """(gtin, serial, lot, state, location) of a serials row; ValueError."""
    gtin, serial = _gtin(v[0]), v[1]
    if not serial or len(serial) > 20:
        raise ValueError("serial must be 1 to 20 characters")
    state = v[3] or "in_stock"
    if state not in SERIAL_STATES:
        raise ValueError(f"state {state!r} must be one of {', '.join(SERIAL_STATES)}")
    return gtin, serial, v[2] or None, state, v[4]


_ROW = {"products": product_row, "lots": lot_row, "serials": serial_row}


def _where(location: str) -> str:
    return f"at location {location}" if location else "with no location"


def _what(gtin: str, lot: str) -> str:
    return f"lot {lot} of GTIN {gtin}" if lot else f"GTIN {gtin}"


def disagreement(rec: Mapping[str, Any], earlier: Mapping[str, Any]) -> str:
    """How a lot's row differs from its first row in expiry or status ("" if it does not)."""
    for name in ("expiry", "status"):
        if rec[name] != earlier[name]:
            here = f"{name} {rec[name]}" if rec[name] else f"no {name}"
            return f"has {here} here but {earlier[name] or f'no {name}'}"
    return ""


def lot_row_problem(r: Mapping[str, Any], kind: str | None) -> str | None:
    """What is wrong with a lots row given its product's tracking (None: unknown GTIN)."""
    gtin = r["gtin"]
    if kind is None:
        return f"GTIN {gtin} is not a known product"
    if kind == "none" and r["lot"]:
        return f"GTIN {gtin} is not tracked (tracking none): leave the lot empty"
    if kind == "none" and (r["expiry"] or r["status"] != "active"):
        return (
            f"GTIN {gtin} is not tracked (tracking none): an untracked product "
            "has no expiry or status"
        )
    if kind != "none" and not r["lot"]:
        return f"GTIN {gtin} is {kind}-tracked: the lot must not be empty"
    if kind == "serial" and (r["location"] or r["quantity"]):
        return (
            f"GTIN {gtin} is serial-tracked: the stock of its lot is its serials "
            "(list them in serials.csv), leave location and quantity empty"
        )
    return None


# -- staging (SQL on TEMP tables) -------------------------------------------------------------
_TABLES = {
    "problems": "phase INTEGER NOT NULL, line INTEGER NOT NULL, message TEXT NOT NULL",
    "products": "line INTEGER PRIMARY KEY, gtin TEXT NOT NULL, description TEXT NOT NULL, "
    "tracking TEXT NOT NULL, expiry_warning_days INTEGER NOT NULL",
    "lots": "line INTEGER PRIMARY KEY, gtin TEXT NOT NULL, lot TEXT NOT NULL, expiry TEXT, "
    "status TEXT NOT NULL, location TEXT NOT NULL, quantity INTEGER NOT NULL",
    "serials": "line INTEGER PRIMARY KEY, gtin TEXT NOT NULL, serial TEXT NOT NULL, lot TEXT, "
    "state TEXT NOT NULL, location TEXT NOT NULL",
}
_INSERT = {
    "products": "INSERT INTO temp.import_products VALUES (?, ?, ?, ?, ?)",
    "lots": "INSERT INTO temp.import_lots VALUES (?, ?, ?, ?, ?, ?, ?)",
    "serials": "INSERT INTO temp.import_serials VALUES (?, ?, ?, ?, ?, ?)",
}
_KEY = {
    "products": "gtin, line",
    "lots": "gtin, lot, location, line",
    "serials": "gtin, serial, line",
}


class Staging:
    """Staging tables on one SQLite connection (TEMP: gone when dropped or closed)."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con
        self._pending: list[tuple[int, int, str]] = []
        self.paths: dict[str, Path] = {}
        self.drop_tables(con)
        for name, cols in _TABLES.items():
            con.execute(f"CREATE TEMP TABLE import_{name}({cols})")

    @staticmethod
    def drop_tables(con: sqlite3.Connection) -> None:
        """Remove the staging tables (and their rows) from ``con``."""
        for name in _TABLES:
            con.execute(f"DROP TABLE IF EXISTS temp.import_{name}")

    # -- problems --
    def _report(self, phase: int) -> Report:
        pending = self._pending

        def report(line: int, message: str) -> None:
            pending.append((phase, line, message))
            if len(pending) >= BATCH:
                self._flush()

        return report

    def _flush(self) -> None:
        if self._pending:
            self.con.executemany("INSERT INTO temp.import_problems VALUES (?, ?, ?)", self._pending)
            self._pending.clear()

    def total(self) -> int:
        """How many problems were found so far."""
        self._flush()
        return int(self.con.execute("SELECT COUNT(*) FROM temp.import_problems").fetchone()[0])

    def problems(self, limit: int | None = MAX_REPORTED) -> list[str]:
        """The problems in file and line order (the first ``limit``)."""
        self._flush()
        return [
            str(m)
            for (m,) in self.con.execute(
                "SELECT message FROM temp.import_problems ORDER BY phase, line, rowid LIMIT ?",
                (-1 if limit is None else limit,),
            )
        ]

    def error(self) -> ImportError_:
        """The problems found, as the exception that refuses the import."""
        return ImportError_(self.problems(), self.total())

    # -- loading one file --
    def load(self, kind: str, path: Path) -> None:
        """Stream ``path`` into the staging table of ``kind``; then check across its rows."""
        self.paths[kind] = path
        report = self._report(_PHASE[kind])
        check, insert, con = _ROW[kind], _INSERT[kind], self.con
        batch: list[tuple[Any, ...]] = []
        con.execute("BEGIN")  # TEMP tables only: the database itself stays unlocked
        try:
            for line, values in read_rows(path, kind, report):
                try:
                    row = check(values)
                except ValueError as exc:
                    report(line, f"{path}:{line}: {exc}")
                    continue
                batch.append((line, *row))
                if len(batch) >= BATCH:
                    con.executemany(insert, batch)
                    batch.clear()
            if batch:
                con.executemany(insert, batch)
            con.execute(f"CREATE INDEX temp.import_{kind}_key ON import_{kind}({_KEY[kind]})")
            getattr(self, f"_check_{kind}")(path, report)
            self._flush()
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def _duplicates(self, table: str, key: str) -> Iterator[tuple[Any, ...]]:
        """(line, *key, first line) of each row whose key an earlier row of ``table`` has."""
        on = " AND ".join(f"s.{k} = k.{k}" for k in key.split(", "))
        return self.con.execute(
            f"SELECT s.line, {', '.join(f's.{k}' for k in key.split(', '))}, k.first "
            f"FROM (SELECT {key}, MIN(line) AS first FROM temp.{table} GROUP BY {key} "
            f"HAVING COUNT(*) > 1) AS k JOIN temp.{table} AS s ON {on} AND s.line > k.first"
        )

    def _drop_reported(self, table: str, phase: int) -> None:
        """Remove the rows a problem was reported for (they are neither written nor the
        "first" row of anything)."""
        self._flush()
        self.con.execute(
            f"DELETE FROM temp.{table} WHERE line IN "
            "(SELECT line FROM temp.import_problems WHERE phase = ?)",
            (phase,),
        )

    def _check_products(self, path: Path, report: Report) -> None:
        for line, gtin, first in self._duplicates("import_products", "gtin"):
            report(line, f"{path}:{line}: GTIN {gtin} appears twice (first at {path}:{first})")
        self._drop_reported("import_products", _PHASE["products"])

    def _check_serials(self, path: Path, report: Report) -> None:
        for line, gtin, serial, first in self._duplicates("import_serials", "gtin, serial"):
            report(
                line,
                f"{path}:{line}: serial {serial} of GTIN {gtin} appears twice "
                f"(first at {path}:{first})",
            )
        self._drop_reported("import_serials", _PHASE["serials"])

    def _check_lots(self, path: Path, report: Report) -> None:
        """A row repeating an earlier good row's (GTIN, lot, location), or disagreeing with
        its lot's first row on expiry or status, is refused (naming the earlier line)."""
        con = self.con
        con.execute("ALTER TABLE temp.import_lots ADD COLUMN agree INTEGER NOT NULL DEFAULT 1")
        con.execute("CREATE INDEX temp.import_lots_lot ON import_lots(gtin, lot, line)")
        first_of_lot = (
            "SELECT {cols} FROM temp.import_lots AS f WHERE f.gtin = s.gtin AND f.lot = s.lot "
            "ORDER BY f.line LIMIT 1"
        )
        con.execute(
            "UPDATE temp.import_lots AS s SET agree = 0 WHERE s.lot <> '' AND (s.expiry, s.status) "
            f"IS NOT ({first_of_lot.format(cols='f.expiry, f.status')})"
        )
        # a duplicate repeats the first AGREEING row at its key (a disagreeing one is refused)
        for line, gtin, lot, location, first in con.execute(
            "SELECT s.line, s.gtin, s.lot, s.location, k.first FROM (SELECT gtin, lot, location, "
            "MIN(line) AS first FROM temp.import_lots WHERE agree GROUP BY gtin, lot, location "
            "HAVING COUNT(*) > 1) "
            "AS k JOIN temp.import_lots AS s ON s.gtin = k.gtin AND s.lot = k.lot "
            "AND s.location = k.location AND s.line > k.first"
        ):
            what = f"{_what(gtin, lot)} {_where(location)}"
            report(line, f"{path}:{line}: {what} appears twice (first at {path}:{first})")
        self._drop_reported("import_lots", _PHASE["lots"])
        for line, gtin, lot, expiry, status, fline, fexpiry, fstatus in con.execute(
            "SELECT s.line, s.gtin, s.lot, s.expiry, s.status, f.line, f.expiry, f.status "
            "FROM temp.import_lots AS s JOIN temp.import_lots AS f "
            f"ON f.line = ({first_of_lot.format(cols='f.line')}) WHERE NOT s.agree"
        ):
            differs = disagreement(
                {"expiry": expiry, "status": status}, {"expiry": fexpiry, "status": fstatus}
            )
            report(line, f"{path}:{line}: {_what(gtin, lot)} {differs} at {path}:{fline}")
        self._drop_reported("import_lots", _PHASE["lots"])

    # -- against the cache, inside the write transaction --
    def check_against_cache(self) -> None:
        """Lots rows against their product's tracking, serials against known products (the
        products file's, else the cache's)."""
        tracking = (
            "COALESCE((SELECT p.tracking FROM temp.import_products AS p WHERE p.gtin = s.gtin), "
            "(SELECT c.tracking FROM main.products AS c WHERE c.gtin = s.gtin))"
        )
        if "lots" in self.paths:
            path, report = self.paths["lots"], self._report(_LOT_TRACKING)
            for line, gtin, lot, expiry, status, location, quantity, kind in self.con.execute(
                "SELECT line, gtin, lot, expiry, status, location, quantity, "
                f"{tracking} FROM temp.import_lots AS s ORDER BY line"
            ):
                rec = {"gtin": gtin, "lot": lot, "expiry": expiry, "status": status}
                rec |= {"location": location, "quantity": quantity}
                msg = lot_row_problem(rec, kind)
                if msg is not None:
                    report(line, f"{path}:{line}: {msg}")
        if "serials" in self.paths:
            path, report = self.paths["serials"], self._report(_SERIAL_PRODUCT)
            for line, gtin in self.con.execute(
                f"SELECT line, gtin FROM temp.import_serials AS s WHERE {tracking} IS NULL "
                "ORDER BY line"
            ):
                report(line, f"{path}:{line}: GTIN {gtin} is not a known product")
        self._flush()

    # -- the one write --
    def merge(self, now: float) -> ImportCounts:
        """Write the staged rows into the cache (inside the caller's transaction)."""
        con = self.con
        con.execute(
            "INSERT INTO main.products(gtin, description, tracking, expiry_warning_days, "
            "updated_at) SELECT gtin, description, tracking, expiry_warning_days, ? "
            "FROM temp.import_products WHERE true ORDER BY gtin "
            "ON CONFLICT(gtin) DO UPDATE SET description = excluded.description, "
            "tracking = excluded.tracking, expiry_warning_days = excluded.expiry_warning_days, "
            "updated_at = excluded.updated_at",
            (now,),
        )
        # untracked stock (empty lot): set per location; none left means no row
        con.execute(
            "DELETE FROM main.item_stock WHERE (gtin, location) IN (SELECT gtin, location "
            "FROM temp.import_lots WHERE lot = '' AND quantity = 0)"
        )
        con.execute(
            "INSERT INTO main.item_stock(gtin, location, quantity) SELECT gtin, location, "
            "quantity FROM temp.import_lots WHERE lot = '' AND quantity > 0 "
            "ON CONFLICT(gtin, location) DO UPDATE SET quantity = excluded.quantity"
        )
        # lots (their rows agree: any one gives expiry and status), then their stock; the
        # first arrival at a location is kept for FIFO (stock new there arrives now)
        con.execute(
            "INSERT INTO main.lots(gtin, lot, expiry, status, updated_at) "
            "SELECT gtin, lot, expiry, status, ? FROM temp.import_lots WHERE lot <> '' "
            "GROUP BY gtin, lot ORDER BY gtin, lot "
            "ON CONFLICT(gtin, lot) DO UPDATE SET expiry = excluded.expiry, "
            "status = excluded.status, updated_at = excluded.updated_at",
            (now,),
        )
        stock = (
            "FROM temp.import_lots AS s JOIN main.lots AS l ON l.gtin = s.gtin AND l.lot = s.lot "
            "WHERE s.lot <> ''"
        )
        con.execute(
            "DELETE FROM main.lot_stock WHERE (lot_id, location) IN "
            f"(SELECT l.id, s.location {stock} AND s.quantity = 0 AND s.location <> '')"
        )
        con.execute(
            "INSERT INTO main.lot_stock(lot_id, location, quantity, received_at) "
            f"SELECT l.id, s.location, s.quantity, ? {stock} AND s.quantity > 0 "
            "ON CONFLICT(lot_id, location) DO UPDATE SET quantity = excluded.quantity, "
            "received_at = COALESCE(lot_stock.received_at, excluded.received_at)",
            (now,),
        )
        con.execute(
            "INSERT INTO main.serials(gtin, serial, lot, state, location, updated_at) "
            "SELECT gtin, serial, lot, state, location, ? FROM temp.import_serials WHERE true "
            "ORDER BY gtin, serial ON CONFLICT(gtin, serial) DO UPDATE SET lot = excluded.lot, "
            "state = excluded.state, location = excluded.location, "
            "updated_at = excluded.updated_at",
            (now,),
        )
        count = "SELECT COUNT(*) FROM temp.import_{} {}"
        n = [
            int(con.execute(count.format(t, w)).fetchone()[0])
            for t, w in (
                ("products", ""),
                ("lots", "WHERE lot <> ''"),
                ("serials", ""),
                ("lots", "WHERE lot = ''"),
            )
        ]
        return ImportCounts(*n)


def _check_file(kind: str, path: Path, problems: list[str]) -> int:
    """Check one file on its own (rows, duplicates, lots that disagree), as
    ``check-config`` does for seed files: problems go to ``problems``; returns the number
    of good rows. The staging lives in a private temporary SQLite file."""
    con = sqlite3.connect("", isolation_level=None)
    try:
        st = Staging(con)
        st.load(kind, path)
        problems.extend(st.problems(None))
        table = "import_" + kind
        return int(con.execute(f"SELECT COUNT(*) FROM temp.{table}").fetchone()[0])
    finally:
        con.close()


def parse_products(path: Path, problems: list[str]) -> int:
    """Check a products file on its own; bad rows go to ``problems``."""
    return _check_file("products", path, problems)


def parse_lots(path: Path, problems: list[str]) -> int:
    """Check a lots file on its own (duplicates per (GTIN, lot, location), rows of one lot
    that disagree on expiry or status); bad rows go to ``problems``."""
    return _check_file("lots", path, problems)


def parse_serials(path: Path, problems: list[str]) -> int:
    """Check a serials file on its own; bad rows go to ``problems``."""
    return _check_file("serials", path, problems)


def import_csv(
    engine: Engine,
    products_csv: Path | None = None,
    lots_csv: Path | None = None,
    serials_csv: Path | None = None,
) -> ImportCounts:
    """Validate all files first (streamed into staging tables), then write everything in
    one transaction; ``ImportError_`` lists the problems and nothing is written."""
    raw = engine.raw_connection()
    con: sqlite3.Connection = raw.driver_connection  # type: ignore[assignment]
    try:
        st = Staging(con)
        if products_csv:
            st.load("products", products_csv)
        products_ok = st.total() == 0  # bad product rows would make the checks below noise
        if lots_csv:
            st.load("lots", lots_csv)
        if serials_csv:
            st.load("serials", serials_csv)
        if not products_ok:
            raise st.error()
        con.execute("BEGIN IMMEDIATE")
        try:
            st.check_against_cache()
            if st.total():
                raise st.error()
            counts = st.merge(time.time())
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return counts
    finally:
        try:
            Staging.drop_tables(con)
        finally:
            raw.close()


def cache_is_empty(engine: Engine) -> bool:
    """True when no product is in the cache (first start)."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(products)).scalar_one()) == 0
