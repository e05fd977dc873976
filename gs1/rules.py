"""GS1 element rules: AI formats, dates, check digits and AI pairing (per barcode).

Every function here is pure. Errors are ``"code: message"`` strings; the codes are
listed in :mod:`gs1.interpret`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from functools import cache, lru_cache

from biip import ParseError
from biip.gs1_application_identifiers import GS1ApplicationIdentifier

from gs1.dates import parse_yymmdd, valid_hhmm
from gs1.keys import check_digit
from gs1.value import value_type

GS = "\x1d"

#: Total length (AI + value) of the predefined-length element strings, by the first
#: two digits of the AI (GS1 General Specifications figure 7.8.5-1). They need no GS.
PREDEFINED_LENGTH = {
    "00": 20, "01": 16, "02": 16, "03": 16, "04": 18,
    "11": 8, "12": 8, "13": 8, "14": 8, "15": 8, "16": 8, "17": 8, "18": 8, "19": 8,
    "20": 4, "31": 10, "32": 10, "33": 10, "34": 10, "35": 10, "36": 10, "41": 16,
}  # fmt: skip

#: AIs holding a date ``YYMMDD`` in their first six digits -> whether day ``00`` is allowed.
DATE_AIS = {
    "11": True, "12": True, "13": True, "15": True, "16": True, "17": True,
    "4324": True, "4325": True, "4326": False,
    "7003": False, "7006": False, "7007": False, "7011": False, "8008": False,
}  # fmt: skip

#: AIs whose value (or a slice of it) ends in a GS1 mod-10 check digit: (start, end, label).
CHECK_DIGITS = {
    "00": (0, 18, "SSCC"), "01": (0, 14, "GTIN"), "02": (0, 14, "GTIN"), "03": (0, 14, "GTIN"),
    "253": (0, 13, "GDTI"), "255": (0, 13, "GCN"), "402": (0, 17, "GSIN"),
    "410": (0, 13, "GLN"), "411": (0, 13, "GLN"), "412": (0, 13, "GLN"), "413": (0, 13, "GLN"),
    "414": (0, 13, "GLN"), "415": (0, 13, "GLN"), "416": (0, 13, "GLN"), "417": (0, 13, "GLN"),
    "8003": (1, 14, "GRAI"), "8006": (0, 14, "GTIN"), "8026": (0, 14, "GTIN"),
    "8017": (0, 18, "GSRN"), "8018": (0, 18, "GSRN"),
}  # fmt: skip

_TRADE = ("01", "02", "8006", "8026")
_TRADE_MEASURE = ("01", "02")
_LOGISTIC_MEASURE = ("00", "01")

#: AI -> the AIs of which at least one must be present in the same barcode. Follows the
#: GS1 syntax dictionary (Gen Specs 4.14.1) except that (37) accepts (00) OR (02)/(8026):
#: on a logistic label the SSCC and the content often sit in two separate barcodes.
_REQUIRES: dict[str, tuple[str, ...]] = {
    "02": ("37",),
    "10": _TRADE, "11": _TRADE, "13": _TRADE, "15": _TRADE, "16": _TRADE, "20": _TRADE,
    "17": ("01", "02", "255", "8006", "8026"),
    "21": ("01", "8006"), "250": ("01", "8006"), "251": ("01", "8006"),
    "22": ("01",), "235": ("01",), "243": ("01",),
    "240": _TRADE, "241": _TRADE, "242": _TRADE, "422": _TRADE, "7001": _TRADE,
    "254": ("414",),
    "30": _TRADE_MEASURE, "423": _TRADE_MEASURE, "424": _TRADE_MEASURE,
    "425": _TRADE_MEASURE, "426": _TRADE_MEASURE, "427": _TRADE_MEASURE,
    "7003": _TRADE_MEASURE, "7006": _TRADE_MEASURE, "7007": _TRADE_MEASURE,
    "7011": _TRADE_MEASURE, "8005": _TRADE_MEASURE, "8008": _TRADE_MEASURE,
    "37": ("00", "02", "8026"),
    "403": ("00",), "4324": ("00",), "4325": ("00",), "4326": ("00",),
    "8011": ("8010",), "8019": ("8017", "8018"), "8020": ("415",), "8007": ("415",),
}  # fmt: skip

#: Measure AIs (first three digits) -> required AIs.
_MEASURES: dict[str, tuple[str, ...]] = {
    **{p: _TRADE_MEASURE for p in ("310", "311", "312", "313", "314", "315", "316")},
    **{f"32{d}": _TRADE_MEASURE for d in "0123456789"},
    **{p: _LOGISTIC_MEASURE for p in ("330", "331", "332", "333", "334", "335", "336")},
    **{f"34{d}": _LOGISTIC_MEASURE for d in "0123456789"},
    **{p: _TRADE_MEASURE for p in ("350", "351", "352", "356", "357", "360", "361")},
    **{p: _TRADE_MEASURE for p in ("364", "365", "366")},
    **{p: _LOGISTIC_MEASURE for p in ("353", "354", "355", "362", "363", "367", "368", "369")},
    "337": ("01",),
}

#: Pairs of AIs that must not occur together.
_EXCLUSIVE = (
    ("01", "02"), ("01", "255"), ("01", "37"), ("21", "235"), ("8006", "01"),
    ("8006", "37"), ("8026", "02"), ("8026", "8006"), ("8017", "8018"), ("420", "421"),
)  # fmt: skip


@value_type
class Element:
    """One GS1 element string: AI, raw value, and the date it holds (AIs 11-17)."""

    ai: str
    value: str
    date: date | None = None

    @property
    def fixed(self) -> bool:
        """True when no GS separator is needed after this element (predefined length)."""
        return self.ai[:2] in PREDEFINED_LENGTH


@cache
def ai_info(ai: str) -> GS1ApplicationIdentifier | None:
    """biip's definition of exactly ``ai``, or None when it is not a GS1 AI."""
    try:
        found = GS1ApplicationIdentifier.extract(ai)
    except ParseError:
        return None
    return found if found.ai == ai else None


def extract_ai(text: str) -> str | None:
    """The known AI at the start of ``text``, if any."""
    return _ai_at(text[:4])


@lru_cache(maxsize=4096)
def _ai_at(head: str) -> str | None:
    """The known AI at the start of ``head`` (at most four characters: the longest AI)."""
    if not head[:1].isascii() or not head[:1].isdigit():
        return None
    try:
        return GS1ApplicationIdentifier.extract(head).ai
    except ParseError:
        return None


@cache
def _pattern(ai: str, anchored: bool) -> re.Pattern[str] | None:
    info = ai_info(ai)
    if info is None:
        return None
    pat = info.pattern if anchored else info.pattern.removeprefix("^").removesuffix("$")
    return re.compile(pat, re.ASCII)


def value_prefix_len(ai: str, value: str) -> int:
    """Length of the longest well-formed prefix of ``value`` for ``ai`` (biip's greedy match)."""
    pat = _pattern(ai, anchored=False)
    if pat is None:
        return 0
    m = pat.match(ai + value)
    return 0 if m is None else max(0, m.end() - len(ai))


@lru_cache(maxsize=4096)
def check_digit_error(label: str, digits: str) -> str | None:
    """``check_digit`` error for a mod-10 number with a wrong last digit, else None
    (cached: the same GTINs and GLNs come back scan after scan)."""
    if not digits.isascii() or not digits.isdigit() or len(digits) < 2:
        return None
    want = check_digit(digits[:-1])
    if int(digits[-1]) == want:
        return None
    return f"check_digit: {label} {digits} check digit should be {want}"


def _date_errors(ai: str, value: str, today: date) -> tuple[date | None, tuple[str, ...]]:
    """The date an AI holds and what is wrong with it."""
    day_zero = DATE_AIS[ai]
    head = value[:6]
    if not (head.isascii() and head.isdigit() and len(head) == 6):
        return None, ()  # the format check reports it
    found = parse_yymmdd(head, today, day_zero=day_zero)
    if found is None:
        return None, (f"invalid_date: AI ({ai}) {head} is not a valid date (YYMMDD)",)
    errors: list[str] = []
    tail = value[6:]
    if ai == "7007" and tail:
        if parse_yymmdd(tail, today, day_zero=False) is None:
            errors.append(f"invalid_date: AI ({ai}) {tail} is not a valid date (YYMMDD)")
    elif _bad_time(ai, tail):
        errors.append(f"invalid_date: AI ({ai}) {tail} is not a valid time of day")
    return (found if len(ai) == 2 else None), tuple(errors)


def _bad_time(ai: str, tail: str) -> bool:
    """A well-formed (digits, even length) time part that is not a time of day."""
    if not tail or (ai in ("4324", "4325") and tail == "9999"):
        return False
    well_formed = tail.isascii() and tail.isdigit() and len(tail) % 2 == 0
    return well_formed and not valid_hhmm(tail)


def validate_element(ai: str, value: str, today: date) -> tuple[Element, list[str]]:
    """Check one element string: known AI, value format, date, check digit."""
    element, errors = _validated(ai, value, today)
    return element, list(errors)


@lru_cache(maxsize=4096)
def _validated(ai: str, value: str, today: date) -> tuple[Element, tuple[str, ...]]:
    """:func:`validate_element`, cached: GTINs, dates and lots recur label after label."""
    if ai_info(ai) is None:
        return Element(ai, value), (f"invalid_ai: ({ai}) is not a GS1 application identifier",)
    errors: list[str] = []
    when: date | None = None
    if ai in DATE_AIS:
        when, date_errors = _date_errors(ai, value, today)
        errors.extend(date_errors)
    pat = _pattern(ai, anchored=True)
    if not errors and pat is not None and not pat.fullmatch(ai + value):
        info = ai_info(ai)
        fmt = info.format if info is not None else "?"
        errors.append(f"invalid_ai: AI ({ai}) value {value!r} does not match its format {fmt}")
    if not errors and ai in CHECK_DIGITS:
        start, end, label = CHECK_DIGITS[ai]
        err = check_digit_error(label, value[start:end])
        if err is not None:
            errors.append(err)
    return Element(ai, value, when if not errors else None), tuple(errors)


def _requirement(ai: str) -> tuple[str, ...]:
    if ai in _REQUIRES:
        return _REQUIRES[ai]
    if len(ai) == 4 and ai[:3] in _MEASURES:
        return _MEASURES[ai[:3]]
    if len(ai) == 4 and ai.startswith("43") and ai not in ("4303", "4313"):
        return ("00",)
    return {"4303": ("4302",), "4313": ("4312",)}.get(ai, ())


def pairing_errors(elements: Sequence[Element]) -> list[str]:
    """``pairing`` errors: missing mandatory AIs, forbidden pairs, conflicting duplicates."""
    ais = tuple(e.ai for e in elements)
    if len(set(ais)) == len(ais):
        return list(_pairing_of(ais))  # no AI twice: only which AIs are there matters
    present = set(ais)
    errors: list[str] = []
    seen: dict[str, str] = {}
    for e in elements:
        if e.ai in seen:
            if seen[e.ai] != e.value:
                errors.append(f"pairing: AI ({e.ai}) occurs twice with different values")
            continue
        seen[e.ai] = e.value
        errors.extend(_missing(e.ai, present))
    errors.extend(_forbidden(present))
    return errors


@lru_cache(maxsize=512)
def _pairing_of(ais: tuple[str, ...]) -> tuple[str, ...]:
    """Missing mandatory AIs and forbidden pairs of these distinct AIs, in order."""
    present = set(ais)
    return (*(err for ai in ais for err in _missing(ai, present)), *_forbidden(present))


def _missing(ai: str, present: set[str]) -> list[str]:
    need = _requirement(ai)
    if need and not present.intersection(need):
        alts = " or ".join(f"({a})" for a in need)
        return [f"pairing: AI ({ai}) requires {alts} in the same barcode"]
    return []


def _forbidden(present: set[str]) -> list[str]:
    return [
        f"pairing: AIs ({a}) and ({b}) must not occur together"
        for a, b in _EXCLUSIVE
        if a in present and b in present
    ]
