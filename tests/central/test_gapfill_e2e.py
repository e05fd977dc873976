"""Events the broker acknowledged and then lost come back: central asks, the gateway resends.

A real gateway (``traceway run``), ``traceway-central ingest`` and ``serve`` on a private
mosquitto and a private PostgreSQL. The gateway publishes seq 1..3 while no ingest
worker has ever subscribed: mosquitto acknowledges them (the gateway marks them
published) and drops them, as it drops what arrives between a broker restart and the
first worker's reconnect (mosquitto 2.0.11 does not restore a shared subscription from
its persistence file). Then ingest starts and seq 4 arrives: gap 1..3 opens, ``serve``
asks the gateway to ``republish`` it once it stays open ``republish_after_s``, the
gateway sends the stored rows again, ingest stores them and the gap closes.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.central.test_two_sites_e2e import wait_until
from tests.conftest import Broker, free_port
from tests.gw_util import GatewayProcess, Pusher, gateway_config, serial_code

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def published(db: Path) -> list[int]:
    """Seqs the gateway has marked published (PUBACK from the broker)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT seq FROM outbox WHERE published_at IS NOT NULL ORDER BY seq")
        return [int(r[0]) for r in rows]
    finally:
        con.close()


def test_a_gap_the_broker_made_is_filled_from_the_gateways_outbox(
    tmp_path: Path, broker: Broker, engine: Engine
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    cfg = tmp_path / "central.toml"
    cfg.write_text(
        f'[database]\nurl = "{url}"\n[broker]\nport = {broker.port}\nclient_id = "central-gap"\n'
        f"[ingest]\nmax_wait_ms = 20\nrepublish_after_s = 1\n[api]\nport = {free_port()}\n"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str, *args: str) -> None:
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "central", *args, "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / f"central-{name}.log", "ab"),  # noqa: SIM115
            cwd=ROOT,
            env=env,
        )

    def log(name: str) -> str:
        return (tmp_path / f"central-{name}.log").read_text(errors="replace")

    scan_port = free_port()
    gw = GatewayProcess(gateway_config(tmp_path, broker.port, scan_port), tmp_path / "gw.log")
    db = tmp_path / "state" / "gw.db"
    pusher = Pusher(scan_port)
    try:
        start("serve", "serve")
        gw.start(wait_port=scan_port)
        pusher.connect()
        for i in (1, 2, 3):
            pusher.send(serial_code(i))
        # acknowledged by the broker, delivered to nobody (no worker has subscribed yet)
        wait_until("seq 1..3 published", lambda: published(db) == [1, 2, 3])
        start("ingest", "ingest", "--worker", "1")
        wait_until("the worker's subscription", lambda: "subscribed" in log("ingest"))

        def stored() -> list[int]:
            with engine.connect() as c:
                rows = c.execute(text("SELECT seq FROM events WHERE gateway_id = 'gw1'"))
                return sorted(int(r[0]) for r in rows)

        def open_gaps() -> list[tuple[int, int]]:
            with engine.connect() as c:
                rows = c.execute(
                    text("SELECT from_seq, to_seq FROM seq_gaps WHERE closed_at IS NULL")
                )
                return [(int(a), int(b)) for a, b in rows]

        pusher.send(serial_code(4))
        wait_until("seq 4 at central", lambda: 4 in stored())
        wait_until("seq 1..3 sent again and stored", lambda: stored() == [1, 2, 3, 4], 90)
        assert open_gaps() == []
        with engine.connect() as c:
            gaps = c.execute(text("SELECT from_seq, to_seq, closed_at FROM seq_gaps")).all()
        # the gap shrank as each late event arrived (1..3, 2..3, 3..3), and closed
        assert (gaps[0][0], gaps[0][1]) == (1, 3) and all(g[2] is not None for g in gaps)
        assert "asked the gateway to republish" in log("serve")
        assert "republish 1..3: 3 sent again, 0 not yet published, gone: none" in (
            gw.log.read_text()
        )
    finally:
        pusher.close()
        gw.stop()
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    for name in procs:
        assert "Traceback" not in log(name), log(name)
