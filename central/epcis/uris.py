"""Pure: EPC identifiers, patterns and classes as EPCIS 2.0 queries and documents use them.

An EPC arrives as an EPC URN (Tag Data Standard: ``urn:epc:id:sgtin:4012345.012345.S1``,
``urn:epc:id:sscc:4012345.0000000001``), as an EPC pattern (``urn:epc:idpat:sgtin:
4012345.012345.*``, ``urn:epc:idpat:sgtin:4012345.*.*``, ``urn:epc:idpat:sscc:*.*``), or as a
GS1 Digital Link URI on any host (``https://id.gs1.org/01/04012345123456/21/S1``). Both forms
name the same GS1 key, so a query in one finds events stored in the other (EPCIS 2.0,
section 8.2.7.1.1). A class is ``urn:epc:class:lgtin:CP.IR.LOT`` (``*`` as the lot: any lot),
an ``urn:epc:idpat:sgtin`` pattern (the product, any lot), or a Digital Link ``/01/{gtin}``
(lot-less quantities) / ``/01/{gtin}/10/{lot}``.

Everything is turned into a :class:`KeyMatch` on GS1 keys (GTIN-14 + serial or lot, SSCC):
the form central stores. Any other absolute URI (a GRAI, a GIAI, a private URN) is kept
as itself and matches literally.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

from gs1.keys import check_digit, is_valid_gln, is_valid_gtin, is_valid_sscc
from gs1.uris import gln_uri

#: An absolute URI: a scheme, a colon, then no space or control character.
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s\x00-\x1f\x7f]+$")
_DIGITS = re.compile(r"^[0-9]+$", re.ASCII)
MAX_URI = 2000


class UriError(ValueError):
    """A value that is not the URI, EPC or pattern it should be (the message says why)."""


Kind = Literal["serial", "sscc", "class", "other"]


@dataclass(frozen=True, slots=True)
class KeyMatch:
    """What one EPC, pattern or class matches.

    - ``serial``: GTIN + serial; ``gtin`` None with ``prefix``: any GTIN of that company
      prefix; both None: any serialised GTIN. ``serial`` None: any serial.
    - ``sscc``: an SSCC (``sscc``), any of a company prefix (``prefix``), or any.
    - ``class``: quantities of ``gtin`` with ``lot``; ``any_lot``: every lot and none;
      ``prefix``: every GTIN of a company prefix; nothing set: any quantity.
    - ``other``: the literal ``uri``.
    """

    kind: Kind
    gtin: str | None = None
    serial: str | None = None
    lot: str | None = None
    any_lot: bool = False
    sscc: str | None = None
    prefix: str | None = None
    uri: str | None = None

    @property
    def exact(self) -> bool:
        """One identifier (not a pattern)."""
        if self.kind == "serial":
            return self.gtin is not None and self.serial is not None
        if self.kind == "sscc":
            return self.sscc is not None
        if self.kind == "class":
            return self.gtin is not None and not self.any_lot
        return True


def absolute_uri(value: str, what: str = "value") -> str:
    """``value`` when it is an absolute URI of sensible length; UriError otherwise."""
    if len(value) > MAX_URI:
        raise UriError(f"{what} is longer than {MAX_URI} characters")
    if not _ABSOLUTE.match(value):
        raise UriError(f"{what} {value[:80]!r} is not an absolute URI")
    return value


def _gtin_from(cp: str, ir: str) -> str:
    body = ir[0] + cp + ir[1:]
    return body + str(check_digit(body))


def _sscc_from(cp: str, sr: str) -> str:
    body = sr[0] + cp + sr[1:]
    return body + str(check_digit(body))


def _cp(value: str, uri: str) -> str:
    if not _DIGITS.match(value) or not 6 <= len(value) <= 12:
        raise UriError(f"{uri}: the company prefix must be 6 to 12 digits")
    return value


def _text(value: str, what: str, uri: str) -> str:
    v = unquote(value)
    if not 1 <= len(v) <= 20 or any(ord(c) < 33 or ord(c) == 127 for c in v):
        raise UriError(f"{uri}: the {what} must be 1 to 20 printable characters")
    return v


def _parts(body: str, n: int, uri: str) -> list[str]:
    parts = body.split(".", n - 1) if n == 3 else body.split(".")
    if len(parts) != n:
        raise UriError(f"{uri}: expected {n} dot-separated parts")
    return parts


def _sgtin(body: str, uri: str, pattern: bool) -> KeyMatch:
    cp, ir, serial = _parts(body, 3, uri)
    if pattern and cp == "*":
        if ir != "*" or serial != "*":
            raise UriError(f"{uri}: after a '*' every part must be '*'")
        return KeyMatch("serial")
    cp = _cp(cp, uri)
    if pattern and ir == "*":
        if serial != "*":
            raise UriError(f"{uri}: after a '*' every part must be '*'")
        return KeyMatch("serial", prefix=cp)
    if not _DIGITS.match(ir) or len(cp) + len(ir) != 13:
        raise UriError(f"{uri}: company prefix and item reference must be 13 digits together")
    gtin = _gtin_from(cp, ir)
    if pattern and serial == "*":
        return KeyMatch("serial", gtin=gtin)
    return KeyMatch("serial", gtin=gtin, serial=_text(serial, "serial", uri))


def _sscc(body: str, uri: str, pattern: bool) -> KeyMatch:
    cp, sr = _parts(body, 2, uri)
    if pattern and cp == "*":
        if sr != "*":
            raise UriError(f"{uri}: after a '*' every part must be '*'")
        return KeyMatch("sscc")
    cp = _cp(cp, uri)
    if pattern and sr == "*":
        return KeyMatch("sscc", prefix=cp)
    if not _DIGITS.match(sr) or len(cp) + len(sr) != 17:
        raise UriError(f"{uri}: company prefix and serial reference must be 17 digits together")
    return KeyMatch("sscc", sscc=_sscc_from(cp, sr))


def _gtin14(value: str, uri: str) -> str:
    if not _DIGITS.match(value) or len(value) not in (8, 12, 13, 14):
        raise UriError(f"{uri}: a GTIN must be 8, 12, 13 or 14 digits")
    g = value.zfill(14)
    if not is_valid_gtin(g):
        raise UriError(f"{uri}: GTIN {value} has a wrong check digit")
    return g


def digital_link_pairs(uri: str) -> dict[str, str] | None:
    """The AI → value pairs of a GS1 Digital Link path (any host, any path before the
    primary key); None when ``uri`` is not an http(s) URI with a GS1 key in its path."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    segs = [s for s in parts.path.split("/") if s != ""]
    for i, s in enumerate(segs):
        if s in ("01", "00", "414", "417", "8003", "8004") and (len(segs) - i) % 2 == 0:
            tail = segs[i:]
            return {tail[j]: unquote(tail[j + 1]) for j in range(0, len(tail), 2)}
    return None


def parse_epc(uri: str, *, pattern: bool = True) -> KeyMatch:
    """An EPC (or, with ``pattern``, an EPC pattern) as a :class:`KeyMatch`."""
    absolute_uri(uri, "EPC")
    low = uri.lower()
    if low.startswith("urn:epc:id:sgtin:"):
        return _sgtin(uri[len("urn:epc:id:sgtin:") :], uri, False)
    if low.startswith("urn:epc:id:sscc:"):
        return _sscc(uri[len("urn:epc:id:sscc:") :], uri, False)
    if low.startswith("urn:epc:idpat:"):
        if not pattern:
            raise UriError(f"{uri}: a pattern is not an EPC")
        rest = uri[len("urn:epc:idpat:") :]
        if rest.lower().startswith("sgtin:"):
            return _sgtin(rest[6:], uri, True)
        if rest.lower().startswith("sscc:"):
            return _sscc(rest[5:], uri, True)
        return KeyMatch("other", uri=uri)
    if low.startswith("urn:epc:class:"):
        raise UriError(f"{uri}: a class is not an EPC (use MATCH_epcClass)")
    dl = digital_link_pairs(uri)
    if dl is not None and "01" in dl and "21" in dl:
        return KeyMatch(
            "serial", gtin=_gtin14(dl["01"], uri), serial=_text(dl["21"], "serial", uri)
        )
    if dl is not None and "00" in dl:
        if not is_valid_sscc(dl["00"]):
            raise UriError(f"{uri}: SSCC {dl['00']} must be 18 digits with a right check digit")
        return KeyMatch("sscc", sscc=dl["00"])
    if dl is not None and "01" in dl:
        raise UriError(f"{uri}: a GTIN without a serial is a class (use MATCH_epcClass)")
    return KeyMatch("other", uri=uri)


def parse_class(uri: str, *, pattern: bool = True) -> KeyMatch:
    """An EPC class (or class pattern) as a :class:`KeyMatch` of kind ``class``."""
    absolute_uri(uri, "EPC class")
    low = uri.lower()
    if low.startswith("urn:epc:class:lgtin:"):
        cp, ir, lot = _parts(uri[len("urn:epc:class:lgtin:") :], 3, uri)
        cp = _cp(cp, uri)
        if not _DIGITS.match(ir) or len(cp) + len(ir) != 13:
            raise UriError(f"{uri}: company prefix and item reference must be 13 digits together")
        gtin = _gtin_from(cp, ir)
        if lot == "*" and pattern:
            return KeyMatch("class", gtin=gtin, any_lot=True)
        return KeyMatch("class", gtin=gtin, lot=_text(lot, "lot", uri))
    if low.startswith("urn:epc:idpat:sgtin:"):
        m = _sgtin(uri[len("urn:epc:idpat:sgtin:") :], uri, True)
        if m.serial is not None:
            raise UriError(f"{uri}: a class pattern ends in '*' (no serial)")
        if m.gtin is not None:
            return KeyMatch("class", gtin=m.gtin, any_lot=pattern)
        if not pattern:
            raise UriError(f"{uri}: a pattern is not a class")
        return KeyMatch("class", prefix=m.prefix, any_lot=True)
    if low.startswith("urn:epc:"):
        raise UriError(f"{uri}: not an EPC class (urn:epc:class:lgtin or urn:epc:idpat:sgtin)")
    dl = digital_link_pairs(uri)
    if dl is not None and "01" in dl:
        if "21" in dl:
            raise UriError(f"{uri}: a serial is an EPC, not a class (use MATCH_epc)")
        gtin = _gtin14(dl["01"], uri)
        if "10" in dl:
            return KeyMatch("class", gtin=gtin, lot=_text(dl["10"], "lot", uri))
        return KeyMatch("class", gtin=gtin)
    return KeyMatch("other", uri=uri)


# -- CBV vocabulary ------------------------------------------------------------------------

_CBV_PREFIXES = {
    "bizstep": (
        "urn:epcglobal:cbv:bizstep:",
        "https://ref.gs1.org/cbv/BizStep-",
        "https://gs1.org/voc/BizStep-",
        "cbv:BizStep-",
        "gs1:BizStep-",
    ),
    "disp": (
        "urn:epcglobal:cbv:disp:",
        "https://ref.gs1.org/cbv/Disp-",
        "https://gs1.org/voc/Disp-",
        "cbv:Disp-",
        "gs1:Disp-",
    ),
}
_BARE = re.compile(r"^[a-z][a-z_]{0,63}$")


def cbv_short(value: str, vocabulary: Literal["bizstep", "disp"]) -> str:
    """A CBV value as its bare word (``shipping``); a custom URI stays as it is."""
    for prefix in _CBV_PREFIXES[vocabulary]:
        if value.startswith(prefix) and _BARE.match(value[len(prefix) :]):
            return value[len(prefix) :]
    return value


def cbv_param(value: str, vocabulary: Literal["bizstep", "disp"]) -> str:
    """A query value for EQ_bizStep / EQ_disposition: a bare word or a URI."""
    short = cbv_short(value, vocabulary)
    if _BARE.match(short):
        return short
    absolute_uri(short, "value")
    return short


# -- locations and parties -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GlnRef:
    """A GLN with an optional extension (AI 254)."""

    gln: str
    extension: str | None = None


def _sgln(uri: str) -> GlnRef | None:
    low = uri.lower()
    for scheme in ("urn:epc:id:sgln:", "urn:epc:id:pgln:"):
        if low.startswith(scheme):
            body = uri[len(scheme) :]
            parts = body.split(".")
            n = 3 if scheme.endswith("sgln:") else 2
            if len(parts) != n:
                raise UriError(f"{uri}: expected {n} dot-separated parts")
            cp = _cp(parts[0], uri)
            if not _DIGITS.match(parts[1]) or len(cp) + len(parts[1]) != 12:
                raise UriError(f"{uri}: company prefix and reference must be 12 digits together")
            body_digits = cp + parts[1]
            gln = body_digits + str(check_digit(body_digits))
            ext = unquote(parts[2]) if n == 3 and parts[2] != "0" else None
            return GlnRef(gln, ext or None)
    return None


def gln_ref(uri: str) -> GlnRef | None:
    """The GLN (+ extension) of an SGLN/PGLN URN or a Digital Link ``/414`` or ``/417``."""
    ref = _sgln(uri)
    if ref is not None:
        return ref
    dl = digital_link_pairs(uri)
    if dl is None:
        return None
    gln = dl.get("414") or dl.get("417")
    if gln is None:
        return None
    if not is_valid_gln(gln):
        raise UriError(f"{uri}: GLN {gln} must be 13 digits with a right check digit")
    return GlnRef(gln, dl.get("254") if "414" in dl else None)


def location_key(uri: str) -> str:
    """A read point / business location as compared: an SGLN URN or a Digital Link on any
    host becomes ``https://id.gs1.org/414/{gln}[/254/{ext}]``; other URIs stay as they are."""
    absolute_uri(uri, "location")
    ref = gln_ref(uri)
    if ref is None or "/417/" in uri or uri.lower().startswith("urn:epc:id:pgln:"):
        return uri
    return gln_uri(ref.gln, ref.extension)


def party_id(uri: str) -> str:
    """A source/destination as central shows it: the GLN (``gln/ext``) when it has one,
    otherwise the URI."""
    try:
        ref = gln_ref(uri)
    except UriError:
        return uri
    if ref is None:
        return uri
    return ref.gln if ref.extension is None else f"{ref.gln}/{ref.extension}"


@dataclass(frozen=True, slots=True)
class GatewayPlace:
    """What a gateway event must carry for its ``bizLocation`` to be a given URI.

    ``gln``: ``biz_location`` is the GLN (or ``GLN/ext``) and ``location`` the extension;
    ``local``: ``urn:traceway:loc:{site}:{place}[:{location}]``; ``uri``: passed through.
    """

    kind: Literal["gln", "local", "uri"]
    value: str
    extension: str | None = None
    site: str | None = None


def gateway_place(uri: str) -> GatewayPlace:
    """Invert :func:`mqtt_topics.epcis.place_uri` for a bizLocation query value."""
    absolute_uri(uri, "location")
    ref = gln_ref(uri)
    if ref is not None and "/417/" not in uri and not uri.lower().startswith("urn:epc:id:pgln:"):
        return GatewayPlace("gln", ref.gln, ref.extension)
    if uri.startswith("urn:traceway:loc:"):
        parts = uri[len("urn:traceway:loc:") :].split(":")
        if len(parts) in (2, 3) and all(parts):
            return GatewayPlace(
                "local",
                unquote(parts[1]),
                unquote(parts[2]) if len(parts) == 3 else None,
                unquote(parts[0]),
            )
    return GatewayPlace("uri", uri)
