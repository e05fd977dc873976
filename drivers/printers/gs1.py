"""GS1 element strings for printing: normalise field values, validate, order, HRI text.

Pure functions. Anything that cannot be encoded raises :class:`EncodeError` naming the
field and the reason, so a wrong label is never printed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

#: GS1 AI encodable character set 82 (GS1 General Specifications, figure 7.11-1).
CSET82 = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)

#: AIs that never need an FNC1 separator after them (predefined length prefixes).
_FIXED_PREFIXES = frozenset(
    {"00", "01", "02", "03", "04", "11", "12", "13", "14", "15", "16", "17", "18", "19", "20"}
    | {"31", "32", "33", "34", "35", "36", "41"}
)


class EncodeError(ValueError):
    """Field data that cannot be encoded; the message names the field."""


@dataclass(frozen=True, slots=True)
class AiSpec:
    """Format of one Application Identifier's data."""

    ai: str
    title: str
    numeric: bool
    min_len: int
    max_len: int
    check_digit: bool = False
    date: bool = False


AIS: dict[str, AiSpec] = {
    s.ai: s
    for s in (
        AiSpec("00", "SSCC", True, 18, 18, check_digit=True),
        AiSpec("01", "GTIN", True, 14, 14, check_digit=True),
        AiSpec("02", "CONTENT", True, 14, 14, check_digit=True),
        AiSpec("10", "BATCH/LOT", False, 1, 20),
        AiSpec("11", "PROD DATE", True, 6, 6, date=True),
        AiSpec("15", "BEST BEFORE", True, 6, 6, date=True),
        AiSpec("17", "USE BY", True, 6, 6, date=True),
        AiSpec("21", "SERIAL", False, 1, 20),
        AiSpec("30", "VAR. COUNT", True, 1, 8),
        AiSpec("37", "COUNT", True, 1, 8),
    )
}

#: AI pairs: key AI requires one of the listed AIs in the same message.
REQUIRES: dict[str, tuple[str, ...]] = {
    "02": ("37",),
    "37": ("02",),
    "21": ("01",),
    "10": ("01", "02"),
    "17": ("01", "02"),
    "30": ("01", "02"),
}


@dataclass(frozen=True, slots=True)
class Element:
    """One AI with its (validated) data."""

    ai: str
    data: str

    @property
    def fixed(self) -> bool:
        """True when no FNC1 separator is needed after this element."""
        return self.ai[:2] in _FIXED_PREFIXES


def check_digit(digits: str) -> int:
    """GS1 mod-10 check digit for ``digits`` (without the check digit)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        total += int(ch) * (3 if i % 2 == 0 else 1)
    return (10 - total % 10) % 10


_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def normalise(ai: str, value: str, field: str) -> str:
    """The AI data for a field value as ``traceway parse`` reports it; raises EncodeError."""
    spec = AIS.get(ai)
    if spec is None:
        raise EncodeError(f"{field}: AI ({ai}) is not supported by the label encoder")
    v = value.strip()
    if spec.date:
        m = _ISO_DATE.match(v)
        if m:
            v = m.group(1)[2:] + m.group(2) + m.group(3)
        if not (len(v) == 6 and v.isascii() and v.isdigit()):
            raise EncodeError(f"{field}: {value!r} is not a date (YYYY-MM-DD or YYMMDD)")
        month, day = int(v[2:4]), int(v[4:6])
        if not 1 <= month <= 12 or day > 31:
            raise EncodeError(f"{field}: {value!r} is not a valid date")
        return v
    if (
        spec.check_digit
        and ai in ("01", "02")
        and v.isascii()
        and v.isdigit()
        and len(v) in (8, 12, 13)
    ):
        v = v.rjust(14, "0")
    if not v:
        raise EncodeError(f"{field}: empty value for AI ({ai})")
    if spec.numeric and not (v.isascii() and v.isdigit()):
        raise EncodeError(f"{field}: {value!r} must be digits only for AI ({ai})")
    if not spec.min_len <= len(v) <= spec.max_len:
        want = (
            str(spec.max_len) if spec.min_len == spec.max_len else f"{spec.min_len}..{spec.max_len}"
        )
        raise EncodeError(f"{field}: {value!r} has {len(v)} characters, AI ({ai}) takes {want}")
    bad = sorted({c for c in v if c not in CSET82})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        raise EncodeError(
            f"{field}: {value!r} has characters outside the GS1 character set: {shown}"
        )
    if spec.check_digit and check_digit(v[:-1]) != int(v[-1]):
        raise EncodeError(
            f"{field}: {value!r} has a wrong check digit (expected {check_digit(v[:-1])})"
        )
    return v


def validate_pairs(elements: Sequence[Element]) -> None:
    """Refuse element lists that break GS1 AI pairing rules or repeat an AI."""
    ais = [e.ai for e in elements]
    if len(set(ais)) != len(ais):
        raise EncodeError(f"AI repeated in one symbol: {ais}")
    for ai in ais:
        need = REQUIRES.get(ai)
        if need and not any(n in ais for n in need):
            alts = " or ".join(f"({n})" for n in need)
            raise EncodeError(f"AI ({ai}) requires {alts} in the same symbol")


def element_string(elements: Sequence[Element], separator: str = "\x1d") -> str:
    """Element string as a scanner transmits it: GS after each variable-length element but the last."""
    out: list[str] = []
    for i, e in enumerate(elements):
        out.append(e.ai + e.data)
        if not e.fixed and i < len(elements) - 1:
            out.append(separator)
    return "".join(out)


def hri(elements: Sequence[Element]) -> str:
    """Human-readable interpretation: ``(01)09501101530003(10)ABC``."""
    return "".join(f"({e.ai}){e.data}" for e in elements)
