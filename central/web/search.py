"""What a search box entry names: a scan, a Digital Link, an HRI string, or typed keys.

Pure. :func:`parse_query` reads the entry with the project's GS1 package (AIM symbology
identifiers, FNC1/GS, Digital Link URIs, HRI with parentheses) and returns either the
units it names for certain, or *lookups* the database must answer (a bare serial or lot
that several products may share). A keyboard-wedge scanner cannot type GS (0x1D) into a
browser: ``<GS>``, ``{GS}``, ``\\x1d``-as-text, ``^]`` and ``␝`` are read as GS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from central.trace.model import KeyError_, UnitKey, normalize_gtin, unit_key
from gs1.interpret import interpret
from gs1.keys import is_valid_gtin, is_valid_sscc

MAX_QUERY = 512
_GS_SPELLINGS = ("<GS>", "{GS}", "\\x1d", "\\x1D", "^]", "␝", "<gs>", "{gs}")
_TEXT = re.compile(r"^[!\"%-?A-Z_a-z]{1,20}$")


@dataclass(frozen=True, slots=True)
class Lookup:
    """Something only the database can resolve: ``serial``/``lot``/``any`` named ``value``."""

    what: Literal["serial", "lot", "any", "gtin"]
    value: str
    gtin: str | None = None


@dataclass(frozen=True, slots=True)
class Query:
    """The parsed entry: units named for certain, lookups, and what was wrong."""

    text: str
    units: tuple[UnitKey, ...] = ()
    lookups: tuple[Lookup, ...] = ()
    errors: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())


def _clean(raw: str) -> str:
    s = raw.strip("\r\n\t ")
    for g in _GS_SPELLINGS:
        s = s.replace(g, "\x1d")
    return s


def _units_of(
    gtin: str | None, lot: str | None, serial: str | None, sscc: str | None
) -> list[UnitKey]:
    out: list[UnitKey] = []
    if sscc:
        out.append(unit_key(sscc=sscc))
    if gtin and serial:
        out.append(unit_key(gtin=gtin, serial=serial))
    if gtin and lot:
        out.append(unit_key(gtin=gtin, lot=lot))
    return out


def _typed_pair(s: str) -> Query | None:
    """``GTIN lot-or-serial`` typed by hand (space, ``/``, ``,`` or ``;`` between)."""
    parts = [p for p in re.split(r"[\s/,;]+", s) if p]
    if len(parts) != 2 or not parts[0].isdigit() or len(parts[0]) not in (8, 12, 13, 14):
        return None
    try:
        gtin = normalize_gtin(parts[0])
    except KeyError_ as exc:
        return Query(s, errors=(str(exc),))
    if not _TEXT.match(parts[1]):
        return Query(s, errors=(f"{parts[1]!r} is not a lot or serial (1-20 GS1 characters)",))
    # A hand-typed value may be a lot or a serial: offer both the database knows.
    return Query(
        s,
        lookups=(Lookup("lot", parts[1], gtin), Lookup("serial", parts[1], gtin)),
    )


def parse_query(raw: str, today: date | None = None) -> Query:
    """What ``raw`` names (never raises)."""
    if len(raw) > MAX_QUERY:
        return Query(raw[:40] + "…", errors=(f"at most {MAX_QUERY} characters",))
    s = _clean(raw)
    if not s:
        return Query("", errors=("type or scan a code",))
    if any(ord(c) < 32 and c != "\x1d" for c in s):
        return Query(s, errors=("control characters in the entry",))
    typed = _typed_pair(s)
    if typed is not None:
        return typed
    digits = s[4:] if s.startswith("(00)") else s
    if digits.isdigit() and len(digits) == 18:
        if is_valid_sscc(digits):
            return Query(s, units=(unit_key(sscc=digits),))
        return Query(s, errors=(f"SSCC {digits} has a wrong check digit",))
    if s.isdigit() and len(s) in (8, 12, 13, 14):
        padded = s.zfill(14)
        if is_valid_gtin(padded):
            return Query(s, lookups=(Lookup("gtin", padded, padded),))
    it = interpret(s, today=today)
    if it.kind in ("gs1", "digital_link", "sscc", "gtin") and (it.gtin or it.sscc):
        try:
            units = _units_of(it.gtin, it.lot, it.serial, it.sscc)
        except KeyError_ as exc:
            return Query(s, errors=(str(exc),))
        errs = tuple(e for e in it.errors if not e.startswith("date"))
        if units:
            return Query(s, units=tuple(units), notes=tuple(it.warnings), errors=errs)
        if it.gtin:
            return Query(s, lookups=(Lookup("gtin", it.gtin, it.gtin),), errors=errs)
    if it.kind in ("gs1", "digital_link") and it.errors:
        return Query(s, errors=tuple(it.errors))
    if _TEXT.match(s):
        return Query(s, lookups=(Lookup("any", s),))
    return Query(s, errors=("not a GS1 code, an SSCC, a GTIN with a lot or serial, or a lot",))
