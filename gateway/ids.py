"""Event ids: UUIDv7 (RFC 9562), time-ordered and unique, made cheaply.

Layout: 48-bit Unix milliseconds, version 7, a 12-bit counter (RFC 9562 §6.2, method 1:
random start each millisecond, +1 per id within it), variant ``10``, 62 random bits.
Within a process the ids increase strictly: a burst of thousands per second stays on
the clock's millisecond (the counter absorbs it) instead of running ahead of it, and a
clock stepped back keeps the last millisecond until it has caught up. The random bits
come from ``os.urandom`` read 4 KiB at a time: one system call per 512 ids, not one each.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

_COUNTER_START_MAX = 1 << 11  # a random start leaves at least 2,048 ids per millisecond
_COUNTER_MAX = (1 << 12) - 1
_POOL_BYTES = 4096


class Uuid7Source:
    """Makes UUIDv7 strings; thread-safe. ``clock_ns`` and ``entropy`` for tests."""

    def __init__(
        self,
        clock_ns: Callable[[], int] = time.time_ns,
        entropy: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._clock_ns = clock_ns
        self._entropy = entropy
        self._lock = threading.Lock()
        self._ms = -1
        self._counter = 0
        self._pool = b""
        self._pos = 0

    def _random(self, nbytes: int) -> int:
        if self._pos + nbytes > len(self._pool):
            self._pool = self._entropy(_POOL_BYTES)
            self._pos = 0
        chunk = self._pool[self._pos : self._pos + nbytes]
        self._pos += nbytes
        return int.from_bytes(chunk, "big")

    def __call__(self) -> str:
        """A new id, as the canonical 36-character lowercase string."""
        with self._lock:
            now = self._clock_ns() // 1_000_000
            if now > self._ms:
                self._ms = now
                self._counter = self._random(2) % _COUNTER_START_MAX
            elif self._counter < _COUNTER_MAX:
                self._counter += 1  # same (or an earlier) millisecond: count on
            else:
                self._ms += 1  # 4,096 in one millisecond: borrow the next one
                self._counter = self._random(2) % _COUNTER_START_MAX
            tail = self._random(8) & ((1 << 62) - 1)
            value = (
                (self._ms & 0xFFFF_FFFF_FFFF) << 80
                | 0x7 << 76
                | self._counter << 64
                | 0b10 << 62
                | tail
            )
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


#: The process's id source.
uuid7 = Uuid7Source()
