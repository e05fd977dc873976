"""Central service subprocesses for end-to-end tests and benches: start one, stop many."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]


def start_central(
    command: str, cfg: Path, log: Path, *args: str
) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    """``python -m central COMMAND --config CFG ARGS…`` with its output in ``log``; the
    caller closes the returned log file after stopping the process."""
    out = open(log, "wb")  # noqa: SIM115 - closed by the caller, after the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "central", command, "--config", str(cfg), *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return proc, out


def stop_all(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    """SIGTERM every process, then wait for each (killed after ``timeout``)."""
    procs = list(procs)
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
