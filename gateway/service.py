"""systemd integration: ``sd_notify`` over ``NOTIFY_SOCKET`` and a health-gated watchdog.

Only the standard library is used. Outside systemd (no ``NOTIFY_SOCKET``) every
call is a cheap no-op that returns False, so the daemon can call these freely.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

log = logging.getLogger(__name__)

#: Longest STATUS= text sent; systemd shows one line, keep it short.
MAX_STATUS = 200


def _address() -> str | None:
    """The notify socket address from the environment ('@' means abstract namespace)."""
    addr = os.environ.get("NOTIFY_SOCKET", "")
    if not addr:
        return None
    if addr[0] == "@":
        return "\0" + addr[1:]
    if addr[0] != "/":
        return None  # e.g. vsock: addresses; not used on a Pi
    return addr


def notify(msg: str) -> bool:
    """Send one sd_notify message (e.g. ``"READY=1"``); True if it was sent."""
    addr = _address()
    if addr is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(addr)
            sock.sendall(msg.encode("utf-8"))
    except OSError as exc:
        log.debug("sd_notify %r failed: %s", msg.split("=", 1)[0], exc)
        return False
    return True


def ready(status_text: str = "") -> bool:
    """Tell systemd that start-up is complete (``Type=notify``)."""
    msg = "READY=1"
    if status_text:
        msg += "\nSTATUS=" + _one_line(status_text)
    return notify(msg)


def stopping(status_text: str = "") -> bool:
    """Tell systemd that a graceful stop has begun."""
    msg = "STOPPING=1"
    if status_text:
        msg += "\nSTATUS=" + _one_line(status_text)
    return notify(msg)


def status(text: str) -> bool:
    """Set the one-line status shown by ``systemctl status``."""
    return notify("STATUS=" + _one_line(text))


def extend_timeout(seconds: float) -> bool:
    """Ask for more start/stop time (e.g. during a long database migration)."""
    return notify(f"EXTEND_TIMEOUT_USEC={max(1, int(seconds * 1_000_000))}")


def watchdog_interval() -> float | None:
    """The watchdog interval in seconds if systemd expects pings from this process, else None."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    try:
        value = int(usec)
    except ValueError:
        return None
    if value <= 0:
        return None
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return value / 1_000_000


def _one_line(text: str) -> str:
    return " ".join(text.split())[:MAX_STATUS]


class Watchdog:
    """Pings ``WATCHDOG=1`` every half interval, but only while ``healthy()`` returns True.

    When the pipeline stalls, pings stop and systemd restarts the service after
    ``WatchdogSec``. Without a watchdog interval (not under systemd, or no
    ``WatchdogSec=``), ``start()`` does nothing.
    """

    def __init__(
        self,
        healthy: Callable[[], bool],
        interval: float | None = None,
        *,
        send: Callable[[str], bool] = notify,
    ) -> None:
        self._healthy = healthy
        self.interval = watchdog_interval() if interval is None else interval
        self._send = send
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._was_healthy = True
        self.pings = 0
        self.last_ping: float | None = None

    @property
    def enabled(self) -> bool:
        """True when systemd expects pings."""
        return self.interval is not None and self.interval > 0

    def start(self) -> None:
        """Start the ping thread (no-op without a watchdog interval or when running)."""
        if not self.enabled or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sd-watchdog", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop pinging and join the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def check_once(self) -> bool:
        """Run one health check; ping if healthy. Returns whether a ping was sent."""
        try:
            ok = bool(self._healthy())
        except Exception:
            log.exception("watchdog health check raised; treating as unhealthy")
            ok = False
        if not ok:
            if self._was_healthy:
                log.warning("pipeline unhealthy: withholding watchdog pings")
                self._send("STATUS=unhealthy: watchdog pings withheld")
            self._was_healthy = False
            return False
        if not self._was_healthy:
            log.info("pipeline healthy again: resuming watchdog pings")
            self._was_healthy = True
        sent = self._send("WATCHDOG=1")
        if sent:
            self.pings += 1
            self.last_ping = time.monotonic()
        return sent

    def _run(self) -> None:
        assert self.interval is not None
        period = self.interval / 2
        while True:
            self.check_once()
            if self._stop.wait(period):
                return

    def __enter__(self) -> Watchdog:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
