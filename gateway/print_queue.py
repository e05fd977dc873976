"""Durable print queue on the ``print_jobs`` table, and one worker thread per printer.

States: queued → sending → sent → confirmed, or held (printer not ready) / failed
(data cannot be encoded). On a one-way transport (file) nothing can confirm a label:
its jobs end in ``sent``. A job found in ``sending`` after a crash becomes ``unknown``
and is resolved by asking the printer (label counter, buffer) before anything else is
sent on that printer; when the outcome cannot be known it is printed again and marked
``is_reprint``. The printer's label counter taken just before sending is kept in the
job's ``printer_counter`` column (older rows: an ``error`` note ``counter=N``).
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from drivers.printers.printer import Printer
from drivers.printers.status import PrinterStatus
from drivers.printers.templates import TemplateError, TemplateSet, fill, load_templates
from drivers.printers.transport import TransportError, backoff_delays
from drivers.scanners.types import DeviceState, DeviceStatus, StatusSink
from gateway.store.schema import outbox, print_jobs
from gs1.encode import EncodeError

log = logging.getLogger(__name__)
STATES = ("queued", "sending", "sent", "confirmed", "held", "failed", "unknown")
_COUNTER = re.compile(r"counter=(\d+)")


# ------------------------------------------------------------------ pure core


def new_job_row(
    *,
    idempotency_key: str,
    printer: str,
    template: str,
    fields: Mapping[str, str],
    event_id: str | None,
    now: float,
) -> dict[str, Any]:
    """The ``print_jobs`` row for a new job (pure)."""
    if not idempotency_key:
        raise ValueError("idempotency_key must not be empty")
    return {
        "idempotency_key": idempotency_key,
        "printer": printer,
        "template": template,
        "fields": json.dumps(dict(fields), sort_keys=True, ensure_ascii=False),
        "zpl": None,
        "state": "queued",
        "attempts": 0,
        "is_reprint": False,
        "reprint_of": None,
        "event_id": event_id,
        "created_at": now,
        "updated_at": now,
        "error": "",
    }


def counter_note(counter: int | None) -> str:
    """The ``error`` note recording the label counter before sending."""
    return "" if counter is None else f"counter={counter}"


def counter_from_note(note: str) -> int | None:
    """The label counter recorded by :func:`counter_note`, if any."""
    m = _COUNTER.search(note or "")
    return int(m.group(1)) if m else None


def resolve_outcome(*, counter_before: int | None, counter_now: int | None, idle: bool) -> str:
    """Decide what happened to a job in ``sent``/``unknown`` once the printer is idle.

    Returns ``"printed"`` (confirm), ``"not_printed"`` (send again, not a reprint) or
    ``"unknown"`` (send again, marked as a reprint). Pure.
    """
    if not idle:
        return "wait"
    if counter_before is None or counter_now is None:
        return "unknown"
    return "printed" if counter_now > counter_before else "not_printed"


# ------------------------------------------------------------------ database helpers


@contextmanager
def short_tx(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A tiny write transaction with a busy timeout (SQLite allows one writer at a time)."""
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA busy_timeout=5000")
        yield conn


def enqueue(
    conn: sa.Connection,
    *,
    idempotency_key: str,
    printer: str,
    template: str,
    fields: Mapping[str, str],
    event_id: str | None = None,
    now: float | None = None,
) -> int | None:
    """Insert a job in the caller's transaction; the same key again inserts nothing (None)."""
    row = new_job_row(
        idempotency_key=idempotency_key,
        printer=printer,
        template=template,
        fields=fields,
        event_id=event_id,
        now=time.time() if now is None else now,
    )
    stmt = (
        sqlite_insert(print_jobs)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
    )
    res = conn.execute(stmt)
    if res.rowcount == 0:
        return None
    pk = res.inserted_primary_key
    return int(pk[0]) if pk else None


class ReprintRefused(ValueError):
    """A reprint that would only fail again (the job failed on its data)."""


def reprint_row(old: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The row of a manual reprint of job ``old`` (pure); refuses a job that failed on its data.

    A job is ``failed`` only when its data could not be encoded for its template: printing
    it again would fail the same way, so the reason is given instead.
    """
    if old["state"] == "failed":
        raise ReprintRefused(
            f"job {old['id']} failed on its data ({old['error']}); not queued again — "
            f"print a corrected label with traceway print"
        )
    row = new_job_row(
        idempotency_key=f"reprint:{old['id']}:{now:.6f}",
        printer=old["printer"],
        template=old["template"],
        fields=json.loads(old["fields"]),
        event_id=old["event_id"],
        now=now,
    )
    row.update(is_reprint=True, reprint_of=old["id"])
    return row


def reprint(conn: sa.Connection, job_id: int, *, now: float | None = None) -> int:
    """Queue a manual reprint of a job (a new job marked ``is_reprint``); returns its id.

    Raises KeyError for an unknown job, ReprintRefused for a job that failed on its data.
    """
    old = conn.execute(sa.select(print_jobs).where(print_jobs.c.id == job_id)).mappings().first()
    if old is None:
        raise KeyError(f"no print job {job_id}")
    row = reprint_row(dict(old), time.time() if now is None else now)
    res = conn.execute(sa.insert(print_jobs).values(**row))
    return int(res.inserted_primary_key[0])  # type: ignore[index]


def reprint_sqlite(conn: sqlite3.Connection, job_id: int, now: float) -> int:
    """:func:`reprint` on the writer's ``sqlite3`` connection (inside its transaction)."""
    cur = conn.execute("SELECT * FROM print_jobs WHERE id = ?", (job_id,))
    names = [d[0] for d in cur.description]
    found = cur.fetchone()
    if found is None:
        raise KeyError(f"no print job {job_id}")
    row = reprint_row(dict(zip(names, found, strict=True)), now)
    cols = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    ins = conn.execute(f"INSERT INTO print_jobs({cols}) VALUES ({marks})", tuple(row.values()))
    return int(ins.lastrowid or 0)


def list_jobs(
    conn: sa.Connection, *, printer: str | None = None, state: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Newest jobs first, each with the ``seq`` of its event (None: manual, or pruned)."""
    q = (
        sa.select(print_jobs, outbox.c.seq)
        .select_from(print_jobs.outerjoin(outbox, outbox.c.event_id == print_jobs.c.event_id))
        .order_by(print_jobs.c.id.desc())
        .limit(limit)
    )
    if printer:
        q = q.where(print_jobs.c.printer == printer)
    if state:
        q = q.where(print_jobs.c.state == state)
    return [dict(r) for r in conn.execute(q).mappings()]


def queue_counts(conn: sa.Connection) -> dict[str, dict[str, int]]:
    """Jobs per printer and state."""
    q = sa.select(print_jobs.c.printer, print_jobs.c.state, sa.func.count()).group_by(
        print_jobs.c.printer, print_jobs.c.state
    )
    out: dict[str, dict[str, int]] = {}
    for printer, state, n in conn.execute(q):
        out.setdefault(printer, {})[state] = int(n)
    return out


def recover_sending(conn: sqlite3.Connection, printer: str, now: float) -> int:
    """After a crash: jobs left in ``sending`` become ``unknown``. Returns how many."""
    cur = conn.execute(
        "UPDATE print_jobs SET state = 'unknown', updated_at = ? "
        "WHERE printer = ? AND state = 'sending'",
        (now, printer),
    )
    return int(cur.rowcount)


_JOB_COLUMNS = frozenset(
    {"state", "zpl", "attempts", "is_reprint", "error", "printer_counter", "updated_at"}
)


def update_job(conn: sqlite3.Connection, job_id: int, values: Mapping[str, Any]) -> None:
    """Set columns of one job (names from a fixed set, values as parameters)."""
    bad = set(values) - _JOB_COLUMNS
    if bad:
        raise ValueError(f"not a print job column: {sorted(bad)}")
    sets = ", ".join(f"{k} = ?" for k in values)
    conn.execute(f"UPDATE print_jobs SET {sets} WHERE id = ?", (*values.values(), job_id))


#: Runs a write on the database and returns its result: the daemon hands it to its single
#: writer (``Writer.call``), so the worker never writes beside it.
WriteRunner = Callable[[Callable[[sqlite3.Connection], Any]], Any]


def own_transaction(engine: sa.Engine) -> WriteRunner:
    """A WriteRunner for use without a writer thread (tests, tools): a short transaction of
    its own, waiting up to 5 s for a concurrent writer (busy timeout)."""

    def run(fn: Callable[[sqlite3.Connection], Any]) -> Any:
        with short_tx(engine) as conn:
            raw = conn.connection.driver_connection
            assert isinstance(raw, sqlite3.Connection)
            return fn(raw)

    return run


# ------------------------------------------------------------------ the worker


class JobStoreError(RuntimeError):
    """A job's new state could not be written (storage failing or the writer stopped)."""


def describe_job(job: Mapping[str, Any]) -> str:
    """``job 7 (event 0190…, GTIN 0950… lot A1)``: which scan and item a job belongs to."""
    try:
        fields = json.loads(job.get("fields") or "{}")
    except ValueError:
        fields = {}
    item = " ".join(
        f"{label} {fields[k]}"
        for k, label in (("gtin", "GTIN"), ("sscc", "SSCC"), ("serial", "serial"), ("lot", "lot"))
        if fields.get(k)
    )
    origin = f"event {job['event_id']}" if job.get("event_id") else "manual"
    if job.get("is_reprint"):
        origin += f", reprint of job {job['reprint_of']}" if job.get("reprint_of") else ", reprint"
    return f"job {job['id']} ({origin}{', ' + item if item else ''})"


class PrintWorker:
    """Sends one printer's jobs in order, one at a time.

    Every job state change goes through ``write`` (the daemon passes its single writer's
    ``call``), so the worker never holds a write lock beside the writer; without one it
    uses short transactions of its own.
    """

    def __init__(
        self,
        printer_name: str,
        printer: Printer,
        engine: sa.Engine,
        on_status: StatusSink | None = None,
        *,
        templates: TemplateSet | None = None,
        confirm_timeout: float = 30.0,
        status_interval: float = 5.0,
        poll_interval: float = 0.2,
        clock: Callable[[], float] = time.time,
        write: WriteRunner | None = None,
    ) -> None:
        self.name, self.printer, self.engine = printer_name, printer, engine
        self._write_runner = write if write is not None else own_transaction(engine)
        self._store_failing = False
        self.on_status = on_status
        self.templates = templates if templates is not None else load_templates()
        self.confirm_timeout = confirm_timeout
        self.status_interval = status_interval
        self.poll_interval = poll_interval
        self.clock = clock
        self.counters: dict[str, int] = {}
        self.last_status: PrinterStatus | None = None
        self._last_key = ""
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = backoff_delays(0.2, 10.0)
        self._failures = 0

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the worker thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"print-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop and wait for it."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.printer.close()

    def wake(self) -> None:
        """New jobs were queued: look now instead of at the next poll."""
        self._wake.set()

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run a job-state write through the writer; raises JobStoreError if it fails."""
        try:
            res = self._write_runner(fn)
        except Exception as exc:
            raise JobStoreError(f"{type(exc).__name__}: {exc}") from exc
        if self._store_failing:
            self._store_failing = False
            log.info("printer %s: job states are recorded again", self.name)
        return res

    def _recover(self) -> int:
        name, now = self.name, self.clock()
        return int(self._write(lambda conn: recover_sending(conn, name, now)))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                n = self._recover()
                break
            except JobStoreError as exc:
                self._store_failed(exc)
        else:
            return
        if n:
            log.warning(
                "printer %s: %d job(s) were being sent at a crash; now unknown", self.name, n
            )
        while not self._stop.is_set():
            try:
                worked = self.step()
                self._failures = 0
            except JobStoreError as exc:
                self._store_failed(exc)
                continue
            except TransportError as exc:
                self._link_lost(exc)
                delay = self._backoff[min(self._failures, len(self._backoff) - 1)]
                self._failures += 1
                self._sleep(delay)
                continue
            except Exception:
                log.exception("printer %s: worker error", self.name)
                self._sleep(1.0)
                continue
            if not worked:
                self._sleep(self.poll_interval)

    def _store_failed(self, exc: JobStoreError) -> None:
        """A state change was not recorded: say so once, wait, and retry from the database."""
        if not self._store_failing:
            self._store_failing = True
            log.error("printer %s: cannot record a job state (%s); retrying", self.name, exc)
        self._sleep(1.0)

    # ------------------------------------------------------------ status
    def _publish(self, st: PrinterStatus) -> None:
        key = st.describe() if st.state != "busy" else "ready"
        self.last_status = st
        if key == self._last_key:
            return
        self._last_key = key
        self.counters[st.state] = self.counters.get(st.state, 0) + 1
        state: DeviceState = "connected" if st.ready else "error"
        if self.on_status is not None:  # the sink logs it (the daemon does)
            self.on_status(DeviceStatus(self.name, "printer", state, key, self.clock()))
        else:
            log.info("printer %s: %s", self.name, key)

    def _link_lost(self, exc: Exception) -> None:
        self.printer.close()
        key = f"disconnected: {exc}"
        if not self._last_key.startswith("disconnected"):
            self.counters["disconnected"] = self.counters.get("disconnected", 0) + 1
            if self.on_status is not None:
                self.on_status(
                    DeviceStatus(self.name, "printer", "disconnected", str(exc), self.clock())
                )
            else:
                log.warning("printer %s: %s", self.name, key)
        self._last_key = key
        # A job being written when the link broke is resolved by asking the printer.
        try:
            self._recover()
        except JobStoreError as err:
            self._store_failed(err)

    def _status(self) -> PrinterStatus:
        if not self.printer.connected:
            self.printer.connect()
        st = self.printer.status()
        self._publish(st)
        return st

    # ------------------------------------------------------------ one step
    def _set(self, job_id: int, **values: Any) -> None:
        values["updated_at"] = self.clock()
        self._write(lambda conn: update_job(conn, job_id, values))

    def _next(self, states: tuple[str, ...]) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(print_jobs)
                    .where(print_jobs.c.printer == self.name, print_jobs.c.state.in_(states))
                    .order_by(print_jobs.c.id)
                    .limit(1)
                )
                .mappings()
                .first()
            )
        return dict(row) if row else None

    def step(self) -> bool:
        """Do one unit of work; returns False when there was nothing to do."""
        # A one-way link (file) cannot confirm anything: its jobs end in ``sent``.
        to_resolve = ("sent", "unknown") if self.printer.transport.bidirectional else ("unknown",)
        pending = self._next(to_resolve)
        if pending is not None:
            return self._resolve(pending)
        job = self._next(("queued", "held"))
        if job is None:
            return False
        return self._send(job)

    def _resolve(self, job: dict[str, Any]) -> bool:
        st = self._status()
        if not st.idle:
            self._sleep(min(self.status_interval, 0.2 if st.ready else self.status_interval))
            return True
        outcome = resolve_outcome(
            counter_before=(
                job["printer_counter"]
                if job.get("printer_counter") is not None
                else counter_from_note(job["error"])
            ),
            counter_now=self.printer.label_count(),
            idle=True,
        )
        if outcome == "printed":
            self._set(job["id"], state="confirmed", error="")
        elif outcome == "not_printed":
            self._set(job["id"], state="queued", error="not printed; sending again")
        else:
            log.warning("printer %s: %s outcome unknown, reprinting", self.name, describe_job(job))
            self._set(job["id"], state="queued", is_reprint=True, error="outcome unknown; reprint")
        return True

    def _send(self, job: dict[str, Any]) -> bool:
        try:
            template = self.templates.get(job["template"], self.printer.dpi, self.printer.size)
            values = json.loads(job["fields"])
            zpl = job["zpl"] or fill(template, values)
        except (EncodeError, TemplateError, ValueError) as exc:
            self._set(job["id"], state="failed", error=str(exc))
            log.error("printer %s: %s refused: %s", self.name, describe_job(job), exc)
            return True
        st = self._status()
        if not st.ready:
            if job["state"] != "held" or job["error"] != st.describe():
                self._set(job["id"], state="held", error=st.describe(), zpl=zpl)
            self._sleep(self.status_interval)
            return True
        if not st.idle:
            self._sleep(0.05)
            return True
        counter = self.printer.label_count()
        self._set(
            job["id"],
            state="sending",
            zpl=zpl,
            attempts=job["attempts"] + 1,
            printer_counter=counter,
            error="",
        )
        self.printer.print_label(template, values)
        self._set(job["id"], state="sent")
        deadline = time.monotonic() + self.confirm_timeout
        while not self._stop.is_set() and time.monotonic() < deadline:
            st = self._status()
            if st.idle:
                break
            self._sleep(0.05 if st.ready else min(self.status_interval, 0.5))
        return True
