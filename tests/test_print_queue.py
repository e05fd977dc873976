"""Durable print queue: idempotent enqueue, states, faults over 200 jobs, crashes between states."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from drivers.printers.fake_zebra import FakeZebra
from drivers.printers.printer import Printer
from drivers.printers.transport_tcp import TcpTransport
from drivers.scanners.types import DeviceStatus
from gateway import print_queue as pq
from gateway.store.schema import metadata, print_jobs

ROOT = Path(__file__).resolve().parents[1]


def make_engine(path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    metadata.create_all(engine)
    return engine


def fields(i: int) -> dict[str, str]:
    return {"gtin": "09501101530003", "lot": f"L{i:05d}", "expiry": "2027-01-31"}


def states(engine: sa.Engine) -> Counter[str]:
    with engine.connect() as conn:
        return Counter(r[0] for r in conn.execute(sa.select(print_jobs.c.state)))


def wait_for(cond, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def printed_lots(fake: FakeZebra) -> Counter[str]:
    import re

    with fake.lock:
        labels = list(fake.state.printed)
    return Counter(m.group(1) for x in labels for m in [re.search(r"LOT (L\d{5})", x)] if m)


def test_new_job_row_is_pure() -> None:
    row = pq.new_job_row(
        idempotency_key="k",
        printer="p",
        template="lot",
        fields={"b": "2", "a": "1"},
        event_id=None,
        now=5.0,
    )
    assert row["state"] == "queued" and row["created_at"] == 5.0
    assert json.loads(row["fields"]) == {"a": "1", "b": "2"}
    with pytest.raises(ValueError):
        pq.new_job_row(
            idempotency_key="", printer="p", template="t", fields={}, event_id=None, now=0
        )


def test_enqueue_is_idempotent_and_joins_caller_transaction(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "db.sqlite")
    with engine.begin() as conn:
        a = pq.enqueue(
            conn, idempotency_key="scan-1", printer="p", template="lot", fields=fields(1)
        )
        b = pq.enqueue(
            conn, idempotency_key="scan-1", printer="p", template="lot", fields=fields(1)
        )
    assert a is not None and b is None
    try:
        with engine.begin() as conn:
            pq.enqueue(
                conn, idempotency_key="scan-2", printer="p", template="lot", fields=fields(2)
            )
            raise RuntimeError("the scan transaction fails")
    except RuntimeError:
        pass
    assert sum(states(engine).values()) == 1  # rolled back with the caller's transaction
    with engine.begin() as conn:
        r = pq.reprint(conn, a)
        jobs = pq.list_jobs(conn)
    assert jobs[0]["id"] == r and jobs[0]["is_reprint"] and jobs[0]["reprint_of"] == a


def test_resolve_outcome_table() -> None:
    assert pq.resolve_outcome(counter_before=5, counter_now=6, idle=True) == "printed"
    assert pq.resolve_outcome(counter_before=5, counter_now=5, idle=True) == "not_printed"
    assert pq.resolve_outcome(counter_before=None, counter_now=5, idle=True) == "unknown"
    assert pq.resolve_outcome(counter_before=5, counter_now=None, idle=True) == "unknown"
    assert pq.resolve_outcome(counter_before=5, counter_now=6, idle=False) == "wait"
    assert pq.counter_from_note(pq.counter_note(42)) == 42


def _worker(fake: FakeZebra, engine: sa.Engine, events: list[DeviceStatus]) -> pq.PrintWorker:
    printer = Printer(TcpTransport("127.0.0.1", fake.port, timeout=1.0), timeout=0.3)
    return pq.PrintWorker(
        "dock1",
        printer,
        engine,
        events.append,
        confirm_timeout=5.0,
        status_interval=0.05,
        poll_interval=0.02,
    )


def test_bad_data_fails_and_is_never_printed(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "db.sqlite")
    with engine.begin() as conn:
        pq.enqueue(
            conn,
            idempotency_key="bad",
            printer="dock1",
            template="lot",
            fields={"gtin": "09501101530004", "lot": "A", "expiry": "270101"},
        )
    events: list[DeviceStatus] = []
    with FakeZebra() as fake:
        w = _worker(fake, engine, events)
        w.start()
        try:
            assert wait_for(lambda: states(engine)["failed"] == 1, 10)
        finally:
            w.stop()
        assert fake.state.printed == []
    with engine.connect() as conn:
        assert "check digit" in pq.list_jobs(conn)[0]["error"]


def test_paper_out_holds_the_queue_and_it_resumes_by_itself(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "db.sqlite")
    events: list[DeviceStatus] = []
    with FakeZebra() as fake:
        fake.faults.paper_out = True
        w = _worker(fake, engine, events)
        w.start()
        try:
            with engine.begin() as conn:
                pq.enqueue(
                    conn, idempotency_key="a", printer="dock1", template="lot", fields=fields(1)
                )
            assert wait_for(lambda: states(engine)["held"] == 1, 10)
            with engine.connect() as conn:
                assert pq.list_jobs(conn)[0]["error"] == "held: paper out"
            assert fake.state.received == []
            fake.faults.paper_out = False
            assert wait_for(lambda: states(engine)["confirmed"] == 1, 10)
        finally:
            w.stop()
        assert len(fake.state.printed) == 1
    assert [e.state for e in events][:2] == ["error", "connected"]
    assert w.counters["held"] == 1


@pytest.mark.slow
def test_200_jobs_with_printer_faults_print_exactly_once(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "db.sqlite")
    n = 200
    with engine.begin() as conn:
        for i in range(n):
            pq.enqueue(
                conn, idempotency_key=f"k{i}", printer="dock1", template="lot", fields=fields(i)
            )
    events: list[DeviceStatus] = []
    with FakeZebra(print_time=0.001) as fake:
        w = _worker(fake, engine, events)
        w.start()
        try:

            def printed() -> int:
                return len(fake.state.printed)

            assert wait_for(lambda: printed() >= 20)
            fake.faults.paper_out = True  # silent to ~HS: queue must hold, not go offline
            assert wait_for(lambda: any("paper out" in e.detail for e in events), 10)
            held_at = printed()
            time.sleep(0.3)
            assert printed() == held_at
            fake.faults.paper_out = False  # resumes by itself
            assert wait_for(lambda: printed() >= held_at + 20)
            fake.faults.head_open = True
            assert wait_for(lambda: any("head open" in e.detail for e in events), 10)
            fake.faults.head_open = False
            fake.faults.paused = True
            time.sleep(0.2)
            fake.faults.paused = False
            fake.faults.reset_next_format = True  # connection reset mid-job
            assert wait_for(lambda: not fake.faults.reset_next_format, 10)
            fake.faults.reset_after_print = True  # printed, then the link drops before confirm
            assert wait_for(lambda: not fake.faults.reset_after_print, 10)
            fake.faults.split_replies = True
            split_at = printed()
            assert wait_for(lambda: printed() >= split_at + 30, 60)
            fake.faults.split_replies = False
            fake.power_cycle()  # stored formats lost: must be downloaded again
            assert wait_for(lambda: states(engine)["confirmed"] == n, 60), states(engine)
        finally:
            w.stop()
        lots = printed_lots(fake)
        assert fake.state.missing_formats == 0
    with engine.connect() as conn:
        reprinted = {
            json.loads(j["fields"])["lot"] for j in pq.list_jobs(conn, limit=n) if j["is_reprint"]
        }
    assert set(lots) == {f"L{i:05d}" for i in range(n)}, "a job was lost"
    dupes = {lot for lot, c in lots.items() if c > 1}
    assert dupes <= reprinted, f"printed twice without a reprint mark: {dupes - reprinted}"
    kinds = {e.state for e in events}
    assert {"error", "connected", "disconnected"} <= kinds
    assert any("paper out" in e.detail for e in events)


CHILD = """
import sys, sqlalchemy as sa
from drivers.printers.printer import Printer
from drivers.printers.transport_tcp import TcpTransport
from gateway import print_queue as pq
engine = sa.create_engine("sqlite:///" + sys.argv[1])
w = pq.PrintWorker("dock1", Printer(TcpTransport("127.0.0.1", int(sys.argv[2]), timeout=1), timeout=0.3),
                   engine, None, confirm_timeout=5, status_interval=0.05, poll_interval=0.02)
w.start()
import time
while True:
    time.sleep(1)
"""


@pytest.mark.slow
def test_killing_the_worker_between_states_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    engine = make_engine(db)
    n = 60
    with engine.begin() as conn:
        for i in range(n):
            pq.enqueue(
                conn, idempotency_key=f"k{i}", printer="dock1", template="lot", fields=fields(i)
            )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with FakeZebra(print_time=0.002) as fake:
        kills = 0
        deadline = time.monotonic() + 120
        while states(engine)["confirmed"] < n and time.monotonic() < deadline:
            proc = subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(fake.port)], env=env)
            time.sleep(0.4 + 0.37 * (kills % 5))  # kill at varying points
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            kills += 1
        assert states(engine)["confirmed"] == n, states(engine)
        lots = printed_lots(fake)
    with engine.connect() as conn:
        reprinted = {
            json.loads(j["fields"])["lot"] for j in pq.list_jobs(conn, limit=n) if j["is_reprint"]
        }
    assert kills >= 2
    assert set(lots) == {f"L{i:05d}" for i in range(n)}
    assert {lot for lot, c in lots.items() if c > 1} <= reprinted


def test_job_states_go_through_the_single_writer(tmp_path: Path) -> None:
    """The worker's engine can only read: every state change must reach the database
    through the writer's connection (one writer, so no ``database is locked``)."""
    from gateway.pipeline import ScanProcessor
    from gateway.store.db import open_database
    from gateway.writer import Writer
    from tests.test_pipeline import make_cfg

    cfg = make_cfg(tmp_path)
    open_database(cfg.storage.path).dispose()
    writer = Writer(cfg.storage.path, ScanProcessor(cfg, lambda: False))
    writer.start()
    read_only = sa.create_engine(f"sqlite:///file:{cfg.storage.path}?mode=ro&uri=true")
    n = 20
    calls: list[int] = []

    def through_writer(fn):  # type: ignore[no-untyped-def]
        calls.append(1)
        return writer.call(lambda store: fn(store.conn))

    writer.call(
        lambda store: [
            store.insert_print_job(
                pq.new_job_row(
                    idempotency_key=f"k{i}",
                    printer="dock1",
                    template="lot",
                    fields=fields(i) if i != 3 else {**fields(i), "gtin": "09501101530004"},
                    event_id=f"event-{i}",
                    now=1.0,
                )
            )
            for i in range(n)
        ]
    )
    with FakeZebra(print_time=0.001) as fake:
        printer = Printer(TcpTransport("127.0.0.1", fake.port, timeout=1.0), timeout=0.3)
        w = pq.PrintWorker(
            "dock1",
            printer,
            read_only,
            None,
            confirm_timeout=5.0,
            status_interval=0.05,
            poll_interval=0.02,
            write=through_writer,
        )
        w.start()
        try:
            assert wait_for(lambda: states(read_only)["confirmed"] == n - 1, 30), states(read_only)
        finally:
            w.stop()
            writer.stop()
    assert states(read_only) == Counter({"confirmed": n - 1, "failed": 1})
    assert len(calls) >= 3 * (n - 1)  # sending, sent, confirmed per job


def test_a_failing_store_is_reported_once_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(tmp_path / "db.sqlite")
    with engine.begin() as conn:
        pq.enqueue(conn, idempotency_key="a", printer="dock1", template="lot", fields=fields(1))
    failures = [3]
    run = pq.own_transaction(engine)

    def flaky(fn):  # type: ignore[no-untyped-def]
        if failures[0] > 0:
            failures[0] -= 1
            raise RuntimeError("database or disk is full")
        return run(fn)

    with FakeZebra() as fake:
        printer = Printer(TcpTransport("127.0.0.1", fake.port, timeout=1.0), timeout=0.3)
        w = pq.PrintWorker("dock1", printer, engine, None, poll_interval=0.02, write=flaky)
        w._sleep = lambda s: None  # type: ignore[method-assign]
        with caplog.at_level("INFO", logger="gateway.print_queue"):
            w.start()
            try:
                assert wait_for(lambda: states(engine)["confirmed"] == 1, 20)
            finally:
                w.stop()
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("cannot record a job state" in m for m in msgs) == 1
    assert sum("recorded again" in m for m in msgs) == 1
    assert not any(r.exc_info for r in caplog.records)  # one line, no traceback


def test_refused_job_log_names_its_event_and_item(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(tmp_path / "db.sqlite")
    with engine.begin() as conn:
        pq.enqueue(
            conn,
            idempotency_key="bad",
            printer="dock1",
            template="lot",
            fields={"gtin": "09501101530003", "lot": "A1", "expiry": "2031-02-30"},
            event_id="0190aaaa-0000-7000-8000-000000000001",
        )
    with FakeZebra() as fake, caplog.at_level("INFO", logger="gateway.print_queue"):
        w = _worker(fake, engine, [])
        w.start()
        try:
            assert wait_for(lambda: states(engine)["failed"] == 1, 10)
        finally:
            w.stop()
    (line,) = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert "event 0190aaaa-0000-7000-8000-000000000001" in line
    assert "GTIN 09501101530003 lot A1" in line and "not a calendar date" in line


def test_reprint_of_a_job_that_failed_on_its_data_is_refused(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "db.sqlite")
    with engine.begin() as conn:
        job = pq.enqueue(conn, idempotency_key="a", printer="p", template="lot", fields=fields(1))
        assert job is not None
        conn.execute(
            sa.update(print_jobs)
            .where(print_jobs.c.id == job)
            .values(state="failed", error="expiry: '2031-02-30' is not a calendar date")
        )
    with engine.begin() as conn, pytest.raises(pq.ReprintRefused, match="failed on its data"):
        pq.reprint(conn, job)
    assert sum(states(engine).values()) == 1
    raw = sqlite3.connect(tmp_path / "db.sqlite")
    with pytest.raises(pq.ReprintRefused, match="calendar date"):
        pq.reprint_sqlite(raw, job, 2.0)
    raw.close()


def test_one_way_jobs_end_sent_and_status_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from drivers.printers.transport_file import FileTransport

    engine = make_engine(tmp_path / "db.sqlite")
    with engine.begin() as conn:
        pq.enqueue(conn, idempotency_key="a", printer="file", template="lot", fields=fields(1))
    events: list[DeviceStatus] = []
    printer = Printer(FileTransport(tmp_path / "labels.zpl"))
    w = pq.PrintWorker("file", printer, engine, events.append, poll_interval=0.02)
    with caplog.at_level("INFO", logger="gateway.print_queue"):
        w.start()
        try:
            assert wait_for(lambda: states(engine)["sent"] == 1, 10)
        finally:
            w.stop()
    assert w.step() is False  # nothing left to resolve: nothing confirms a file
    assert states(engine) == Counter({"sent": 1})
    assert [e.detail for e in events] == ["ready: one-way transport"]
    assert not [r for r in caplog.records if "ready" in r.getMessage()]  # the sink logs it
