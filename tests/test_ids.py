"""Event ids: UUIDv7 by RFC 9562 — layout, order, no drift in a burst, clock steps."""

from __future__ import annotations

import itertools
import threading
import time
import uuid

from gateway.ids import Uuid7Source, uuid7


def ms_of(s: str) -> int:
    return uuid.UUID(s).int >> 80


def test_layout_is_rfc_9562_version_7() -> None:
    before = time.time_ns() // 1_000_000
    s = uuid7()
    after = time.time_ns() // 1_000_000
    u = uuid.UUID(s)
    assert str(u) == s and len(s) == 36  # canonical lowercase form
    assert u.version == 7 and u.variant == uuid.RFC_4122
    assert before <= ms_of(s) <= after


def test_a_burst_stays_on_the_clock_and_in_order() -> None:
    """10,000 ids at once: strictly increasing (as strings too), unique, and their
    millisecond never runs ahead of the clock (the counter takes the burst)."""
    ids = [uuid7() for _ in range(10_000)]
    now = time.time_ns() // 1_000_000
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    values = [uuid.UUID(s).int for s in ids]
    assert all(a < b for a, b in itertools.pairwise(values))
    assert max(ms_of(s) for s in ids) <= now + 1


def test_counter_overflow_borrows_the_next_millisecond_and_a_step_back_keeps_order() -> None:
    t = [5_000 * 1_000_000]
    src = Uuid7Source(clock_ns=lambda: t[0], entropy=lambda n: b"\xff" * n)
    first = src()
    assert ms_of(first) == 5_000
    more = [src() for _ in range(3_000)]  # > 2,048 left in the millisecond: borrows
    assert ms_of(more[-1]) == 5_001
    t[0] -= 3_600_000 * 1_000_000  # the wall clock steps back an hour
    later = src()
    ids = [first, *more, later]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert ms_of(later) == 5_001  # kept, not an hour earlier


def test_entropy_is_read_in_blocks_and_threads_share_one_sequence() -> None:
    reads: list[int] = []

    def entropy(n: int) -> bytes:
        reads.append(n)
        import os

        return os.urandom(n)

    src = Uuid7Source(entropy=entropy)
    out: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [src() for _ in range(2_000)]
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(set(out)) == 8_000
    assert len(reads) <= 8_000 * 10 // 4096 + 2  # 4 KiB at a time, not a call per id
