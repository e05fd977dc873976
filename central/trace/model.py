"""Pure: what is traced or recalled, the answer rows, and how they are shown (no SQL here).

A *unit* is a lot (GTIN + lot), a serial (GTIN + serial) or a pallet (SSCC). GTINs are
GTIN-14; 8, 12 and 13 digit forms are padded, and every check digit is checked.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from gs1.keys import is_valid_gtin, is_valid_sscc

Direction = Literal["both", "backward", "forward"]

#: How deep a trace or recall walks the lineage by default (pallets in pallets, products
#: made of products). Each step is one edge; a cycle in bad data ends where it repeats.
DEFAULT_DEPTH = 32


class KeyError_(ValueError):
    """A GTIN, SSCC, lot or serial that cannot name a unit."""


def normalize_gtin(value: str) -> str:
    """A GTIN-8/12/13/14 as 14 digits; KeyError_ when malformed or its check digit is wrong."""
    v = value.strip()
    if not v.isdigit() or len(v) not in (8, 12, 13, 14):
        raise KeyError_(f"GTIN {value!r} must be 8, 12, 13 or 14 digits")
    v = v.zfill(14)
    if not is_valid_gtin(v):
        raise KeyError_(f"GTIN {value} has a wrong check digit")
    return v


def normalize_sscc(value: str) -> str:
    """An SSCC (18 digits, ``00`` prefix allowed); KeyError_ when malformed."""
    v = value.strip()
    if v.startswith("(00)"):
        v = v[4:]
    if len(v) == 20 and v.startswith("00"):
        v = v[2:]
    if not v.isdigit() or len(v) != 18:
        raise KeyError_(f"SSCC {value!r} must be 18 digits")
    if not is_valid_sscc(v):
        raise KeyError_(f"SSCC {value} has a wrong check digit")
    return v


def _text(what: str, value: str) -> str:
    v = value.strip()
    if not v or len(v) > 20 or any(ord(c) < 32 for c in v):
        raise KeyError_(f"{what} {value!r} must be 1 to 20 printable characters")
    return v


@dataclass(frozen=True, slots=True)
class UnitKey:
    """A lot, a serial or a pallet."""

    kind: Literal["lot", "serial", "sscc"]
    gtin: str | None = None
    lot: str | None = None
    serial: str | None = None
    sscc: str | None = None

    @property
    def code(self) -> str:
        """``L``, ``S`` or ``P`` (as the queries name nodes)."""
        return {"lot": "L", "serial": "S", "sscc": "P"}[self.kind]

    def __str__(self) -> str:
        if self.kind == "sscc":
            return f"SSCC {self.sscc}"
        if self.kind == "serial":
            return f"GTIN {self.gtin} serial {self.serial}"
        return f"GTIN {self.gtin} lot {self.lot}"


def unit_key(
    *,
    gtin: str | None = None,
    lot: str | None = None,
    serial: str | None = None,
    sscc: str | None = None,
) -> UnitKey:
    """The unit named by exactly one of: GTIN + lot, GTIN + serial, SSCC."""
    if sscc is not None:
        if gtin is not None or lot is not None or serial is not None:
            raise KeyError_("an SSCC names a pallet on its own: leave out GTIN, lot and serial")
        return UnitKey("sscc", sscc=normalize_sscc(sscc))
    if gtin is None:
        raise KeyError_("say what to look for: GTIN + lot, GTIN + serial, or an SSCC")
    g = normalize_gtin(gtin)
    if (lot is None) == (serial is None):
        raise KeyError_("give a GTIN with either a lot or a serial")
    if serial is not None:
        return UnitKey("serial", gtin=g, serial=_text("serial", serial))
    assert lot is not None
    return UnitKey("lot", gtin=g, lot=_text("lot", lot))


def parse_serial_list(text: str, default_gtin: str | None = None) -> list[UnitKey]:
    """Serials, one a line (``GTIN,serial`` or ``serial`` with ``default_gtin``); ``#`` comments."""
    out: list[UnitKey] = []
    seen: set[tuple[str | None, str | None]] = set()
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.lower().replace(" ", "") == "gtin,serial":
            continue
        parts = [p.strip() for p in line.replace(";", ",").replace("\t", ",").split(",")]
        try:
            if len(parts) == 2:
                key = unit_key(gtin=parts[0], serial=parts[1])
            elif len(parts) == 1 and default_gtin is not None:
                key = unit_key(gtin=default_gtin, serial=parts[0])
            else:
                raise KeyError_("expected GTIN,serial" + (" or a serial" if default_gtin else ""))
        except KeyError_ as exc:
            raise KeyError_(f"line {n}: {exc}") from None
        if (key.gtin, key.serial) not in seen:
            seen.add((key.gtin, key.serial))
            out.append(key)
    if not out:
        raise KeyError_("no serials given")
    return out


@dataclass(frozen=True, slots=True)
class Place:
    """A location at the event's site, or a party (another site, a customer)."""

    type: str
    id: str

    def __str__(self) -> str:
        return self.id if self.type == "location" else f"{self.type}:{self.id}"


@dataclass(frozen=True, slots=True)
class Step:
    """One movement of one unit in a trace.

    ``direction``:

    - ``self``: the unit traced, the serials of the lot traced, and the pallets they were
      on (their moves while the unit was on them, nested pallets too);
    - ``backward``: where it came from: what it was made of (transformation inputs, at
      any depth, with their own history up to the transformation) and, for a pallet, its
      contents' history up to packing;
    - ``forward``: where it went: what was made of it (transformation outputs and their
      history from then on) and, for a pallet, its contents' history from packing on.

    ``via``: how the walk reached the unit (``self``, ``member``, ``pallet``, ``content``,
    ``transformation``); ``via_id``: the aggregation event or the transformation id.
    """

    direction: str
    depth: int
    via: str
    via_id: str | None
    event_time: datetime
    event_id: str
    movement: str
    site: str
    gateway_id: str
    gtin: str | None
    lot: str | None
    serial: str | None
    sscc: str | None
    parent_sscc: str | None
    quantity: Decimal | None
    uom: str | None
    source: Place | None
    destination: Place | None

    @property
    def recipient(self) -> str | None:
        """The party a shipment went to."""
        d = self.destination
        return d.id if d is not None and d.type == "party" else None

    @property
    def unit(self) -> str:
        """What moved, briefly: ``SSCC x``, ``gtin/lot``, ``gtin #serial``."""
        if self.gtin is None:
            return f"SSCC {self.sscc}"
        if self.serial is not None:
            return f"{self.gtin} #{self.serial}"
        return f"{self.gtin}/{self.lot or '-'}"


@dataclass(frozen=True, slots=True)
class Trace:
    """A unit's chain of custody: its own steps, then backward and forward."""

    subject: UnitKey
    direction: Direction
    max_depth: int
    steps: tuple[Step, ...]

    def part(self, direction: str) -> list[Step]:
        return [s for s in self.steps if s.direction == direction]

    @property
    def recipients(self) -> list[str]:
        """Every party reached by a shipment in the trace (first appearance order)."""
        out: list[str] = []
        for s in self.steps:
            r = s.recipient
            if r is not None and r not in out:
                out.append(r)
        return out


#: Sections of a recall answer, in the order they are shown.
SECTIONS = ("serial", "lot", "pallet", "recipient")


@dataclass(frozen=True, slots=True)
class RecallRow:
    """One row of a recall answer (one CSV line).

    - ``serial``: a serial of the recalled lot (or listed, or made of it): where or with whom.
    - ``lot``: a quantity of an affected lot at a site and location now.
    - ``pallet``: a pallet that holds affected goods now (``via``: the inner pallet).
    - ``recipient``: a shipment of affected goods to a party (``via``: the pallet shipped).

    ``downstream`` marks goods made of the recalled ones (through transformations).
    """

    section: str
    gtin: str | None
    lot: str | None
    serial: str | None
    sscc: str | None
    site: str | None
    location: str | None
    holder: str | None
    state: str | None
    status: str | None
    quantity: Decimal | None
    uom: str | None
    party: str | None
    time: datetime | None
    event_id: str | None
    via: str | None
    downstream: bool


@dataclass(frozen=True, slots=True)
class Recall:
    """Every affected unit, where it is or who has it, and who received it."""

    subjects: tuple[UnitKey, ...]
    rows: tuple[RecallRow, ...]

    def section(self, name: str) -> list[RecallRow]:
        return [r for r in self.rows if r.section == name]

    @property
    def recipients(self) -> list[str]:
        out: list[str] = []
        for r in self.section("recipient"):
            if r.party is not None and r.party not in out:
                out.append(r.party)
        return out


CSV_COLUMNS = tuple(f.name for f in fields(RecallRow))


def _plain(v: Any) -> Any:
    """A value as JSON / CSV shows it."""
    if isinstance(v, datetime):
        return v.isoformat(timespec="milliseconds")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, Place):
        return {"type": v.type, "id": v.id}
    return v


def recall_csv(recall: Recall) -> str:
    """The recall as CSV (header + one line per row; RFC 4180 quoting)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for r in recall.rows:
        vals = []
        for name in CSV_COLUMNS:
            v = _plain(getattr(r, name))
            if isinstance(v, bool):
                v = "yes" if v else ""
            vals.append("" if v is None else _defuse(str(v)))
        w.writerow(vals)
    return buf.getvalue()


def _defuse(cell: str) -> str:
    """A cell a spreadsheet would run as a formula gets a leading apostrophe."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def to_json(obj: Any) -> Any:
    """Dataclasses, lists and scalars as JSON-ready values."""
    if isinstance(obj, Trace):
        return {
            "subject": to_json(obj.subject),
            "direction": obj.direction,
            "max_depth": obj.max_depth,
            "recipients": obj.recipients,
            "steps": [{**to_json(s), "recipient": s.recipient} for s in obj.steps],
        }
    if isinstance(obj, Recall):
        out: dict[str, Any] = {"subjects": [to_json(s) for s in obj.subjects]}
        for sec in SECTIONS:
            out[sec + "s"] = [
                {k: v for k, v in to_json(r).items() if k != "section"} for r in obj.section(sec)
            ]
        out["recipient_parties"] = obj.recipients
        return out
    if isinstance(obj, Place):
        return _plain(obj)
    if hasattr(obj, "__dataclass_fields__"):
        return {k: to_json(v) for k, v in asdict(obj).items()}
    if isinstance(obj, Mapping):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    return _plain(obj)


def table(rows: Iterable[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain text table (columns padded; None as ``-``)."""
    cells = [[str(h) for h in header]]
    for r in rows:
        cells.append(["-" if v is None else str(_plain(v)) for v in r])
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in cells
    )
