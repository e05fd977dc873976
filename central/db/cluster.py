"""A private PostgreSQL cluster (initdb + pg_ctl) on a free loopback port.

Used by the tests and by the local quick start (``var/pg``). Never touches a cluster
that happens to be running. As root, the server runs as the ``postgres`` user (initdb
refuses root); the data directory is then owned by that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path


class ClusterError(RuntimeError):
    """The private cluster could not be created or started (the message says why)."""


def pg_bindir() -> Path:
    """The newest PostgreSQL server binaries on this machine (Debian layout, or PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version, reverse=True)
    if found:
        return Path(found[0]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise ClusterError("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")


def _version(path: str) -> int:
    try:
        return int(Path(path).parts[-3])
    except (ValueError, IndexError):
        return 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateCluster:
    """A cluster in ``datadir`` listening on 127.0.0.1:``port`` (trust auth, local only)."""

    def __init__(self, datadir: Path, port: int | None = None, dbname: str = "traceway") -> None:
        self.datadir = datadir.resolve()
        self.port = port or free_port()
        self.dbname = dbname
        self.bindir = pg_bindir()
        self._as: list[str] = []
        self._owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self._owner = pwd.getpwnam("postgres")
            except KeyError:
                raise ClusterError(
                    "running as root needs a 'postgres' user for the server"
                ) from None
            self._as = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{self.dbname}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [*self._as, *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise ClusterError(
                f"{Path(args[0]).name} failed: {res.stderr.strip() or res.stdout.strip()}"
            )
        return res

    def _chown(self, path: Path) -> None:
        if self._owner is not None:
            os.chown(path, self._owner.pw_uid, self._owner.pw_gid)

    def start(self) -> None:
        """initdb when the directory is new, then start and create the database."""
        if not (self.datadir / "PG_VERSION").exists():
            self.datadir.mkdir(parents=True, exist_ok=True)
            self._chown(self.datadir)
            self._run(
                str(self.bindir / "initdb"),
                "-D", str(self.datadir), "-U", "postgres", "--auth=trust",
                "--encoding=UTF8", "--locale=C.UTF-8", "-N",
            )  # fmt: skip
        sock = self.datadir  # the unix socket stays inside the data directory
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {sock} "
            "-c fsync=on -c max_connections=50 -c shared_buffers=64MB"
        )
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l",
            str(self.datadir / "server.log"), "-o", opts, "-w", "-t", "60", "start",
        )  # fmt: skip
        res = subprocess.run(
            [*self._as, str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
             "-U", "postgres", "-d", "postgres", "-tAc",
             f"SELECT 1 FROM pg_database WHERE datname = '{self.dbname}'"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if res.stdout.strip() != "1":
            self._run(
                str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                "-U", "postgres", self.dbname,
            )  # fmt: skip

    def stop(self) -> None:
        """Stop the server (fast shutdown); the data directory stays."""
        subprocess.run(
            [*self._as, str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast",
             "-w", "stop"],
            capture_output=True, timeout=120,
        )  # fmt: skip

    def restart(self) -> None:
        self.stop()
        self.start()
