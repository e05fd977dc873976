"""``traceway-central``: migrate, ingest, serve, import, trace, recall, hold, release, fsma204,
epcis-export, epcis-capture, user, check-config.

A config error exits 2 and a database that cannot be reached exits 3, each with one
line naming the file and key or the database.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from central import __version__

#: Modules that each provide ``register(subparsers)``; a sub-command sets ``func(args) -> int``.
COMMAND_MODULES = (
    "central.commands",
    "central.ingest.commands",
    "central.trace.cli",
    "central.api.cli",
    "central.web.cli",
    "central.fsma.cli",
    "central.epcis.cli",
)

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG, EXIT_DATABASE = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="traceway-central",
        description="traceway central: every gateway's events, trace and recall.",
    )
    parser.add_argument("--version", action="version", version=f"traceway-central {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``traceway-central`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_CONFIG
    from sqlalchemy.exc import OperationalError

    from central.config import ConfigError

    try:
        return int(func(args))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OperationalError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        print(f"database error: {first}", file=sys.stderr)
        return EXIT_DATABASE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
