"""Barcode interpretation (pure): scanned text -> GTIN, SSCC, lot, serial, dates, or a pattern.

Wraps biip and adds what it lacks: routing by AIM symbology identifier, Digital Link
URIs arriving as ``]Q1``/``]d1``, no GS1 reading of plain ``]C0`` Code 128, check
digits of every key, calendar dates in the GS1 century window relative to ``today``,
AI pairing rules, and a warning for a lost GS separator.

Routing (data = text without the AIM id, surrounding whitespace/GS stripped):

- ``]E0 ]E3 ]E4 ]I1`` (EAN-13/UPC-A, EAN-13 + add-on, EAN-8 or UPC-E, ITF-14): a GTIN.
  Data that is not GTIN-shaped (e.g. a short ITF) goes to the patterns.
- An http(s) URL with a GS1 primary key in its path (``/01/``, ``/00/``...) under any
  other symbology or none: a Digital Link URI, kind ``digital_link``.
- ``]C1 ]d2 ]Q3 ]e0 ]e1 ]e2 ]J1``: GS1 element strings. Patterns are tried only when the
  data is not GS1 at all (unknown AI / malformed value); they never override GS1 data.
- Any other AIM id (``]C0 ]d1 ]Q1 ]A0``...): patterns, else ``unknown``. When the data
  would read cleanly as GS1 element strings, the error is ``not_gs1`` (a label printed
  without FNC1, or a scanner not sending ``]C1``) instead of ``unparseable``.
- No AIM id: 8/12/13/14 digits are a GTIN, ``(01)...`` is read as HRI, anything else
  as element strings; kept when clean, else patterns, else kept with its errors when
  it is structurally GS1, else ``unknown``.

Kinds: ``sscc`` when (00) is present without (01); ``gtin`` for a bare GTIN (EAN/UPC/ITF, shown
in ``ais`` as (01)) or a lone (01); ``gs1`` for other element strings; ``digital_link``; ``location``/``command``
from a pattern; ``unknown``. ``gtin`` is (01), or (02) (content) when (01) is absent.

Error codes (``"code: message"``):

- ``empty``: nothing but whitespace / AIM id.
- ``unparseable``: not GS1 and no pattern matched.
- ``not_gs1``: GS1-looking data under a non-GS1 symbology (e.g. ``]C0``); kind unknown.
- ``check_digit``: GTIN/SSCC/GLN/GDTI/GCN/GSIN/GRAI/GSRN/UPC-E check digit wrong.
- ``invalid_date``: not a calendar date or time (day ``00`` in AIs 11-17 is valid: last day).
- ``invalid_ai``: unknown AI, value not matching the AI format, wrong length.
- ``pairing``: a required AI missing (e.g. (21) without (01)), AIs that exclude each
  other (e.g. (01) with (02)), or one AI twice with different values. Checked per barcode
  (see :mod:`gs1.rules`).
- ``digital_link``: malformed Digital Link URI (no primary key, bad qualifier order...).
- ``internal``: a bug in this module (never expected; the input is reported, not raised).

Warning codes: ``missing_separator`` (a variable-length value seems to contain further
AIs, or reached its maximum length and ran into the next AI without GS).

Patterns are matched with ``re.fullmatch`` against the data (AIM id removed).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any, Literal

from biip import ParseError
from biip.upc import Upc

from gs1.digital_link import looks_like_digital_link, parse_digital_link
from gs1.elements import Parsed, looks_like_hri, parse_element_string, parse_hri
from gs1.rules import Element, check_digit_error
from gs1.value import value_type

Kind = Literal["gs1", "gtin", "sscc", "digital_link", "location", "command", "unknown"]

GS1_SYMBOLOGIES = frozenset({"]C1", "]d2", "]Q3", "]e0", "]e1", "]e2", "]J1"})
GTIN_SYMBOLOGIES = frozenset({"]E0", "]E3", "]E4", "]I1"})
_AIM = re.compile(r"\][A-Za-z][0-9A-Za-z]", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_STRIP = " \t\r\n\x1d\x00"


@dataclass(frozen=True, slots=True)
class BarcodePattern:
    """A regex (``re.fullmatch``) turning a non-GS1 barcode into a location or command.

    A named group ``value`` gives the interpretation's ``value``, else the whole data.
    """

    kind: Literal["location", "command"]
    regex: str
    name: str = ""


@value_type
class Interpretation:
    """What one scanned barcode means."""

    input: str
    symbology: str | None
    kind: Kind
    gtin: str | None
    sscc: str | None
    serial: str | None
    lot: str | None
    expiry: date | None
    best_before: date | None
    count: int | None
    quantity: int | None
    ais: tuple[tuple[str, str], ...]
    value: str | None
    pattern: str | None
    errors: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when there are no errors."""
        return not self.errors

    def error_codes(self) -> tuple[str, ...]:
        """The error codes (the part before ``:``)."""
        return tuple(e.split(":", 1)[0] for e in self.errors)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict: dates ISO, ``ais`` as an object."""
        return {
            "input": self.input,
            "symbology": self.symbology,
            "kind": self.kind,
            "gtin": self.gtin,
            "sscc": self.sscc,
            "serial": self.serial,
            "lot": self.lot,
            "expiry": self.expiry.isoformat() if self.expiry else None,
            "best_before": self.best_before.isoformat() if self.best_before else None,
            "count": self.count,
            "ais": dict(self.ais),
            "value": self.value,
            "pattern": self.pattern,
            "errors": list(self.errors),
            "warnings": list(self.warnings),
        }


_Compiled = tuple[tuple[BarcodePattern, "re.Pattern[str]"], ...]


def compile_patterns(patterns: Sequence[BarcodePattern]) -> _Compiled:
    """Compile patterns; raises ``ValueError`` naming a regex that does not compile."""
    out = []
    for p in patterns:
        try:
            out.append((p, re.compile(p.regex)))
        except re.error as exc:
            raise ValueError(f"pattern {p.name or p.regex!r}: {exc}") from exc
    return tuple(out)


def _result(
    text: str,
    symbology: str | None,
    kind: Kind,
    elements: Sequence[Element] = (),
    errors: Sequence[str] = (),
    warnings: Sequence[str] = (),
    value: str | None = None,
    pattern: str | None = None,
) -> Interpretation:
    first: dict[str, Element] = {}
    for e in elements:
        if e.ai not in first:
            first[e.ai] = e
    get = first.get
    gtin = _digits_of(get("01"), 14) or _digits_of(get("02"), 14)
    serial, lot, expiry, best_before = get("21"), get("10"), get("17"), get("15")
    return Interpretation(
        input=text,
        symbology=symbology,
        kind=kind,
        gtin=gtin,
        sscc=_digits_of(get("00"), 18),
        serial=serial.value if serial is not None else None,
        lot=lot.value if lot is not None else None,
        expiry=expiry.date if expiry is not None else None,
        best_before=best_before.date if best_before is not None else None,
        count=_number_of(get("37")),
        quantity=_number_of(get("30")),
        ais=tuple((e.ai, e.value) for e in elements),
        value=value,
        pattern=pattern,
        errors=tuple(errors),
        warnings=tuple(warnings),
    )


def _digits_of(e: Element | None, n: int) -> str | None:
    """The element's value when it is exactly ``n`` digits."""
    if e is None or len(e.value) != n or not _DIGITS.fullmatch(e.value):
        return None
    return e.value


def _number_of(e: Element | None) -> int | None:
    """The element's value as a number when it is all digits."""
    if e is None or not _DIGITS.fullmatch(e.value):
        return None
    return int(e.value)


def _kind_of(elements: Sequence[Element]) -> Kind:
    ais = [e.ai for e in elements]
    if not ais:
        return "unknown"
    if "00" in ais and "01" not in ais:
        return "sscc"
    return "gtin" if ais == ["01"] else "gs1"


def _from_parsed(
    text: str, sym: str | None, parsed: Parsed, kind: Kind | None = None
) -> Interpretation:
    return _result(
        text,
        sym,
        kind or _kind_of(parsed.elements),
        parsed.elements,
        parsed.errors,
        parsed.warnings,
    )


def _gtin_digits(sym: str | None, data: str) -> tuple[str, list[str]] | None:
    """(GTIN-14, errors) for a GTIN-shaped scan, None when it is not one."""
    if not _DIGITS.fullmatch(data):
        return None
    if sym == "]E3" and len(data) in (15, 18):
        data = data[:13]  # EAN-13 with a 2- or 5-digit add-on
    if sym == "]E0" and len(data) == 8:
        return _upc_e(data)
    allowed = {"]E0": (12, 13), "]E3": (13,), "]E4": (8,), "]I1": (14,)}.get(
        sym or "", (8, 12, 13, 14)
    )
    if len(data) not in allowed:
        return None
    gtin = data.zfill(14)
    err = check_digit_error("GTIN", gtin)
    return gtin, [err] if err else []


def _gtin_result(text: str, sym: str | None, gtin: str, errors: list[str]) -> Interpretation:
    """A bare GTIN scan; ``ais`` holds it as (01) so consumers see one shape."""
    return _result(text, sym, "gtin", [Element("01", gtin)], errors)


def _upc_e(data: str) -> tuple[str, list[str]] | None:
    try:
        right = Upc.parse(data[:7]).as_gtin_14()  # biip computes the check digit
    except ParseError:
        return None
    if right[-1] == data[-1]:
        return right, []
    return right[:-1] + data[-1], [f"check_digit: UPC-E {data} check digit should be {right[-1]}"]


def _match(text: str, sym: str | None, data: str, compiled: _Compiled) -> Interpretation | None:
    for p, rx in compiled:
        m = rx.fullmatch(data)
        if m is None:
            continue
        value = m.group("value") if "value" in rx.groupindex else None
        return _result(
            text,
            sym,
            p.kind,
            value=value if value is not None else data,
            pattern=p.name or p.regex,
        )
    return None


def _unknown(text: str, sym: str | None, data: str, code: str = "unparseable") -> Interpretation:
    shown = data if len(data) <= 48 else data[:45] + "..."
    if code == "not_gs1":
        msg = f"not_gs1: {shown!r} looks like GS1 element strings but {sym} is not a GS1 symbology"
    else:
        msg = f"unparseable: {shown!r} is not GS1 and matches no pattern"
    return _result(text, sym, "unknown", errors=[msg])


def _interpret(text: str, compiled: _Compiled, today: date) -> Interpretation:
    data = text.strip(_STRIP)
    sym: str | None = None
    if _AIM.match(data):
        sym, data = data[:3], data[3:].strip(_STRIP)
    if not data:
        return _result(text, sym, "unknown", errors=["empty: no barcode data"])
    if sym in GTIN_SYMBOLOGIES:
        found = _gtin_digits(sym, data)
        if found is not None:
            return _gtin_result(text, sym, *found)
        return _match(text, sym, data, compiled) or _unknown(text, sym, data)
    if looks_like_digital_link(data):
        return _from_parsed(text, sym, parse_digital_link(data, today), "digital_link")
    if sym in GS1_SYMBOLOGIES:
        parsed = parse_element_string(data, today)
        if parsed.structural:
            return _from_parsed(text, sym, parsed)
        return _match(text, sym, data, compiled) or _from_parsed(text, sym, parsed)
    if sym is not None:
        matched = _match(text, sym, data, compiled)
        if matched is not None:
            return matched
        looks = parse_element_string(data, today).looks_like_gs1()
        return _unknown(text, sym, data, "not_gs1" if looks else "unparseable")
    return _no_symbology(text, data, compiled, today)


def _no_symbology(text: str, data: str, compiled: _Compiled, today: date) -> Interpretation:
    found = _gtin_digits(None, data)
    if found is not None:
        candidate = _gtin_result(text, None, *found)
        structural = True
    else:
        parsed = (
            parse_hri(data, today) if looks_like_hri(data) else parse_element_string(data, today)
        )
        candidate, structural = _from_parsed(text, None, parsed), parsed.structural
    if candidate.ok:
        return candidate
    matched = _match(text, None, data, compiled)
    if matched is not None:
        return matched
    return candidate if structural else _unknown(text, None, data)


def _safe(text: str, compiled: _Compiled, today: date) -> Interpretation:
    try:
        return _interpret(text, compiled, today)
    except Exception as exc:  # a bug here must not take the daemon down
        return _result(text, None, "unknown", errors=[f"internal: {type(exc).__name__}: {exc}"])


@lru_cache(maxsize=64)
def _compiled_for(patterns: tuple[BarcodePattern, ...]) -> _Compiled:
    return compile_patterns(patterns)


def interpret(
    text: str, patterns: Sequence[BarcodePattern] = (), today: date | None = None
) -> Interpretation:
    """Interpret one scan. Never raises on any ``text`` (a bad regex raises ValueError)."""
    return _safe(text, _compiled_for(tuple(patterns)), today or date.today())


class Interpreter:
    """Compiled patterns + a bounded LRU cache of interpretations (identical labels recur:
    every case of a lot carries the same code)."""

    def __init__(self, patterns: Sequence[BarcodePattern] = (), cache_size: int = 4096) -> None:
        self._compiled = compile_patterns(patterns)
        self._size = max(0, cache_size)
        self._cache: OrderedDict[tuple[str, date], Interpretation] = OrderedDict()
        self._lock = threading.Lock()

    def interpret(self, text: str, today: date | None = None) -> Interpretation:
        """Interpret one scan, from the cache when ``(text, today)`` was seen recently."""
        key = (text, today or date.today())
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        result = _safe(text, self._compiled, key[1])
        with self._lock:
            self._cache[key] = result
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return result

    def __len__(self) -> int:
        """Number of cached interpretations."""
        return len(self._cache)
