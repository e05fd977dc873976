"""The writing side of GS1: field values -> validated element strings for labels.

Built on the same AI table, date, check-digit and pairing rules that read barcodes
(:mod:`gs1.rules`, :mod:`gs1.elements`), so anything encoded here reads back without
errors when scanned: :func:`check_label` parses the encoded element string with the
reader and refuses the label when the reader would report anything wrong with it.

Anything that cannot be encoded raises :class:`EncodeError` naming the field and the
reason, so a wrong label is never printed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from gs1.dates import parse_yymmdd
from gs1.elements import parse_element_string
from gs1.keys import CSET82_CHARS, check_digit
from gs1.rules import DATE_AIS, GS, Element, ai_info, pairing_errors, validate_element

__all__ = [
    "CSET82_CHARS",
    "Element",
    "EncodeError",
    "check_digit",
    "check_label",
    "element_string",
    "hri",
    "normalise",
    "validate_pairs",
]

#: Key AIs whose short GTIN forms (GTIN-8/12/13) are padded to 14 digits.
_GTIN_AIS = frozenset({"01", "02", "8006", "8026"})
_ISO_DATE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$", re.ASCII)


class EncodeError(ValueError):
    """Field data that cannot be encoded; the message names the field."""


def _reason(error: str) -> str:
    """The message part of a reader error ``"code: message"``."""
    return error.split(": ", 1)[1] if ": " in error else error


def _date_value(ai: str, value: str, field: str, today: date) -> str:
    """``YYYY-MM-DD`` -> ``YYMMDD`` when the two-digit year reads back as the same date."""
    m = _ISO_DATE.match(value)
    if m is None:
        return value
    try:
        wanted = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise EncodeError(f"{field}: {value!r} is not a calendar date") from None
    v = m.group(1)[2:] + m.group(2) + m.group(3)
    read_back = parse_yymmdd(v, today, day_zero=DATE_AIS[ai])
    if read_back != wanted:
        raise EncodeError(
            f"{field}: {value!r} cannot be written as AI ({ai}) {v}: a scanner reads it "
            f"as {read_back} (two-digit years are read within 49 years back and 50 ahead)"
        )
    return v


def normalise(ai: str, value: str, field: str, today: date | None = None) -> str:
    """The AI data for a field value as ``traceway parse`` reports it; raises EncodeError.

    Dates may be given as ``YYYY-MM-DD`` or ``YYMMDD``; GTIN-8/12/13 are padded to 14
    digits. The value is then checked exactly as the reader checks a scanned element
    (format and character set, calendar date, check digit).
    """
    today = today or date.today()
    if ai_info(ai) is None:
        raise EncodeError(f"{field}: ({ai}) is not a GS1 application identifier")
    v = value.strip()
    if not v:
        raise EncodeError(f"{field}: empty value for AI ({ai})")
    if ai in DATE_AIS:
        v = _date_value(ai, v, field, today)
    if ai in _GTIN_AIS and v.isascii() and v.isdigit() and len(v) in (8, 12, 13):
        v = v.rjust(14, "0")
    bad = sorted({c for c in v if c not in CSET82_CHARS})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        raise EncodeError(
            f"{field}: {value!r} has characters outside the GS1 character set: {shown}"
        )
    _, errors = validate_element(ai, v, today)
    if errors:
        raise EncodeError(f"{field}: {value!r}: " + "; ".join(_reason(e) for e in errors))
    return v


def validate_pairs(elements: Sequence[Element]) -> None:
    """Refuse element lists that repeat an AI or break the reader's AI pairing rules."""
    ais = [e.ai for e in elements]
    if len(set(ais)) != len(ais):
        raise EncodeError(f"AI repeated in one symbol: {ais}")
    errors = pairing_errors(elements)
    if errors:
        raise EncodeError("; ".join(_reason(e) for e in errors))


def element_string(elements: Sequence[Element], separator: str = GS) -> str:
    """Element string as a scanner transmits it: GS after each variable-length element but the last."""
    out: list[str] = []
    for i, e in enumerate(elements):
        out.append(e.ai + e.value)
        if not e.fixed and i < len(elements) - 1:
            out.append(separator)
    return "".join(out)


def hri(elements: Sequence[Element]) -> str:
    """Human-readable interpretation: ``(01)09501101530003(10)ABC``."""
    return "".join(f"({e.ai}){e.value}" for e in elements)


def check_label(elements: Sequence[Element], today: date | None = None) -> str:
    """The label's element string, after reading it back with the reader's parser.

    Raises EncodeError when the reader would report any error, or would read other
    elements than the ones given: what the gateway prints, it accepts when scanned.
    """
    validate_pairs(elements)
    data = element_string(elements)
    parsed = parse_element_string(data, today or date.today())
    if parsed.errors:
        raise EncodeError(f"{hri(elements)}: " + "; ".join(_reason(e) for e in parsed.errors))
    got = [(e.ai, e.value) for e in parsed.elements]
    if got != [(e.ai, e.value) for e in elements]:
        raise EncodeError(f"{hri(elements)} would be read back differently: {got}")
    return data
