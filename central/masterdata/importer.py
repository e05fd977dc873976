"""Products and lots from CSV (the gateway's cache import format): all or nothing.

- products: ``gtin``, ``tracking`` (none|serial|lot), optional ``description`` and
  ``expiry_warning_days`` (0 to 3650, default 30), and the FSMA 204 product description
  fields ``product_name``, ``brand``, ``commodity``, ``variety``, ``pack_size``,
  ``pack_style`` (a column the file does not have leaves the stored value alone; an empty
  cell clears it)
- lots: ``gtin``, ``lot``, optional ``expiry`` (YYYY-MM-DD) and ``status``
  (active|hold|recalled, default active), and the FSMA 204 ``tlc_source`` (the site or
  partner id that assigned the lot code) and ``tlc_source_reference`` (same rule). The gateway's ``location`` and ``quantity``
  columns are accepted and ignored: central's stock comes from events. Several rows of
  one lot (one per location) must agree on expiry and status. An import never lifts a
  recall: a lot recalled at central stays recalled (``release`` does that).

A header row is required, extra columns are an error; GTINs of 8 to 14 digits are stored
as GTIN-14 with their check digit checked. Every bad row is reported as ``file:line:
message``; nothing is written unless all rows are good. Rows are upserted.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import Connection, text

from central.trace.model import KeyError_, normalize_gtin

TRACKING = ("none", "serial", "lot")
LOT_STATUSES = ("active", "hold", "recalled")
MAX_WARNING_DAYS = 3650
#: FSMA 204 product description fields (optional product columns).
FSMA_PRODUCT_COLUMNS = ("product_name", "brand", "commodity", "variety", "pack_size", "pack_style")
#: FSMA 204 traceability lot code source (optional lot columns).
FSMA_LOT_COLUMNS = ("tlc_source", "tlc_source_reference")
PLACE_COLUMNS = ("name", "gln", "street", "city", "region", "postal_code", "country", "phone")
COLUMNS = {
    "products": (
        {"gtin", "tracking"},
        {"description", "expiry_warning_days", *FSMA_PRODUCT_COLUMNS},
    ),
    "lots": ({"gtin", "lot"}, {"expiry", "status", "location", "quantity", *FSMA_LOT_COLUMNS}),
    "sites": ({"site", "name"}, set(PLACE_COLUMNS)),
    "serials": ({"gtin", "serial"}, {"lot", "state", "location"}),
    "despatch_advices": ({"sscc", "desadv", "gtin", "quantity"}, {"lot", "serial", "ship_to"}),
    "partners": ({"party", "name"}, set(PLACE_COLUMNS)),
}
MAX_TEXT = 200


class ImportProblems(Exception):
    """Bad rows; ``problems`` lists ``file:line: message``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True, slots=True)
class Product:
    gtin: str
    description: str
    tracking: str
    expiry_warning_days: int
    #: the FSMA columns the file has: (column, value or None to clear)
    fsma: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True, slots=True)
class Lot:
    gtin: str
    lot: str
    expiry: date | None
    status: str
    #: the FSMA columns the file has: (column, value or None to clear)
    fsma: tuple[tuple[str, str | None], ...] = ()


def optional_text(row: dict[str, str], column: str) -> str | None:
    """A free-text cell: None when empty; ValueError when too long or not printable."""
    v = row.get(column, "")
    if not v:
        return None
    if len(v) > MAX_TEXT or any(ord(c) < 32 or ord(c) == 127 for c in v):
        raise ValueError(f"{column} must be at most {MAX_TEXT} printable characters")
    return v


def _fsma(row: dict[str, str], columns: tuple[str, ...]) -> tuple[tuple[str, str | None], ...]:
    return tuple((c, optional_text(row, c)) for c in columns if c in row)


@dataclass(frozen=True, slots=True)
class ImportCounts:
    products: int
    lots: int


def _rows(data: str, name: str, kind: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) of a CSV text; the header is checked against the kind's columns."""
    if data.startswith("\ufeff"):
        data = data[1:]
    reader = csv.reader(io.StringIO(data))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportProblems([f"{name}:1: empty file (a header row is required)"]) from None
    cols = [h.strip().lower() for h in header]
    required, optional = COLUMNS[kind]
    if len(cols) == 1 and (";" in cols[0] or "\t" in cols[0]):
        sep = "semicolons" if ";" in cols[0] else "tabs"
        raise ImportProblems([f"{name}:1: values are separated by {sep}; use commas"])
    problems = []
    if missing := sorted(required - set(cols)):
        problems.append(f"{name}:1: missing column(s) {', '.join(missing)}")
    if extra := [c for c in cols if c not in required | optional]:
        problems.append(f"{name}:1: unknown column(s) {', '.join(extra)}")
    if len(set(cols)) != len(cols):
        problems.append(f"{name}:1: a column is named twice")
    if problems:
        raise ImportProblems(problems)
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(cols):
            yield line, {"__error__": f"{len(values)} values, the header has {len(cols)}"}
            continue
        yield line, {c: v.strip() for c, v in zip(cols, values, strict=True)}


def parse_products(data: str, name: str = "products.csv") -> list[Product]:
    """Products from CSV text; ImportProblems lists every bad row."""
    out: dict[str, tuple[int, Product]] = {}
    problems: list[str] = []
    for line, row in _rows(data, name, "products"):
        try:
            if "__error__" in row:
                raise ValueError(row["__error__"])
            g = normalize_gtin(row["gtin"])
            tracking = row["tracking"].lower()
            if tracking not in TRACKING:
                raise ValueError(f"tracking {row['tracking']!r} must be one of {TRACKING}")
            days_text = row.get("expiry_warning_days") or "30"
            if not days_text.isdigit() or int(days_text) > MAX_WARNING_DAYS:
                raise ValueError(
                    f"expiry_warning_days {days_text!r} must be 0 to {MAX_WARNING_DAYS}"
                )
            if g in out:
                raise ValueError(f"GTIN {g} repeats line {out[g][0]}")
            if any(ord(c) < 32 or ord(c) == 127 for c in row.get("description", "")):
                raise ValueError("description has a control character")
            fsma = _fsma(row, FSMA_PRODUCT_COLUMNS)
            out[g] = (
                line,
                Product(g, row.get("description", ""), tracking, int(days_text), fsma),
            )
        except (ValueError, KeyError_) as exc:
            problems.append(f"{name}:{line}: {exc}")
    if problems:
        raise ImportProblems(problems)
    return [p for _, p in out.values()]


def parse_lots(data: str, name: str = "lots.csv") -> list[Lot]:
    """Lots from CSV text (one per GTIN + lot); ImportProblems lists every bad row."""
    out: dict[tuple[str, str], tuple[int, Lot]] = {}
    problems: list[str] = []
    for line, row in _rows(data, name, "lots"):
        try:
            if "__error__" in row:
                raise ValueError(row["__error__"])
            g = normalize_gtin(row["gtin"])
            lot = row["lot"]
            if not lot or len(lot) > 20:
                raise ValueError("lot must be 1 to 20 characters (an untracked row has no lot)")
            if any(ord(c) < 32 or ord(c) == 127 for c in lot):
                raise ValueError(f"lot {lot!r} has a control character")
            exp_text = row.get("expiry", "")
            try:
                expiry = date.fromisoformat(exp_text) if exp_text else None
            except ValueError:
                raise ValueError(f"expiry {exp_text!r} must be YYYY-MM-DD") from None
            status = (row.get("status") or "active").lower()
            if status not in LOT_STATUSES:
                raise ValueError(f"status {row['status']!r} must be one of {LOT_STATUSES}")
            new = Lot(g, lot, expiry, status, _fsma(row, FSMA_LOT_COLUMNS))
            seen = out.get((g, lot))
            if seen is not None and seen[1] != new:
                raise ValueError(
                    f"lot {lot} disagrees with line {seen[0]} on expiry, status or TLC source"
                )
            out.setdefault((g, lot), (line, new))
        except (ValueError, KeyError_) as exc:
            problems.append(f"{name}:{line}: {exc}")
    if problems:
        raise ImportProblems(problems)
    return [lot for _, lot in out.values()]


def import_master_data(
    conn: Connection, products: Path | None = None, lots: Path | None = None
) -> ImportCounts:
    """Upsert products and lots from CSV files in the caller's transaction (all or nothing).

    A lot's GTIN must be a product in the file or already in the database. Nothing is
    queued for the gateways: :func:`central.masterdata.publish.import_all` does that.
    """
    prods = parse_products(_read(products), str(products)) if products else []
    lot_rows = parse_lots(_read(lots), str(lots)) if lots else []
    store_master_data(conn, prods, lot_rows, str(lots))
    return ImportCounts(len(prods), len(lot_rows))


def store_master_data(
    conn: Connection, prods: Sequence[Product], lot_rows: Sequence[Lot], lots: str = "lots.csv"
) -> None:
    """Upsert parsed products and lots in the caller's transaction.

    A lot's GTIN must be a product given here or already stored (ImportProblems)."""
    if lot_rows:
        known = {p.gtin for p in prods} | {
            r[0]
            for r in conn.execute(
                text("SELECT gtin FROM products WHERE gtin = ANY (CAST(:g AS varchar[]))"),
                {"g": sorted({x.gtin for x in lot_rows})},
            )
        }
        unknown = sorted({x.gtin for x in lot_rows} - known)
        if unknown:
            raise ImportProblems([f"{lots}: unknown product(s) {', '.join(unknown)}"])
    if prods:
        extra = [c for c, _ in prods[0].fsma]  # every row of one file has the same columns
        conn.execute(
            text(
                "INSERT INTO products (gtin, description, tracking, expiry_warning_days"
                + "".join(f", {c}" for c in extra)
                + ") VALUES (:gtin, :description, :tracking, :expiry_warning_days"
                + "".join(f", :{c}" for c in extra)
                + ") ON CONFLICT (gtin) DO UPDATE SET description = EXCLUDED.description, "
                "tracking = EXCLUDED.tracking, "
                "expiry_warning_days = EXCLUDED.expiry_warning_days"
                + "".join(f", {c} = EXCLUDED.{c}" for c in extra)
            ),
            [
                {
                    "gtin": p.gtin,
                    "description": p.description,
                    "tracking": p.tracking,
                    "expiry_warning_days": p.expiry_warning_days,
                    **dict(p.fsma),
                }
                for p in prods
            ],
        )
    if lot_rows:
        extra = [c for c, _ in lot_rows[0].fsma]
        conn.execute(
            text(
                "INSERT INTO lots (gtin, lot, expiry, status"
                + "".join(f", {c}" for c in extra)
                + ") VALUES (:gtin, :lot, :expiry, :status"
                + "".join(f", :{c}" for c in extra)
                + ") ON CONFLICT (gtin, lot) DO UPDATE SET expiry = EXCLUDED.expiry, "
                "status = CASE WHEN lots.status = 'recalled' THEN lots.status "
                "ELSE EXCLUDED.status END" + "".join(f", {c} = EXCLUDED.{c}" for c in extra)
            ),
            [
                {
                    "gtin": x.gtin,
                    "lot": x.lot,
                    "expiry": x.expiry,
                    "status": x.status,
                    **dict(x.fsma),
                }
                for x in lot_rows
            ],
        )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ImportProblems([f"{path}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ImportProblems([f"{path}: not UTF-8 text"]) from None
