"""``traceway parse [--json] [--config FILE] BARCODE...``: show how barcodes are interpreted."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from drivers.scanners.escapes import EscapeError, unescape
from gs1.interpret import BarcodePattern, Interpreter


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``parse`` sub-command."""
    p = sub.add_parser(
        "parse",
        help="interpret barcodes (GS1, Digital Link, patterns) and print them as JSON",
        description=(
            "Interpret each BARCODE as the gateway would. Escapes such as \\x1d or <GS> "
            "stand for the GS separator; a leading AIM id (]C1, ]d2, ]Q1...) selects "
            "the routing. Exit 0 when every barcode parsed without errors, 1 otherwise, "
            "2 on a config or usage error."
        ),
    )
    p.add_argument("barcodes", nargs="+", metavar="BARCODE", help="scanned text")
    p.add_argument("--json", action="store_true", help="one compact JSON object per line")
    p.add_argument("--config", metavar="FILE", help="gateway config whose patterns to use")
    p.set_defaults(func=run)


def _patterns(path: str) -> list[BarcodePattern]:
    from gateway.config import load_config  # pydantic only when needed

    return [BarcodePattern(p.kind, p.regex, p.name) for p in load_config(path).patterns]


def run(args: argparse.Namespace) -> int:
    """Print one JSON object per barcode; 0 if all are error-free, 1 if not, 2 on bad config."""
    patterns: list[BarcodePattern] = []
    if args.config:
        patterns = _patterns(args.config)
    interpreter = Interpreter(patterns)
    status = 0
    for raw in args.barcodes:
        try:
            text = unescape(raw)
        except (EscapeError, ValueError) as exc:
            print(f"traceway parse: {raw!r}: {exc}", file=sys.stderr)
            return 2
        result = interpreter.interpret(text)
        if not result.ok:
            status = 1
        obj = result.to_json()
        if args.json:
            print(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
        else:
            print(json.dumps(obj, ensure_ascii=False, indent=2))
    return status
