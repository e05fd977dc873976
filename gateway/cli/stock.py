"""``traceway stock`` and ``traceway trace`` — where is it now, and what happened to it here."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from gateway.config import load_config
from gateway.store import queries


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``stock`` and ``trace`` sub-commands."""
    p = sub.add_parser("stock", help="stock on hand per lot, serial and location")
    p.add_argument("--config", "-c", required=True, type=Path, help="gateway config file")
    p.add_argument("--gtin", help="only this GTIN (14 digits)")
    p.add_argument("--lot", help="only this lot")
    p.add_argument("--serial", help="only this serial")
    p.add_argument("--location", help="only this storage location")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=run_stock)
    t = sub.add_parser("trace", help="the local history of a lot, a serial or a pallet")
    t.add_argument("--config", "-c", required=True, type=Path, help="gateway config file")
    t.add_argument("--gtin", help="GTIN of the lot or serial")
    t.add_argument("--lot", help="lot (with --gtin)")
    t.add_argument("--serial", help="serial (with --gtin)")
    t.add_argument("--sscc", help="a pallet's SSCC (its own movements and what was packed on it)")
    t.add_argument("--json", action="store_true", help="one JSON object per line")
    t.set_defaults(func=run_trace)


def _open(config: Path) -> sqlite3.Connection | None:
    cfg = load_config(config)
    db = cfg.storage.path
    if not db.exists():
        print(f"{db}: no database yet (the gateway has not run)", file=sys.stderr)
        return None
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True)


def _place(p: dict[str, str] | None) -> str:
    if p is None:
        return "-"
    return p["id"] if p["type"] == "location" else f"{p['type']}:{p['id']}"


def run_stock(args: argparse.Namespace) -> int:
    conn = _open(args.config)
    if conn is None:
        return 1
    try:
        rows = queries.stock(
            conn, gtin=args.gtin, lot=args.lot, serial=args.serial, location=args.location
        )
    finally:
        conn.close()
    _print(
        rows,
        args.json,
        _stock_line,
        "GTIN            LOT/SERIAL            LOCATION    QTY UOM STATUS   EXPIRY",
    )
    return 0


def _stock_line(r: dict[str, Any]) -> str:
    ident = f"SN {r['serial']}" if r["serial"] else (r["lot"] or "-")
    return (
        f"{r['gtin']}  {ident:20.20}  {r['location'] or '(none)':10.10} {r['quantity']:>4} "
        f"{r['uom']:3} {r['status']:8} {r['expiry'] or '-'}"
    )


def run_trace(args: argparse.Namespace) -> int:
    if args.sscc is None and (args.gtin is None or (args.lot is None) == (args.serial is None)):
        print("trace: give --gtin with --lot or --serial, or --sscc", file=sys.stderr)
        return 2
    conn = _open(args.config)
    if conn is None:
        return 1
    try:
        rows = queries.trace(conn, gtin=args.gtin, lot=args.lot, serial=args.serial, sscc=args.sscc)
    finally:
        conn.close()
    _print(
        rows, args.json, _trace_line, "SEQ   TIME                           MOVEMENT   FROM -> TO"
    )
    return 0


def _trace_line(r: dict[str, Any]) -> str:
    what = (
        f"SN {r['serial']}"
        if r["serial"]
        else (f"SSCC {r['sscc']}" if r["sscc"] else f"lot {r['lot']}")
    )
    pallet = f" on {r['parent']}" if r["parent"] else ""
    sent = "" if r["published"] else " (not yet published)"
    return (
        f"{r['seq']:<5} {r['event_time']:30} {r['movement']:10} "
        f"{_place(r['from'])} -> {_place(r['to'])}  {what} qty {r['quantity']} {r['uom'] or ''}"
        f"{pallet} @{r['station']}{sent}"
    )


def _print(rows: list[dict[str, Any]], as_json: bool, line: Any, header: str) -> None:
    if as_json:
        for r in rows:
            print(json.dumps(r, ensure_ascii=False))
        return
    if not rows:
        print("nothing found")
        return
    print(header)
    for r in rows:
        print(line(r))
