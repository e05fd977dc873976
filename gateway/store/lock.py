"""One gateway per database: an exclusive lock on ``<database>.lock`` for the process lifetime.

The lock is ``flock(2)`` on a small file beside the database that holds the owner's pid.
The kernel releases it when the process ends, however it ends (SIGKILL and power loss
included), so a stale lock file is harmless: the next ``traceway run`` simply takes it.
The file itself is never deleted (deleting it would race with a starting gateway).
Commands that only read the database do not take the lock.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from gateway.store.db import DatabaseError


class DatabaseInUse(Exception):
    """Another process holds the database's lock; the message names its pid and the file."""

    def __init__(self, db: Path, pid: int | None) -> None:
        self.db = db
        self.pid = pid
        who = f"another traceway (pid {pid})" if pid else "another traceway"
        super().__init__(f"{who} is using {shown(db)}")


def shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it, else as it is."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def lock_path(db: Path) -> Path:
    """The lock file of the database at ``db``: ``<db>.lock`` in the same folder."""
    return db.with_name(db.name + ".lock")


class InstanceLock:
    """The held lock; ``release`` (or the end of the process) gives it back."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        """Give the lock back (closing the file releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> InstanceLock:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def _holder_pid(fd: int) -> int | None:
    """The pid written by the holder; it writes it right after locking, so wait briefly."""
    for _ in range(20):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return int(text)
        time.sleep(0.01)
    return None


def acquire_instance_lock(db: Path) -> InstanceLock:
    """Take the exclusive lock of the database at ``db`` or raise ``DatabaseInUse``.

    Raises ``DatabaseError`` when the lock file cannot be created (folder missing and
    not creatable, or not writable).
    """
    path = lock_path(db)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise DatabaseError(
            f"{path}: cannot create the lock file ({exc.strerror}): check storage.path "
            "and that its folder is writable by this user"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _holder_pid(fd)
        os.close(fd)
        raise DatabaseInUse(db, pid) from None
    except OSError as exc:
        os.close(fd)
        raise DatabaseError(f"{path}: cannot lock ({exc.strerror})") from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return InstanceLock(path, fd)
