"""GS1 Digital Link URIs (``https://host/prefix/01/<gtin>/10/<lot>?17=<date>``), parsed.

Structure (primary key, ordered qualifiers, query AIs) follows the GS1 Digital Link
standard; each value is checked like an element string (format, date, check digit).
"""

from __future__ import annotations

import re
from datetime import date
from urllib.parse import unquote, urlsplit

from gs1.elements import Parsed
from gs1.rules import Element, ai_info, pairing_errors, validate_element

#: Primary key AI -> qualifier AIs allowed after it in the path, in this order.
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "01": ("22", "10", "21", "235"),
    "8006": ("22", "10", "21"),
    "8013": (),
    "8010": ("8011",),
    "414": ("254", "7040"),
    "415": ("8020",),
    "417": ("7040",),
    "8017": ("8019",),
    "8018": ("8019",),
    "255": (),
    "00": (),
    "253": (),
    "401": (),
    "402": (),
    "8003": (),
    "8004": ("7040",),
}
_URL = re.compile(r"https?://[^/?#\s]+(/[^?#]*)?(\?[^#]*)?(#.*)?", re.ASCII | re.IGNORECASE)


def _path_segments(text: str) -> list[str] | None:
    m = _URL.fullmatch(text)
    if m is None:
        return None
    return (m.group(1) or "").split("/")


def looks_like_digital_link(text: str) -> bool:
    """An http(s) URL with a GS1 primary key segment (``/01/``, ``/00/``, ...) in its path."""
    segments = _path_segments(text)
    return segments is not None and any(s in PRIMARY_KEYS for s in segments[:-1])


def _fail(message: str, elements: list[Element] | None = None) -> Parsed:
    return Parsed(tuple(elements or ()), (f"digital_link: {message}",), (), False)


def _path_pairs(text: str) -> tuple[list[tuple[str, str]], str | None]:
    segments = _path_segments(text) or []
    while segments and segments[0] not in PRIMARY_KEYS:
        segments.pop(0)
    if not segments:
        return [], "no GS1 primary key (e.g. /01/ or /00/) in the path"
    if len(segments) % 2:
        return [], "the path after the primary key must be /AI/value pairs"
    pairs = [(segments[i], unquote(segments[i + 1])) for i in range(0, len(segments), 2)]
    primary = pairs[0][0]
    allowed = list(PRIMARY_KEYS[primary])
    for key, _ in pairs[1:]:
        if key not in allowed:
            order = ", ".join(f"({q})" for q in PRIMARY_KEYS[primary]) or "none"
            return [], f"path qualifier ({key}) not allowed after ({primary}) here; order: {order}"
        allowed = allowed[allowed.index(key) + 1 :]
    if any(not v for _, v in pairs):
        return [], "empty value in the path"
    return pairs, None


def _query_pairs(text: str) -> list[tuple[str, str]]:
    query = urlsplit(text).query
    pairs: list[tuple[str, str]] = []
    for part in query.split("&"):
        key, _, value = part.partition("=")
        key = unquote(key)
        if ai_info(key) is not None:  # other parameters are ignored (standard 4.11)
            pairs.append((key, unquote(value)))
    return pairs


def parse_digital_link(text: str, today: date) -> Parsed:
    """Read a GS1 Digital Link URI into element strings."""
    try:
        pairs, problem = _path_pairs(text)
        if problem is not None:
            return _fail(problem)
        pairs += _query_pairs(text)
    except ValueError as exc:  # urlsplit on a malformed host
        return _fail(f"malformed URI: {exc}")
    elements: list[Element] = []
    errors: list[str] = []
    for ai, raw in pairs:
        value = raw.zfill(14) if ai == "01" and len(raw) in (8, 12, 13) else raw
        element, errs = validate_element(ai, value, today)
        elements.append(element)
        errors.extend(errs)
    ok = not any(e.startswith("invalid_ai") for e in errors)
    if ok:
        errors.extend(pairing_errors(elements))
    return Parsed(tuple(elements), tuple(errors), (), ok)
