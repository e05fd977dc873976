"""``traceway run`` and ``traceway check-config``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.cli.exit_codes import ExitCode
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
    c = sub.add_parser(
        "check-config",
        help="validate a gateway config file (exit 2 when it is bad)",
    )
    c.add_argument("file", type=Path, help="gateway TOML file")
    c.set_defaults(func=check_config)


def run(args: argparse.Namespace) -> int:
    """Check the config and the files it names, take the database's lock, run the gateway."""
    from gateway.config_files import file_problems
    from gateway.daemon import run_gateway
    from gateway.logsetup import setup_logging
    from gateway.mqtt.tls import check_broker
    from gateway.store.lock import acquire_instance_lock

    cfg = load_config(args.config)
    check_broker(cfg.broker, str(args.config))  # before anything starts: exit 2, not a crash
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
    """Validate the config and every file it names; each problem on its own line (exit 2)."""
    from gateway.config_files import file_problems
    from gateway.mqtt.tls import check_broker

    cfg = load_config(args.file)  # a ConfigError is reported by main: exit 2, as for run
    problems = file_problems(cfg, args.file)
    for p in problems:
        print(f"config error: {p}", file=sys.stderr)
    if problems:
        return ExitCode.CONFIG
    warnings = check_broker(cfg.broker, str(args.file), strict=False)
    for w in config_warnings(args.file, cfg) + warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(
        f"{args.file}: ok — site {cfg.gateway.site}, gateway {cfg.gateway.id}, "
        f"{len(cfg.stations)} station(s), {len(cfg.scanners)} scanner(s), "
        f"{len(cfg.printers)} printer(s), {len(cfg.patterns)} pattern(s)"
    )
    return 0
