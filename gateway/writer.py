"""The single writer: one thread owns the SQLite connection and commits scans in groups.

Readers hand ``RawScan`` objects to ``Writer.submit()`` (a non-blocking queue put).
The writer wakes, takes every waiting item (up to ``max_group``), runs them in ONE
transaction and commits. A failing item cannot spoil the others: scans run without
savepoints first (two statements fewer per scan); when one of them raises a bug, the
transaction is rolled back and the group run again with a savepoint per item, the
failing item recorded as an internal error without being run again. Only after the
commit are the outcomes reported (operator feedback, logs, publisher wake-up), so a
scan is durable before anyone is told it was accepted.
While scans stream in, a commit waits a few milliseconds for the next one
(``commit_delay``), so two scans share an fsync. Writes that may be lost in a power
cut without harm (PUBACK marks) are *deferred*: they ride along in the next group's
transaction instead of costing one of their own, and run alone only when no group
comes within ``defer_s``.
The scan state in memory (station step, location, pending quantity, open pallet,
duplicate tracker, ``seq``) follows the database: when a group or an item is rolled
back, so is what it changed in memory.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from drivers.scanners.types import RawScan
from gateway.outcome import Outcome
from gateway.pipeline import ScanProcessor, StateMark
from gateway.rules.decide import Decision, Reason
from gateway.rules.gates import Gate
from gateway.store.hot import HotStore, connect

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Task:
    """A write that is not a scan (ack marks, cache sync, commands), run in the writer."""

    fn: Callable[[HotStore], Any]
    future: Future[Any] | None = None
    #: False for writes that may be lost in a power cut without harm (PUBACK marks: the
    #: event is sent again, and consumers deduplicate). A group made only of such tasks
    #: commits without an fsync; the next durable commit flushes it along with itself.
    durable: bool = True


@dataclass(frozen=True, slots=True)
class _Failure:
    """What raised a bug in a group's fast run: a deferred write or an item, by index."""

    where: Literal["deferred", "item"]
    index: int
    exc: Exception


_STOP = object()
_WAKE = object()  # a deferred write waits: stop blocking forever on the queue


class WriterStopped(RuntimeError):
    """A call reached the writer after it stopped (shutdown): it was not run."""


class StorageFailure(Exception):
    """The transaction could not be committed (disk full, I/O error)."""


class Writer:
    """Owns the database connection; processes scans and tasks in group commits."""

    def __init__(
        self,
        db_path: Path,
        processor: ScanProcessor,
        *,
        synchronous: str = "FULL",
        max_group: int = 256,
        max_size_mb: int = 0,
        on_committed: Callable[[list[Outcome]], None] | None = None,
        on_failed: Callable[[list[RawScan], str], None] | None = None,
        on_rows: Callable[[list[tuple[int, str, str]]], None] | None = None,
        defer_s: float = 0.2,
        commit_delay: float = 0.0,
    ) -> None:
        self.db_path = db_path
        self.processor = processor
        self.synchronous = synchronous
        self.max_size_mb = max_size_mb
        self.max_group = max_group
        self.on_committed = on_committed
        self.on_failed = on_failed
        self.on_rows = on_rows
        self._q: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._conn: sqlite3.Connection | None = None
        self.store: HotStore | None = None
        self.last_progress = time.monotonic()
        self.commits = 0
        self.scans = 0
        self.failed = False
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        #: deferred writes (see :meth:`defer`); appended from any thread, drained here
        self._deferred: deque[Callable[[HotStore], None]] = deque()
        self.defer_s = defer_s
        self.commit_delay = commit_delay
        self._last_scan_at = float("-inf")  # monotonic time of the latest scan taken

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Open the connection in the writer thread and start processing."""
        self._thread.start()
        self._started.wait(30)
        if self._start_error is not None:
            raise self._start_error

    def stop(self, timeout: float = 10.0) -> None:
        """Process everything already submitted, then stop."""
        if self._thread.is_alive():
            self._q.put(_STOP)
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, item: RawScan | Task | Gate) -> None:
        """Hand a scan or task to the writer (never blocks)."""
        self._q.put(item)

    def defer(self, fn: Callable[[HotStore], None]) -> None:
        """Run ``fn(store)`` in the next group's transaction, or alone within ``defer_s``.

        Only for idempotent writes whose loss in a power cut is harmless (a PUBACK mark:
        the event is sent again and consumers deduplicate by ``event_id``). At dock rates
        this saves a transaction per published event; a failed group keeps them for the
        next one.
        """
        idle = not self._deferred
        self._deferred.append(fn)
        if idle:
            self._q.put(_WAKE)

    def call(self, fn: Callable[[HotStore], Any], timeout: float = 30.0) -> Any:
        """Run ``fn(store)`` in the writer's transaction and wait for its result.

        Raises :class:`WriterStopped` as soon as the writer thread has ended (nothing would
        ever run ``fn``), ``TimeoutError`` after ``timeout``.
        """
        fut: Future[Any] = Future()
        self._q.put(Task(fn, fut))
        deadline = time.monotonic() + timeout
        while True:
            try:
                return fut.result(max(0.0, min(0.5, deadline - time.monotonic())))
            except FutureTimeout:
                if self._thread.ident is not None and not self._thread.is_alive():
                    if fut.done():
                        return fut.result()
                    raise WriterStopped("the writer has stopped; nothing was run") from None
                if time.monotonic() >= deadline:
                    raise

    def backlog(self) -> int:
        return self._q.qsize()

    # -- the thread -----------------------------------------------------------------------
    def _open(self) -> None:
        self._conn = connect(
            self.db_path, self.synchronous, autocheckpoint=False, max_size_mb=self.max_size_mb
        )
        self.store = HotStore(self._conn)
        self.processor.seq = int(self.store.get_meta("last_seq", "0") or 0)

    def _run(self) -> None:
        try:
            self._open()
        except BaseException as exc:  # reported to start()
            self._start_error = exc
            self._started.set()
            return
        self._started.set()
        stopping = False
        while not stopping:
            try:
                first = self._q.get(timeout=self.defer_s if self._deferred else None)
            except queue.Empty:
                self._commit_group([])  # deferred writes alone (no fsync)
                continue
            if first is _WAKE:
                continue  # wait again, now at most defer_s
            batch: list[object] = [first]
            while len(batch) < self.max_group:
                try:
                    batch.append(self._q.get_nowait())
                except queue.Empty:
                    break
            self._linger(batch)
            items = [b for b in batch if b is not _STOP and b is not _WAKE]
            stopping = any(b is _STOP for b in batch)
            if items or self._deferred:
                self._commit_group(items)
            self.last_progress = time.monotonic()
        if self._deferred:
            self._commit_group([])
        assert self._conn is not None
        self._conn.close()

    def _linger(self, batch: list[object]) -> None:
        """Commit delay (as PostgreSQL's ``commit_delay``): while scans stream in — the
        previous one came at most ``commit_delay`` ago — wait for the next one to share
        this commit, up to ``commit_delay`` and 1.5 gaps. A lone scan (a handheld, a quiet
        dock) commits at once; durability is unchanged, only the fsync is shared."""
        if self.commit_delay <= 0:
            return
        scans = [b.monotonic for b in batch if isinstance(b, RawScan)]
        if not scans:
            return
        gap = scans[0] - self._last_scan_at
        self._last_scan_at = scans[-1]
        if len(scans) > 1 or not 0 <= gap <= self.commit_delay:
            return  # shared already, or no stream
        if len(batch) >= self.max_group or _STOP in batch:
            return
        deadline = time.monotonic() + min(self.commit_delay, 1.5 * gap)
        while len(batch) < self.max_group:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                item = self._q.get(timeout=left)
            except queue.Empty:
                return
            batch.append(item)
            if item is _STOP:
                return
            if isinstance(item, RawScan):
                self._last_scan_at = item.monotonic
                break  # one more shares the fsync: enough, do not stretch the wait
        while len(batch) < self.max_group and batch[-1] is not _STOP:
            try:
                batch.append(self._q.get_nowait())
            except queue.Empty:
                return

    def _commit_group(self, items: list[object]) -> None:
        """Run every item in one transaction (each in a savepoint) and commit once;
        the deferred writes waiting now go first, in the same transaction."""
        store = self.store
        assert store is not None
        depth_before = store.depth
        mark = self.processor.begin()  # in-memory state changes only with the commit
        store.fresh = []
        outcomes: list[Outcome] = []
        results: list[tuple[Future[Any], Any, BaseException | None]] = []
        deferred = [self._deferred.popleft() for _ in range(len(self._deferred))]
        relaxed = self.synchronous != "OFF" and all(
            isinstance(i, Task) and not i.durable for i in items
        )
        try:
            if relaxed:
                store.conn.execute("PRAGMA synchronous=NORMAL")
            store.begin()
            # A task may have effects outside the database and must not run twice: a
            # group with one runs carefully from the start.
            careful = any(isinstance(i, Task) for i in items)
            failed = None if careful else self._run_fast(deferred, items, store, outcomes)
            if failed is not None:  # a bug: start again, each item in a savepoint
                store.rollback()
                self.processor.rollback_to(mark)
                store.depth, store.fresh = depth_before, []
                outcomes.clear()
                store.begin()
            if careful or failed is not None:
                self._run_careful(deferred, items, store, outcomes, results, failed)
            if self.processor.seq != mark.seq:
                store.set_meta("last_seq", str(self.processor.seq))
            store.commit()
        except sqlite3.Error as exc:
            store.depth = depth_before
            self._deferred.extendleft(reversed(deferred))  # idempotent: the next group
            self._fail(store, mark, items, exc)
            return
        finally:
            self.processor.settle()
            if relaxed:
                with contextlib.suppress(sqlite3.Error):
                    store.conn.execute(f"PRAGMA synchronous={self.synchronous}")
        self.commits += 1
        self.scans += sum(len(_scans_of(i)) for i in items)
        if self.on_rows is not None and store.fresh:
            self.on_rows(store.fresh)  # committed rows, in seq order, for the publisher
        self.failed = False
        for fut, res, err in results:
            if err is not None:
                fut.set_exception(err)
            else:
                fut.set_result(res)
        if self.on_committed is not None and outcomes:
            try:
                self.on_committed(outcomes)
            except Exception:
                log.exception("on_committed callback failed")

    def _run_fast(
        self,
        deferred: list[Callable[[HotStore], None]],
        items: list[object],
        store: HotStore,
        outcomes: list[Outcome],
    ) -> _Failure | None:
        """Deferred writes and scans without savepoints: None when all went through, else
        which one raised a bug (database errors propagate: the group fails as a whole)."""
        where: Literal["deferred", "item"] = "deferred"
        at = 0  # the one running now
        try:
            for fn in deferred:
                fn(store)
                at += 1
            where, at = "item", 0
            for item in items:
                if isinstance(item, Gate):
                    outcomes.extend(self.processor.process_gate(item, store))
                else:
                    assert isinstance(item, RawScan)
                    outcomes.append(self.processor.process(item, store))
                at += 1
        except sqlite3.OperationalError:
            raise
        except Exception as exc:
            return _Failure(where, at, exc)
        return None

    def _run_careful(
        self,
        deferred: list[Callable[[HotStore], None]],
        items: list[object],
        store: HotStore,
        outcomes: list[Outcome],
        results: list[tuple[Future[Any], Any, BaseException | None]],
        failed: _Failure | None,
    ) -> None:
        """Every deferred write and item in its own savepoint. The one that failed the fast
        run is not run again: the same bug would come back (or, worse, not)."""
        for i, fn in enumerate(deferred):
            if failed is not None and failed.where == "deferred" and i == failed.index:
                log.error("a deferred write failed", exc_info=failed.exc)
                continue
            self._run_deferred_one(fn, store)
        for i, item in enumerate(items):
            if failed is not None and failed.where == "item" and i == failed.index:
                self._record_bug(item, store, outcomes, failed.exc)
                continue
            self._run_item(item, store, outcomes, results)

    def _run_deferred_one(self, fn: Callable[[HotStore], None], store: HotStore) -> None:
        """A deferred write in a savepoint; a bug in it drops just that one."""
        depth = store.depth
        store.savepoint()
        try:
            fn(store)
        except sqlite3.OperationalError:
            raise  # disk full, I/O error: the group fails as a whole
        except Exception:
            log.exception("a deferred write failed")
            store.rollback_savepoint()
            store.savepoint()
            store.depth = depth
        store.release()

    def _record_bug(
        self, item: object, store: HotStore, outcomes: list[Outcome], exc: Exception
    ) -> None:
        """A scan that raised a bug: logged, and recorded as an internal error."""
        log.error("processing a scan failed", exc_info=exc)
        first = next(iter(_scans_of(item)), None)
        if first is not None:
            outcomes.append(self._internal_error(first, store, exc))

    def _run_item(
        self,
        item: object,
        store: HotStore,
        outcomes: list[Outcome],
        results: list[tuple[Future[Any], Any, BaseException | None]],
    ) -> None:
        """One item in its own savepoint. Database errors abort the whole group; any
        other error (a bug) rolls back just this item, which is still recorded."""
        mark, depth_item, fresh_item = self.processor.mark(), store.depth, len(store.fresh)
        store.savepoint()
        try:
            if isinstance(item, Gate):
                outcomes.extend(self.processor.process_gate(item, store))
            elif isinstance(item, RawScan):
                outcomes.append(self.processor.process(item, store))
            elif isinstance(item, Task):
                res = item.fn(store)
                if item.future is not None:
                    results.append((item.future, res, None))
        except sqlite3.OperationalError:
            raise  # disk full, I/O error: the group fails as a whole
        except Exception as exc:
            store.rollback_savepoint()
            store.savepoint()
            self.processor.rollback_to(mark)  # station state, duplicates, seq: as before
            store.depth = depth_item
            del store.fresh[fresh_item:]
            if isinstance(item, Task):
                if item.future is not None:
                    results.append((item.future, None, exc))
            else:
                self._record_bug(item, store, outcomes, exc)
        store.release()

    def _fail(
        self,
        store: HotStore,
        mark: StateMark,
        items: list[object],
        exc: sqlite3.Error,
    ) -> None:
        """Roll back (database and in-memory state); fail the tasks' futures; report every
        scan of the group as lost. The operator scans them again: the duplicate tracker,
        a pending quantity, a pallet opened in the group are as they were before it."""
        scans = [s for item in items for s in _scans_of(item)]
        try:
            store.rollback()
        except sqlite3.Error:
            log.exception("rollback failed")
        self.processor.rollback_to(mark)
        if not self.failed and scans:
            log.error("storage failure, %d scan(s) not recorded: %s", len(scans), exc)
        elif not self.failed:
            log.error("storage failure (no scan in this transaction): %s", exc)
        self.failed = True
        err = StorageFailure(str(exc))
        for item in items:
            if isinstance(item, Task) and item.future is not None and not item.future.done():
                item.future.set_exception(err)
        if self.on_failed is not None and scans:
            try:
                self.on_failed(scans, str(exc))
            except Exception:
                log.exception("on_failed callback failed")

    def _internal_error(self, scan: RawScan, store: HotStore, exc: Exception) -> Outcome:
        d = Decision("reject", (Reason("internal_error", f"{type(exc).__name__}: {exc}"),), None)
        station = self.processor.station_of(scan)
        return self.processor.reject(
            store, scan, station, d, severity="critical", summary="internal error"
        )


def _scans_of(item: object) -> tuple[RawScan, ...]:
    """The scans a queue item carries (none for a task)."""
    if isinstance(item, RawScan):
        return (item,)
    if isinstance(item, Gate):
        return item.codes or item.no_reads
    return ()
