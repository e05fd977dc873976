"""The periodic expiry check: at start and every ``storage.expiry_check_interval`` seconds.

Each check is ONE writer task: read the lots in stock near or past expiry and what was
alerted today, decide (:func:`gateway.rules.expiry.expiry_alerts`), write the alerts to
the outbox and remember them, all in one transaction. So an alert and the note that it
was raised commit together: a crash loses both (the next check raises it), a restart the
same day repeats nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from gateway.pipeline import ScanProcessor
from gateway.rules.expiry import expiry_alerts
from gateway.store import expiry as sql
from gateway.store.hot import HotStore
from gateway.writer import Task

log = logging.getLogger(__name__)


def check_expiry(processor: ScanProcessor, store: HotStore, station: str) -> int:
    """Raise today's expiry alerts not raised yet (runs in the writer); how many were raised."""
    today = processor.today()
    alerts = expiry_alerts(sql.lots_due(store.conn, today), today, sql.alerted(store.conn, today))
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


class ExpiryCheck:
    """A thread that hands :func:`check_expiry` to the writer now and every ``interval`` s."""

    def __init__(
        self,
        interval: float,
        submit: Callable[[Task], None],
        processor: ScanProcessor,
        station: str,
    ) -> None:
        self.interval = interval
        self.submit = submit
        self.processor = processor
        self.station = station
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
        """Queue one check; the future holds the number of alerts raised."""
        fut: Future[Any] = Future()
        fut.add_done_callback(_report)
        self.submit(Task(lambda store: check_expiry(self.processor, store, self.station), fut))
        return fut

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()


def _report(fut: Future[Any]) -> None:
    exc = fut.exception()
    if exc is not None:
        log.error("expiry check failed: %s: %s", type(exc).__name__, exc)
    elif fut.result():
        log.info("expiry check: %d alert(s) raised", fut.result())
