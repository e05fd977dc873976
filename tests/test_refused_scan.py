"""A scan the database refused leaves no trace in memory (issue 12, item 5).

Station state (step, location, pending ``QTY:``, transaction, open pallet), the
duplicate tracker and ``seq`` change only with a committed transaction: after a
``storage_error`` the operator's re-scan counts as a new scan, with the quantity that
was pending. Tested at the pipeline level, at the writer level (a failing commit, a
real SQLITE_FULL) and with the gateway on a real full filesystem.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.scanners.types import RawScan
from gateway.config import GatewayConfig
from gateway.outcome import Outcome
from gateway.pipeline import ScanProcessor
from gateway.store.db import open_database
from gateway.store.hot import HotStore, connect
from gateway.writer import Writer
from tests.conftest import free_port
from tests.gw_util import GatewayProcess, Pusher, gateway_config
from tests.test_pipeline import TODAY, make_cfg

SERIAL = "]d2010950600013436921SN5001"  # a pump (serial-tracked), not in the seed data
LOT = "]C1010950600013435217310228\x1d10LOTQ"  # paracetamol, lot-tracked


def _cfg(tmp: Path, **station: object) -> GatewayConfig:
    station.setdefault("duplicate_window", 60)
    station.setdefault("unknown_gtin", "accept")
    return make_cfg(tmp, **station)


# ----------------------------------------------------------------------------- pipeline level


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HotStore]:
    open_database(tmp_path / "gw.db").dispose()
    conn = connect(tmp_path / "gw.db")
    yield HotStore(conn)
    conn.close()


def test_rollback_to_a_mark_restores_station_state_and_duplicates(
    tmp_path: Path, store: HotStore
) -> None:
    proc = ScanProcessor(_cfg(tmp_path), lambda: False, today=lambda: TODAY)
    t = iter(range(1, 100))

    def scan(code: str) -> Outcome:
        return proc.process(RawScan(code, "sc", time.time(), float(next(t))), store)

    store.begin()
    proc.begin()
    assert scan("QTY:12").verdict == "accept"
    assert scan("PO:4711").verdict == "accept"
    store.commit()
    proc.settle()
    before = dict(proc.stations)

    store.begin()
    mark = proc.begin()
    assert scan(LOT).summary.endswith("qty 12")  # QTY applies to the next item scan
    assert scan(SERIAL).movement == "receive"
    assert scan("LOC-B-02").verdict == "accept"
    assert scan("PICK").verdict == "accept"
    assert proc.stations != before and proc.seq == 2
    store.rollback()
    proc.rollback_to(mark)
    proc.settle()

    assert proc.stations == before  # pending QTY 12, PO 4711, step and location as before
    assert proc.seq == 0
    assert proc.duplicates.seen == {}
    store.begin()
    proc.begin()
    again = scan(SERIAL)
    store.commit()
    proc.settle()
    assert (again.verdict, again.movement, again.seq) == ("accept", "receive", 1)


def test_duplicate_tracker_undo_takes_back_forgets_and_prunes() -> None:
    from gateway.pipeline import DuplicateTracker

    d = DuplicateTracker(max_entries=3)
    d.check("a", "1", 1.0, 10)
    d.check("b", "2", 2.0, 10)
    kept = dict(d.seen)
    d.begin()
    assert d.check("a", "1", 3.0, 10)  # a duplicate; its time moves on
    d.forget_station("b")
    d.check("a", "3", 4.0, 10)
    d.check("a", "4", 5.0, 10)  # over max_entries: pruned
    d.check("a", "5", 7200.0, 10)  # everything older than an hour goes
    d.undo()
    d.settle()
    assert d.seen == kept
    assert d.journal is None
    d.check("c", "9", 8.0, 10)  # outside a transaction nothing is journalled
    assert d.journal is None


# ----------------------------------------------------------------------------- writer level


class Rig:
    """Processor + writer on a real file; ``fail_next_commit`` makes one COMMIT fail."""

    def __init__(self, cfg: GatewayConfig, processor: ScanProcessor | None = None) -> None:
        open_database(cfg.storage.path).dispose()
        self.processor = processor or ScanProcessor(cfg, lambda: False, today=lambda: TODAY)
        self.cv = threading.Condition()
        self.results: list[tuple[str, Outcome | None]] = []  # (code, outcome or None: refused)
        self.writer = Writer(
            cfg.storage.path,
            self.processor,
            on_committed=self._committed,
            on_failed=self._failed,
        )
        self.writer.start()
        self.fail_next_commit = False
        store = self.writer.store
        assert store is not None
        real_commit = store.commit

        def commit() -> None:
            if self.fail_next_commit:
                self.fail_next_commit = False
                raise sqlite3.OperationalError("database or disk is full")
            real_commit()

        store.commit = commit  # type: ignore[method-assign]
        self.t = 0.0

    def _committed(self, outs: list[Outcome]) -> None:
        with self.cv:
            self.results.extend((o.scan.text, o) for o in outs)
            self.cv.notify_all()

    def _failed(self, scans: list[RawScan], why: str) -> None:
        with self.cv:
            self.results.extend((s.text, None) for s in scans)
            self.cv.notify_all()

    def scan(self, code: str, *, refuse: bool = False) -> Outcome | None:
        """One scan in its own group; None when the database refused it."""
        with self.cv:
            start = len(self.results)
        self.fail_next_commit = refuse
        self.t += 1.0
        self.writer.submit(RawScan(code, "sc", time.time(), self.t))
        with self.cv:
            assert self.cv.wait_for(lambda: len(self.results) > start, 10)
            return self.results[start][1]

    def close(self) -> None:
        self.writer.stop()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(_cfg(tmp_path))
    yield r
    r.close()


def test_a_refused_serial_counts_when_scanned_again(rig: Rig) -> None:
    assert rig.scan(SERIAL, refuse=True) is None  # storage_error
    again = rig.scan(SERIAL)
    assert again is not None
    assert (again.verdict, again.movement, again.seq) == ("accept", "receive", 1), again.line()
    dup = rig.scan(SERIAL)  # a real duplicate still is one
    assert dup is not None and [r.code for r in dup.reasons] == ["duplicate_scan"]


def test_a_refused_lot_scan_leaves_the_pending_quantity(rig: Rig) -> None:
    qty = rig.scan("QTY:12")
    assert qty is not None and qty.verdict == "accept"
    assert rig.scan(LOT, refuse=True) is None
    again = rig.scan(LOT)
    assert again is not None and again.event_id is not None
    assert again.summary.endswith("qty 12"), again.summary
    payload = rig.writer.call(
        lambda s: s.conn.execute(
            "SELECT payload FROM outbox WHERE event_id = ?", (again.event_id,)
        ).fetchone()[0]
    )
    assert json.loads(payload)["items"][0]["quantity"] == 12
    after = rig.scan("]C1010950600013435217310228\x1d10LOTR2")  # QTY applies once
    assert after is not None and after.summary.endswith("qty 1")


@pytest.mark.parametrize(
    ("code", "field", "value"),
    [
        ("LOC-B-02", "location", "DOCK"),
        ("PICK", "step", "receiving"),
        ("PO:4711", "transaction", None),
        ("QTY:7", "next_quantity", None),
    ],
)
def test_a_refused_control_scan_changes_nothing(
    rig: Rig, code: str, field: str, value: object
) -> None:
    assert rig.scan(code, refuse=True) is None  # the group failed: the operator was told so
    assert getattr(rig.processor.stations["ws"], field) == value


def test_a_refused_pallet_scan_leaves_no_pallet_open(tmp_path: Path) -> None:
    r = Rig(_cfg(tmp_path, step="packing", duplicate_window=0))
    try:
        assert r.scan("]C100095060001234567893", refuse=True) is None
        assert r.processor.stations["ws"].open_parent is None
        item = r.scan(SERIAL)
        assert item is not None and [x.code for x in item.reasons] == ["no_open_pallet"]
    finally:
        r.close()


def test_a_failing_item_is_rolled_back_in_memory_too(tmp_path: Path) -> None:
    """A bug in one item rolls back its savepoint: its state changes go with it."""

    class Boom(ScanProcessor):
        armed = True

        def process(self, scan: RawScan, store: HotStore, *a: Any, **kw: Any) -> Outcome:
            out = super().process(scan, store, *a, **kw)
            if self.armed and scan.text == LOT:
                self.armed = False
                raise RuntimeError("a bug after the scan was processed")
            return out

    cfg = _cfg(tmp_path)
    r = Rig(cfg, Boom(cfg, lambda: False, today=lambda: TODAY))
    try:
        assert r.scan("QTY:12") is not None
        bug = r.scan(LOT)
        assert bug is not None and [x.code for x in bug.reasons] == ["internal_error"]
        again = r.scan(LOT)
        assert again is not None and again.movement == "receive"
        assert again.summary.endswith("qty 12"), again.summary
    finally:
        r.close()


def test_real_sqlite_full_then_rescan(tmp_path: Path) -> None:
    """SQLite's own 'database or disk is full' (page limit): refused scans count again."""
    r = Rig(_cfg(tmp_path))
    try:
        r.writer.call(lambda s: s.conn.execute("PRAGMA max_page_count = 1"))  # no growth
        refused_serial = refused_lot = None
        for i in range(2000):
            if refused_serial is None:
                code = f"]d2010950600013436921FULL{i}"
                if r.scan(code) is None:
                    refused_serial = code
            if refused_lot is None:
                if r.scan("QTY:12") is None:
                    continue  # refused itself: nothing pending, try again
                code = f"]C1010950600013435217310228\x1d10FULL{i}"
                if r.scan(code) is None:
                    refused_lot = code  # the QTY:12 committed before it is still pending
            if refused_serial and refused_lot:
                break
        assert refused_serial and refused_lot, "the database never filled up"
        assert r.writer.failed
        r.writer.call(lambda s: s.conn.execute("PRAGMA max_page_count = 1073741823"))
        lot = r.scan(refused_lot)  # QTY applies to the next item scan: the lot, first
        assert lot is not None and lot.summary.endswith("qty 12"), lot.summary if lot else lot
        s = r.scan(refused_serial)
        assert s is not None and s.movement == "receive", s.line() if s else s
    finally:
        r.close()


# ----------------------------------------------------------------------------- real full disk


def _mount_tmpfs(where: Path, size_kb: int) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    try:
        res = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(where)],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


def _verdict(log: Path, code: str, after: int) -> str | None:
    """``ACCEPT`` / ``REJECT storage_error`` … from the console line for ``code`` written
    after offset ``after`` (``✖ REJECT   dock/tunnel  CODE  reasons  seq=N``)."""
    for line in log.read_text()[after:].splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] in ("✔", "!", "✖") and parts[3] == code:
            return " ".join([parts[1], *parts[4:5]])
    return None


def _shown(code: str) -> str:
    return code.replace("\x1d", "<GS>")


def _wait_verdict(log: Path, code: str, after: int) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        v = _verdict(log, code, after)
        if v is not None:
            return v
        time.sleep(0.02)
    raise AssertionError(f"no verdict for {code}:\n{log.read_text()[-3000:]}")


def _events(db: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT payload FROM outbox WHERE kind = 'event' ORDER BY seq")
        return [json.loads(x[0]) for x in rows]
    finally:
        con.close()


def test_real_full_disk_rescan_is_received_with_its_quantity(tmp_path: Path) -> None:
    """The gateway on a full tmpfs: the refused serial and lot scans, scanned again once
    space returns, are received (not ``duplicate_scan``), the lot with the pending QTY."""
    state = tmp_path / "state"
    if not _mount_tmpfs(state, 3072):
        pytest.skip("cannot mount a tmpfs here (needs CAP_SYS_ADMIN); the writer tests cover it")
    try:
        scan_port = free_port()
        cfg = gateway_config(tmp_path, free_port(), scan_port)  # no broker: all stays local
        text = cfg.read_text().replace("duplicate_window = 0", "duplicate_window = 300")
        cfg.write_text(text + '\n[[patterns]]\nkind = "command"\nregex = "(?P<value>QTY:\\\\d+)"\n')
        log = tmp_path / "gw.log"
        gw = GatewayProcess(cfg, log)
        gw.start(wait_port=scan_port)
        ballast = state / "ballast"
        try:
            p = Pusher(scan_port)
            p.connect()
            free = os.statvfs(state)
            ballast.write_bytes(b"\0" * max(0, free.f_bavail * free.f_frsize - 256 * 1024))
            i = 0
            refused_serial = refused_lot = None
            # The serial first, then QTY + lot: a disk this full flaps (a checkpoint frees
            # a little), and an item scan accepted after the refused lot would take the QTY.
            while refused_serial is None or refused_lot is None:
                i += 1
                assert i < 5000, "the filesystem never filled up"
                if refused_serial is None:
                    code = f"]C1010950600013436921FULL{i:05d}"
                    at = len(log.read_text())
                    p.send(code)
                    if _wait_verdict(log, code, at).startswith("REJECT storage_error"):
                        refused_serial = code
                    continue
                at = len(log.read_text())
                p.send("QTY:12")
                if not _wait_verdict(log, "QTY:12", at).startswith("ACCEPT"):
                    continue  # refused itself: no quantity pending, try again
                code = f"]C1010950600013435217310228\x1d10FULL{i:05d}"
                at = len(log.read_text())
                p.send(code)
                if _wait_verdict(log, _shown(code), at).startswith("REJECT storage_error"):
                    refused_lot = code  # QTY:12 was committed before: still pending
            ballast.unlink()  # space returns
            at = len(log.read_text())
            p.send(refused_lot)  # no new QTY: the one scanned before the refusal applies
            assert _wait_verdict(log, _shown(refused_lot), at).startswith("ACCEPT")
            at = len(log.read_text())
            p.send(refused_serial)
            assert _wait_verdict(log, refused_serial, at).startswith("ACCEPT")
            p.close()
        finally:
            assert gw.stop() == 0
        events = _events(state / "gw.db")
        by_code = {e["scan"]["raw"]: e for e in events}
        assert refused_serial in by_code, "the re-scanned serial is received"
        assert by_code[refused_lot]["items"][0]["quantity"] == 12
        assert "duplicate_scan" not in re.sub(r"\s+", " ", log.read_text())
    finally:
        subprocess.run(["umount", "-l", str(state)], capture_output=True, timeout=10)
