"""Pure: the key data elements (KDEs) of each critical tracking event, as spreadsheet rows.

The CTEs this system records:

- Receiving: ``receive`` and ``return`` lines that came from a party (a supplier, a
  customer returning goods, another of our sites by its GLN).
- Shipping: ``ship`` lines that went to a party.
- Transformation: the inputs and outputs of ``consume`` and ``repack`` events, one
  transformation per ``transformation_id`` (or per event without one).

One row is one KDE set: the lines of one event with the same lot, unit and partner are
summed (serials count 1 each; a pallet's content is spelled out by the caller). A
transformation gives one row per input and output pair, so sorting or filtering on
either TLC shows the whole link; its quantities repeat on each row of that pair's
transformation. A KDE that master data does not give is a cell saying ``MISSING: ...``
and what to add; ``Report.missing`` counts them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from central.fsma.columns import COLUMNS, RECEIVING, SHIPPING, TRANSFORMATION
from central.fsma.model import Line, MasterData, Place, Tlc

Cell = str | int | Decimal | date

RECEIVING_MOVES = ("receive", "return")
SHIPPING_MOVES = ("ship",)
TRANSFORMING_MOVES = ("consume", "repack")
MOVEMENTS = (*RECEIVING_MOVES, *SHIPPING_MOVES, *TRANSFORMING_MOVES)

MISSING = "MISSING: "
NOT_NEEDED_LOCATION = "not needed: TLC source reference given"
NOT_NEEDED_REFERENCE = "not needed: TLC source location given"

#: Reference document types (biz transaction types), in the order they fill the two pairs.
DOCUMENT_TYPES = {
    "bol": "Bill of Lading",
    "desadv": "Advance Shipping Notice",
    "po": "Purchase Order",
    "inv": "Invoice",
    "rma": "Return Merchandise Authorization",
    "prodorder": "Production Order",
}
BATCH_RECORD = "Batch Record (transformation ID)"

#: UN/ECE Rec 20 codes the events carry → the words a reader expects.
UOM_WORDS = {
    "EA": "each",
    "KGM": "kg",
    "GRM": "g",
    "LBR": "lb",
    "ONZ": "oz",
    "LTR": "L",
    "MLT": "mL",
    "CS": "case",
    "CT": "carton",
    "BX": "box",
    "BG": "bag",
    "CR": "crate",
    "PK": "pack",
    "PF": "pallet",
}

_PLACE_LABELS = (
    "business name",
    "phone",
    "street",
    "city",
    "state/region",
    "postal code",
    "country",
)
_PRODUCT_LABELS = ("product name", "brand", "commodity", "variety", "pack size", "pack style")


@dataclass
class Report:
    """The rows of each sheet (in ``COLUMNS`` order) and what was missing."""

    rows: dict[str, list[list[Cell]]] = field(
        default_factory=lambda: {RECEIVING: [], SHIPPING: [], TRANSFORMATION: []}
    )
    missing: Counter[str] = field(default_factory=Counter)  # message -> cells
    notes: list[str] = field(default_factory=list)  # other things a reader should know

    def warnings(self, limit: int = 20) -> list[str]:
        """One line per distinct missing KDE (most frequent first), then the notes."""
        out = [f"{n} cell(s): {MISSING}{msg}" for msg, n in self.missing.most_common(limit)]
        if len(self.missing) > limit:
            out.append(f"... and {len(self.missing) - limit} more kinds of missing data")
        return out + self.notes


def quantity_cell(q: Decimal) -> int | Decimal:
    """A whole quantity as an int, else the decimal without trailing zeros."""
    return int(q) if q == q.to_integral_value() else q.normalize()


def uom_cell(uom: str | None) -> str | None:
    """The unit in words where the code is a common one (``KGM`` → ``kg``), else the code."""
    return None if not uom else UOM_WORDS.get(uom, uom)


@dataclass
class _Set:
    """Lines summed into one KDE set."""

    first: Line
    quantity: Decimal | None = Decimal(0)
    serials: list[str] = field(default_factory=list)

    def add(self, line: Line) -> None:
        if line.serial is not None:
            self.serials.append(line.serial)
        if self.quantity is None or line.quantity is None:
            self.quantity = None
        else:
            self.quantity += line.quantity


class _Builder:
    def __init__(self, master: MasterData, report: Report) -> None:
        self.m = master
        self.r = report

    def missing(self, what: str, cells: int = 1) -> str:
        """The text of ``cells`` cells that lack ``what`` (counted in the report)."""
        self.r.missing[what] += cells
        return MISSING + what

    # -- parts of a row ---------------------------------------------------------------
    def tlc(self, line: Line) -> tuple[Cell, Tlc | None]:
        if line.gtin is None:
            return self._pallet_gap(line), None
        if not line.lot:
            if line.serial is not None:
                return self.missing(f"lot of serial {line.gtin} {line.serial}"), None
            return self.missing(f"lot of GTIN {line.gtin} (the lines carry none)"), None
        t = Tlc(line.gtin, line.lot)
        return str(t), t

    def _pallet_gap(self, line: Line, cells: int = 1) -> str:
        if line.nested and line.pallet:
            what = f"content of pallet {line.sscc} (on pallet {line.pallet})"
        else:
            what = f"content of pallet {line.sscc} (nothing recorded on it)"
        return self.missing(what, cells)

    def product(self, gtin: str | None, line: Line) -> list[Cell]:
        if gtin is None:
            return [self._pallet_gap(line, 6)] * 6
        p = self.m.products.get(gtin)
        if p is None:
            return [self.missing(f"product {gtin} not in master data", 6)] * 6
        values = (
            p.product_name or p.description,
            p.brand,
            p.commodity,
            p.variety,
            p.pack_size,
            p.pack_style,
        )
        return [
            v if v else self.missing(f"{label} of product {gtin}")
            for v, label in zip(values, _PRODUCT_LABELS, strict=True)
        ]

    def place(self, place: Place | None, what: str) -> list[Cell]:
        if place is None:
            return [self.missing(f"{what} not in master data", 7)] * 7
        values = (
            place.name,
            place.phone,
            place.street,
            place.city,
            place.region,
            place.postal_code,
            place.country,
        )
        return [
            v if v else self.missing(f"{label} of {what}")
            for v, label in zip(values, _PLACE_LABELS, strict=True)
        ]

    def site(self, site: str) -> list[Cell]:
        return self.place(self.m.sites.get(site), f"site {site}")

    def party(self, party: str | None, role: str) -> list[Cell]:
        if party is None or party == "unknown":
            return [self.missing(f"{role} not recorded on the event", 7)] * 7
        if party in self.m.partners:
            return self.place(self.m.partners[party], f"partner {party}")
        if party in self.m.site_glns:
            return self.site(self.m.site_glns[party])
        return self.place(None, f"partner {party}")

    def _source_place(self, t: Tlc) -> list[Cell] | None:
        src = self.m.lots.get(t)
        if src is not None and src.tlc_source:
            key = src.tlc_source
            if key in self.m.sites:
                return self.site(key)
            return self.party(key, "TLC source")
        if t in self.m.made_at:
            return self.site(self.m.made_at[t])
        return None

    def source(self, t: Tlc | None) -> list[Cell]:
        """The TLC source location (7 cells) and reference (1 cell)."""
        if t is None:
            return [self.missing("TLC source (no traceability lot code)", 8)] * 8
        src = self.m.lots.get(t)
        ref = src.tlc_source_reference if src is not None else None
        place = self._source_place(t)
        if place is None and not ref:
            what = f"TLC source of lot {t} (lots: tlc_source or tlc_source_reference)"
            return [self.missing(what, 8)] * 8
        loc = place if place is not None else [NOT_NEEDED_LOCATION] * 7
        return [*loc, ref if ref else NOT_NEEDED_REFERENCE]

    def reference(self, t: Tlc | None) -> Cell:
        src = self.m.lots.get(t) if t is not None else None
        if src is not None and src.tlc_source_reference:
            return src.tlc_source_reference
        return NOT_NEEDED_REFERENCE

    def documents(self, docs: Sequence[tuple[str, str]], where: str, kind: str) -> list[Cell]:
        if not docs:
            gap = self.missing(f"reference document (the {kind} names no PO, ASN, BOL...)", 2)
            return [gap, gap, "", ""]
        ranked = sorted(
            dict.fromkeys(docs),
            key=lambda d: list(DOCUMENT_TYPES).index(d[0]) if d[0] in DOCUMENT_TYPES else 99,
        )
        if len(ranked) > 2:
            dropped = ", ".join(f"{k} {v}" for k, v in ranked[2:])
            note = f"{where}: more than two reference documents, not shown: {dropped}"
            if note not in self.r.notes:
                self.r.notes.append(note)
        cells: list[Cell] = []
        for kind, number in ranked[:2]:
            cells += [DOCUMENT_TYPES.get(kind, kind), number]
        return cells + [""] * (4 - len(cells))

    def quantity(self, s: _Set) -> tuple[Cell, Cell]:
        uom = uom_cell(s.first.uom)
        uom_cell_ = uom if uom else self.missing("unit of measure (the event line has none)")
        if s.quantity is None:
            return self.missing("quantity (the event line has none)"), uom_cell_
        return quantity_cell(s.quantity), uom_cell_


def _tlc_of(line: Line) -> Tlc | None:
    return Tlc(line.gtin, line.lot) if line.gtin is not None and line.lot else None


def _sets(lines: Iterable[Line], partner: str, per_event: bool = True) -> list[_Set]:
    """Lines summed per event (unless not ``per_event``), lot (a lot-less serial on its own),
    unit and partner."""
    out: dict[tuple[object, ...], _Set] = {}
    for ln in lines:
        loose = ln.serial if ln.serial is not None and not ln.lot else None
        key = (
            ln.event_id if per_event else None,
            ln.gtin,
            ln.lot,
            loose,
            ln.sscc if ln.gtin is None else None,
            ln.uom,
            getattr(ln, partner),
            ln.site,
        )
        out.setdefault(key, _Set(ln)).add(ln)
    return list(out.values())


def _in_range(t: datetime, first: date, last: date) -> bool:
    return first <= t.date() <= last


def build(
    lines: Iterable[Line],
    master: MasterData,
    first: date,
    last: date,
    tlcs: frozenset[Tlc] | None = None,
) -> Report:
    """The rows of the three sheets for the events dated ``first`` to ``last`` (local date of
    each event; a transformation by the date of its output), limited to ``tlcs`` if given."""
    report = Report()
    b = _Builder(master, report)
    lines = list(lines)
    keyed: list[tuple[tuple[object, ...], list[Cell]]] = []
    for sheet, moves, partner, role in (
        (RECEIVING, RECEIVING_MOVES, "from_id", "immediate previous source"),
        (SHIPPING, SHIPPING_MOVES, "to_id", "immediate subsequent recipient"),
    ):
        side = "from_type" if partner == "from_id" else "to_type"
        picked = [
            ln
            for ln in lines
            if ln.movement in moves
            and ln.role == "item"
            and getattr(ln, side) == "party"
            and _in_range(ln.time, first, last)
        ]
        keyed.clear()
        for s in _sets(picked, partner):
            ln = s.first
            if tlcs is not None and _tlc_of(ln) not in tlcs:
                continue
            tlc_cell, t = b.tlc(ln)
            qty, uom = b.quantity(s)
            row: list[Cell] = [
                tlc_cell,
                qty,
                uom,
                *b.product(ln.gtin, ln),
                *b.party(getattr(ln, partner), role),
                *b.site(ln.site),
                ln.time.date(),
                *b.source(t),
                *b.documents(ln.documents, f"{ln.movement} event {ln.event_id}", "event"),
            ]
            keyed.append(((ln.time, str(tlc_cell), ln.event_id), row))
        report.rows[sheet] = [r for _, r in sorted(keyed, key=lambda kr: kr[0])]
    report.rows[TRANSFORMATION] = _transformations(b, lines, first, last, tlcs)
    for sheet, rows in report.rows.items():
        assert all(len(r) == len(COLUMNS[sheet]) for r in rows), sheet
    return report


def _transformations(
    b: _Builder,
    lines: Sequence[Line],
    first: date,
    last: date,
    tlcs: frozenset[Tlc] | None,
) -> list[list[Cell]]:
    groups: dict[str, list[Line]] = {}
    for ln in lines:
        if ln.movement in TRANSFORMING_MOVES and ln.role in ("input", "output"):
            key = ln.transformation_id or f"event {ln.event_id}"
            groups.setdefault(key, []).append(ln)
    keyed: list[tuple[tuple[object, ...], list[Cell]]] = []
    for key, group in groups.items():
        outs = [ln for ln in group if ln.role == "output"]
        ins = [ln for ln in group if ln.role == "input"]
        done = max(outs or ins, key=lambda ln: ln.time)
        if not _in_range(done.time, first, last):
            continue
        where = f"transformation {key}"
        docs = tuple(d for ln in group for d in ln.documents)
        if not docs and group[0].transformation_id:
            docs = ((BATCH_RECORD, group[0].transformation_id),)
        # one transformation: a lot's lines are summed across its events
        in_sets: list[_Set | None] = [*_sets(ins, "site", per_event=False)] or [None]
        out_sets: list[_Set | None] = [*_sets(outs, "site", per_event=False)] or [None]
        for o in out_sets:
            for i in in_sets:
                if tlcs is not None and not (
                    {_tlc_of(x.first) for x in (i, o) if x is not None} & tlcs
                ):
                    continue
                if i is not None:
                    in_tlc, _ = b.tlc(i.first)
                    in_qty, in_uom = b.quantity(i)
                    input_cells = [in_tlc, *b.product(i.first.gtin, i.first), in_qty, in_uom]
                else:
                    gap = b.missing(f"input of {where} (none recorded)", 9)
                    input_cells = [gap] * 9
                if o is not None:
                    out_tlc, ot = b.tlc(o.first)
                    out_qty, out_uom = b.quantity(o)
                    product = b.product(o.first.gtin, o.first)
                    site = o.first.site
                else:
                    gap = b.missing(f"output of {where} (none recorded)", 9)
                    out_tlc, ot, out_qty, out_uom, product = gap, None, gap, gap, [gap] * 6
                    site = done.site
                row: list[Cell] = [
                    *input_cells,
                    out_tlc,
                    *b.site(site),
                    b.reference(ot),
                    done.time.date(),
                    *product,
                    out_qty,
                    out_uom,
                    *b.documents(docs, where, "transformation"),
                ]
                keyed.append(((done.time, str(out_tlc), str(input_cells[0])), row))
    return [r for _, r in sorted(keyed, key=lambda kr: kr[0])]
