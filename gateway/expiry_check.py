"""The periodic expiry check: at start and every ``storage.expiry_check_interval`` seconds.

The stock near or past expiry is read first, on the check's own connection (a WAL
reader: the writer goes on committing scans meanwhile; counting the serials of due lots
takes ~0.4 s at 500,000 of them, a stall every scan would have waited out). Then ONE
writer task reads what was alerted today, decides
(:func:`gateway.rules.expiry.expiry_alerts`), writes the alerts to the outbox and
remembers them, all in one transaction. So an alert and the note that it was raised
commit together: a crash loses both (the next check raises it), a restart the same day
repeats nothing. The alert describes the stock as read a moment before (a unit shipped
meanwhile may still be counted in it); when the day changed in between, or the read
failed, the task reads the stock itself.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import date
from pathlib import Path
from typing import Any

from gateway.pipeline import ScanProcessor
from gateway.rules.expiry import LotStock, expiry_alerts
from gateway.store import expiry as sql
from gateway.store.hot import HotStore
from gateway.writer import Task

log = logging.getLogger(__name__)


def check_expiry(
    processor: ScanProcessor,
    store: HotStore,
    station: str,
    due: tuple[date, Sequence[LotStock]] | None = None,
) -> int:
    """Raise today's expiry alerts not raised yet (runs in the writer); how many were raised.

    ``due``: the stock near or past expiry as read on ``day`` outside the writer
    (:func:`read_due`); None, or another day than today, reads it here."""
    today = processor.today()
    stock = due[1] if due is not None and due[0] == today else sql.lots_due(store.conn, today)
    alerts = expiry_alerts(stock, today, sql.alerted(store.conn, today))
    raised = []
    for a in alerts:
        seq, _ = processor.alert(
            store,
            station=station,
            alert=a.kind,
            severity=a.severity,
            message=a.message(),
            extra={
                "stock": {
                    "gtin": a.gtin,
                    "lot": a.lot,
                    "location": a.location,
                    "quantity": a.quantity,
                    "uom": "EA",
                    "expiry": a.expiry.isoformat(),
                    "days_left": a.days_left,
                    "status": a.status,
                }
            },
        )
        raised.append((a.key, seq))
    sql.remember(store.conn, today, raised)
    return len(raised)


def read_due(db_path: Path, today: date) -> list[LotStock]:
    """The stock near or past expiry on ``today``, read on a connection of its own."""
    # mode=rw: an existing database only (a missing file is an error, not a new database)
    conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=rw", uri=True, timeout=10.0)
    try:
        conn.execute("PRAGMA query_only=ON")
        return sql.lots_due(conn, today)
    finally:
        conn.close()


class ExpiryCheck:
    """A thread that reads the due stock and hands :func:`check_expiry` to the writer, now
    and every ``interval`` s. Without ``db_path`` the writer reads the stock itself."""

    def __init__(
        self,
        interval: float,
        submit: Callable[[Task], None],
        processor: ScanProcessor,
        station: str,
        db_path: Path | None = None,
    ) -> None:
        self.interval = interval
        self.submit = submit
        self.processor = processor
        self.station = station
        self.db_path = db_path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="expiry-check", daemon=True)

    def start(self) -> None:
        """Queue the first check now (ahead of any scan), then one every ``interval``."""
        self.run_once()
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run_once(self) -> Future[Any]:
        """Read the due stock, then queue one check; the future holds the number of alerts
        raised."""
        due = self._read()
        fut: Future[Any] = Future()
        fut.add_done_callback(_report)
        self.submit(Task(lambda store: check_expiry(self.processor, store, self.station, due), fut))
        return fut

    def _read(self) -> tuple[date, list[LotStock]] | None:
        if self.db_path is None:
            return None
        today = self.processor.today()
        try:
            return today, read_due(self.db_path, today)
        except sqlite3.Error as exc:  # the writer's task reads it then
            log.warning("expiry check: reading the stock beside the writer failed: %s", exc)
            return None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()


def _report(fut: Future[Any]) -> None:
    exc = fut.exception()
    if exc is not None:
        log.error("expiry check failed: %s: %s", type(exc).__name__, exc)
    elif fut.result():
        log.info("expiry check: %d alert(s) raised", fut.result())
