"""``traceway cache import`` — load products, lots and serials from CSV (all or nothing)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.config import load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``cache`` sub-command group."""
    p = sub.add_parser("cache", help="the local lot/serial cache")
    csub = p.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    imp = csub.add_parser(
        "import",
        help="import CSV files (columns: see README); nothing is written if any row is bad",
    )
    imp.add_argument(
        "--config", "-c", required=True, type=Path, help="gateway TOML file (its database)"
    )
    imp.add_argument(
        "--products",
        type=Path,
        help="products CSV: gtin, tracking[, description, expiry_warning_days]",
    )
    imp.add_argument(
        "--lots",
        type=Path,
        help="lots CSV: gtin, lot[, expiry, status, location, quantity]; "
        "an empty lot is stock of an untracked product",
    )
    imp.add_argument(
        "--serials", type=Path, help="serials CSV: gtin, serial[, lot, state, location]"
    )
    imp.set_defaults(func=run_import)


def run_import(args: argparse.Namespace) -> int:
    from gateway.store.cache_import import ImportError_, import_csv
    from gateway.store.db import open_database

    if not (args.products or args.lots or args.serials):
        print("nothing to import: give --products, --lots and/or --serials", file=sys.stderr)
        return 2
    cfg = load_config(args.config)
    engine = open_database(cfg.storage.path, cfg.storage.synchronous)
    try:
        counts = import_csv(engine, args.products, args.lots, args.serials)
    except ImportError_ as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        if exc.total > len(exc.problems):
            print(f"… and {exc.total - len(exc.problems)} more problem(s)", file=sys.stderr)
        print(f"import refused: {exc.total} problem(s); nothing was written", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    items = f", {counts.items} untracked stock rows" if counts.items else ""
    print(
        f"imported {counts.products} products, {counts.lots} lots, {counts.serials} serials" + items
    )
    return 0
