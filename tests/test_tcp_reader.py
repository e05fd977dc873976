"""TcpReader (connect mode) against a local fake fixed-mount reader that refuses, drops and
pushes (127.0.0.1 only). Listen mode: tests/test_tcp_listener.py."""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

import pytest

from drivers.scanners.backoff import Backoff
from drivers.scanners.config import FramerConfig, TcpScanner
from drivers.scanners.tcp_reader import TcpReader, enable_keepalive
from drivers.scanners.types import DeviceStatus, RawScan

WAIT = 5.0
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_for(pred: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


class Recorder:
    def __init__(self) -> None:
        self.scans: queue.Queue[RawScan] = queue.Queue()
        self.statuses: list[DeviceStatus] = []
        self._lock = threading.Lock()

    def sink(self, scan: RawScan) -> None:
        self.scans.put(scan)

    def status(self, st: DeviceStatus) -> None:
        with self._lock:
            self.statuses.append(st)

    def states(self) -> list[str]:
        with self._lock:
            return [s.state for s in self.statuses]

    def last(self, state: str) -> DeviceStatus:
        with self._lock:
            return [s for s in self.statuses if s.state == state][-1]

    def scan(self) -> RawScan:
        return self.scans.get(timeout=WAIT)

    def wait_state(self, state: str, count: int = 1) -> None:
        wait_for(lambda: self.states().count(state) >= count, f"{count}x {state}: {self.states()}")


class FakeReader:
    """A fixed-mount reader's TCP server: accepts connections, pushes bytes, drops them."""

    def __init__(self, port: int) -> None:
        self.srv = socket.create_server((HOST, port))
        self.conns: queue.Queue[socket.socket] = queue.Queue()
        self.conn: socket.socket | None = None
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            self.conns.put(conn)

    def client(self) -> socket.socket:
        """Wait for the gateway to connect; that connection becomes the current one."""
        self.conn = self.conns.get(timeout=WAIT)
        self.conn.settimeout(WAIT)
        return self.conn

    def push(self, data: bytes) -> None:
        assert self.conn is not None
        self.conn.sendall(data)

    def drop(self) -> None:
        assert self.conn is not None
        self.conn.close()
        self.conn = None

    def close(self) -> None:
        with contextlib.suppress(OSError):  # wakes the blocked accept() (close alone does not)
            self.srv.shutdown(socket.SHUT_RDWR)
        self.srv.close()
        self._thread.join(WAIT)
        if self.conn is not None:
            self.conn.close()


@pytest.fixture
def cleanup() -> Iterator[list[Any]]:
    things: list[Any] = []
    yield things
    for t in reversed(things):
        if isinstance(t, TcpReader):
            t.stop()
        else:
            t.close()


def make(
    cleanup: list[Any],
    port: int,
    mode: Literal["connect", "listen"] = "connect",
    framing: FramerConfig | None = None,
) -> tuple[TcpReader, Recorder]:
    cfg = TcpScanner(
        type="tcp",
        station="tunnel",
        mode=mode,
        host=HOST,
        port=port,
        framing=framing or FramerConfig(),
    )
    rec = Recorder()
    backoff = Backoff(initial=0.01, maximum=0.05, jitter="decorrelated")
    reader = TcpReader("tun1", cfg, rec.sink, rec.status, backoff=backoff)
    cleanup.append(reader)
    reader.start()
    return reader, rec


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    got = b""
    while len(got) < n:
        chunk = sock.recv(n - len(got))
        if not chunk:
            break
        got += chunk
    return got


# -- connect mode ------------------------------------------------------------------


def test_connect_refused_then_listens_then_drops_mid_stream(
    cleanup: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="drivers.scanners")
    port = free_port()
    reader, rec = make(cleanup, port, framing=FramerConfig(separator=";", no_read="NOREAD"))
    rec.wait_state("disconnected")  # nothing listens: refused
    assert "refused" in rec.last("disconnected").detail.lower()
    time.sleep(0.15)  # several refused retries ...
    assert rec.states() == ["disconnected"]  # ... reported once

    server = FakeReader(port)
    cleanup.append(server)
    server.client()
    rec.wait_state("connected")
    assert reader.connected
    firsts = [r for r in caplog.records if "connected (" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in firsts] == [
        (logging.INFO, f"tun1: connected ({HOST}:{port})")  # the first time is not "again"
    ]
    server.push(b"]C1A1;]C1B2\r\nNOREAD\r\n")
    a, b, nr = rec.scan(), rec.scan(), rec.scan()
    assert (a.text, b.text, a.frame_id, a.frame_size) == ("]C1A1", "]C1B2", b.frame_id, 2)
    assert (nr.error, nr.frame_id) == ("no_read", a.frame_id + 1)  # type: ignore[operator]

    server.push(b"HALF")  # the reader drops the connection in the middle of a frame
    time.sleep(0.05)
    server.drop()
    rec.wait_state("disconnected", 2)
    assert "closed by peer" in rec.last("disconnected").detail
    server.client()  # the gateway reconnects by itself
    rec.wait_state("connected", 2)
    server.push(b"AFTER\r\n")
    assert rec.scan().text == "AFTER"
    assert rec.scans.empty()  # "HALF" was never handed over
    assert any("partial frame lost" in r.getMessage() for r in caplog.records)
    downs = [r for r in caplog.records if "disconnected:" in r.getMessage()]
    assert len(downs) == 2  # one log line per outage
    assert any(r.getMessage() == f"tun1: connected again ({HOST}:{port})" for r in caplog.records)


def test_connect_mode_only(cleanup: list[Any]) -> None:
    cfg = TcpScanner(type="tcp", station="tunnel", mode="listen", port=2001)
    with pytest.raises(ValueError, match="TcpListener"):
        TcpReader("tun1", cfg, lambda s: None)


def test_connect_send_reaches_the_reader(cleanup: list[Any]) -> None:
    port = free_port()
    server = FakeReader(port)
    cleanup.append(server)
    reader, rec = make(cleanup, port)
    conn = server.client()
    rec.wait_state("connected")
    assert reader.send(b"\x02TRIGGER\x03")
    assert recv_exactly(conn, 9) == b"\x02TRIGGER\x03"


def test_server_going_away_completely_and_coming_back(cleanup: list[Any]) -> None:
    port = free_port()
    server = FakeReader(port)
    reader, rec = make(cleanup, port, framing=FramerConfig(stx_etx=True))
    server.client()
    rec.wait_state("connected")
    server.close()  # the reader is switched off
    rec.wait_state("disconnected")
    assert reader.send(b"x") is False
    time.sleep(0.1)
    server2 = FakeReader(port)  # ... and on again
    cleanup.append(server2)
    server2.client()
    rec.wait_state("connected", 2)
    server2.push(b"junk\x02XYZ\x03\r\n")
    assert rec.scan().text == "XYZ"


def test_heartbeat_over_tcp(cleanup: list[Any]) -> None:
    port = free_port()
    server = FakeReader(port)
    cleanup.append(server)
    framing = FramerConfig(stx_etx=True, heartbeat="HEARTBEAT", heartbeat_interval=0.04)
    _, rec = make(cleanup, port, framing=framing)
    server.client()
    rec.wait_state("heartbeat_lost")
    server.push(b"\x02HEARTBEAT\x03")
    rec.wait_state("alive")
    assert rec.scans.empty()


def test_stop_is_prompt(cleanup: list[Any]) -> None:
    port = free_port()
    server = FakeReader(port)
    cleanup.append(server)
    reader, rec = make(cleanup, port)
    conn = server.client()
    rec.wait_state("connected")
    t0 = time.monotonic()
    reader.stop()
    assert time.monotonic() - t0 < 1.0
    assert not reader.connected
    assert conn.recv(10) == b""  # our side closed the connection


def test_enable_keepalive() -> None:
    with socket.socket() as s:
        enable_keepalive(s)
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
