"""The gateway restarts its own MQTT publisher process (issue 12, item 6).

Killing only the publisher child used to leave the daemon committing scans, logging an
error per commit and publishing nothing until the whole service was restarted.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from gateway.mqtt.publisher_process import RespawnPolicy, describe_exit
from tests.conftest import Broker, free_port
from tests.gw_util import Collector, GatewayProcess, Pusher, gateway_config, serial_code


def test_respawn_policy_backs_off_and_resets_after_a_stable_run() -> None:
    p = RespawnPolicy(initial=0.5, maximum=4.0, stable_after=60.0, unhealthy_after=3)
    assert p.on_death(lived=500.0) == 0.0  # the first death: at once
    assert p.healthy
    assert [p.on_death(lived=1.0) for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert not p.healthy, "a child that keeps dying: the systemd watchdog takes over"
    assert p.on_death(lived=60.0) == 0.0  # it ran long enough: start over
    assert p.healthy


def test_describe_exit() -> None:
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(None) == "still running"


def _publisher_pid(gw: GatewayProcess) -> int:
    """The gateway's MQTT publisher child (python -m gateway.mqtt.publisher_process)."""
    assert gw.proc is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        kids: list[int] = []
        task_dir = Path(f"/proc/{gw.proc.pid}/task")
        for task in task_dir.iterdir():
            try:
                kids += [int(x) for x in (task / "children").read_text().split()]
            except OSError:
                continue
        for pid in kids:
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"publisher_process" in cmd:
                return pid
        time.sleep(0.05)
    raise AssertionError("no publisher child process")


def _event_seqs(col: Collector) -> set[int]:
    return {int(p["seq"]) for p in col.of("events")}


def _wait_events(col: Collector, n: int, timeout: float = 60) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(_event_seqs(col)) < n:
        time.sleep(0.05)
    return _event_seqs(col)


def test_killed_publisher_child_is_respawned_and_everything_arrives(
    tmp_path: Path, broker: Broker
) -> None:
    scan_port = free_port()
    cfg = gateway_config(tmp_path, broker.port, scan_port)
    col = Collector(broker.port)
    col.start()
    log = tmp_path / "gw.log"
    gw = GatewayProcess(cfg, log)
    gw.start(wait_port=scan_port)
    n = 0
    try:
        p = Pusher(scan_port)
        p.connect()
        for _ in range(100):
            p.send(serial_code(n))
            n += 1
        assert len(_wait_events(col, n)) == n
        for _round in range(2):
            pid = _publisher_pid(gw)
            os.kill(pid, signal.SIGKILL)
            for _ in range(300):  # scanning goes on while the publisher is gone
                p.send(serial_code(n))
                n += 1
            got = _wait_events(col, n)
            assert got == set(range(1, n + 1)), f"{n - len(got)} event(s) never arrived"
            assert _publisher_pid(gw) != pid
            assert gw.alive()
        p.close()
    finally:
        assert gw.stop() == 0
        col.stop()
    text = log.read_text()
    respawns = re.findall(r"publisher process \(pid \d+\) ended unexpectedly.*", text)
    assert len(respawns) == 2, text[-3000:]
    assert "killed by SIGKILL" in respawns[0]
    # said once per respawn, not per failed hand-over: no error line at all
    errors = [ln for ln in text.splitlines() if re.match(r"^\S+ (ERROR|CRITICAL)", ln)]
    assert errors == [], "\n".join(errors[:20])
    other = [ln for ln in text.splitlines() if not re.search(r"ACCEPT", ln)]
    assert len(other) < 40, "\n".join(other)  # a log line and a console line per scan, else few


def test_stop_during_a_restart_delay_starts_no_new_child(tmp_path: Path) -> None:
    """``stop()`` while waiting to restart: returns at once, no child left behind."""
    from gateway.config import BrokerConfig
    from gateway.mqtt.publisher_process import RemotePublisher
    from gateway.store.db import open_database

    db = tmp_path / "gw.db"
    open_database(db).dispose()
    cfg = BrokerConfig(host="127.0.0.1", port=free_port())  # nobody listens: fine
    pub = RemotePublisher(cfg, "respawn-test", db, lambda seqs: None)
    pub.policy = RespawnPolicy(initial=600.0, maximum=600.0)
    pub.start()
    try:
        first = pub.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while pub.restarts < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pub.restarts == 1 and pub.pid != first  # the first death: at once
        second = pub.pid
        assert second is not None
        os.kill(second, signal.SIGKILL)  # dies at once again: the next start waits 600 s
        deadline = time.monotonic() + 30
        while pub.policy.failures < 2 and time.monotonic() < deadline:
            time.sleep(0.02)  # until the death is seen (then the 600 s wait begins)
        assert pub.alive, "one quick death is not yet a reason for the watchdog"
    finally:
        pub.stop(timeout=1.0)
    assert pub.pid == second and pub.restarts == 1
    assert not pub.alive
