"""GS1 keys: check digits and GS1 Digital Link URIs (no company-prefix length needed)."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

DL_BASE = "https://id.gs1.org"

_DIGITS = re.compile(r"^\d+$")
#: GS1 AI encodable character set 82 (serials, lots, GLN extensions).
CSET82 = re.compile(r"^[!\"%-?A-Z_a-z]{1,20}$")


def check_digit(body: str) -> int:
    """The GS1 mod-10 check digit for ``body`` (all digits but the last)."""
    if not _DIGITS.match(body):
        raise ValueError(f"not digits: {body!r}")
    total = 0
    for i, ch in enumerate(reversed(body)):
        total += int(ch) * (3 if i % 2 == 0 else 1)
    return (10 - total % 10) % 10


def _valid(key: str, length: int) -> bool:
    return len(key) == length and bool(_DIGITS.match(key)) and check_digit(key[:-1]) == int(key[-1])


def is_valid_gtin(gtin: str) -> bool:
    """True for a 14-digit GTIN with a correct check digit."""
    return _valid(gtin, 14)


def is_valid_sscc(sscc: str) -> bool:
    """True for an 18-digit SSCC with a correct check digit."""
    return _valid(sscc, 18)


def is_valid_gln(gln: str) -> bool:
    """True for a 13-digit GLN with a correct check digit."""
    return _valid(gln, 13)


def encode(value: str) -> str:
    """Percent-encode an AI value for a Digital Link path (everything but unreserved characters)."""
    return quote(value, safe="")


def sgtin_uri(gtin: str, serial: str) -> str:
    """``https://id.gs1.org/01/{gtin}/21/{serial}``."""
    return f"{DL_BASE}/01/{gtin}/21/{encode(serial)}"


def class_uri(gtin: str, lot: str | None = None) -> str:
    """A product class: ``.../01/{gtin}`` or, with a lot, ``.../01/{gtin}/10/{lot}``."""
    if lot:
        return f"{DL_BASE}/01/{gtin}/10/{encode(lot)}"
    return f"{DL_BASE}/01/{gtin}"


def sscc_uri(sscc: str) -> str:
    """``https://id.gs1.org/00/{sscc}``."""
    return f"{DL_BASE}/00/{sscc}"


def gln_uri(gln: str, extension: str | None = None) -> str:
    """A physical location: ``.../414/{gln}`` or ``.../414/{gln}/254/{extension}``."""
    if extension:
        return f"{DL_BASE}/414/{gln}/254/{encode(extension)}"
    return f"{DL_BASE}/414/{gln}"


def party_uri(gln: str) -> str:
    """A party GLN: ``https://id.gs1.org/417/{gln}``."""
    return f"{DL_BASE}/417/{gln}"


def parse_digital_link(uri: str) -> dict[str, str]:
    """The AI → value pairs of a Digital Link path on ``id.gs1.org`` (values decoded)."""
    if not uri.startswith(DL_BASE + "/"):
        raise ValueError(f"not a GS1 Digital Link on id.gs1.org: {uri!r}")
    parts = uri[len(DL_BASE) + 1 :].split("/")
    if len(parts) % 2:
        raise ValueError(f"odd number of path segments: {uri!r}")
    return {parts[i]: unquote(parts[i + 1]) for i in range(0, len(parts), 2)}
