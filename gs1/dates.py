"""GS1 dates: two-digit years in the sliding century window, day ``00`` = last day of month."""

from __future__ import annotations

import calendar
import re
from datetime import date

_YYMMDD = re.compile(r"[0-9]{6}", re.ASCII)


def century_year(yy: int, today: date) -> int:
    """Four-digit year for a two-digit ``yy`` (GS1 General Specifications 7.12).

    A year 51..99 years ahead of ``today`` is in the previous century, one 50..99
    years behind it in the next century, anything else in the current century.
    """
    current = today.year
    century = current - current % 100
    diff = yy - current % 100
    if 51 <= diff <= 99:
        century -= 100
    elif -99 <= diff <= -50:
        century += 100
    return century + yy


def parse_yymmdd(text: str, today: date, *, day_zero: bool) -> date | None:
    """The date in six digits ``YYMMDD``, or None when it is not a calendar date.

    With ``day_zero`` a day ``00`` means the last day of the month (AIs 11-17).
    """
    if not _YYMMDD.fullmatch(text):
        return None
    year = century_year(int(text[:2]), today)
    month, day = int(text[2:4]), int(text[4:6])
    if not 1 <= month <= 12:
        return None
    last = calendar.monthrange(year, month)[1]
    if day == 0 and day_zero:
        day = last
    if not 1 <= day <= last:
        return None
    return date(year, month, day)


def valid_hhmm(text: str) -> bool:
    """Whether ``text`` is ``hh``, ``hhmm`` or ``hhmmss`` with a valid time of day."""
    if not re.fullmatch(r"(?:[0-9]{2}){1,3}", text, re.ASCII):
        return False
    parts = [int(text[i : i + 2]) for i in range(0, len(text), 2)]
    limits = (23, 59, 59)
    return all(p <= lim for p, lim in zip(parts, limits, strict=False))
