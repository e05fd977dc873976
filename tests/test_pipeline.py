"""The scan path in-process: processor + single writer on a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from drivers.scanners.types import RawScan
from gateway.config import GatewayConfig, parse_config
from gateway.outcome import Outcome
from gateway.pipeline import ScanProcessor
from gateway.store.cache_import import import_csv
from gateway.store.db import open_database
from gateway.writer import StorageFailure, Task, Writer, WriterStopped
from mqtt_topics.validation import validate

DEMO = Path(__file__).resolve().parent.parent / "config" / "demo"
TODAY = date(2026, 11, 21)


def make_cfg(tmp: Path, step: str = "receiving", **station: object) -> GatewayConfig:
    extra = "\n".join(f"{k} = {json.dumps(v)}" for k, v in station.items())
    return parse_config(
        f"""
[gateway]
site = "s1"
id = "g1"
[storage]
path = "{tmp / "gw.db"}"
[stations.ws]
step = "{step}"
location = "DOCK"
{extra}
[scanners.sc]
type = "tcp"
station = "ws"
port = 9
[[patterns]]
kind = "location"
regex = 'LOC-(?P<value>.+)'
[[patterns]]
kind = "command"
regex = '(?P<value>RECEIVE|PUTAWAY|PICK|PACK|UNPACK|CLOSE|SHIP|QTY:\\d+|PO:.+)'
""",
        "test.toml",
    )


class Harness:
    def __init__(self, cfg: GatewayConfig, seed: bool = True) -> None:
        self.cfg = cfg
        engine = open_database(cfg.storage.path)
        if seed:
            import_csv(engine, DEMO / "products.csv", DEMO / "lots.csv", DEMO / "serials.csv")
        engine.dispose()
        self.outcomes: list[Outcome] = []
        self.cv = threading.Condition()
        self.processor = ScanProcessor(cfg, lambda: False, today=lambda: TODAY)
        self.writer = Writer(cfg.storage.path, self.processor, on_committed=self._done)
        self.writer.start()
        self.t = 0.0

    def _done(self, outs: list[Outcome]) -> None:
        with self.cv:
            self.outcomes.extend(outs)
            self.cv.notify_all()

    def scan(self, *codes: str) -> list[Outcome]:
        start = len(self.outcomes)
        for c in codes:
            self.t += 1.0
            self.writer.submit(RawScan(c, "sc", time.time(), self.t))
        with self.cv:
            assert self.cv.wait_for(lambda: len(self.outcomes) >= start + len(codes), 10)
            return self.outcomes[start:]

    def one(self, code: str) -> Outcome:
        return self.scan(code)[0]

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.cfg.storage.path)

    def outbox(self) -> list[dict[str, object]]:
        con = self.db()
        rows = [json.loads(r[0]) for r in con.execute("SELECT payload FROM outbox ORDER BY seq")]
        con.close()
        return rows

    def close(self) -> None:
        self.writer.stop()


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(make_cfg(tmp_path))
    yield harness
    harness.close()


LOTC = "]C1010950600013435217310228\x1d10LOTC"


def test_accepted_scan_updates_cache_and_outbox(h: Harness) -> None:
    o = h.one(LOTC)
    assert (o.verdict, o.kind, o.movement, o.seq) == ("accept", "event", "receive", 1)
    con = h.db()
    row = con.execute(
        "SELECT s.location, s.quantity FROM lots l JOIN lot_stock s ON s.lot_id = l.id WHERE l.lot = 'LOTC'"
    ).fetchone()
    assert row == ("DOCK", 1)
    ev = h.outbox()[0]
    assert validate(ev) == []
    assert ev["items"] == [
        {
            "gtin": "09506000134352",
            "lot": "LOTC",
            "quantity": 1,
            "uom": "EA",
            "expiry": "2031-02-28",
            "from": {"type": "party", "id": "unknown"},
            "to": {"type": "location", "id": "DOCK"},
        }
    ]
    assert ev["clock_synced"] is False
    assert ev["location"] == "DOCK"


def test_rejected_scan_changes_no_stock_and_becomes_an_alert(h: Harness) -> None:
    con = h.db()
    before = con.execute("SELECT * FROM serials ORDER BY id").fetchall()
    o = h.one("]d2010950600013436921SN1001\x1d10PUMPLOT1")
    assert (o.verdict, o.kind) == ("reject", "alert")
    assert con.execute("SELECT * FROM serials ORDER BY id").fetchall() == before
    alert = h.outbox()[0]
    assert alert["alert"] == "serial_in_stock"
    assert alert["decision"]["verdict"] == "reject"  # type: ignore[index]
    assert validate(alert) == []


def test_double_shipment_caught_by_local_cache(tmp_path: Path) -> None:
    h = Harness(make_cfg(tmp_path, "shipping", duplicate_window=0))
    try:
        first = h.one("]d2010950600013436921SN1001")
        second = h.one("]d2010950600013436921SN1001")
    finally:
        h.close()
    assert first.verdict == "accept"
    assert second.verdict == "reject"
    assert second.reasons[0].code == "serial_already_shipped"


def test_seq_contiguous_across_events_and_alerts_and_restart(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    h = Harness(cfg)
    h.scan(LOTC, "]C0NOPE", "]d2010950600013436921SN7")
    h.close()
    h2 = Harness(cfg, seed=False)
    h2.scan("]d2010950600013436921SN8")
    h2.close()
    seqs = [e["seq"] for e in h2.outbox()]
    assert seqs == [1, 2, 3, 4]
    assert len({e["event_id"] for e in h2.outbox()}) == 4
    for e in h2.outbox():
        assert validate(e) == [], e


def test_workstation_flow(h: Harness) -> None:
    assert h.one(LOTC).movement == "receive"  # 1 of LOTC at DOCK
    outs = h.scan("PUTAWAY", "LOC-A-09", LOTC)
    assert [o.kind for o in outs] == ["control", "control", "event"]
    assert outs[2].movement == "putaway"
    moved = h.outbox()[-1]["items"][0]  # type: ignore[index]
    assert (moved["from"], moved["to"]) == (
        {"type": "location", "id": "DOCK"},
        {"type": "location", "id": "A-09"},
    )
    outs = h.scan(
        "RECEIVE", "QTY:5", "LOC-DOCK", "PO:4711", "]C1010950600013435217300331\x1d10LOTA"
    )
    assert outs[-1].movement == "receive"
    ev = h.outbox()[-1]
    assert ev["items"][0]["quantity"] == 5  # type: ignore[index]
    assert ev["biz_transactions"] == [{"type": "po", "id": "4711"}]
    bad = h.one("LOC-")  # the pattern needs a value: not a location, nothing matches
    assert (bad.kind, bad.reasons[0].code) == ("alert", "unknown_barcode")


def test_command_the_station_cannot_apply_is_rejected_with_reason(h: Harness) -> None:
    # both match the command pattern, neither can be applied
    for code, words in (("QTY:0", "at least 1"), ("CLOSE", "no pallet is open")):
        o = h.one(code)
        assert (o.kind, o.verdict, o.reasons[0].code) == ("control", "reject", "unknown_command")
        assert words in o.reasons[0].message
    assert h.processor.stations["ws"].next_quantity is None  # nothing changed


def test_duplicate_within_window(tmp_path: Path) -> None:
    # a lot label: identical labels are other cases; only a double trigger is a duplicate
    h = Harness(make_cfg(tmp_path, duplicate_window=5.0, case_debounce=0.5))
    try:
        h.writer.submit(RawScan(LOTC, "sc", time.time(), 100.0))
        h.writer.submit(RawScan(LOTC, "sc", time.time(), 100.2))
        h.writer.submit(RawScan(LOTC, "sc", time.time(), 101.0))
        with h.cv:
            h.cv.wait_for(lambda: len(h.outcomes) >= 3, 10)
    finally:
        h.close()
    assert [o.verdict for o in h.outcomes] == ["accept", "warn", "accept"]
    assert h.outcomes[1].reasons[0].code == "duplicate_scan"
    con = h.db()
    qty = con.execute(
        "SELECT SUM(quantity) FROM lot_stock s JOIN lots l ON l.id = s.lot_id WHERE l.lot='LOTC'"
    ).fetchone()[0]
    assert qty == 2  # the duplicate is recorded, not counted


def test_input_errors_are_rejected_scans(h: Harness) -> None:
    h.writer.submit(RawScan("", "sc", time.time(), 1.0, error="input_overrun"))
    h.writer.submit(RawScan("", "sc", time.time(), 2.0, error="no_read"))
    with h.cv:
        h.cv.wait_for(lambda: len(h.outcomes) >= 2, 10)
    assert [o.reasons[0].code for o in h.outcomes] == ["input_overrun", "no_read"]
    alerts = h.outbox()
    assert [a["alert"] for a in alerts] == ["input_overrun", "no_read"]
    for a in alerts:
        assert validate(a) == []


def test_group_commit_groups_and_a_bug_loses_nothing(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = h.processor._apply

    def flaky(store, interp, decision, st, lot_id, prev):  # type: ignore[no-untyped-def]
        if interp.serial == "BOOM":
            store.put_serial(interp.gtin, "HALF", None, "in_stock", "", 0.0)  # half-done work
            raise RuntimeError("bug")
        return real(store, interp, decision, st, lot_id, prev)

    monkeypatch.setattr(h.processor, "_apply", flaky)
    codes = [f"]d20109506000134369 21S{i}".replace(" ", "") for i in range(50)]
    codes.insert(25, "]d2010950600013436921BOOM")
    outs = h.scan(*codes)
    assert len(outs) == 51
    assert outs[25].reasons[0].code == "internal_error"
    assert [o.seq for o in outs] == list(range(1, 52))
    con = h.db()
    assert con.execute("SELECT COUNT(*) FROM serials WHERE serial = 'HALF'").fetchone()[0] == 0
    assert h.writer.commits < 51  # grouped
    events = [e for e in h.outbox() if e.get("kind") == "event" or "movement" in e]
    assert sorted(e["seq"] for e in h.outbox()) == list(range(1, 52))  # each once
    assert len({e["event_id"] for e in events}) == len(events) == 50


def test_a_bug_is_not_run_again_and_clean_groups_need_no_savepoints(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scans run without savepoints; a bug sends the group round again with one per item,
    where the failing scan is recorded as an internal error, not run a second time."""
    statements: list[str] = []
    h.writer.call(lambda s: s.conn.set_trace_callback(statements.append))
    del statements[:2]  # the end of that task's own (careful) group
    h.scan(*[f"]d2010950600013436921C{i}" for i in range(5)])
    assert statements and not [x for x in statements if "SAVEPOINT" in x], statements[:2]
    real = h.processor._apply
    boom: list[str] = []

    def flaky(store, interp, decision, st, lot_id, prev):  # type: ignore[no-untyped-def]
        if interp.serial == "BOOM":
            boom.append(interp.serial)
            raise RuntimeError("bug")
        return real(store, interp, decision, st, lot_id, prev)

    monkeypatch.setattr(h.processor, "_apply", flaky)
    statements.clear()
    start = len(h.outcomes)
    for i in range(20):  # one group: submitted before the writer wakes up
        code = "]d2010950600013436921BOOM" if i == 10 else f"]d2010950600013436921D{i}"
        h.writer.submit(RawScan(code, "sc", time.time(), 100.0 + i))
    with h.cv:
        assert h.cv.wait_for(lambda: len(h.outcomes) >= start + 20, 10)
    outs = h.outcomes[start:]
    assert boom == ["BOOM"]  # run once
    assert [o.reasons[0].code for o in outs if o.reasons][:1] == ["internal_error"]
    assert [o.verdict for o in outs].count("accept") == 19
    assert [o.seq for o in outs] == list(range(6, 26))
    assert any("SAVEPOINT" in x for x in statements)
    h.writer.call(lambda s: s.conn.set_trace_callback(None))


def test_tasks_run_in_the_writer(h: Harness) -> None:
    assert h.writer.call(lambda s: s.outbox_depth()) == 0
    h.one(LOTC)
    h.writer.call(lambda s: s.mark_published([1], 1.0))
    assert h.writer.call(lambda s: s.outbox_depth()) == 0
    with pytest.raises(ZeroDivisionError):
        h.writer.call(lambda s: 1 / 0)
    # the writer is still alive after a failing task
    assert h.writer.call(lambda s: 42) == 42
    # a non-durable task (PUBACK marks) commits without fsync and still runs
    fut: Future[int] = Future()
    h.writer.submit(Task(lambda s: s.outbox_depth() + 7, fut, durable=False))
    assert fut.result(5) == 7


def _lot(n: int) -> str:
    return f"]C1010950600013435217310228\x1d10CD{n:03d}"


def test_commit_delay_pairs_streaming_scans_and_never_delays_a_lone_one(h: Harness) -> None:
    """While scans stream in, the next one shares the commit (one fsync for two); a scan
    after a quiet spell commits at once, without waiting for company."""
    w = h.writer
    w.commit_delay = 0.4
    committed: list[tuple[float, list[Outcome]]] = []
    w.on_committed = lambda outs: committed.append((time.monotonic(), outs))

    def wait_for(n: int) -> None:
        deadline = time.monotonic() + 5
        while len(committed) < n and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(committed) >= n

    # a lone scan (nothing before it): committed at once
    t0 = time.monotonic()
    w.submit(RawScan(_lot(1), "sc", time.time(), t0))
    wait_for(1)
    assert committed[0][0] - t0 < 0.2
    # the next came 0.1 s after it: a stream. It waits (up to 0.15 s) for a third one,
    # sent 0.05 s later, and both commit together.
    w.submit(RawScan(_lot(2), "sc", time.time(), t0 + 0.1))
    time.sleep(0.05)
    w.submit(RawScan(_lot(3), "sc", time.time(), t0 + 0.15))
    wait_for(2)
    assert [o.scan.text for o in committed[1][1]] == [_lot(2), _lot(3)]
    # a scan 10 s after the last one: no stream, committed at once
    t1 = time.monotonic()
    w.submit(RawScan(_lot(4), "sc", time.time(), t0 + 10.15))
    wait_for(3)
    assert committed[2][0] - t1 < 0.2
    assert [o.verdict for _, outs in committed for o in outs] == ["accept"] * 4


def test_commit_delay_waits_at_most_its_limit(h: Harness) -> None:
    w = h.writer
    w.commit_delay = 0.1
    committed: list[float] = []
    w.on_committed = lambda outs: committed.append(time.monotonic())
    t0 = time.monotonic()
    w.submit(RawScan(_lot(1), "sc", time.time(), t0 - 0.09))  # opens the stream
    deadline = time.monotonic() + 5
    while not committed and time.monotonic() < deadline:
        time.sleep(0.005)
    t1 = time.monotonic()
    w.submit(RawScan(_lot(2), "sc", time.time(), t0))  # 0.09 s later: waits for company
    while len(committed) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(committed) == 2
    waited = committed[1] - t1
    assert 0.08 <= waited < 0.6, waited  # min(0.1, 1.5 gaps) and then alone


def test_deferred_writes_ride_the_next_scan_transaction(h: Harness) -> None:
    """PUBACK marks cost no transaction of their own while scans keep coming."""
    h.one(LOTC)
    ran: list[int] = []
    h.writer.defer_s = 60.0  # only a group can take it
    h.writer.defer(lambda s: (s.mark_published([1], 1.0), ran.append(h.writer.commits))[-1])
    commits = h.writer.commits
    time.sleep(0.3)
    assert ran == [] and h.writer.commits == commits  # waits for a group
    h.one("]C1010950600013435217310228\x1d10LOTD")
    assert ran == [commits]  # ran inside the scan's transaction, before its commit
    assert h.writer.commits == commits + 1  # no extra transaction
    assert h.writer.call(lambda s: s.outbox_depth()) == 1  # seq 1 published, seq 2 not


def test_deferred_writes_run_alone_when_no_scan_comes(h: Harness) -> None:
    h.one(LOTC)
    h.writer.defer_s = 0.05
    h.writer.defer(lambda s: s.mark_published([1], 1.0))
    deadline = time.time() + 5
    while h.writer.store is not None and h.writer.store.depth and time.time() < deadline:
        time.sleep(0.02)
    con = h.db()
    assert con.execute("SELECT published_at FROM outbox WHERE seq = 1").fetchone()[0] == 1.0


def test_a_failing_deferred_write_spoils_nothing(h: Harness) -> None:
    h.writer.defer_s = 60.0
    h.writer.defer(lambda s: (s.mark_published([999], 1.0), 1 / 0)[0])  # a bug
    out = h.one(LOTC)
    assert out.verdict == "accept"
    assert h.writer.call(lambda s: s.outbox_depth()) == 1


def test_a_call_after_the_writer_stopped_fails_at_once(h: Harness) -> None:
    """Nothing would ever run it: the caller hears so at once, not after its timeout."""
    assert h.writer.call(lambda s: 42) == 42
    h.writer.stop()
    t0 = time.monotonic()
    with pytest.raises(WriterStopped, match="writer has stopped"):
        h.writer.call(lambda s: 42, timeout=20)
    assert time.monotonic() - t0 < 5


def test_deferred_writes_are_kept_when_the_group_fails(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    open_database(cfg.storage.path).dispose()
    proc = ScanProcessor(cfg, lambda: True, today=lambda: TODAY)
    w = Writer(cfg.storage.path, proc, defer_s=60.0)
    w.start()
    try:
        calls: list[str] = []

        def mark(store: object) -> None:
            calls.append("mark")
            if len(calls) == 1:
                raise sqlite3.OperationalError("database or disk is full")

        w.defer(mark)
        with pytest.raises(StorageFailure):
            w.call(lambda s: None)  # its group fails with the deferred write
        assert w.call(lambda s: 5) == 5  # the next group runs it again and commits
        assert calls == ["mark", "mark"]
    finally:
        w.stop()


def test_deferred_writes_are_flushed_at_stop(tmp_path: Path) -> None:
    h = Harness(make_cfg(tmp_path))
    h.one(LOTC)
    h.writer.defer_s = 60.0
    h.writer.defer(lambda s: s.mark_published([1], 2.0))
    h.writer.stop()
    con = sqlite3.connect(tmp_path / "gw.db")
    assert con.execute("SELECT published_at FROM outbox WHERE seq = 1").fetchone()[0] == 2.0


def test_pruning_walks_from_the_oldest_row_and_keeps_unsent(h: Harness) -> None:
    def seed(store: Any) -> None:
        rows = [(1, 1.0), (2, None), (3, 5.0), (4, 100.0), (5, 6.0)]  # (seq, published_at)
        for seq, published in rows:
            store.conn.execute(
                "INSERT INTO outbox(seq, event_id, kind, topic, payload, created_at, "
                "published_at) VALUES (?, ?, 'event', 't', '{}', 1.0, ?)",
                (seq, f"e{seq}", published),
            )
            store.conn.execute(
                "INSERT INTO history(id, seq, event_id, event_time, movement, biz_step, "
                "station, created_at) VALUES (?, ?, ?, '', 'receive', 'receiving', 'ws', ?)",
                (seq, seq, f"e{seq}", published if published is not None else 50.0),
            )

    h.writer.call(seed)
    assert h.writer.call(lambda s: s.prune_outbox(cutoff=10.0)) == 2  # 1 and 3
    assert h.writer.call(lambda s: s.prune_history(cutoff=10.0)) == 1  # 1; 2 is newer
    con = h.db()
    assert [r[0] for r in con.execute("SELECT seq FROM outbox ORDER BY seq")] == [2, 4, 5]
    assert [r[0] for r in con.execute("SELECT id FROM history ORDER BY id")] == [2, 3, 4, 5]
    assert h.writer.call(lambda s: s.prune_outbox(cutoff=10.0, limit=1)) == 0  # 2 is unsent


def test_trace_queries_use_the_partial_history_indexes(h: Harness) -> None:
    con = h.db()
    for where, index in (
        ("gtin = ? AND lot = ?", "ix_history_lot"),
        ("gtin = ? AND serial = ?", "ix_history_serial"),
        ("gtin = ? AND lot = ? AND serial IS NULL", "ix_history_lot"),
        ("sscc = ? OR parent = ?", "ix_history_parent"),
    ):
        plan = " ".join(
            str(r[3])
            for r in con.execute(
                f"EXPLAIN QUERY PLAN SELECT * FROM history WHERE {where}", ("a", "b")
            )
        )
        assert index in plan, (where, plan)


def test_storage_failure_reports_scans_and_recovers(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    engine = open_database(cfg.storage.path)
    engine.dispose()
    failed: list[str] = []
    done = threading.Event()
    proc = ScanProcessor(cfg, lambda: True, today=lambda: TODAY)
    w = Writer(
        cfg.storage.path, proc, on_failed=lambda scans, why: (failed.append(why), done.set())
    )
    w.start()
    try:
        # the database refuses to grow beyond its current size
        w.call(lambda s: s.conn.execute("PRAGMA max_page_count = 1"))
        for i in range(300):
            w.submit(RawScan(f"]d2010950600013436921FULL{i}", "sc", time.time(), float(i)))
        assert done.wait(10)
        assert "full" in failed[0]
        assert w.failed
        for _ in range(50):  # queued scans may share the group (and its failure) with the call
            try:
                w.call(lambda s: s.conn.execute("PRAGMA max_page_count = 1073741823"))
                break
            except StorageFailure:
                continue
        depth = w.call(lambda s: s.outbox_depth())
        assert depth < 300  # some were refused, none half-written
        w.submit(RawScan("]d2010950600013436921OK1", "sc", time.time(), 1000.0))
        deadline = time.time() + 5
        while w.failed and time.time() < deadline:
            time.sleep(0.05)
        assert not w.failed
        assert w.call(lambda s: s.outbox_depth()) == depth + 1
        seqs = [
            r[0]
            for r in w.call(
                lambda s: s.conn.execute("SELECT seq FROM outbox ORDER BY seq").fetchall()
            )
        ]
        assert seqs == list(range(1, depth + 2))  # no gap from the failed groups
    finally:
        w.stop()


@pytest.mark.parametrize(
    "step",
    [
        "receiving",
        "storing",
        "picking",
        "packing",
        "shipping",
        "commissioning",
        "consuming",
        "destroying",
        "holding",
        "cycle_counting",
        "returning",
        "inspecting",
    ],
)
def test_every_step_emits_schema_valid_events_and_epcis(tmp_path: Path, step: str) -> None:
    from mqtt_topics.epcis import to_epcis_document

    h = Harness(make_cfg(tmp_path, step, duplicate_window=0, fefo="accept"))
    try:
        if step == "packing":
            h.scan("]C100095060001234567893")  # open the pallet
        h.scan(
            "]C1010950600013435217300331\x1d10LOTA",
            "]d2010950600013436921SN1001",
            "]C100095060001234567893",
            "]C0JUNK",
        )
    finally:
        h.close()
    payloads = h.outbox()
    assert payloads
    for p in payloads:
        assert validate(p) == [], (step, p)
    events = [p for p in payloads if p["schema"]["name"] == "traceway.event"]  # type: ignore[index]
    doc = to_epcis_document(events)
    assert len(doc["epcisBody"]["eventList"]) == len(events)


def test_pallet_pack_ship_unpack(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, "packing", duplicate_window=0, fefo="accept")
    h = Harness(cfg)
    pallet = "]C100095060001234567893"
    try:
        no = h.one("]d2010950600013436921SN1001")
        assert (no.verdict, no.reasons[0].code) == ("reject", "no_open_pallet")
        opened = h.one(pallet)
        assert opened.kind == "control" and "open" in opened.summary
        packed = h.scan("]d2010950600013436921SN1001", "]C1010950600013435217300331\x1d10LOTA")
        assert [o.movement for o in packed] == ["pack", "pack"]
        closed = h.one(pallet)
        assert "closed" in closed.summary
        h.processor.stations["ws"] = h.processor.stations["ws"].__class__(
            name="ws", step="shipping", location="DOCK"
        )
        shipped = h.one(pallet)
        assert shipped.movement == "ship"
        again = h.one("]d2010950600013436921SN1001")
        assert again.reasons[0].code == "serial_already_shipped"  # the pallet shipped it
    finally:
        h.close()
    events = [e for e in h.outbox() if e["schema"]["name"] == "traceway.event"]  # type: ignore[index]
    packs = [e for e in events if e["movement"] == "pack"]
    assert all(e["event_type"] == "AggregationEvent" and e["action"] == "ADD" for e in packs)
    assert packs and all(e["parent"] == {"sscc": "095060001234567893"} for e in packs)
    for e in h.outbox():
        assert validate(e) == []


def test_unpack_lists_contents(tmp_path: Path) -> None:
    h = Harness(make_cfg(tmp_path, "packing", duplicate_window=0))
    pallet = "]C100095060001234567893"
    try:
        h.scan(pallet, "]d2010950600013436921SN1001", pallet, "UNPACK")
        un = h.one(pallet)
        empty = h.one(pallet)
    finally:
        h.close()
    assert un.movement == "unpack" and un.verdict == "accept"
    ev = [e for e in h.outbox() if e.get("movement") == "unpack"]
    assert ev[0]["action"] == "DELETE"
    assert ev[0]["items"] == [{"gtin": "09506000134369", "serial": "SN1001"}]
    assert empty.reasons[0].code == "empty_pallet"
    for e in h.outbox():
        assert validate(e) == []


def test_outbox_watermarks_and_capacity(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, duplicate_window=0)
    cfg = cfg.model_copy(
        update={
            "storage": cfg.storage.model_copy(
                update={
                    "outbox_capacity": 100,
                    "outbox_high_watermark": 0.1,
                    "outbox_low_watermark": 0.05,
                }
            )
        }
    )
    h = Harness(cfg)
    try:
        outs = h.scan(*[f"]d2010950600013436921W{i}" for i in range(101)])
        assert h.processor.outbox_alarm
        refused = [o for o in outs if o.reasons and o.reasons[0].code == "outbox_full"]
        assert refused and all(o.seq is None for o in refused)
        depth = h.writer.call(lambda s: s.depth)
        assert depth == 100 == h.writer.call(lambda s: s.outbox_depth())
        h.writer.call(lambda s: (s.mark_published(range(1, 100), 1.0), h.processor.check_outbox(s)))
        assert not h.processor.outbox_alarm
    finally:
        h.close()
    alerts = [e["alert"] for e in h.outbox() if e["schema"]["name"] == "traceway.alert"]  # type: ignore[index]
    assert alerts == ["outbox_high_watermark", "outbox_recovered"]
    seqs = [e["seq"] for e in h.outbox()]
    assert seqs == list(range(1, len(seqs) + 1))  # refusals leave no gap
