"""GS1 keys: the mod-10 check digit, GTIN/SSCC/GLN validity, the AI character set 82."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"^[0-9]+$", re.ASCII)

#: GS1 AI encodable character set 82 (General Specifications figure 7.11-1), the
#: characters of lots, serials and other alphanumeric AI values.
CSET82_CHARS = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)
#: One to twenty characters of set 82: a lot (10), a serial (21), a GLN extension (254).
CSET82 = re.compile(r"^[!\"%-?A-Z_a-z]{1,20}$")


def check_digit(body: str) -> int:
    """The GS1 mod-10 check digit for ``body`` (all digits but the last)."""
    if not _DIGITS.match(body):
        raise ValueError(f"not digits: {body!r}")
    total = 0
    for i, ch in enumerate(reversed(body)):
        total += int(ch) * (3 if i % 2 == 0 else 1)
    return (10 - total % 10) % 10


def has_valid_check_digit(digits: str) -> bool:
    """True when ``digits`` (two or more) end in their correct mod-10 check digit."""
    return (
        len(digits) >= 2
        and bool(_DIGITS.match(digits))
        and check_digit(digits[:-1]) == int(digits[-1])
    )


def _valid(key: str, length: int) -> bool:
    return len(key) == length and has_valid_check_digit(key)


def is_valid_gtin(gtin: str) -> bool:
    """True for a 14-digit GTIN with a correct check digit."""
    return _valid(gtin, 14)


def is_valid_sscc(sscc: str) -> bool:
    """True for an 18-digit SSCC with a correct check digit."""
    return _valid(sscc, 18)


def is_valid_gln(gln: str) -> bool:
    """True for a 13-digit GLN with a correct check digit."""
    return _valid(gln, 13)
