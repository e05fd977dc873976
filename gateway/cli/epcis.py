"""``traceway epcis``: export gateway events as an EPCIS 2.0 document.

Two sources: a JSONL file (gateway payloads, or the records ``traceway tail --json``
prints) or, with ``--config``, the events the gateway itself stored in its database
(the outbox, opened read-only).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from mqtt_topics.epcis import EpcisExportError, to_epcis_document
from mqtt_topics.validation import validate


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``epcis`` sub-command."""
    p = sub.add_parser(
        "epcis",
        help="export gateway events as an EPCIS 2.0 JSON-LD document",
        description=(
            "Read gateway events from a JSONL file ('-' = stdin) or, with --config, from the "
            "gateway's own database (read-only; it may run beside the gateway), validate each "
            "event against its schema and write one EPCISDocument. A JSONL line is either a "
            "payload or a record of `traceway tail --json`. Alerts and other payloads are "
            "skipped; duplicate event ids are dropped. The database holds unsent events and "
            "published ones for storage.keep_published_hours. Exit 0 on success, 1 when an "
            "event is invalid or a correction refers to an event not in the input (unless "
            "--lenient), 2 on a usage, config or I/O error, 3 when the database is unusable."
        ),
    )
    p.add_argument(
        "input",
        metavar="EVENTS.jsonl",
        nargs="?",
        help="JSONL file of payloads or `tail --json` records, '-' for stdin",
    )
    p.add_argument(
        "--config",
        "-c",
        type=Path,
        metavar="F",
        help="read the events stored in this gateway's database instead of a file",
    )
    p.add_argument(
        "--since",
        type=parse_since,
        metavar="T",
        help="only events with event_time at or after T (ISO 8601 date or date and time; "
        "without an offset: local time)",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.add_argument(
        "--lenient",
        action="store_true",
        help="skip invalid events and unresolved corrections (reported on stderr)",
    )
    p.add_argument("--compact", action="store_true", help="no indentation")
    p.set_defaults(func=run)


def parse_since(text: str) -> datetime:
    """``--since``: an ISO 8601 date or date-time; without an offset it is local time."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date or date-time (e.g. 2026-11-23 or "
            "2026-11-23T07:30+01:00)"
        ) from None
    return when if when.tzinfo is not None else when.astimezone()


def _event_time(payload: Mapping[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(payload.get("event_time")))
    except ValueError:
        return None


def since_filter(
    events: Iterable[dict[str, Any]], since: datetime | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(events at or after ``since``, the earlier ones); everything when ``since`` is None."""
    kept: list[dict[str, Any]] = []
    earlier: list[dict[str, Any]] = []
    for ev in events:
        when = _event_time(ev)
        (kept if since is None or when is None or when >= since else earlier).append(ev)
    return kept, earlier


def unwrap(obj: Any) -> tuple[Any, str | None]:
    """A payload from a JSONL value: ``tail --json`` records are unwrapped.

    Returns (payload, problem); the problem names a tail record whose message was not JSON.
    """
    if isinstance(obj, dict) and "schema" not in obj and {"topic", "payload"} <= obj.keys():
        payload = obj["payload"]
        if not isinstance(payload, dict):
            return None, f"the message on {obj['topic']} was not a JSON object"
        return payload, None
    return obj, None


def read_payloads(lines: Iterable[str]) -> tuple[list[dict[str, Any]], list[str], int]:
    """(valid event payloads, problems as ``line N: ...``, count of skipped non-events)."""
    return _collect((f"line {n}", line) for n, line in enumerate(lines, 1))


def _collect(
    rows: Iterable[tuple[str, str]],
) -> tuple[list[dict[str, Any]], list[str], int]:
    events: list[dict[str, Any]] = []
    problems: list[str] = []
    skipped = 0
    for where, text in rows:
        if not text.strip():
            continue
        try:
            obj, problem = unwrap(json.loads(text))
        except ValueError as exc:
            problems.append(f"{where}: not JSON: {exc}")
            continue
        if problem is not None:
            problems.append(f"{where}: {problem}")
            continue
        header = obj.get("schema") if isinstance(obj, dict) else None
        if isinstance(header, dict) and header.get("name") not in (None, "traceway.event"):
            skipped += 1
            continue
        errors = validate(obj)
        if errors:
            problems.extend(f"{where}: {e}" for e in errors)
            continue
        events.append(obj)
    return events, problems, skipped


def _stored_rows(db: Path) -> Iterator[tuple[str, str]]:
    """(``seq N``, payload) of every event in the outbox, in seq order; read-only."""
    from gateway.store.db import DatabaseError

    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise DatabaseError(f"{db}: cannot open the database read-only ({exc})") from exc
    try:
        rows = conn.execute("SELECT seq, payload FROM outbox WHERE kind = 'event' ORDER BY seq")
        for seq, payload in rows:
            yield f"seq {seq}", str(payload)
    except sqlite3.Error as exc:
        raise DatabaseError(
            f"{db}: cannot read the stored events ({exc}); is this a traceway database?"
        ) from exc
    finally:
        conn.close()


def stored_events(db: Path) -> tuple[list[dict[str, Any]], list[str], int]:
    """(valid stored events, problems as ``seq N: ...``, 0) from a gateway database."""
    return _collect(_stored_rows(db))


def _open(path: str) -> IO[str]:
    return sys.stdin if path == "-" else open(path, encoding="utf-8")


def _read(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[str], int, str] | int:
    """(events, problems, skipped, source name), or an exit code after a one-line error."""
    if (args.input is None) == (args.config is None):
        print("traceway epcis: give either EVENTS.jsonl or --config F", file=sys.stderr)
        return 2
    if args.config is not None:
        from gateway.config import load_config

        cfg = load_config(args.config)  # a ConfigError is reported by main (exit 2)
        db = cfg.storage.path
        if not db.exists():
            print(
                f"traceway epcis: {db}: no database yet (the gateway has not run)", file=sys.stderr
            )
            return 2
        return (*stored_events(db), str(db))
    try:
        with _open(args.input) as fh:
            return (*read_payloads(fh), args.input)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"traceway epcis: {args.input}: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    """Convert; see the sub-command description for exit codes."""
    got = _read(args)
    if isinstance(got, int):
        return got
    events, problems, skipped, source = got
    for p in problems:
        print(f"traceway epcis: {source}: {p}", file=sys.stderr)
    if problems and not args.lenient:
        return 1
    events, earlier = since_filter(events, args.since)
    try:
        doc = to_epcis_document(events, strict=not args.lenient, originals=earlier)
    except EpcisExportError as exc:
        print(f"traceway epcis: {exc} (--lenient leaves them out)", file=sys.stderr)
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
    since = f" since {args.since.isoformat()}" if args.since else ""
    print(f"traceway epcis: {n} EPCIS events from {len(events)} gateway events{since} "
          f"({skipped} other payloads skipped)", file=sys.stderr)  # fmt: skip
    return 0
