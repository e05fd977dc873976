"""The daemon's log for scanners doing what they should: no warnings for routine changes.

A TCP listener waiting for its first reader, the first connection, and the end of a
replay file are normal operation: logged at INFO, in words that say what happens.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.daemon import Gateway
from tests.conftest import Broker, free_port

DEMO = Path(__file__).resolve().parent.parent / "config" / "demo"


def wait(pred: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_routine_scanner_changes_are_not_warnings(
    tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    scan_port = free_port()
    (tmp_path / "scans.txt").write_text("]C100095060001234567893\n")
    cfg_path = tmp_path / "gw.toml"
    cfg_path.write_text(
        f"""
[gateway]
site = "s1"
id = "gw1"
[broker]
port = {broker.port}
[storage]
path = "state/gw.db"
[stations.dock]
step = "receiving"
location = "DOCK"
unknown_gtin = "accept"
[stations.dock.feedback]
console = false
[scanners.demo]
type = "replay"
station = "dock"
path = "{tmp_path / "scans.txt"}"
interval = 0.0
[scanners.tunnel]
type = "tcp"
station = "dock"
mode = "listen"
port = {scan_port}
[cache]
seed_products = "{DEMO / "products.csv"}"
"""
    )
    caplog.set_level(logging.INFO)
    gw = Gateway(load_config(cfg_path), cfg_path)
    gw.start()
    reader: socket.socket | None = None
    try:
        wait(gw.replay_finished, "the replay to finish")
        wait(lambda: "tunnel" in gw.device_states, "the listener to start")
        reader = socket.create_connection(("127.0.0.1", scan_port), timeout=5)
        wait(lambda: gw.device_states["tunnel"].state == "connected", "the connection")
    finally:
        gw.stop()  # with the reader still connected: its leaving is no outage
        if reader is not None:
            reader.close()
    msgs = [(r.levelno, r.getMessage()) for r in caplog.records]
    waiting = f"listening on 127.0.0.1:{scan_port}, waiting for readers"
    assert (logging.INFO, f"scanner tunnel: disconnected {waiting}") in msgs
    assert (logging.INFO, "scanner demo: disconnected end of file") in msgs
    scanner_lines = [(lvl, m) for lvl, m in msgs if "tunnel" in m or "demo" in m]
    assert not [m for lvl, m in scanner_lines if lvl >= logging.WARNING]
    assert not [m for _, m in scanner_lines if "again" in m or "not connected yet" in m]
