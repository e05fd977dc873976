"""Validate payloads against the JSON Schemas shipped in ``mqtt_topics/schemas``.

Draft 2020-12 with format checking (date-time, date, uuid, uri). GS1 check
digits, which JSON Schema cannot express, are checked here too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from gs1.keys import is_valid_gln, is_valid_gtin, is_valid_sscc
from mqtt_topics.topics import DEFAULT_PREFIX, spec_for_topic

SCHEMA_ID_PREFIX = "urn:traceway:schema:"


def schema_names() -> list[str]:
    """Names of every payload schema shipped (``traceway.event``, …), without the shared defs."""
    files = resources.files("mqtt_topics").joinpath("schemas").iterdir()
    names = sorted(f.name.removesuffix(".json") for f in files if f.name.endswith(".json"))
    return [n for n in names if n != "traceway.defs"]


def load_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of payload ``name`` (e.g. ``traceway.event``) from package data."""
    if not name.replace(".", "").replace("_", "").isalnum():
        raise KeyError(name)
    path = resources.files("mqtt_topics").joinpath("schemas", f"{name}.json")
    if not path.is_file():
        raise KeyError(f"no schema named {name!r}")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@cache
def _registry() -> Registry[Any]:
    resources_ = [
        Resource.from_contents(load_schema(n), default_specification=DRAFT202012)
        for n in [*schema_names(), "traceway.defs"]
    ]
    return Registry().with_resources((r.id() or "", r) for r in resources_)


@cache
def validator(name: str) -> Draft202012Validator:
    """A cached validator (with format checking) for schema ``name``."""
    return Draft202012Validator(
        load_schema(name), registry=_registry(), format_checker=FormatChecker()
    )


def _path(parts: Iterator[Any] | Any) -> str:
    s = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
    return s.lstrip(".") or "(root)"


@cache
def fast_validator(name: str) -> Any | None:
    """A compiled validator (jsonschema-rs, when installed) for the common case: valid.

    About 500 times faster than ``jsonschema``; a payload it refuses is validated again
    by ``jsonschema`` for the messages. None when jsonschema-rs is not installed (the
    gateway does not need it; the central service's ingest does).
    """
    try:
        import jsonschema_rs
    except ImportError:
        return None
    res = [(SCHEMA_ID_PREFIX + n, load_schema(n)) for n in [*schema_names(), "traceway.defs"]]
    return jsonschema_rs.Draft202012Validator(
        load_schema(name), validate_formats=True, registry=jsonschema_rs.Registry(res)
    )


def schema_errors(name: str, payload: Any) -> list[str]:
    """JSON Schema errors of ``payload`` against schema ``name`` (``path: message``), sorted."""
    fast = fast_validator(name)
    if fast is not None and fast.is_valid(payload):
        return []
    errors = validator(name).iter_errors(payload)
    return sorted(f"{_path(e.absolute_path)}: {e.message}" for e in errors)


def _keys(node: Any, path: str) -> Iterator[tuple[str, str, str]]:
    """(path, kind, value) for every GS1 key found in a payload tree."""
    if isinstance(node, Mapping):
        for k, v in node.items():
            sub = f"{path}.{k}" if path else str(k)
            if k in ("gtin", "sscc", "gln") and isinstance(v, str):
                yield sub, str(k), v
            else:
                yield from _keys(v, sub)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _keys(v, f"{path}[{i}]")


_CHECKS = {"gtin": (14, is_valid_gtin), "sscc": (18, is_valid_sscc), "gln": (13, is_valid_gln)}


#: Parts of a payload that report what was scanned, as scanned: an alert's
#: ``interpretation`` may carry a key with a wrong check digit (that is often why the
#: scan was rejected). Everything else (items, parents, sources, cache rows) must be valid.
AS_SCANNED: dict[str, frozenset[str]] = {"traceway.alert": frozenset({"interpretation"})}


def check_digit_errors(payload: Any, skip: frozenset[str] = frozenset()) -> list[str]:
    """Wrong GS1 check digits in any ``gtin``/``sscc``/``gln`` value of the payload.

    Top-level keys named in ``skip`` are not looked into.
    """
    if isinstance(payload, Mapping) and skip:
        payload = {k: v for k, v in payload.items() if k not in skip}
    out = []
    for path, kind, value in _keys(payload, ""):
        length, ok = _CHECKS[kind]
        if len(value) == length and value.isdigit() and not ok(value):
            out.append(f"{path}: {kind.upper()} {value} has a wrong check digit")
    return out


def validate(payload: Mapping[str, Any]) -> list[str]:
    """Errors of a payload against the schema it names in ``schema.name``; empty if valid."""
    if not isinstance(payload, Mapping):
        return ["(root): payload is not a JSON object"]
    header = payload.get("schema")
    if not isinstance(header, Mapping) or not isinstance(header.get("name"), str):
        return ["schema: missing or not an object with a string 'name'"]
    name = header["name"]
    if name not in schema_names():
        return [f"schema.name: unknown schema {name!r}"]
    skip = AS_SCANNED.get(name, frozenset())
    return schema_errors(name, payload) + check_digit_errors(payload, skip)


def check_message(
    topic: str, payload: bytes, prefix: str = DEFAULT_PREFIX
) -> tuple[Any, list[str]]:
    """(decoded payload or None, errors) of one MQTT message as received on ``topic``.

    Besides :func:`validate`, the schema the payload names must be the one of its topic.
    """
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return None, [f"not UTF-8 JSON: {exc}"]
    errors = validate(obj)
    spec = spec_for_topic(topic, prefix)
    header = obj.get("schema") if isinstance(obj, dict) else None
    name = header.get("name") if isinstance(header, dict) else None
    if spec is not None and isinstance(name, str) and name != spec.schema:
        errors.insert(0, f"schema: {name!r} on a {spec.schema!r} topic")
    return obj, errors
