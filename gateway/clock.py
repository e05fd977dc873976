"""Whether the system clock is synchronized (a Raspberry Pi has no real-time clock)."""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
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


_OFFSETS: dict[int, timezone] = {}


def local_time(ts: float) -> datetime:
    """``ts`` (Unix seconds) as an aware local time, with the UTC offset in force at that
    instant (the C library's ``tm_gmtoff``: DST and zone changes included). The same as
    ``datetime.fromtimestamp(ts).astimezone()`` at half the cost: one ``localtime`` call."""
    off = time.localtime(ts).tm_gmtoff
    tz = _OFFSETS.get(off)
    if tz is None:
        tz = _OFFSETS.setdefault(off, timezone(timedelta(seconds=off)))
    return datetime.fromtimestamp(ts, tz)


class ClockStatus:
    """Whether event times can be trusted: the kernel's NTP status, and no recent step.

    The kernel status is cached for ``ttl`` seconds. A step of the wall clock against
    the monotonic clock (someone set the time, or NTP stepped it) makes the clock count
    as unsynchronized for ``step_hold`` seconds: events right around a step carry
    times that may be off, and ``clock_synced`` says so. Ordering never depends on
    the wall clock: ``seq`` orders events.
    """

    def __init__(
        self,
        ttl: float = 10.0,
        forced: bool | None = None,
        *,
        step_threshold: float = 1.0,
        step_hold: float = 60.0,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        kernel: Callable[[], int | None] = lambda: _adjtimex_state(),
    ) -> None:
        self._ttl = ttl
        self._forced = forced
        self._value = False
        self._checked = -1e18
        self._wall, self._mono, self._kernel = wall, mono, kernel
        self._offset = wall() - mono()
        self._step_threshold = step_threshold
        self._step_hold = step_hold
        self._stepped_until = -1e18
        self.steps = 0

    def _kernel_synced(self, now: float) -> bool:
        if now - self._checked >= self._ttl:
            state = self._kernel()
            if state is None or state < 0:  # unknown (adjtimex refused): ask timesyncd
                self._value = _TIMESYNCD_FLAG.exists()
            else:
                self._value = state != TIME_ERROR
            self._checked = now
        return self._value

    def synced(self) -> bool:
        """True when the kernel says the clock is synchronized and it did not just step."""
        if self._forced is not None:
            return self._forced
        now = self._mono()
        offset = self._wall() - now
        if abs(offset - self._offset) > self._step_threshold:
            self.steps += 1
            self._stepped_until = now + self._step_hold
        self._offset = offset
        if now < self._stepped_until:
            return False
        return self._kernel_synced(now)
