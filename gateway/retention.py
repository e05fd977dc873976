"""When to prune the outbox and the local history: in chunks, as often as needed.

Each prune is one writer task of at most ``PRUNE_CHUNK`` rows of each table (~30 ms
of the writer), so scans wait for no long delete. A chunk that came back full means
more old rows wait: the next one runs ``again`` seconds later instead of an
``interval`` later. So retention keeps up with any scan rate, catching up at thousands
of rows a second between scans; one prune of 20,000 rows every 10 minutes kept up with
no more than 33 events a second sustained, beyond which the outbox and the history
grew without bound.
"""

from __future__ import annotations

from concurrent.futures import Future

#: Most rows of each table one prune task deletes.
PRUNE_CHUNK = 5_000


class PruneSchedule:
    """Decides when the next prune starts (call :meth:`due` from one thread)."""

    def __init__(
        self, now: float, first: float = 60.0, interval: float = 600.0, again: float = 0.5
    ) -> None:
        self.interval = interval
        self.again = again
        self._next = now + first
        self._running: Future[bool] | None = None

    def due(self, now: float) -> bool:
        """True when a prune should start now (none is running, its time has come)."""
        fut = self._running
        if fut is not None:
            if not fut.done():
                return False
            more = fut.exception() is None and bool(fut.result())
            self._next = now + (self.again if more else self.interval)
            self._running = None
        return now >= self._next

    def started(self, fut: Future[bool]) -> None:
        """A prune was handed to the writer; its result says whether more may wait."""
        self._running = fut
