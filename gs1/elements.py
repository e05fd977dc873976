"""GS1 element strings (barcode data with AIs, GS-separated) and their HRI form, parsed."""

from __future__ import annotations

import re
from datetime import date

from gs1.rules import (
    CHECK_DIGITS,
    DATE_AIS,
    GS,
    PREDEFINED_LENGTH,
    Element,
    extract_ai,
    pairing_errors,
    validate_element,
    value_prefix_len,
)
from gs1.value import value_type

#: AIs whose valid value is strong evidence of a real element string inside other data.
_STRONG = frozenset({"00", "01", "02", "11", "13", "15", "16", "17"})
_HRI = re.compile(r"(?:\([0-9]{2,4}\)[^()]*)+", re.ASCII)
_HRI_PART = re.compile(r"\(([0-9]{2,4})\)([^()]*)", re.ASCII)


@value_type
class Parsed:
    """Elements read from one barcode plus what was wrong with them.

    ``structural`` is True when every character was read as a known AI with a
    well-formed value: the data IS GS1, even if a date, check digit or pairing is wrong.
    """

    elements: tuple[Element, ...]
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    structural: bool

    def looks_like_gs1(self) -> bool:
        """Clean GS1 with a check-digit key or date, or with several elements."""
        if not self.structural or self.errors or not self.elements:
            return False
        strong = any(e.ai in _STRONG for e in self.elements)
        return strong or len(self.elements) >= 2


def _tokenize(data: str, today: date) -> tuple[list[Element], list[str], list[str], bool]:
    """Split ``data`` into element strings; no pairing, no missing-separator search."""
    elements: list[Element] = []
    errors: list[str] = []
    warnings: list[str] = []
    pos, n = 0, len(data)
    while pos < n:
        if data[pos] == GS:
            pos += 1
            continue
        ai = extract_ai(data[pos:])
        if ai is None:
            errors.append(f"invalid_ai: no GS1 application identifier at {data[pos : pos + 20]!r}")
            return elements, errors, warnings, False
        start = pos + len(ai)
        fixed = PREDEFINED_LENGTH.get(ai[:2])
        if fixed is not None:
            end = pos + fixed
            value = data[start:end]
            if len(value) < fixed - len(ai) or GS in value:
                value = value.split(GS)[0]
                errors.append(
                    f"invalid_ai: AI ({ai}) needs {fixed - len(ai)} characters, got {value!r}"
                )
                return elements, errors, warnings, False
        else:
            gs = data.find(GS, start)
            end = gs if gs >= 0 else n
            value = data[start:end]
            cut = value_prefix_len(ai, value) if ai not in DATE_AIS else len(value)
            if 0 < cut < len(value) and extract_ai(value[cut:]) is not None:
                warnings.append(
                    f"missing_separator: AI ({ai}) value {value[:cut]!r} is followed by "
                    f"{value[cut:]!r} without a GS separator"
                )
                value, end = value[:cut], start + cut
        element, errs = validate_element(ai, value, today)
        elements.append(element)
        errors.extend(errs)
        if any(e.startswith("invalid_ai") for e in errs):
            return elements, errors, warnings, False
        pos = end
    return elements, errors, warnings, True


def _strong_inside(value: str, today: date) -> str | None:
    """HRI of the first suffix of ``value`` that reads cleanly as element strings with a strong AI."""
    n = len(value)
    for i in range(1, n - 3):
        ai = value[i : i + 2]
        if ai not in _STRONG or n - i < PREDEFINED_LENGTH[ai]:
            continue  # not a strong AI, or too short for its fixed length: cannot read
        elements, errors, _, ok = _tokenize(value[i:], today)
        if ok and not errors and elements[0].ai in _STRONG:
            return "".join(f"({e.ai}){e.value}" for e in elements)
    return None


def _swallowed(elements: list[Element], today: date) -> list[str]:
    """``missing_separator`` warnings for variable-length values that hold further AIs."""
    out: list[str] = []
    for e in elements:
        if e.ai[:2] in PREDEFINED_LENGTH or e.ai in CHECK_DIGITS:
            continue
        found = _strong_inside(e.value, today)
        if found is not None:
            out.append(
                f"missing_separator: AI ({e.ai}) value {e.value!r} seems to contain {found}; "
                "a GS separator may have been lost"
            )
    return out


def parse_element_string(data: str, today: date) -> Parsed:
    """Read GS1 element strings (``\\x1d`` between variable-length values)."""
    elements, errors, warnings, ok = _tokenize(data.strip(GS), today)
    warnings.extend(_swallowed(elements, today))
    if ok:
        errors.extend(pairing_errors(elements))
    return Parsed(tuple(elements), tuple(errors), tuple(warnings), ok)


def looks_like_hri(data: str) -> bool:
    """Whether ``data`` is written as ``(01)...(10)...`` (human readable interpretation)."""
    return _HRI.fullmatch(data) is not None


def parse_hri(data: str, today: date) -> Parsed:
    """Read the human readable form ``(01)09506000134352(10)ABC``."""
    elements: list[Element] = []
    errors: list[str] = []
    for m in _HRI_PART.finditer(data):
        element, errs = validate_element(m.group(1), m.group(2), today)
        elements.append(element)
        errors.extend(errs)
    ok = not any(e.startswith("invalid_ai") for e in errors)
    if ok:
        errors.extend(pairing_errors(elements))
    return Parsed(tuple(elements), tuple(errors), (), ok)
