"""Fault tests: the gateway as a subprocess under SIGKILL, broker outages, a full disk,
a corrupt database and wall-clock steps. Nothing committed may be lost, ``seq`` stays
contiguous per gateway, and a duplicate always carries the same ``event_id``.

Every test is bounded in time. ``TRACEWAY_FAULT_KILLS`` raises the number of SIGKILLs
of the kill campaign (default 24), ``TRACEWAY_FAULT_SEED`` replays a campaign, and
``TRACEWAY_FAULT_FULL=1`` runs the literal "20 trials x 5,000 scans" version.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.conftest import Broker, free_port, make_broker
from tests.gw_util import (
    SERIAL_GTIN,
    Collector,
    GatewayProcess,
    Pusher,
    gateway_config,
    serial_code,
    wait_listening,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- helpers


class SessionCollector(Collector):
    """A collector with a persistent MQTT 5 session that reconnects quickly by itself."""

    def __init__(self, port: int, client_id: str) -> None:
        super().__init__(port, client_id=client_id)
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.connects = 0
        self.subacks = 0

        def _subscribed(*_: Any) -> None:
            self.subacks += 1
            self.subscribed.set()

        self.client.on_subscribe = _subscribed

    def _on_connect(self, client: mqtt.Client, *a: Any) -> None:
        self.connects += 1
        super()._on_connect(client, *a)

    def start(self, timeout: float = 10) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 600
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.client.connect(
                    "127.0.0.1", self.port, keepalive=5, clean_start=False, properties=props
                )
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.client.loop_start()
        assert self.subscribed.wait(timeout), "subscription not acknowledged"


def db_rows(db: Path) -> list[tuple[int, str, str, str, float | None]]:
    """(seq, event_id, kind, payload, published_at) of every outbox row, by seq."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [
            (int(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4])
            for r in con.execute(
                "SELECT seq, event_id, kind, payload, published_at FROM outbox ORDER BY seq"
            )
        ]
    finally:
        con.close()


def db_query(db: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(con.execute(sql, args).fetchall())
    finally:
        con.close()


def outbox_depth(db: Path) -> int:
    try:
        return int(db_query(db, "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")[0][0])
    except sqlite3.Error:
        return -1


def wait_until(pred: Callable[[], bool], timeout: float, what: str, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def serial_index(payload: dict[str, Any]) -> int:
    return int(payload["items"][0]["serial"][2:])


def check_db_consistent(db: Path) -> list[tuple[int, str, str, str, float | None]]:
    """Integrity, contiguous seq, unique ids, meta.last_seq, no half-written scan."""
    assert db_query(db, "PRAGMA integrity_check") == [("ok",)]
    rows = db_rows(db)
    seqs = [r[0] for r in rows]
    assert seqs == list(range(1, len(rows) + 1)), "seq must be contiguous from 1"
    assert len({r[1] for r in rows}) == len(rows), "an event_id was used twice"
    last = db_query(db, "SELECT value FROM meta WHERE key = 'last_seq'")
    if rows:
        assert int(last[0][0]) == len(rows)
    # every accepted receive of a serial left both its cache row and its event, or neither
    event_serials = [
        json.loads(r[3])["items"][0]["serial"]
        for r in rows
        if r[2] == "event" and json.loads(r[3]).get("items")
    ]
    assert len(event_serials) == len(set(event_serials)), "a serial was received twice"
    cached = {s for (s,) in db_query(db, "SELECT serial FROM serials WHERE gtin = ?", SERIAL_GTIN)}
    assert cached == set(event_serials), "cache and outbox disagree: a scan was half written"
    return rows


def check_delivery(
    rows: list[tuple[int, str, str, str, float | None]], received: list[dict[str, Any]]
) -> None:
    """Everything in the outbox arrived; duplicates are identical; first arrivals in seq order."""
    by_seq = {r[0]: r for r in rows}
    first: dict[str, dict[str, Any]] = {}
    order: list[int] = []
    for p in received:
        seq, eid = int(p["seq"]), str(p["event_id"])
        assert seq in by_seq, f"received seq {seq} that the gateway never committed"
        assert by_seq[seq][1] == eid, f"seq {seq} arrived with a second event_id"
        if eid in first:
            assert first[eid] == p, f"duplicate of seq {seq} differs from the first copy"
        else:
            first[eid] = p
            order.append(seq)
            assert p == json.loads(by_seq[seq][3]), f"seq {seq} differs from the outbox row"
    missing = sorted(set(by_seq) - set(order))
    assert not missing, f"{len(missing)} event(s) never arrived, first: {missing[:10]}"
    assert order == sorted(order), "events first arrived out of seq order"


def cli_outbox(cfg: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "outbox", "--config", str(cfg), "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        cwd=ROOT,
    )
    return dict(json.loads(out.stdout))


class PaceThread(threading.Thread):
    """Pushes ``serial_code(i)`` for i in ``start..`` at ``rate`` per second until stopped."""

    def __init__(self, port: int, start: int, rate: float) -> None:
        super().__init__(name="pusher", daemon=True)
        self.pusher = Pusher(port)
        self.next = start
        self.rate = rate
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.pusher.connect()
            t0 = time.monotonic()
            sent = 0
            while not self.halt.is_set():
                due = int((time.monotonic() - t0) * self.rate)
                while sent < due:
                    self.pusher.send(serial_code(self.next))
                    self.next += 1
                    sent += 1
                time.sleep(0.01)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.pusher.close()

    def stop(self) -> int:
        self.halt.set()
        self.join(10)
        assert self.error is None, f"pusher failed: {self.error!r}"
        return self.next


# ----------------------------------------------------------------------------- SIGKILL


@dataclass
class Campaign:
    seed: int
    kills: int = 0
    during_start: int = 0
    pushed: int = 0
    log: list[str] = field(default_factory=list)


def _kill_campaign(tmp: Path, broker: Broker, n_scans: int, n_kills: int, seed: int) -> Campaign:
    """One run of ``n_scans`` unique serials with ``n_kills`` SIGKILLs at random moments."""
    rng = random.Random(seed)
    camp = Campaign(seed)
    print(f"kill campaign: seed={seed} scans={n_scans} kills={n_kills}")
    col = Collector(broker.port, client_id=f"kill-col-{seed}")
    col.start()
    scan_port = free_port()
    cfg = gateway_config(tmp, broker.port, scan_port)
    db = tmp / "state" / "gw.db"
    i = 0
    try:
        for k in range(n_kills):
            gw = GatewayProcess(cfg, tmp / f"gw{k:02d}.log")
            if k > 0 and rng.random() < 0.2:
                # SIGKILL while the gateway opens the database / replays its outbox
                gw.start()
                time.sleep(rng.uniform(0.0, 0.9))
                assert gw.proc is not None
                gw.proc.send_signal(signal.SIGKILL)
                gw.proc.wait(10)
                camp.kills += 1
                camp.during_start += 1
                continue
            gw.start(wait_port=scan_port)
            left = n_scans - i
            chunk = max(1, min(left, int(rng.uniform(0.3, 1.7) * left / (n_kills - k + 1))))
            rate = rng.uniform(800, 3000)
            delay = rng.uniform(0.0, chunk / rate + 0.3)
            assert gw.proc is not None
            proc = gw.proc
            timer = threading.Timer(delay, lambda p=proc: p.send_signal(signal.SIGKILL))
            p = Pusher(scan_port)
            p.connect()
            timer.start()
            t0, sent = time.monotonic(), 0
            try:
                while sent < chunk and proc.poll() is None:
                    due = min(chunk, int((time.monotonic() - t0) * rate) + 1)
                    while sent < due:
                        p.send(serial_code(i))
                        i += 1
                        sent += 1
                    time.sleep(0.002)
            except OSError:
                pass  # the gateway died under us: the rest of the chunk is lost in TCP
            finally:
                p.close()
            timer.join()
            proc.wait(10)
            camp.kills += 1
            camp.log.append(f"kill {k}: pushed {sent} at {rate:.0f}/s, killed after {delay:.3f}s")
        camp.pushed = i
        # a last, clean run: the rest of the scans, drain, graceful stop
        gw = GatewayProcess(cfg, tmp / "gw-final.log")
        gw.start(wait_port=scan_port)
        try:
            p = Pusher(scan_port)
            p.connect()
            while i < n_scans:
                p.send(serial_code(i))
                i += 1
                if i % 200 == 0:
                    time.sleep(0.05)
            camp.pushed = i
            last = db_query(db, "SELECT MAX(seq) FROM outbox")[0][0]

            def settled() -> bool:
                nonlocal last
                now = db_query(db, "SELECT MAX(seq) FROM outbox")[0][0]
                done = now == last and outbox_depth(db) == 0
                last = now
                return done

            wait_until(settled, 90, "the outbox to drain")
            p.close()
        finally:
            assert gw.stop() == 0
        rows = check_db_consistent(db)
        n = len(rows)
        assert n > 0
        col.wait_for("events", n, 60)
    finally:
        col.stop()
    events = col.of("events")
    assert all(r[2] == "event" for r in rows), "every pushed scan is a fresh serial: no alerts"
    assert all(r[4] is not None for r in rows), "every row was acknowledged by the broker"
    payloads = [json.loads(r[3]) for r in rows]
    idx = [serial_index(pl) for pl in payloads]
    assert idx == sorted(idx), "scans were committed out of arrival order"
    check_delivery(rows, events)
    dups = len(events) - len({e["event_id"] for e in events})
    print(
        f"kill campaign seed={seed}: {camp.kills} SIGKILLs ({camp.during_start} during start), "
        f"{camp.pushed} scans pushed, {n} committed, {len(events)} delivered ({dups} duplicates)"
    )
    return camp


def _seed() -> int:
    return int(os.environ.get("TRACEWAY_FAULT_SEED") or random.SystemRandom().randrange(1 << 31))


def test_sigkill_at_random_points_loses_nothing(tmp_path: Path, broker: Broker) -> None:
    """>= 20 SIGKILLs during one 5,000-scan run: no event lost, duplicates identical."""
    kills = max(20, int(os.environ.get("TRACEWAY_FAULT_KILLS", "24")))
    camp = _kill_campaign(tmp_path, broker, 5000, kills, _seed())
    assert camp.kills >= 20


@pytest.mark.skipif(
    os.environ.get("TRACEWAY_FAULT_FULL") != "1", reason="set TRACEWAY_FAULT_FULL=1 (long)"
)
@pytest.mark.parametrize("trial", range(20))
def test_sigkill_literal_twenty_trials(tmp_path: Path, broker: Broker, trial: int) -> None:
    """The literal version: 20 trials, each a 5,000-scan run with SIGKILLs."""
    _kill_campaign(tmp_path, broker, 5000, 5, _seed() + trial)


# ----------------------------------------------------------------------------- broker outages


def _persistent_broker(tmp: Path) -> Broker:
    """A broker that keeps sessions and queued messages across a restart (like production)."""
    d = tmp / "broker"
    d.mkdir()
    store = d / "persist"
    store.mkdir()
    # mosquitto started as root drops to user "mosquitto", which cannot write into
    # pytest's private tmp dirs: stay root then (the option is ignored otherwise)
    user = "user root\n" if os.geteuid() == 0 else ""
    return make_broker(d, f"{user}persistence true\npersistence_location {store}/\n")


def test_broker_down_30s_during_load(tmp_path: Path) -> None:
    """Broker stopped for 30 s while scans flow: nothing lost, backlog drained in seq order."""
    broker = _persistent_broker(tmp_path)
    broker.start()
    col = SessionCollector(broker.port, "outage-collector")
    col.start()
    scan_port = free_port()
    cfg = gateway_config(tmp_path, broker.port, scan_port)
    db = tmp_path / "state" / "gw.db"
    gw = GatewayProcess(cfg, tmp_path / "gw.log")
    gw.start(wait_port=scan_port)
    pace = PaceThread(scan_port, 0, rate=100)
    try:
        pace.start()
        time.sleep(3)
        broker.stop()
        t_down = time.monotonic()
        time.sleep(5)
        depth_during = cli_outbox(cfg)["depth"]
        time.sleep(max(0.0, 30 - (time.monotonic() - t_down)))
        depth_before_restart = cli_outbox(cfg)["depth"]
        broker.start()
        time.sleep(3)
        pushed = pace.stop()
        wait_until(lambda: outbox_depth(db) == 0 and db_rows(db)[-1][0] == pushed, 60, "drain")
        col.wait_for("events", pushed, 30)
    finally:
        pace.halt.set()
        rc = gw.stop()
        col.stop()
        broker.stop()
    assert rc == 0
    print(
        f"outage: {pushed} scans, outbox depth {depth_during} after 5 s, {depth_before_restart} at 30 s"
    )
    assert depth_during > 300 and depth_before_restart > 2500, "the outbox kept the backlog"
    rows = check_db_consistent(db)
    assert len(rows) == pushed, "every pushed scan was committed (the reader never depends on MQTT)"
    assert all(r[4] is not None for r in rows)
    check_delivery(rows, col.of("events"))
    assert col.connects >= 2, "the collector saw the outage"
    assert "Error saving" not in broker.log.read_text(), "the test broker must keep sessions"
    log = (tmp_path / "gw.log").read_text()
    assert log.count("disconnected from broker") == 1
    assert log.count("not reachable") <= 1, "an outage is reported once, not per retry"


def test_broker_restarted_during_load(tmp_path: Path) -> None:
    """Broker restarted quickly (forgetting every session): the gateway resends, loses nothing."""
    bdir = tmp_path / "broker"
    bdir.mkdir()
    broker = make_broker(bdir)  # persistence false: sessions and in-flight state are gone
    broker.start()
    col = SessionCollector(broker.port, "restart-collector")
    col.start()
    scan_port = free_port()
    cfg = gateway_config(tmp_path, broker.port, scan_port)
    db = tmp_path / "state" / "gw.db"
    gw = GatewayProcess(cfg, tmp_path / "gw.log")
    gw.start(wait_port=scan_port)
    pace = PaceThread(scan_port, 0, rate=300)
    try:
        pace.start()
        time.sleep(2)
        broker.stop()
        seq_at_stop = len(db_rows(db))
        broker.start()
        wait_until(lambda: col.subacks >= 2, 15, "the collector to subscribe again")
        seq_resubscribed = len(db_rows(db))
        time.sleep(3)
        pushed = pace.stop()
        wait_until(lambda: outbox_depth(db) == 0 and db_rows(db)[-1][0] == pushed, 60, "drain")
        time.sleep(0.5)
    finally:
        pace.halt.set()
        rc = gw.stop()
        col.stop()
        broker.stop()
    assert rc == 0
    rows = check_db_consistent(db)
    assert len(rows) == pushed
    assert all(r[4] is not None for r in rows), "every row was acknowledged after the restart"
    # The restarted broker forgot the collector's subscription: events it got before the
    # collector subscribed again are gone for it (not for the gateway: every row was
    # acknowledged). Everything committed after the collector is back must arrive, in order.
    received = col.of("events")
    by_seq = {r[0]: r[1] for r in rows}
    assert all(by_seq[int(e["seq"])] == e["event_id"] for e in received)
    after = [int(e["seq"]) for e in received if int(e["seq"]) > seq_resubscribed]
    assert after == sorted(set(after)), "post-restart events in seq order, no duplicates"
    assert set(after) == set(range(seq_resubscribed + 1, pushed + 1))
    assert seq_at_stop > 100 and pushed - seq_resubscribed > 300


# ----------------------------------------------------------------------------- disk full


@dataclass
class DiskFullRun:
    db: Path
    log_full: str
    log_after: str
    pushed_full: int
    committed_full: int
    rows_after: list[tuple[int, str, str, str, float | None]]
    pushed_after: int


def _disk_cfg(tmp: Path, scan_port: int, max_mb: int) -> Path:
    dead_broker = free_port()  # nobody listens: the outbox keeps everything
    cfg = gateway_config(tmp, dead_broker, scan_port)
    text = cfg.read_text().replace(
        '[storage]\npath = "state/gw.db"',
        f'[storage]\npath = "state/gw.db"\nmax_size_mb = {max_mb}',
    )
    assert f"max_size_mb = {max_mb}" in text
    cfg.write_text(text)
    return cfg


@pytest.fixture(scope="module")
def disk_full_run(tmp_path_factory: pytest.TempPathFactory) -> DiskFullRun:
    """Fill a database capped at 1 MB, then restart with 64 MB and push again."""
    tmp = tmp_path_factory.mktemp("diskfull")
    scan_port = free_port()
    db = tmp / "state" / "gw.db"
    gw = GatewayProcess(_disk_cfg(tmp, scan_port, 1), tmp / "gw1.log")
    gw.start(wait_port=scan_port)
    i = 0
    try:
        p = Pusher(scan_port)
        p.connect()
        deadline = time.monotonic() + 60
        while "storage failure" not in (tmp / "gw1.log").read_text():
            assert time.monotonic() < deadline, "the 1 MB database never filled up"
            for _ in range(50):
                p.send(serial_code(i))
                i += 1
            time.sleep(0.05)
        for _ in range(40):  # a few more while full: each one refused, none half-written
            p.send(serial_code(i))
            i += 1
        time.sleep(1.0)
        p.close()
    finally:
        assert gw.stop() == 0
    pushed_full = i
    # events only: the disk_full alert may also be written once a small commit fits again
    committed_full = sum(1 for r in db_rows(db) if r[2] == "event")
    log_full = (tmp / "gw1.log").read_text()
    gw = GatewayProcess(_disk_cfg(tmp, scan_port, 64), tmp / "gw2.log")
    gw.start(wait_port=scan_port)
    try:
        p = Pusher(scan_port)
        p.connect()
        for _ in range(100):
            p.send(serial_code(i))
            i += 1
        wait_until(
            lambda: sum(1 for r in db_rows(db) if r[2] == "event") >= committed_full + 100,
            30,
            "scans after the limit was raised",
        )
        time.sleep(0.5)
        p.close()
    finally:
        assert gw.stop() == 0
    return DiskFullRun(
        db,
        log_full,
        (tmp / "gw2.log").read_text(),
        pushed_full,
        committed_full,
        check_db_consistent(db),
        i,
    )


def test_disk_full_rejects_new_scans_and_writes_nothing_half(disk_full_run: DiskFullRun) -> None:
    r = disk_full_run
    log = r.log_full
    # raised once per episode (near the cap a small commit may still fit), never per scan
    assert 1 <= log.count("storage failure:") <= 5
    assert "scans are rejected until it is fixed" in log
    refused = log.count("REJECT dock storage_error: scan not recorded")
    accepted = len(re.findall(r"^\S+ INFO +ACCEPT ", log, re.M))
    assert refused >= 40, "every scan pushed while full is rejected in the log"
    assert len(re.findall(r"^\S+ +REJECT +dock/tunnel .* storage_error$", log, re.M)) == refused, (
        "and on the operator's console"
    )
    assert accepted == r.committed_full, "each accept on screen is a committed event"
    lost = r.pushed_full - accepted - refused
    print(f"disk full: {accepted} committed, {refused} refused, {lost} neither")
    assert lost == 0, "every scan is either recorded or refused, never silently dropped"
    size = r.db.stat().st_size
    assert size <= 1024 * 1024 + 64 * 1024 or r.committed_full < r.pushed_full


def test_disk_full_recovers_when_space_returns(disk_full_run: DiskFullRun) -> None:
    r = disk_full_run
    rows = r.rows_after  # consistent (checked in the fixture) and contiguous across the restart
    events = [json.loads(x[3]) for x in rows if x[2] == "event"]
    assert len(events) == r.committed_full + 100
    idx = [serial_index(e) for e in events]
    assert idx == sorted(idx)
    assert idx[-100:] == list(range(r.pushed_after - 100, r.pushed_after))


def test_disk_full_alert_survives_restart(disk_full_run: DiskFullRun) -> None:
    alerts = [json.loads(x[3]) for x in disk_full_run.rows_after if x[2] == "alert"]
    assert any(a["alert"] == "disk_full" for a in alerts)


def _mount_tmpfs(where: Path, size_kb: int) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(where)],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def test_real_enospc_in_process_recovery_and_alert(tmp_path: Path) -> None:
    """A real full filesystem (tmpfs): refused scans, then space returns in the same process."""
    state = tmp_path / "state"
    if not _mount_tmpfs(state, 3072):
        pytest.skip(
            "cannot mount a tmpfs here (needs CAP_SYS_ADMIN); the max_size_mb test covers it"
        )
    try:
        scan_port = free_port()
        cfg = gateway_config(tmp_path, free_port(), scan_port)
        db = state / "gw.db"
        gw = GatewayProcess(cfg, tmp_path / "gw.log")
        gw.start(wait_port=scan_port)
        ballast = state / "ballast"
        i = 0
        try:
            free = os.statvfs(state)
            # leave ~256 KB: room for a few hundred scans, then ENOSPC
            ballast.write_bytes(b"\0" * max(0, free.f_bavail * free.f_frsize - 256 * 1024))
            p = Pusher(scan_port)
            p.connect()
            deadline = time.monotonic() + 60
            while "storage failure" not in (tmp_path / "gw.log").read_text():
                assert time.monotonic() < deadline, "the filesystem never filled up"
                for _ in range(20):
                    p.send(serial_code(i))
                    i += 1
                time.sleep(0.05)
            for _ in range(20):
                p.send(serial_code(i))
                i += 1
            time.sleep(1.0)
            assert gw.alive(), "a full disk must not kill the gateway"
            committed = sum(1 for r in db_rows(db) if r[2] == "event")
            ballast.unlink()  # space returns
            for _ in range(50):
                p.send(serial_code(i))
                i += 1
            wait_until(lambda: any(r[2] == "alert" for r in db_rows(db)), 20, "the disk_full alert")
            wait_until(
                lambda: sum(1 for r in db_rows(db) if r[2] == "event") == committed + 50,
                20,
                "scans after space returned",
            )
            p.close()
        finally:
            assert gw.stop() == 0
        rows = check_db_consistent(db)
        alerts = [json.loads(r[3]) for r in rows if r[2] == "alert"]
        assert alerts and {a["alert"] for a in alerts} == {"disk_full"}
        assert all(a["severity"] == "critical" for a in alerts)
        refused = (tmp_path / "gw.log").read_text().count("storage_error: scan not recorded")
        assert refused >= 20
        counted = sum(
            int(m)
            for a in alerts
            for m in re.findall(r"(\d+) scan\(s\) were rejected", a["message"])
        )
        # A full disk flaps (a checkpoint frees WAL space for a moment); when the alert
        # itself cannot be written, its count is lost (reported bug), so only <= holds here.
        print(f"ENOSPC: {refused} refused, {counted} counted in {len(alerts)} disk_full alert(s)")
        assert 0 < counted <= refused
    finally:
        subprocess.run(["umount", "-l", str(state)], capture_output=True, timeout=10)


# ----------------------------------------------------------------------------- corrupt database


def _garbage(p: Path) -> None:
    p.write_bytes(b"definitely not sqlite\n" * 500)


def _foreign(p: Path) -> None:
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    con.execute("INSERT INTO invoices(total) VALUES (12.5)")
    con.commit()
    con.close()


def _corrupt(p: Path) -> None:
    from gateway.store.db import open_database

    open_database(p).dispose()
    for suffix in ("-wal", "-shm"):
        Path(str(p) + suffix).unlink(missing_ok=True)
    data = bytearray(p.read_bytes())
    data[4096:8192] = b"\xa5" * 4096
    p.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (_garbage, "not an SQLite database"),
        (_foreign, "belongs to something else"),
        (_corrupt, "corrupt"),
    ],
    ids=["garbage", "foreign", "corrupt"],
)
def test_corrupt_or_foreign_database_at_start(
    tmp_path: Path, make: Callable[[Path], None], says: str
) -> None:
    """``traceway run`` refuses it with the file name and what to do, and leaves it alone."""
    scan_port = free_port()
    cfg = gateway_config(tmp_path, free_port(), scan_port)
    db = tmp_path / "state" / "gw.db"
    db.parent.mkdir()
    make(db)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    listing = sorted(p.name for p in db.parent.iterdir())
    r = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert r.returncode == 3, r.stderr
    assert str(db) in r.stderr, "the error names the file"
    assert says in r.stderr
    assert "will not touch it" in r.stderr
    assert any(w in r.stderr for w in ("move it aside", "restore a backup", "point storage.path"))
    assert "Traceback" not in r.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before, "the file was modified"
    after = sorted(p.name for p in db.parent.iterdir())
    # a read-only look at a WAL-mode file may leave an empty -wal and a -shm, and `run`
    # its lock file (one gateway per database); nothing else
    assert set(listing) <= set(after) <= set(listing) | {"gw.db-wal", "gw.db-shm", "gw.db.lock"}
    wal = db.parent / "gw.db-wal"
    assert "gw.db-wal" in listing or not wal.exists() or wal.stat().st_size == 0
    with socket.socket() as s:  # and it did not start listening for scans
        assert s.connect_ex(("127.0.0.1", scan_port)) != 0


# ----------------------------------------------------------------------------- clock steps

FAKETIME_LIBS = [
    Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
    Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"),
    Path("/usr/local/lib/faketime/libfaketime.so.1"),
]

# The gateway with the kernel's NTP status forced to "synchronized", so that only the
# step detection can make ``clock_synced`` false (this machine's kernel may say either).
_SYNCED_RUN = """
import sys
import gateway.clock
gateway.clock._adjtimex_state = lambda: 0
from gateway.cli import main
sys.exit(main(["run", "--config", sys.argv[1]]))
"""


@pytest.fixture
def faketime_lib() -> Iterator[Path]:
    lib = next((p for p in FAKETIME_LIBS if p.exists()), None)
    if lib is None:
        pytest.skip("libfaketime is not installed (apt-get install faketime)")
    yield lib


def test_wall_clock_steps_back_and_forth(
    tmp_path: Path, broker: Broker, faketime_lib: Path
) -> None:
    """seq orders events across wall-clock steps; clock_synced is false right after a step."""
    offset_file = tmp_path / "faketime.rc"
    offset_file.write_text("+0\n")
    scan_port = free_port()
    cfg = gateway_config(tmp_path, broker.port, scan_port)
    col = Collector(broker.port)
    col.start()
    env = dict(os.environ)
    env.update(
        PYTHONUNBUFFERED="1",
        LD_PRELOAD=str(faketime_lib),
        FAKETIME_TIMESTAMP_FILE=str(offset_file),
        FAKETIME_NO_CACHE="1",
        DONT_FAKE_MONOTONIC="1",
        FAKETIME_DONT_FAKE_MONOTONIC="1",
    )
    log = tmp_path / "gw.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SYNCED_RUN, str(cfg)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    phases = [("+0", 0.0), ("-3600", -3600.0), ("+7200", 7200.0)]
    n = 30
    try:
        wait_listening(scan_port, timeout=30)
        p = Pusher(scan_port)
        p.connect()
        i = 0
        for k, (spec, _) in enumerate(phases):
            # atomically: libfaketime re-reads the file on every call, and a
            # truncated file read mid-write means "no offset"
            staged = offset_file.with_suffix(".new")
            staged.write_text(spec + "\n")
            os.replace(staged, offset_file)
            time.sleep(1.0)  # libfaketime re-reads the file lazily; let every thread see it
            for _ in range(n):
                p.send(serial_code(i))
                i += 1
                time.sleep(0.005)
            want = (k + 1) * n
            wait_until(lambda: len(col.of("events")) >= want, 30, f"phase {k}")  # noqa: B023
        p.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        col.stop()
    events = {int(e["seq"]): e for e in col.of("events")}
    assert sorted(events) == list(range(1, 3 * n + 1))
    ordered = [events[s] for s in sorted(events)]
    assert [serial_index(e) for e in ordered] == list(range(3 * n)), "seq follows scan order"
    from datetime import datetime

    t = [datetime.fromisoformat(e["event_time"]).timestamp() for e in ordered]
    first, back, fwd = t[:n], t[n : 2 * n], t[2 * n :]
    # libfaketime re-parses the offset file on every clock call from every
    # thread (FAKETIME_NO_CACHE) without a lock; a CI run once saw one call out
    # of ~90 come back unshifted. What this test checks is seq order (above)
    # and clock_synced (below); the shift itself only proves the fake worked.
    assert sum(x < min(first) - 3000 for x in back) >= n - 2, "the step back shows"
    assert sum(x > max(first) + 6000 for x in fwd) >= n - 2, "the step forward shows"
    synced = [bool(e["clock_synced"]) for e in ordered]
    assert all(synced[:n]), "before any step the (forced) kernel status says synchronized"
    assert not any(synced[n:]), "after a step clock_synced is false (60 s hold)"
    assert proc.returncode == 0, log.read_text()[-2000:]


# ----------------------------------------------------------------------------- writer, unit level


def test_failed_group_reports_every_scan(tmp_path: Path) -> None:
    """A group that fails at its 2nd scan: all 3 scans are reported, none is silently lost."""
    from drivers.scanners.types import RawScan
    from gateway.config import parse_config
    from gateway.outcome import Outcome
    from gateway.pipeline import ScanProcessor
    from gateway.store.db import open_database
    from gateway.store.hot import HotStore
    from gateway.writer import Writer

    cfg = parse_config(
        f'[gateway]\nsite = "s"\nid = "g"\n[storage]\npath = "{tmp_path / "gw.db"}"\n'
        '[stations.ws]\nstep = "receiving"\nunknown_gtin = "accept"\n',
        "t.toml",
    )
    open_database(cfg.storage.path).dispose()

    class FullAtSecond(ScanProcessor):
        def process(self, scan: RawScan, store: HotStore, *a: Any, **kw: Any) -> Outcome:
            if scan.text.endswith("SN000001"):
                raise sqlite3.OperationalError("database or disk is full")
            return super().process(scan, store, *a, **kw)

    committed: list[Outcome] = []
    failed: list[RawScan] = []
    w = Writer(
        cfg.storage.path,
        FullAtSecond(cfg, lambda: False),
        on_committed=committed.extend,
        on_failed=lambda scans, why: failed.extend(scans),
    )
    scans = [RawScan(serial_code(i), "x", time.time(), float(i)) for i in range(3)]
    for s in scans:
        w.submit(s)  # queued before the writer starts: one group
    w.start()
    w.stop()
    assert committed == []
    assert [s.text for s in failed] == [s.text for s in scans]


def test_disk_full_alert_not_lost_when_its_own_write_fails(tmp_path: Path) -> None:
    """The recovery alert hits a full disk once more: the refusal count must survive."""
    from drivers.scanners.types import RawScan
    from gateway.config import parse_config
    from gateway.daemon import Gateway

    cfg = parse_config(
        f'[gateway]\nsite = "s"\nid = "g"\n[storage]\npath = "{tmp_path / "gw.db"}"\n'
        '[broker]\nenabled = false\n[stations.ws]\nstep = "receiving"\nunknown_gtin = "accept"\n',
        "t.toml",
    )
    gw = Gateway(cfg)
    gw.writer.start()
    try:
        scan = RawScan(serial_code(1), "x", time.time(), 1.0)
        gw._failed([scan, scan, scan], "database or disk is full")  # three scans refused
        real_alert = gw.processor.alert
        calls = {"n": 0}

        def alert_full_once(*a: Any, **kw: Any) -> tuple[int, str]:
            calls["n"] += 1
            if calls["n"] == 1:
                raise sqlite3.OperationalError("database or disk is full")
            return real_alert(*a, **kw)

        gw.processor.alert = alert_full_once  # type: ignore[method-assign]
        gw.writer.submit(RawScan(serial_code(2), "x", time.time(), 2.0))  # commits: "recovered"
        wait_until(lambda: calls["n"] >= 1, 10, "the recovery alert attempt")
        gw.writer.submit(RawScan(serial_code(3), "x", time.time(), 3.0))  # the disk is fine now
        gw.writer.call(lambda s: None)
        time.sleep(0.3)
        gw.writer.call(lambda s: None)
    finally:
        gw.writer.stop()
        gw.engine.dispose()
    alerts = [json.loads(r[3]) for r in db_rows(tmp_path / "gw.db") if r[2] == "alert"]
    counted = sum(
        int(m)
        for a in alerts
        if a["alert"] == "disk_full"
        for m in re.findall(r"(\d+) scan\(s\) were rejected", a["message"])
    )
    assert counted == 3, f"refused scans counted in disk_full alerts: {counted} of 3"
