"""End to end: the gateway as a subprocess, scans over TCP, events from a private broker."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Broker, free_port, make_broker
from tests.gw_util import Collector, GatewayProcess, Pusher, gateway_config, serial_code

pytestmark = pytest.mark.slow

#: rejected scans: every alert they cause must pass its schema (conftest checks)
BAD_CODES = [
    "]C1010950600013436821SN1",  # GTIN check digit wrong
    "]C100095060001234567890",  # SSCC check digit wrong
    "]C101095060001343691731023010L1",  # 30 February
    "]C10209506000134368370012\x1d10L1",  # (02) content GTIN check digit wrong
    "hello \x01 world",  # not GS1, no pattern
]


def check_contiguous(events: list[dict[str, object]], n: int) -> None:
    by_seq: dict[int, str] = {}
    for e in events:
        seq = int(e["seq"])  # type: ignore[call-overload]
        eid = str(e["event_id"])
        assert by_seq.setdefault(seq, eid) == eid, f"seq {seq} carried two event ids"
    assert sorted(by_seq) == list(range(1, n + 1))
    assert len(set(by_seq.values())) == n


def test_thousand_scans_arrive_exactly_once_in_order(tmp_path: Path, broker: Broker) -> None:
    col = Collector(broker.port)
    col.start()
    scan_port = free_port()
    gw = GatewayProcess(gateway_config(tmp_path, broker.port, scan_port), tmp_path / "gw.log")
    gw.start(wait_port=scan_port)
    try:
        p = Pusher(scan_port)
        p.connect()
        for i in range(1000):
            p.send(serial_code(i))
        events = col.wait_for("events", 1000, 60)
        for code in BAD_CODES:  # after the events, so that events keep seq 1..1000
            p.send(code)
        alerts = col.wait_for("alerts", len(BAD_CODES), 30)
        p.close()
    finally:
        rc = gw.stop()
        col.stop()
    assert rc == 0
    assert len(events) == 1000, f"got {len(events)} events"
    assert [e["seq"] for e in events] == list(range(1, 1001))  # in order, no duplicates
    assert len({e["event_id"] for e in events}) == 1000
    assert {e["items"][0]["serial"] for e in events} == {f"SN{i:06d}" for i in range(1000)}
    e = events[0]
    assert e["schema"]["name"] == "traceway.event"
    assert e["scan"] == {"raw": serial_code(0), "symbology": "]C1", "scanner": "tunnel"}
    assert e["decision"]["verdict"] == "accept"
    assert e["biz_step"] == "receiving"
    assert len(alerts) == len(BAD_CODES)
    assert {a["alert"] for a in alerts} == {"invalid_barcode", "unknown_barcode"}
    assert alerts[0]["interpretation"]["gtin"] == "09506000134368"  # what was scanned
    status = [p for t, p in col.messages if t.endswith("/status")]
    assert status[0]["state"] == "online"
    assert status[-1]["state"] == "offline"  # graceful stop publishes offline


def test_broker_down_at_start_then_started(tmp_path: Path) -> None:
    bdir = tmp_path / "broker"
    bdir.mkdir()
    broker = make_broker(bdir)
    scan_port = free_port()
    cfg = gateway_config(tmp_path, broker.port, scan_port)
    gw = GatewayProcess(cfg, tmp_path / "gw.log")
    gw.start(wait_port=scan_port)
    try:
        p = Pusher(scan_port)
        p.connect()
        for i in range(200):
            p.send(serial_code(i))
        deadline = time.monotonic() + 20
        depth = 0
        while time.monotonic() < deadline:
            out = subprocess.run(
                [sys.executable, "-m", "gateway.cli", "outbox", "--config", str(cfg), "--json"],
                capture_output=True,
                text=True,
                check=True,
            )
            depth = json.loads(out.stdout)["depth"]
            if depth == 200:
                break
            time.sleep(0.2)
        assert depth == 200, "the outbox must keep every event while the broker is down"
        broker.start()
        col = Collector(broker.port)
        col.start()
        events = col.wait_for("events", 200, 60)
        col.stop()
        p.close()
    finally:
        gw.stop()
        broker.stop()
    check_contiguous(events, 200)
    assert [e["seq"] for e in events][:200] == sorted(e["seq"] for e in events)[:200]
    log = (tmp_path / "gw.log").read_text()
    assert log.count("not reachable") == 1, "say it once, not once per retry"


def test_sigkill_mid_stream_loses_nothing(tmp_path: Path, broker: Broker) -> None:
    col = Collector(broker.port, client_id="kill-collector")
    col.start()
    scan_port = free_port()
    cfg = gateway_config(tmp_path, broker.port, scan_port)
    gw = GatewayProcess(cfg, tmp_path / "gw.log")
    gw.start(wait_port=scan_port)
    p = Pusher(scan_port)
    p.connect()
    for i in range(2000):
        p.send(serial_code(i))
    before = col.wait_for("events", 100, 30)  # the gateway is busy with the stream …
    gw.kill()  # … and dies mid-stream
    p.close()
    assert len(before) >= 100
    gw2 = GatewayProcess(cfg, tmp_path / "gw2.log")
    gw2.start(wait_port=scan_port)
    db = tmp_path / "state" / "gw.db"
    try:
        con = sqlite3.connect(db)
        n_killed = int(con.execute("SELECT MAX(seq) FROM outbox").fetchone()[0])
        con.close()
        p = Pusher(scan_port)
        p.connect()
        for i in range(5000, 5200):
            p.send(serial_code(i))
        events = col.wait_for("events", n_killed + 200, 60)
        p.close()
        con = sqlite3.connect(db)
        n = int(con.execute("SELECT MAX(seq) FROM outbox").fetchone()[0])
        rows = dict(con.execute("SELECT seq, event_id FROM outbox").fetchall())
        con.close()
    finally:
        gw2.stop()
        col.stop()
    assert n == n_killed + 200  # seq continues after the restart, no gap, no reuse
    check_contiguous(events, n)
    for e in events:
        assert rows[e["seq"]] == e["event_id"]  # a duplicate carries the same id


def test_sigkill_publishes_the_will_and_leaves_no_publisher_behind(
    tmp_path: Path, broker: Broker
) -> None:
    col = Collector(broker.port)
    col.start()
    scan_port = free_port()
    gw = GatewayProcess(gateway_config(tmp_path, broker.port, scan_port), tmp_path / "gw.log")
    gw.start(wait_port=scan_port)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(
            p.get("state") == "online" for p in col.of("status")
        ):
            time.sleep(0.05)
        assert any(p.get("state") == "online" for p in col.of("status"))
        assert gw.proc is not None
        children = _children(gw.proc.pid)
        assert children, "the MQTT client runs in a child process"
        gw.kill()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(
            p.get("state") == "offline" for p in col.of("status")
        ):
            time.sleep(0.05)
        offline = [p for p in col.of("status") if p.get("state") == "offline"]
        assert offline and offline[0]["reason"] == "connection_lost"  # the Will
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{c}").exists() for c in children):
            time.sleep(0.05)
        assert not [c for c in children if Path(f"/proc/{c}").exists()], "orphaned child"
    finally:
        col.stop()


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True, check=True)
    return [int(a) for a, b in (line.split() for line in out.stdout.splitlines()) if int(b) == pid]
