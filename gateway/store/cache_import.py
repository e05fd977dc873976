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
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select
from sqlalchemy.dialects.sqlite import insert

from gateway.store.schema import item_stock, lot_stock, lots, products, serials

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


class ImportError_(Exception):
    """One or more bad rows; ``problems`` lists ``file:line: message``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
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


@dataclass(frozen=True)
class ImportCounts:
    """Rows imported per kind; ``items`` counts untracked stock rows (empty lot)."""

    products: int = 0
    lots: int = 0
    serials: int = 0
    items: int = 0


def _rows(path: Path, kind: str, problems: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    required, optional = COLUMNS[kind]
    try:
        f = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror}")
        return
    with f:
        reader = csv.DictReader(f)
        try:
            header = set(reader.fieldnames or [])
            missing = required - header
            extra = header - required - optional
            if missing or extra:
                if missing:
                    problems.append(f"{path}:1: missing column(s): {', '.join(sorted(missing))}")
                if extra:
                    problems.append(f"{path}:1: unknown column(s): {', '.join(sorted(extra))}")
                hint = separator_hint(reader.fieldnames or [])
                if hint:
                    problems.append(f"{path}:1: {hint}")
                return
            for row in reader:
                if None in row:
                    problems.append(f"{path}:{reader.line_num}: too many values")
                    continue
                yield reader.line_num, {k: (v or "").strip() for k, v in row.items()}
        except UnicodeDecodeError as exc:
            problems.append(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})")
        except csv.Error as exc:
            problems.append(f"{path}:{reader.line_num}: not a valid CSV line ({exc})")


def separator_hint(header: Sequence[str]) -> str:
    """A hint when a header row was split on commas but uses another separator."""
    for sep, name in ((";", "semicolons (;)"), ("\t", "tabs")):
        if any(sep in h for h in header):
            return (
                f"the header is separated by {name}, not commas: save the file as "
                "comma-separated CSV (in a spreadsheet: CSV UTF-8, comma delimited)"
            )
    return ""


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


def parse_products(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    """The rows of a products file; bad rows go to ``problems``."""
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for line, row in _rows(path, "products", problems):
        try:
            gtin = normalize_gtin(row["gtin"])
            tracking = row["tracking"].lower()
            if tracking not in ("none", "serial", "lot"):
                raise ValueError(f"tracking {row['tracking']!r} must be none, serial or lot")
            days = _int(
                row.get("expiry_warning_days", ""), "expiry_warning_days", 30, MAX_WARNING_DAYS
            )
            if gtin in seen:
                raise ValueError(f"GTIN {gtin} appears twice (first at {path}:{seen[gtin]})")
            seen[gtin] = line
        except ValueError as exc:
            problems.append(f"{path}:{line}: {exc}")
            continue
        out.append(
            {
                "gtin": gtin,
                "description": row.get("description", ""),
                "tracking": tracking,
                "expiry_warning_days": days,
                "updated_at": time.time(),
            }
        )
    return out


def _where(location: str) -> str:
    return f"at location {location}" if location else "with no location"


def parse_lots(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    """The rows of a lots file (an empty ``lot`` is untracked stock); bad rows go to
    ``problems``: duplicates per (GTIN, lot, location) and rows of one lot that disagree
    on expiry or status name the earlier line."""
    out: list[dict[str, Any]] = []
    seen: dict[tuple[str, str, str], int] = {}
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for line, row in _rows(path, "lots", problems):
        try:
            gtin = normalize_gtin(row["gtin"])
            lot, location = row["lot"], row.get("location", "")
            if len(lot) > 20:
                raise ValueError("lot must be at most 20 characters")
            expiry = row.get("expiry", "")
            if expiry:
                try:
                    date.fromisoformat(expiry)
                except ValueError:
                    raise ValueError(f"expiry {expiry!r} is not a YYYY-MM-DD date") from None
            status = row.get("status", "") or "active"
            if status not in ("active", "hold", "recalled"):
                raise ValueError(f"status {status!r} must be active, hold or recalled")
            rec = {
                "gtin": gtin,
                "lot": lot,
                "expiry": expiry or None,
                "status": status,
                "location": location,
                "quantity": _int(row.get("quantity", ""), "quantity", 0, MAX_QUANTITY),
                "line": line,
            }
            what = f"lot {lot} of GTIN {gtin}" if lot else f"GTIN {gtin}"
            if (gtin, lot, location) in seen:
                raise ValueError(
                    f"{what} {_where(location)} appears twice "
                    f"(first at {path}:{seen[gtin, lot, location]})"
                )
            earlier = first.get((gtin, lot)) if lot else None
            if earlier is not None and (differs := _disagreement(rec, earlier)):
                raise ValueError(f"{what} {differs} at {path}:{earlier['line']}")
        except ValueError as exc:
            problems.append(f"{path}:{line}: {exc}")
            continue
        seen[gtin, lot, location] = line
        first.setdefault((gtin, lot), rec)
        out.append(rec)
    return out


def _disagreement(rec: dict[str, Any], earlier: dict[str, Any]) -> str:
    """How a lot's row differs from its first row in expiry or status ("" if it does not)."""
    for name in ("expiry", "status"):
        if rec[name] != earlier[name]:
            here = f"{name} {rec[name]}" if rec[name] else f"no {name}"
            return f"has {here} here but {earlier[name] or f'no {name}'}"
    return ""


def check_lot_rows(
    path: Path | None, rows: Iterable[dict[str, Any]], tracking: dict[str, str]
) -> list[str]:
    """Problems of lots-file rows against the products' tracking (GTIN -> tracking)."""
    problems: list[str] = []
    for r in rows:
        gtin, kind = r["gtin"], tracking.get(r["gtin"])
        if kind is None:
            msg = f"GTIN {gtin} is not a known product"
        elif kind == "none" and r["lot"]:
            msg = f"GTIN {gtin} is not tracked (tracking none): leave the lot empty"
        elif kind == "none" and (r["expiry"] or r["status"] != "active"):
            msg = (
                f"GTIN {gtin} is not tracked (tracking none): an untracked product "
                "has no expiry or status"
            )
        elif kind != "none" and not r["lot"]:
            msg = f"GTIN {gtin} is {kind}-tracked: the lot must not be empty"
        elif kind == "serial" and (r["location"] or r["quantity"]):
            msg = (
                f"GTIN {gtin} is serial-tracked: the stock of its lot is its serials "
                "(list them in serials.csv), leave location and quantity empty"
            )
        else:
            continue
        problems.append(f"{path}:{r['line']}: {msg}")
    return problems


def parse_serials(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    """The rows of a serials file; bad rows go to ``problems``."""
    out: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    for line, row in _rows(path, "serials", problems):
        try:
            gtin = normalize_gtin(row["gtin"])
            if not row["serial"] or len(row["serial"]) > 20:
                raise ValueError("serial must be 1 to 20 characters")
            state = row.get("state", "") or "in_stock"
            if state not in SERIAL_STATES:
                raise ValueError(f"state {state!r} must be one of {', '.join(SERIAL_STATES)}")
            if (gtin, row["serial"]) in seen:
                raise ValueError(
                    f"serial {row['serial']} of GTIN {gtin} appears twice "
                    f"(first at {path}:{seen[gtin, row['serial']]})"
                )
            seen[gtin, row["serial"]] = line
        except ValueError as exc:
            problems.append(f"{path}:{line}: {exc}")
            continue
        out.append(
            {
                "gtin": gtin,
                "serial": row["serial"],
                "lot": row.get("lot") or None,
                "state": state,
                "location": row.get("location", ""),
                "updated_at": time.time(),
                "line": line,
            }
        )
    return out


def _write_item_stock(conn: Connection, gtin: str, location: str, quantity: int) -> None:
    """Set the stock of an untracked product at a location (none left: no row)."""
    if quantity == 0:
        conn.execute(
            delete(item_stock).where(item_stock.c.gtin == gtin, item_stock.c.location == location)
        )
        return
    st = insert(item_stock).values(gtin=gtin, location=location, quantity=quantity)
    conn.execute(
        st.on_conflict_do_update(
            index_elements=[item_stock.c.gtin, item_stock.c.location],
            set_={"quantity": st.excluded.quantity},
        )
    )


def _write_lot_stock(
    conn: Connection, lot_id: int, location: str, quantity: int, now: float
) -> None:
    """Set a lot's stock at a location (none left: no row, as on the hot path). The first
    arrival there is kept for FIFO: stock new at a location arrives now, at the import."""
    where = (lot_stock.c.lot_id == lot_id, lot_stock.c.location == location)
    if quantity == 0:
        conn.execute(delete(lot_stock).where(*where))
        return
    st = insert(lot_stock).values(
        lot_id=lot_id, location=location, quantity=quantity, received_at=now
    )
    conn.execute(
        st.on_conflict_do_update(
            index_elements=[lot_stock.c.lot_id, lot_stock.c.location],
            set_={
                "quantity": st.excluded.quantity,
                "received_at": func.coalesce(lot_stock.c.received_at, st.excluded.received_at),
            },
        )
    )


def _write(
    conn: Connection,
    prods: Iterable[dict[str, Any]],
    lot_rows: Iterable[dict[str, Any]],
    serial_rows: Iterable[dict[str, Any]],
) -> None:
    for p in prods:
        stmt = insert(products).values(**p)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[products.c.gtin],
                set_={k: stmt.excluded[k] for k in p if k != "gtin"},
            )
        )
    now = time.time()
    for lot in lot_rows:
        if not lot["lot"]:
            _write_item_stock(conn, lot["gtin"], lot["location"], lot["quantity"])
            continue
        stmt = insert(lots).values(
            gtin=lot["gtin"],
            lot=lot["lot"],
            expiry=lot["expiry"],
            status=lot["status"],
            updated_at=now,
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[lots.c.gtin, lots.c.lot],
                set_={
                    "expiry": stmt.excluded.expiry,
                    "status": stmt.excluded.status,
                    "updated_at": now,
                },
            )
        )
        lot_id = conn.execute(
            select(lots.c.id).where(lots.c.gtin == lot["gtin"], lots.c.lot == lot["lot"])
        ).scalar_one()
        if lot["quantity"] or lot["location"]:
            _write_lot_stock(conn, lot_id, lot["location"], lot["quantity"], now)
    for row in serial_rows:
        s = {k: v for k, v in row.items() if k != "line"}
        stmt = insert(serials).values(**s)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[serials.c.gtin, serials.c.serial],
                set_={k: stmt.excluded[k] for k in s if k not in ("gtin", "serial")},
            )
        )


def import_csv(
    engine: Engine,
    products_csv: Path | None = None,
    lots_csv: Path | None = None,
    serials_csv: Path | None = None,
) -> ImportCounts:
    """Validate all files first, then write everything in one transaction."""
    problems: list[str] = []
    prods = parse_products(products_csv, problems) if products_csv else []
    products_ok = not problems  # bad product rows would make the checks below noise
    lot_rows = parse_lots(lots_csv, problems) if lots_csv else []
    serial_rows = parse_serials(serials_csv, problems) if serials_csv else []
    if not products_ok:
        raise ImportError_(problems)
    with engine.begin() as conn:
        tracking: dict[str, str] = {
            str(g): str(t) for g, t in conn.execute(select(products.c.gtin, products.c.tracking))
        }
        tracking.update((p["gtin"], p["tracking"]) for p in prods)
        problems.extend(check_lot_rows(lots_csv, lot_rows, tracking))
        for r in serial_rows:
            if r["gtin"] not in tracking:
                problems.append(
                    f"{serials_csv}:{r['line']}: GTIN {r['gtin']} is not a known product"
                )
        if problems:
            raise ImportError_(problems)
        _write(conn, prods, lot_rows, serial_rows)
    items = sum(1 for r in lot_rows if not r["lot"])
    return ImportCounts(len(prods), len(lot_rows) - items, len(serial_rows), items)


def cache_is_empty(engine: Engine) -> bool:
    """True when no product is in the cache (first start)."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(products)).scalar_one()) == 0
