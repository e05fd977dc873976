"""The ``traceway`` command line. One module per sub-command in this package.

A config error (exit 2), an unusable database (exit 3) or a database another gateway
is using (exit 4) raised by any sub-command is reported here, once, in one line with
the file and what is wrong; so is an SQLite error from a command reading the database.
The exit codes are one table for every command: :mod:`gateway.cli.exit_codes`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway import __version__
from gateway.cli.exit_codes import ExitCode, exit_code_help

#: Modules that each provide ``register(subparsers)``; a sub-command sets ``func(args) -> int``.
COMMAND_MODULES = (
    "gateway.cli.run",
    "gateway.cli.parse",
    "gateway.cli.cache",
    "gateway.cli.outbox",
    "gateway.cli.stock",
    "gateway.cli.devices",
    "gateway.cli.printing",
    "gateway.cli.epcis",
    "gateway.cli.tail",
    "gateway.cli.phone",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="traceway",
        description="Edge gateway for warehouse traceability.",
        epilog=exit_code_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"traceway {__version__}",
        help="print the version and exit",
    )
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
    """Entry point of the ``traceway`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return ExitCode.CONFIG
    from gateway.config import ConfigError
    from gateway.mqtt.tls import TlsError
    from gateway.store.db import DatabaseError, explain_database_error
    from gateway.store.lock import DatabaseInUse

    try:
        return int(func(args))
    except (ConfigError, TlsError) as exc:  # names the file and the key
        print(f"config error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    except DatabaseError as exc:  # names the file and what to do
        print(f"database error: {exc}", file=sys.stderr)
        return _database_exit(exc)
    except DatabaseInUse as exc:  # "another traceway (pid N) is using var/x.db"
        print(exc, file=sys.stderr)
        return ExitCode.IN_USE
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return ExitCode.OK
    except Exception as exc:
        # SQLite refusing a command's read (corrupt, foreign, locked): one line naming the file
        db_error = explain_database_error(exc, _database_path(args))
        if db_error is not None:
            print(f"database error: {db_error}", file=sys.stderr)
            return _database_exit(db_error)
        if isinstance(exc, OSError) and exc.filename is not None:
            print(f"error: {exc.filename}: {exc.strerror}", file=sys.stderr)
            return ExitCode.FAILURE
        raise


def _database_exit(exc: Exception) -> int:
    """3 for a database a human must deal with; 1 for a locked one (it may pass: retry)."""
    from gateway.store.db import DatabaseBusy

    return ExitCode.FAILURE if isinstance(exc, DatabaseBusy) else ExitCode.DATABASE


def _database_path(args: argparse.Namespace) -> Path | None:
    """The database of the command's ``--config``, if it has one and it loads."""
    from gateway.config import ConfigError, load_config

    config = getattr(args, "config", None)
    if config is None:
        return None
    try:
        return load_config(config).storage.path
    except ConfigError:
        return None


if __name__ == "__main__":
    sys.exit(main())
