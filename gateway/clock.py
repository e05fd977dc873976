"""Whether the system clock is synchronized (a Raspberry Pi has no real-time clock)."""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from pathlib import Path

TIME_ERROR = 5  # adjtimex() return value when the clock is not synchronized
_TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")


def _adjtimex_state() -> int | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    buf = ctypes.create_string_buffer(512)  # struct timex, modes = 0: read only
    try:
        return int(libc.adjtimex(buf))
    except (AttributeError, OSError):
        return None


class ClockStatus:
    """Caches the kernel's view of clock synchronisation for a few seconds."""

    def __init__(self, ttl: float = 10.0, forced: bool | None = None) -> None:
        self._ttl = ttl
        self._forced = forced
        self._value = False
        self._checked = -1e18

    def synced(self) -> bool:
        """True when the kernel says the clock is synchronized (NTP/PTP/timesyncd)."""
        if self._forced is not None:
            return self._forced
        now = time.monotonic()
        if now - self._checked > self._ttl:
            state = _adjtimex_state()
            if state is None or state < 0:  # unknown (e.g. adjtimex refused): ask timesyncd
                self._value = _TIMESYNCD_FLAG.exists()
            else:
                self._value = state != TIME_ERROR
            self._checked = now
        return self._value
