"""``traceway run`` and ``traceway check-config``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.config import ConfigError, config_warnings, load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run`` and ``check-config`` sub-commands."""
    p = sub.add_parser("run", help="run the gateway")
    p.add_argument("--config", "-c", required=True, type=Path, help="gateway TOML file")
    p.add_argument(
        "--exit-after-replay",
        action="store_true",
        help="stop once every replay scanner reached the end of its file (demo)",
    )
    p.set_defaults(func=run)
    c = sub.add_parser("check-config", help="validate a gateway config file")
    c.add_argument("file", type=Path)
    c.set_defaults(func=check_config)


def run(args: argparse.Namespace) -> int:
    """Check the config and the files it names, take the database's lock, run the gateway."""
    from gateway.config_files import file_problems
    from gateway.daemon import run_gateway
    from gateway.logsetup import setup_logging
    from gateway.store.lock import acquire_instance_lock

    cfg = load_config(args.config)
    problems = file_problems(cfg, args.config, seeds=False)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more: traceway check-config lists them)"
        raise ConfigError(
            first.file, first.key, first.message + (more if len(problems) > 1 else "")
        )
    with acquire_instance_lock(cfg.storage.path):  # DatabaseInUse: exit 4, one line
        setup_logging(cfg.logging.level)
        for w in config_warnings(args.config, cfg):
            print(f"warning: {w}", file=sys.stderr)
        return run_gateway(cfg, args.config, exit_after_replay=args.exit_after_replay)


def check_config(args: argparse.Namespace) -> int:
    """Validate the config and every file it names; each problem on its own line."""
    from gateway.config_files import file_problems

    try:
        cfg = load_config(args.file)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 1
    problems = file_problems(cfg, args.file)
    for p in problems:
        print(f"config error: {p}", file=sys.stderr)
    if problems:
        return 1
    for w in config_warnings(args.file, cfg):
        print(f"warning: {w}", file=sys.stderr)
    print(
        f"{args.file}: ok — site {cfg.gateway.site}, gateway {cfg.gateway.id}, "
        f"{len(cfg.stations)} station(s), {len(cfg.scanners)} scanner(s), "
        f"{len(cfg.printers)} printer(s), {len(cfg.patterns)} pattern(s)"
    )
    return 0
