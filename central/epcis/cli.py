"""``epcis-export`` (an EPCIS query → a document) and ``epcis-capture FILE``.

Both talk to the database named by the config (``-c``) or ``$DATABASE_URL``, as the
other answer commands do. ``epcis-export`` takes the REST query parameters as
``NAME=VALUE`` (``EQ_bizStep=shipping MATCH_epcClass=urn:epc:class:lgtin:…``) and writes
every matching event (all pages) as one document. ``epcis-capture`` runs the capture
interface on a file: exit 0 captured, 1 refused (the schema's errors on stderr; the
document is kept as a failed capture job), 2 usage, 3 database.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EXPORT_PAGE = 1000


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``epcis-export`` and ``epcis-capture``."""
    e = sub.add_parser(
        "epcis-export",
        help="events matching an EPCIS 2.0 query, as one EPCIS document",
        description="Every event (gateway and captured) matching the EPCIS 2.0 query "
        "parameters (as GET /epcis/events takes them), as an EPCISDocument (default) or an "
        "EPCISQueryDocument.",
    )
    e.add_argument("--config", "-c", type=Path, help="central TOML file (default: $DATABASE_URL)")
    e.add_argument(
        "params",
        nargs="*",
        metavar="NAME=VALUE",
        help="query parameters, e.g. EQ_bizStep=shipping GE_eventTime=2026-11-01T00:00:00Z",
    )
    e.add_argument("-o", "--output", type=Path, help="write here (default: stdout)")
    e.add_argument(
        "--query-document", action="store_true", help="write an EPCISQueryDocument instead"
    )
    e.add_argument("--compact", action="store_true", help="no indentation")
    e.set_defaults(func=cmd_export)
    c = sub.add_parser(
        "epcis-capture",
        help="capture an EPCIS 2.0 JSON(-LD) document from a trading partner",
        description="Validate the document against the official EPCIS 2.0 JSON Schema and "
        "store its events (new eventIDs only) so trace and recall see them.",
    )
    c.add_argument("file", type=Path, help="the document ('-': stdin)")
    c.add_argument("--config", "-c", type=Path, help="central TOML file (default: $DATABASE_URL)")
    c.add_argument(
        "--schema",
        type=Path,
        help="EPCISDocument.schema.json or its directory (default: $TRACEWAY_EPCIS_SCHEMA, "
        ".cache/epcis)",
    )
    c.add_argument("--who", help="who captures (default: your login)")
    c.set_defaults(func=cmd_capture)


def _usage(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def cmd_export(args: argparse.Namespace) -> int:
    from central.epcis.models import QueryParameterError, build_query
    from central.epcis.service import epcis_document, query_document, query_events
    from central.trace.cli import _connection

    params: dict[str, list[str]] = {}
    for p in args.params:
        name, sep, value = p.partition("=")
        if not sep:
            return _usage(f"{p!r}: give NAME=VALUE")
        params.setdefault(name, []).extend(value.split("|"))
    try:
        bad = [n for n in params if n in ("perPage", "nextPageToken")]
        if bad:
            raise QueryParameterError(f"{bad[0]}: the export reads every page itself")
        query = build_query(params)
    except QueryParameterError as exc:
        return _usage(str(exc))
    events: list[dict[str, Any]] = []
    with _connection(args) as conn:
        after = None
        while True:
            rows, after = query_events(conn, query, EXPORT_PAGE, after)
            events += [r.event for r in rows]
            if after is None:
                break
    now = datetime.now(UTC)
    doc = query_document(events, now) if args.query_document else epcis_document(events, now)
    text = json.dumps(doc, ensure_ascii=False, indent=None if args.compact else 2)
    if args.output is None:
        print(text)
    else:
        args.output.write_text(text + "\n", encoding="utf-8")
        print(f"{args.output}: {len(events)} event(s)", file=sys.stderr)
    return 0


def cmd_capture(args: argparse.Namespace) -> int:
    from central.epcis.schema import load_validator
    from central.epcis.service import CaptureLimitError, capture
    from central.trace.cli import _connection

    validate = load_validator(args.schema)
    if validate is None:
        return _usage(
            "the official EPCIS 2.0 JSON Schema is not installed: run .ci/fetch-epcis-schema, "
            "set TRACEWAY_EPCIS_SCHEMA or give --schema"
        )
    try:
        body = sys.stdin.buffer.read() if str(args.file) == "-" else args.file.read_bytes()
    except OSError as exc:
        return _usage(f"{args.file}: cannot read: {exc.strerror}")
    who = f"cli:{args.who or getpass.getuser()}"
    try:
        with _connection(args) as conn:
            out, errors = capture(conn, body, "application/json", who, datetime.now(UTC), validate)
    except CaptureLimitError as exc:
        return _usage(str(exc))
    print(json.dumps(out.job, indent=2))
    if errors:
        for e in errors:
            print(f"refused: {e}", file=sys.stderr)
        return 1
    return 0
