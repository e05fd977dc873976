"""``traceway-central ingest --config F [--worker NAME]``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from central.config import ConfigError, load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ingest``."""
    p = sub.add_parser("ingest", help="run an ingest worker (MQTT → PostgreSQL, ack after commit)")
    p.add_argument("--config", "-c", required=True, type=Path, help="central TOML file")
    p.add_argument(
        "--worker",
        default="1",
        help="this worker's name, stable across restarts (MQTT client id "
        "<broker.client_id>-ingest-<NAME>; each worker sharing the subscription needs its own)",
    )
    p.set_defaults(func=cmd_ingest)


def cmd_ingest(args: argparse.Namespace) -> int:
    from central.db.engine import make_engine
    from central.ingest.tls import TlsError
    from central.ingest.worker import IngestWorker, SchemaError

    cfg = load_config(args.config)
    if not args.worker.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(args.config, "--worker", "letters, digits, '-' and '_' only")
    logging.basicConfig(
        level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    engine = make_engine(cfg.database.resolved_url(), pool_size=2)
    try:
        try:
            worker = IngestWorker(cfg, engine, name=args.worker)
        except TlsError as exc:
            raise ConfigError(args.config, exc.key, str(exc)) from None
        worker.install_signal_handlers()
        try:
            return worker.run()
        except SchemaError as exc:
            print(f"database error: {exc}", file=sys.stderr)
            return 3
    finally:
        engine.dispose()
