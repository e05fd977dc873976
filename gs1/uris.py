"""GS1 Digital Link URIs built from keys (for EPCIS); no company-prefix length needed.

Reading a scanned Digital Link (with every check) is :mod:`gs1.digital_link`.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

DL_BASE = "https://id.gs1.org"


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


def uri_ais(uri: str) -> dict[str, str]:
    """The AI -> value pairs of a URI built here (``id.gs1.org`` paths, values decoded)."""
    if not uri.startswith(DL_BASE + "/"):
        raise ValueError(f"not a GS1 Digital Link on id.gs1.org: {uri!r}")
    parts = uri[len(DL_BASE) + 1 :].split("/")
    if len(parts) % 2:
        raise ValueError(f"odd number of path segments: {uri!r}")
    return {parts[i]: unquote(parts[i + 1]) for i in range(0, len(parts), 2)}
