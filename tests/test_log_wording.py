"""What the gateway prints (issue 12, item 18): each reject once, no 'reconnect' on the
first connection to the broker."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.conftest import free_port, make_broker
from tests.gw_util import GatewayProcess, Pusher, gateway_config, serial_code

BAD = "]C101095060001343602BAD"  # wrong check digit, no AI after the GTIN


def _unsent(db: Path) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(
            con.execute("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL").fetchone()[0]
        )
    finally:
        con.close()


def test_console_off_prints_each_reject_once_and_first_connect_is_no_reconnect(
    tmp_path: Path,
) -> None:
    broker = make_broker(tmp_path)  # started only after the scans are committed
    scan_port = free_port()
    cfg = gateway_config(
        tmp_path, broker.port, scan_port, extra="[stations.dock.feedback]\nconsole = false\n"
    )
    log = tmp_path / "gw.log"
    gw = GatewayProcess(cfg, log)
    gw.start(wait_port=scan_port)
    try:
        p = Pusher(scan_port)
        p.connect()
        for code in (serial_code(1), BAD, serial_code(2)):
            p.send(code)
        deadline = time.monotonic() + 30
        while log.read_text().count("seq=") < 3:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        broker.start()
        # every row acknowledged by the broker (a subscriber started now could miss them)
        deadline = time.monotonic() + 30
        while _unsent(tmp_path / "state" / "gw.db") > 0:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        p.close()
    finally:
        assert gw.stop() == 0
        broker.stop()
    text = log.read_text()
    rejects = [ln for ln in text.splitlines() if "REJECT" in ln]
    assert len(rejects) == 1, "\n".join(rejects)
    assert "invalid_barcode" in rejects[0]
    assert text.count("connected to broker") == 1
    assert "after reconnect" not in text, text
