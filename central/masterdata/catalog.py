"""Serials and despatch advices from CSV: all or nothing, like products and lots.

- serials: ``gtin``, ``serial``, optional ``lot`` and ``state`` (``expected``: known,
  not received yet — the default; ``destroyed``: void, refused everywhere). The
  gateway's ``location`` column is accepted and ignored. A site's custody states
  (``in_stock``, ``picked``, ``shipped``, ``consumed``) are refused: central takes them
  from events, and a master-data row cannot say at which site a serial is.
- despatch advices: one row per line, ``sscc``, ``desadv`` (the advice's number),
  ``gtin``, ``lot``, ``serial``, ``quantity`` and optional ``ship_to`` (the site the
  pallet goes to: its id or its GLN; empty = every site). A serial line has quantity 1
  (an empty quantity means 1); one line per serial, and per lot or untracked GTIN of a
  pallet. The rows of one SSCC agree on ``desadv`` and ``ship_to``; an SSCC in the file
  replaces everything stored for it.

GTINs of 8 to 14 digits are stored as GTIN-14 (check digit checked), SSCCs need 18
digits with a valid check digit, lots and serials GS1 character set 82 (1 to 20).
Every bad row is reported as ``file:line: message``; nothing is written unless all
rows are good.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, text

from central.masterdata.importer import ImportProblems, _rows
from central.trace.model import KeyError_, normalize_gtin
from gs1.keys import is_valid_gln, is_valid_sscc

GS1_TEXT = re.compile(r"^[!\"%-?A-Z_a-z]{1,20}$")
SERIAL_STATES = ("expected", "destroyed")
CUSTODY_STATES = ("in_stock", "picked", "shipped", "consumed")
#: Lines of one pallet (the cache contract's limit for one despatch advice).
MAX_LINES = 10_000
MAX_QUANTITY = 1_000_000
_DESADV = re.compile(r"^[!-~]{1,128}$")
_SITE = re.compile(r"^[!-~]{1,64}$")


@dataclass(frozen=True, slots=True)
class Serial:
    gtin: str
    serial: str
    lot: str | None
    state: str


@dataclass(frozen=True, slots=True)
class AdviceLine:
    gtin: str
    lot: str | None
    serial: str | None
    quantity: int


@dataclass(frozen=True, slots=True)
class Advice:
    """A despatch advice of one pallet: its SSCC, number, site it goes to and lines."""

    sscc: str
    desadv_id: str
    ship_to: str | None
    lines: tuple[AdviceLine, ...]


def _gs1(value: str, what: str) -> str:
    if not GS1_TEXT.match(value):
        raise ValueError(f"{what} {value!r} must be 1 to 20 characters of GS1 set 82")
    return value


def parse_serials(data: str, name: str = "serials.csv") -> list[Serial]:
    """Serials from CSV text; ImportProblems lists every bad row."""
    out: dict[tuple[str, str], tuple[int, Serial]] = {}
    problems: list[str] = []
    for line, row in _rows(data, name, "serials"):
        try:
            if "__error__" in row:
                raise ValueError(row["__error__"])
            g = normalize_gtin(row["gtin"])
            serial = _gs1(row["serial"], "serial")
            lot = _gs1(row["lot"], "lot") if row.get("lot") else None
            state = (row.get("state") or "expected").lower()
            if state in CUSTODY_STATES:
                raise ValueError(
                    f"state {state} is a site's custody: central takes it from events "
                    f"(use one of {', '.join(SERIAL_STATES)})"
                )
            if state not in SERIAL_STATES:
                raise ValueError(f"state {row['state']!r} must be one of {SERIAL_STATES}")
            if (g, serial) in out:
                raise ValueError(f"serial {serial} of GTIN {g} repeats line {out[(g, serial)][0]}")
            out[(g, serial)] = (line, Serial(g, serial, lot, state))
        except (ValueError, KeyError_) as exc:
            problems.append(f"{name}:{line}: {exc}")
    if problems:
        raise ImportProblems(problems)
    return [s for _, s in out.values()]


def _quantity(text_: str, serial: str | None) -> int:
    if not text_ and serial is not None:
        return 1
    if not text_.isdigit() or not 1 <= int(text_) <= MAX_QUANTITY:
        raise ValueError(f"quantity {text_!r} must be a whole number 1 to {MAX_QUANTITY}")
    q = int(text_)
    if serial is not None and q != 1:
        raise ValueError(f"serial {serial} has quantity {q}: a serial line has quantity 1")
    return q


def parse_despatch_advices(data: str, name: str = "despatch-advices.csv") -> list[Advice]:
    """Despatch advices (one per SSCC) from CSV text; ImportProblems lists every bad row."""
    heads: dict[str, tuple[int, str, str | None]] = {}  # sscc -> (line, desadv, ship_to)
    lines: dict[str, list[AdviceLine]] = {}
    seen: dict[tuple[str, str, str, str | None], int] = {}
    problems: list[str] = []
    for line, row in _rows(data, name, "despatch_advices"):
        try:
            if "__error__" in row:
                raise ValueError(row["__error__"])
            sscc = row["sscc"]
            if not (sscc.isascii() and is_valid_sscc(sscc)):
                raise ValueError(f"SSCC {sscc!r} must be 18 digits with a valid check digit")
            desadv = row["desadv"]
            if not _DESADV.match(desadv):
                raise ValueError(
                    f"desadv {desadv!r} must be 1 to 128 printable characters, no spaces"
                )
            ship_to = row.get("ship_to") or None
            if ship_to is not None and not _SITE.match(ship_to):
                raise ValueError(f"ship_to {ship_to!r} must be a site id or GLN")
            g = normalize_gtin(row["gtin"])
            serial = _gs1(row["serial"], "serial") if row.get("serial") else None
            lot = _gs1(row["lot"], "lot") if row.get("lot") else None
            q = _quantity(row.get("quantity", ""), serial)
            head = heads.get(sscc)
            if head is not None and (head[1], head[2]) != (desadv, ship_to):
                raise ValueError(
                    f"SSCC {sscc} has desadv {desadv} / ship_to {ship_to or '(any)'} here but "
                    f"{head[1]} / {head[2] or '(any)'} on line {head[0]}"
                )
            key = (sscc, g, "serial", serial) if serial else (sscc, g, "lot", lot)
            if key in seen:
                what = f"serial {serial}" if serial else (f"lot {lot}" if lot else "untracked")
                raise ValueError(
                    f"GTIN {g} {what} is on SSCC {sscc} twice (line {seen[key]}): "
                    "one line with the total"
                )
            if len(lines.get(sscc, ())) >= MAX_LINES:
                raise ValueError(f"SSCC {sscc} has more than {MAX_LINES} lines")
            seen[key] = line
            heads.setdefault(sscc, (line, desadv, ship_to))
            lines.setdefault(sscc, []).append(AdviceLine(g, lot, serial, q))
        except (ValueError, KeyError_) as exc:
            problems.append(f"{name}:{line}: {exc}")
    if problems:
        raise ImportProblems(problems)
    return [Advice(s, heads[s][1], heads[s][2], tuple(ls)) for s, ls in lines.items()]


# -- SQL (in the caller's transaction) ------------------------------------------------------
def known_sites(conn: Connection) -> dict[str, str]:
    """Every site id and site GLN central knows → the site id."""
    out: dict[str, str] = {}
    for site, gln in conn.execute(
        text(
            "SELECT site, gln FROM sites UNION SELECT site, NULL FROM cache_gateways "
            "UNION SELECT site, NULL FROM gateways UNION SELECT site, NULL FROM cache_sites"
        )
    ):
        out[site] = site
        if gln:
            out[gln] = site
    return out


def resolve_ship_to(conn: Connection, advices: Sequence[Advice], name: str) -> list[Advice]:
    """The advices with ``ship_to`` as a site id; ImportProblems names unknown sites."""
    sites = known_sites(conn)
    bad = sorted({a.ship_to for a in advices if a.ship_to and a.ship_to not in sites})
    if bad:
        hint = (
            " (a GLN needs a valid check digit)"
            if any(b.isdigit() and len(b) == 13 and not is_valid_gln(b) for b in bad)
            else ""
        )
        raise ImportProblems(
            [
                f"{name}: ship_to {', '.join(bad)} is not a known site: import it with "
                f"--sites, or let one of its gateways connect first{hint}"
            ]
        )
    return [
        Advice(a.sscc, a.desadv_id, sites[a.ship_to] if a.ship_to else None, a.lines)
        for a in advices
    ]


def product_tracking(conn: Connection, gtins: Sequence[str]) -> dict[str, str]:
    """The tracking of each GTIN that is a product."""
    return {
        r[0]: r[1]
        for r in conn.execute(
            text("SELECT gtin, tracking FROM products WHERE gtin = ANY (CAST(:g AS varchar[]))"),
            {"g": sorted(set(gtins))},
        )
    }


def check_products(
    conn: Connection, serials: Sequence[Serial], advices: Sequence[Advice], names: Sequence[str]
) -> None:
    """Every GTIN is a product (stored, or in this import); a serial's is serial-tracked."""
    gtins = {s.gtin for s in serials} | {x.gtin for a in advices for x in a.lines}
    tracking = product_tracking(conn, sorted(gtins))
    problems = []
    if unknown := sorted({s.gtin for s in serials} - set(tracking)):
        problems.append(f"{names[0]}: unknown product(s) {', '.join(unknown)}")
    if unknown := sorted({x.gtin for a in advices for x in a.lines} - set(tracking)):
        problems.append(f"{names[1]}: unknown product(s) {', '.join(unknown)}")
    if wrong := sorted({s.gtin for s in serials if tracking.get(s.gtin, "serial") != "serial"}):
        problems.append(
            f"{names[0]}: product(s) {', '.join(wrong)} are not serial-tracked (tracking "
            "serial in the products file)"
        )
    if problems:
        raise ImportProblems(problems)


def store_serials(conn: Connection, serials: Sequence[Serial]) -> None:
    """Upsert serials (a row without a lot keeps the lot stored)."""
    if serials:  # one statement over arrays: 100,000 rows in well under a second
        conn.execute(
            text(
                "INSERT INTO serials (gtin, serial, lot, state, updated_at) "
                "SELECT g, s, l, st, now() FROM unnest(CAST(:g AS text[]), CAST(:s AS text[]), "
                "CAST(:l AS text[]), CAST(:st AS text[])) AS x(g, s, l, st) "
                "ON CONFLICT (gtin, serial) DO UPDATE SET "
                "lot = COALESCE(EXCLUDED.lot, serials.lot), state = EXCLUDED.state, "
                "updated_at = now()"
            ),
            {
                "g": [s.gtin for s in serials],
                "s": [s.serial for s in serials],
                "l": [s.lot for s in serials],
                "st": [s.state for s in serials],
            },
        )


def stored_ship_to(conn: Connection, ssccs: Sequence[str]) -> dict[str, str | None]:
    """``ship_to`` of the despatch advices already stored for these SSCCs (None: any site)."""
    return {
        r[0]: r[1]
        for r in conn.execute(
            text(
                "SELECT sscc, ship_to FROM despatch_advices "
                "WHERE sscc = ANY (CAST(:s AS varchar[]))"
            ),
            {"s": list(ssccs)},
        )
    }


def store_despatch_advices(conn: Connection, advices: Sequence[Advice]) -> None:
    """Replace each SSCC's despatch advice (number, site, lines)."""
    if not advices:
        return
    conn.execute(
        text(
            "INSERT INTO despatch_advices (sscc, desadv_id, ship_to, updated_at) "
            "VALUES (:s, :d, :t, now()) ON CONFLICT (sscc) DO UPDATE SET "
            "desadv_id = EXCLUDED.desadv_id, ship_to = EXCLUDED.ship_to, updated_at = now()"
        ),
        [{"s": a.sscc, "d": a.desadv_id, "t": a.ship_to} for a in advices],
    )
    conn.execute(
        text("DELETE FROM despatch_advice_lines WHERE sscc = ANY (CAST(:s AS varchar[]))"),
        {"s": [a.sscc for a in advices]},
    )
    rows = [(a.sscc, i, x) for a in advices for i, x in enumerate(a.lines, 1)]
    conn.execute(
        text(
            "INSERT INTO despatch_advice_lines (sscc, line, gtin, lot, serial, quantity) "
            "SELECT * FROM unnest(CAST(:s AS text[]), CAST(:n AS int[]), CAST(:g AS text[]), "
            "CAST(:l AS text[]), CAST(:sn AS text[]), CAST(:q AS int[]))"
        ),
        {
            "s": [r[0] for r in rows],
            "n": [r[1] for r in rows],
            "g": [r[2].gtin for r in rows],
            "l": [r[2].lot for r in rows],
            "sn": [r[2].serial for r in rows],
            "q": [r[2].quantity for r in rows],
        },
    )
