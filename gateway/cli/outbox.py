"""``traceway outbox`` — depth, oldest unsent age and last seq of the outbox."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from gateway.config import load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``outbox`` sub-command."""
    p = sub.add_parser("outbox", help="show the outbox: depth, oldest unsent age, last seq")
    p.add_argument(
        "--config", "-c", required=True, type=Path, help="gateway TOML file (its database)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=run)


def outbox_stats(db: Path) -> dict[str, object]:
    """Read-only figures about the outbox of the database at ``db``."""
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        depth, oldest = conn.execute(
            "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE published_at IS NULL"
        ).fetchone()
        total, last_seq = conn.execute("SELECT COUNT(*), MAX(seq) FROM outbox").fetchone()
        by_kind = dict(
            conn.execute(
                "SELECT kind, COUNT(*) FROM outbox WHERE published_at IS NULL GROUP BY kind"
            ).fetchall()
        )
    finally:
        conn.close()
    return {
        "depth": int(depth),
        "oldest_unsent_age_s": round(time.time() - oldest, 3) if oldest else None,
        "last_seq": int(last_seq) if last_seq is not None else 0,
        "total": int(total),
        "unsent_by_kind": by_kind,
    }


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if not cfg.storage.path.exists():
        print(f"{cfg.storage.path}: no database yet (the gateway has not run)", file=sys.stderr)
        return 1
    stats = outbox_stats(cfg.storage.path)
    if args.json:
        print(json.dumps(stats))
    else:
        print(describe(stats))
    return 0


def describe(stats: dict[str, object]) -> str:
    """The one-line text of ``outbox_stats``: nothing unsent is said in words."""
    age = stats["oldest_unsent_age_s"]
    if not stats["depth"]:
        unsent = "nothing unsent"
    elif isinstance(age, float | int):
        unsent = f"{stats['depth']} unsent, the oldest {age:.1f} s old"
    else:
        unsent = f"{stats['depth']} unsent"
    return f"outbox: {unsent}; last seq {stats['last_seq']}, {stats['total']} row(s) in all"
