"""``migrate`` and ``check-config`` (the other sub-commands live with their domains)."""

from __future__ import annotations

import argparse
from pathlib import Path

from central.config import load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``migrate`` and ``check-config``."""
    p = sub.add_parser("migrate", help="create or upgrade the database schema")
    p.add_argument("--config", "-c", required=True, type=Path, help="central TOML file")
    p.set_defaults(func=cmd_migrate)
    c = sub.add_parser("check-config", help="validate a central config file (exit 2 when bad)")
    c.add_argument("file", type=Path, help="central TOML file")
    c.set_defaults(func=cmd_check)


def cmd_migrate(args: argparse.Namespace) -> int:
    from central.db.engine import make_engine, migrate

    cfg = load_config(args.config)
    engine = make_engine(cfg.database.resolved_url())
    try:
        migrate(engine)
    finally:
        engine.dispose()
    print("database schema is up to date")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    cfg = load_config(args.file)
    tls = "TLS" if cfg.broker.use_tls else "plaintext (local broker)"
    print(
        f"{args.file}: ok — broker {cfg.broker.host}:{cfg.broker.port} ({tls}), "
        f"API on {cfg.api.host}:{cfg.api.port}"
    )
    return 0
