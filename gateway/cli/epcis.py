"""``traceway epcis EVENTS.jsonl [-o OUT]``: export gateway events as an EPCIS 2.0 document."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from typing import IO, Any

from mqtt_topics.epcis import EpcisExportError, to_epcis_document
from mqtt_topics.validation import validate


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``epcis`` sub-command."""
    p = sub.add_parser(
        "epcis",
        help="convert a JSONL file of gateway events to an EPCIS 2.0 JSON-LD document",
        description=(
            "Read gateway payloads (one JSON object per line; '-' = stdin), validate each "
            "event against its schema and write one EPCISDocument. Alerts and other "
            "payloads are skipped; duplicate event ids are dropped. Exit 0 on success, "
            "1 when an input line is invalid or a correction refers to an event not in the "
            "input (unless --lenient), 2 on a usage or I/O error."
        ),
    )
    p.add_argument("input", metavar="EVENTS.jsonl", help="JSONL file of payloads, '-' for stdin")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.add_argument(
        "--lenient",
        action="store_true",
        help="skip invalid lines and unresolved corrections (reported on stderr)",
    )
    p.add_argument("--compact", action="store_true", help="no indentation")
    p.set_defaults(func=run)


def read_payloads(lines: Iterable[str]) -> tuple[list[dict[str, Any]], list[str], int]:
    """(valid event payloads, problems as ``line N: ...``, count of skipped non-events)."""
    events: list[dict[str, Any]] = []
    problems: list[str] = []
    skipped = 0
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            problems.append(f"line {n}: not JSON: {exc}")
            continue
        header = obj.get("schema") if isinstance(obj, dict) else None
        if isinstance(header, dict) and header.get("name") not in (None, "traceway.event"):
            skipped += 1
            continue
        errors = validate(obj)
        if errors:
            problems.extend(f"line {n}: {e}" for e in errors)
            continue
        events.append(obj)
    return events, problems, skipped


def _open(path: str) -> IO[str]:
    return sys.stdin if path == "-" else open(path, encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    """Convert; see the sub-command description for exit codes."""
    try:
        with _open(args.input) as fh:
            events, problems, skipped = read_payloads(fh)
    except OSError as exc:
        print(f"traceway epcis: {exc}", file=sys.stderr)
        return 2
    for p in problems:
        print(f"traceway epcis: {args.input}: {p}", file=sys.stderr)
    if problems and not args.lenient:
        return 1
    try:
        doc = to_epcis_document(events, strict=not args.lenient)
    except EpcisExportError as exc:
        print(f"traceway epcis: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(doc, indent=None if args.compact else 2, ensure_ascii=False) + "\n"
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as out:
                out.write(text)
        except OSError as exc:
            print(f"traceway epcis: {exc}", file=sys.stderr)
            return 2
    else:
        sys.stdout.write(text)
    n = len(doc["epcisBody"]["eventList"])
    print(f"traceway epcis: {n} EPCIS events from {len(events)} gateway events "
          f"({skipped} other payloads skipped)", file=sys.stderr)  # fmt: skip
    return 0
