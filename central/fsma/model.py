"""Pure: traceability lot codes, the event lines and master data the KDEs are built from.

A traceability lot code (TLC) here is GTIN + lot. It is written ``GTIN+LOT`` (e.g.
``09506000134352+L24-07``); ``GTIN LOT`` (what a ``+`` becomes in an unencoded URL query),
``GTIN/LOT``, ``GTIN,LOT`` and the GS1 human-readable form ``(01)GTIN(10)LOT`` are read too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from central.trace.model import KeyError_, normalize_gtin

#: GS1 AI (10) characters (set 82), 1 to 20 of them.
_LOT = re.compile(r"^[!\"%-?A-Z_a-z]{1,20}$")
_HRI = re.compile(r"^\(01\)([0-9]{14})\(10\)(.+)$")
MAX_TLCS = 1000
MAX_DAYS = 3660


class FsmaError(ValueError):
    """Bad input for a spreadsheet (a TLC, a date range): the message says what."""


@dataclass(frozen=True, slots=True, order=True)
class Tlc:
    """A traceability lot code: GTIN-14 + lot."""

    gtin: str
    lot: str

    def __str__(self) -> str:
        return f"{self.gtin}+{self.lot}"


def make_tlc(gtin: str, lot: str) -> Tlc:
    """A TLC from a GTIN (8 to 14 digits, check digit checked) and a lot (GS1 set 82)."""
    try:
        g = normalize_gtin(gtin)
    except KeyError_ as exc:
        raise FsmaError(str(exc)) from None
    if not _LOT.match(lot):
        raise FsmaError(f"lot {lot!r} must be 1 to 20 GS1 characters (AI 10)")
    return Tlc(g, lot)


#: What may stand between the GTIN and the lot: ``+`` (the TLC as written here), a space
#: (a ``+`` in an unencoded URL query), ``/`` (as ``traceway-central trace`` shows a lot),
#: ``,``, ``;`` or a tab (a two-column file).
SEPARATORS = "+ /,;\t"


def parse_tlc(text: str) -> Tlc:
    """``GTIN+LOT`` (or another of SEPARATORS) or ``(01)GTIN(10)LOT``; FsmaError says what
    is wrong."""
    v = text.strip()
    if m := _HRI.match(v):
        return make_tlc(m[1], m[2])
    digits = len(v) - len(v.lstrip("0123456789"))
    if 0 < digits < len(v) and v[digits] in SEPARATORS:
        return make_tlc(v[:digits], v[digits + 1 :].strip())
    raise FsmaError(f"traceability lot code {text!r} must be GTIN+LOT, e.g. 09506000134352+L24-07")


def parse_tlc_file(data: str, name: str) -> list[Tlc]:
    """TLCs one a line (``GTIN+LOT``, ``GTIN,LOT``...); ``#`` comments, blank lines and a
    ``gtin,lot`` header are skipped. FsmaError lists every bad line as ``file:line: ...``."""
    out: list[Tlc] = []
    problems: list[str] = []
    for n, raw in enumerate(data.lstrip("\ufeff").splitlines(), start=1):
        v = raw.split("#", 1)[0].strip()
        if not v or (n == 1 and v.lower().replace(" ", "") in ("gtin,lot", "gtin;lot", "tlc")):
            continue
        try:
            out.append(parse_tlc(v))
        except FsmaError as exc:
            problems.append(f"{name}:{n}: {exc}")
    if problems:
        raise FsmaError("\n".join(problems))
    return out


def parse_tlcs(values: Iterable[str | tuple[str, str] | Tlc]) -> frozenset[Tlc]:
    """TLCs from ``GTIN+LOT`` strings and/or (gtin, lot) pairs; at most MAX_TLCS."""
    out: set[Tlc] = set()
    for v in values:
        if isinstance(v, Tlc):
            out.add(v)
        elif isinstance(v, tuple):
            out.add(make_tlc(*v))
        else:
            out.add(parse_tlc(v))
        if len(out) > MAX_TLCS:
            raise FsmaError(f"at most {MAX_TLCS} traceability lot codes per spreadsheet")
    return frozenset(out)


def check_range(first: date, last: date) -> None:
    """FsmaError unless ``first`` ≤ ``last`` and the range is at most MAX_DAYS days."""
    if first > last:
        raise FsmaError(f"the first date {first} is after the last date {last}")
    if (last - first).days >= MAX_DAYS:
        raise FsmaError(f"the date range may span at most {MAX_DAYS} days")


@dataclass(frozen=True, slots=True)
class Line:
    """One line of an event (an ``event_items`` row, a pallet's content spelled out)."""

    event_id: str
    time: datetime  # with the event's own offset: its date is the local date
    site: str
    movement: str
    role: str  # item | input | output
    gtin: str | None
    lot: str | None
    serial: str | None
    sscc: str | None
    quantity: Decimal | None
    uom: str | None
    from_type: str | None = None
    from_id: str | None = None
    to_type: str | None = None
    to_id: str | None = None
    transformation_id: str | None = None
    documents: tuple[tuple[str, str], ...] = ()  # (type, id) of the event's transactions
    pallet: str | None = None  # the SSCC whose content this line is
    nested: bool = False  # a pallet on the pallet: its content is not spelled out


@dataclass(frozen=True, slots=True)
class Place:
    """A site or partner's location description (None: not in master data)."""

    name: str | None
    phone: str | None
    street: str | None
    city: str | None
    region: str | None
    postal_code: str | None
    country: str | None


@dataclass(frozen=True, slots=True)
class Product:
    """A product's FSMA description (``description`` stands in for a missing name)."""

    product_name: str | None
    brand: str | None
    commodity: str | None
    variety: str | None
    pack_size: str | None
    pack_style: str | None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class LotSource:
    """Who assigned a lot code: a site or partner id, and/or a reference."""

    tlc_source: str | None
    tlc_source_reference: str | None


@dataclass(frozen=True, slots=True)
class MasterData:
    """What the KDEs need besides the events."""

    sites: Mapping[str, Place] = field(default_factory=dict)  # by site id
    site_glns: Mapping[str, str] = field(default_factory=dict)  # GLN -> site id
    partners: Mapping[str, Place] = field(default_factory=dict)  # by party id (and GLN)
    products: Mapping[str, Product] = field(default_factory=dict)  # by GTIN-14
    lots: Mapping[Tlc, LotSource] = field(default_factory=dict)
    made_at: Mapping[Tlc, str] = field(default_factory=dict)  # lot made here: the site
