"""Events the broker acknowledged and then lost come back: central asks, the gateway resends.

A real gateway (``traceway run``), ``traceway-central ingest`` and ``serve`` on a private
mosquitto and a private PostgreSQL. mosquitto acknowledges what a gateway publishes (the
gateway marks it published) and drops it when no worker of the shared subscription is
there: before the first worker ever subscribed, and — mosquitto 2.0.11 does not restore a
shared subscription from its persistence file — between a broker restart and the first
worker's reconnect. Ingest then sees a later seq and opens a gap; once it stays open
``republish_after_s``, ``serve`` asks the gateway to ``republish`` it, the gateway sends
the stored rows again, ingest stores them and the gap closes.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.central.test_two_sites_e2e import wait_until
from tests.conftest import Broker, free_port, make_broker
from tests.gw_util import GatewayProcess, Pusher, gateway_config, serial_code

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Rig:
    tmp: Path
    broker: Broker
    engine: Engine
    cfg: Path
    gw: GatewayProcess
    pusher: Pusher
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> None:
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "central", *args, "--config", str(self.cfg)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.tmp / f"central-{name}.log", "ab"),  # noqa: SIM115
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def log(self, name: str) -> str:
        return (self.tmp / f"central-{name}.log").read_text(errors="replace")

    def published(self) -> list[int]:
        """Seqs the gateway has marked published (PUBACK from the broker)."""
        con = sqlite3.connect(f"file:{self.tmp / 'state' / 'gw.db'}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT seq FROM outbox WHERE published_at IS NOT NULL")
            return sorted(int(r[0]) for r in rows)
        finally:
            con.close()

    def stored(self) -> list[int]:
        with self.engine.connect() as c:
            rows = c.execute(text("SELECT seq FROM events WHERE gateway_id = 'gw1'"))
            return sorted(int(r[0]) for r in rows)

    def gaps(self) -> list[tuple[int, int, bool]]:
        """(from, to, still open) of every gap row, oldest first."""
        with self.engine.connect() as c:
            rows = c.execute(text("SELECT from_seq, to_seq, closed_at FROM seq_gaps ORDER BY id"))
            return [(int(a), int(b), t is None) for a, b, t in rows]

    def scan(self, *seqs: int) -> None:
        for i in seqs:
            self.pusher.send(serial_code(i))


@pytest.fixture
def rig(tmp_path: Path, engine: Engine) -> Iterator[Rig]:
    d = tmp_path / "broker"
    d.mkdir()
    broker = make_broker(d)
    broker.conf.write_text(
        broker.conf.read_text().replace("persistence false\n", "")
        + f"persistence true\npersistence_location {d}/\n"
    )
    broker.start()
    url = engine.url.render_as_string(hide_password=False)
    cfg = tmp_path / "central.toml"
    cfg.write_text(
        f'[database]\nurl = "{url}"\n[broker]\nport = {broker.port}\nclient_id = "central-gap"\n'
        f"[ingest]\nmax_wait_ms = 20\nrepublish_after_s = 1\n[api]\nport = {free_port()}\n"
    )
    scan_port = free_port()
    gw = GatewayProcess(gateway_config(tmp_path, broker.port, scan_port), tmp_path / "gw.log")
    r = Rig(tmp_path, broker, engine, cfg, gw, Pusher(scan_port))
    try:
        r.start("serve", "serve")
        gw.start(wait_port=scan_port)
        r.pusher.connect()
        yield r
    finally:
        r.pusher.close()
        gw.stop()
        for p in r.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.terminate()
        for p in r.procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        broker.stop()
    for name in r.procs:
        assert "Traceback" not in r.log(name), r.log(name)


def test_events_published_before_any_worker_subscribed_are_asked_for(rig: Rig) -> None:
    rig.scan(1, 2, 3)
    # acknowledged by the broker, delivered to nobody (no worker has subscribed yet)
    wait_until("seq 1..3 published", lambda: rig.published() == [1, 2, 3])
    rig.start("ingest", "ingest", "--worker", "1")
    wait_until("the worker's subscription", lambda: "subscribed" in rig.log("ingest"))
    rig.scan(4)
    wait_until("seq 4 at central", lambda: 4 in rig.stored())
    wait_until("seq 1..3 sent again and stored", lambda: rig.stored() == [1, 2, 3, 4], 90)
    # the gap shrank as each late event arrived (1..3, 2..3, 3..3), and closed
    gaps = rig.gaps()
    assert gaps[0][:2] == (1, 3) and not any(g[2] for g in gaps), gaps
    assert "asked the gateway to republish" in rig.log("serve")
    log = rig.gw.log.read_text()
    assert "republish 1..3: 3 sent again, 0 not yet published, gone: none" in log


def test_events_lost_in_a_broker_restart_are_asked_for(rig: Rig) -> None:
    rig.start("ingest", "ingest", "--worker", "1")
    wait_until("the worker's subscription", lambda: "subscribed (" in rig.log("ingest"))
    rig.scan(1)
    wait_until("seq 1 at central", lambda: rig.stored() == [1])
    worker = rig.procs["ingest"]
    # the worker is held while the broker restarts, so the gateway is back first
    worker.send_signal(signal.SIGSTOP)
    try:
        rig.broker.stop()
        rig.broker.start()
        rig.scan(2, 3)
        wait_until("seq 2..3 published after the restart", lambda: rig.published() == [1, 2, 3])
    finally:
        worker.send_signal(signal.SIGCONT)
    wait_until("the worker back", lambda: rig.log("ingest").count("subscribed (") == 2)
    rig.scan(4)
    wait_until("seq 4 at central", lambda: 4 in rig.stored())
    wait_until("seq 2..3 sent again and stored", lambda: rig.stored() == [1, 2, 3, 4], 90)
    gaps = rig.gaps()
    assert gaps[0][:2] == (2, 3) and not any(g[2] for g in gaps), gaps
    assert "republish 2..3: 2 sent again" in rig.gw.log.read_text()
