"""The exit codes of every ``traceway`` command: one table for all sub-commands.

systemd's ``RestartPreventExitStatus=2 3`` (systemd/traceway.service) relies on it: a
config or database problem is not retried, a runtime failure is.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a ``traceway`` exit status means."""

    OK = 0
    #: The command ran and failed: bad input data (rows, barcodes, events), a printer
    #: that did not take a job, a runtime failure.
    FAILURE = 1
    #: Config or usage error: a bad command line, a config file or a file it names
    #: (certificates, password file, CSVs) missing or invalid. Fix it, then run again.
    CONFIG = 2
    #: The database is unusable: corrupt, foreign, or written by a newer traceway.
    #: (A database locked by another program is FAILURE: it may pass, retry.)
    DATABASE = 3
    #: Another traceway is running on this database (systemd retries: it may stop).
    IN_USE = 4
    #: Stopped with Ctrl-C (SIGINT).
    INTERRUPTED = 130


#: The table shown by ``traceway --help`` (and in README).
EXIT_CODES: dict[ExitCode, str] = {
    ExitCode.OK: "ok",
    ExitCode.FAILURE: "the command failed (bad input data, device or runtime failure)",
    ExitCode.CONFIG: "usage or config error: a bad option, or the config file or a file it names",
    ExitCode.DATABASE: "database unusable (corrupt, foreign, newer version)",
    ExitCode.IN_USE: "another traceway is running on this database",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


def exit_code_help() -> str:
    """The table as text for an argparse epilog."""
    lines = ["exit codes:"]
    lines += [f"  {int(code):<4} {text}" for code, text in EXIT_CODES.items()]
    return "\n".join(lines)
