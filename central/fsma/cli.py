"""``traceway-central fsma204``: the electronic sortable spreadsheet for a date range and lots."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path

from central.fsma.columns import SHEETS
from central.fsma.model import FsmaError, Tlc, check_range, parse_tlc_file, parse_tlcs

EXIT_USAGE = 2


def _date(v: str) -> date:
    try:
        return date.fromisoformat(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not a date (YYYY-MM-DD)") from None


def _read(path: Path) -> str:
    try:
        return sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FsmaError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``fsma204``."""
    p = sub.add_parser(
        "fsma204",
        help="FSMA 204 electronic sortable spreadsheet (XLSX or CSV)",
        description="The key data elements of every receiving, shipping and transformation "
        "event dated FROM to TO (the event's local date), for the given traceability lot "
        "codes (GTIN+LOT) or all of them. FILE.xlsx: one sheet per CTE in FDA's template "
        "column order; FILE.csv: one file with a 'Critical Tracking Event' column. Master "
        "data that is missing is named in the cells and listed as warnings.",
    )
    p.add_argument("--config", "-c", type=Path, help="central TOML file (default: $DATABASE_URL)")
    p.add_argument("--from", dest="first", type=_date, required=True, metavar="DATE")
    p.add_argument("--to", dest="last", type=_date, required=True, metavar="DATE")
    p.add_argument(
        "--tlc",
        action="append",
        default=[],
        metavar="GTIN+LOT",
        help="a traceability lot code (repeatable; default: every lot in the range)",
    )
    p.add_argument(
        "--tlc-file",
        type=Path,
        metavar="FILE",
        help="traceability lot codes one a line (GTIN+LOT or GTIN,LOT; '-' for stdin)",
    )
    p.add_argument("--out", "-o", type=Path, required=True, metavar="FILE.xlsx|FILE.csv")
    p.set_defaults(func=cmd_fsma204)


def cmd_fsma204(args: argparse.Namespace) -> int:
    from central.fsma.queries import fsma_report
    from central.fsma.render import to_csv, to_xlsx
    from central.trace.cli import _connection

    out: Path = args.out
    kind = out.suffix.lower()
    if kind not in (".xlsx", ".csv"):
        print(f"error: --out {out} must end in .xlsx or .csv", file=sys.stderr)
        return EXIT_USAGE
    try:
        check_range(args.first, args.last)
        wanted: list[str | Tlc] = list(args.tlc)
        if args.tlc_file is not None:
            listed = parse_tlc_file(_read(args.tlc_file), str(args.tlc_file))
            if not listed:
                raise FsmaError(f"{args.tlc_file} names no traceability lot code")
            wanted += listed
        tlcs = parse_tlcs(wanted) if wanted else None
    except FsmaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with _connection(args) as conn:
        report = fsma_report(conn, args.first, args.last, tlcs)
    try:
        data = to_xlsx(report) if kind == ".xlsx" else to_csv(report).encode("utf-8")
    except FsmaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        print(f"error: cannot write {out}: {exc.strerror}", file=sys.stderr)
        return 1
    for w in report.warnings():
        print(f"warning: {w}", file=sys.stderr)
    counts = ", ".join(f"{s} {len(report.rows[s])}" for s in SHEETS)
    print(f"wrote {out}: {counts} row(s)")
    return 0
