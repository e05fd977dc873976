"""SerialReader over real pty pairs: scans, send(), the pty vanishing and coming back."""

from __future__ import annotations

import contextlib
import logging
import os
import pty
import queue
import select
import threading
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.scanners.backoff import Backoff
from drivers.scanners.config import FramerConfig, SerialScanner
from drivers.scanners.serial_reader import SerialReader
from drivers.scanners.types import DeviceStatus, RawScan

WAIT = 5.0  # upper bound for every wait; the happy path takes milliseconds


class Pty:
    """A pty pair; the reader opens the slave by name, the test plays the scanner on the master."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        tty.setraw(self.slave)  # no line discipline surprises before pyserial configures it
        self.name = os.ttyname(self.slave)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def read(self, n: int, timeout: float = WAIT) -> bytes:
        got = b""
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], deadline - time.monotonic())
            if ready:
                got += os.read(self.master, n - len(got))
        return got

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def point(link: Path, target: str) -> None:
    """Atomically (re)point a symlink, like udev does for /dev/serial/by-id names."""
    tmp = link.with_name(link.name + ".new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


class Recorder:
    """Sink and status sink that record what the reader thread hands over."""

    def __init__(self) -> None:
        self.scans: queue.Queue[RawScan] = queue.Queue()
        self.statuses: list[DeviceStatus] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def sink(self, scan: RawScan) -> None:
        self.threads.add(threading.current_thread().name)
        self.scans.put(scan)

    def status(self, st: DeviceStatus) -> None:
        with self._lock:
            self.statuses.append(st)

    def states(self) -> list[str]:
        with self._lock:
            return [s.state for s in self.statuses]

    def scan(self, timeout: float = WAIT) -> RawScan:
        return self.scans.get(timeout=timeout)

    def wait_state(self, state: str, count: int = 1) -> None:
        wait_for(lambda: self.states().count(state) >= count, f"{count}x {state}: {self.states()}")


def wait_for(pred: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def fast_backoff() -> Backoff:
    return Backoff(initial=0.01, maximum=0.05, jitter="decorrelated")


@pytest.fixture
def ptys() -> Iterator[list[Pty]]:
    made: list[Pty] = []
    yield made
    for p in made:
        p.close()


@pytest.fixture
def make_reader(
    tmp_path: Path, ptys: list[Pty]
) -> Iterator[Callable[..., tuple[SerialReader, Recorder, Path]]]:
    readers: list[SerialReader] = []

    def make(
        framing: FramerConfig | None = None, *, with_pty: bool = True, **kw: Any
    ) -> tuple[SerialReader, Recorder, Path]:
        link = tmp_path / "scanner"
        if with_pty:
            ptys.append(Pty())
            point(link, ptys[-1].name)
        cfg = SerialScanner(
            type="serial", station="dock1", port=str(link), framing=framing or FramerConfig(), **kw
        )
        rec = Recorder()
        reader = SerialReader("ser1", cfg, rec.sink, rec.status, backoff=fast_backoff())
        readers.append(reader)
        reader.start()
        return reader, rec, link

    yield make
    for r in readers:
        r.stop()


def test_scans_flow_from_the_reader_thread(
    make_reader: Callable[..., tuple[SerialReader, Recorder, Path]], ptys: list[Pty]
) -> None:
    reader, rec, _ = make_reader(FramerConfig(separator=";"))
    rec.wait_state("connected")
    assert reader.connected
    ptys[0].write(b"]C1010950110153000310LOT\x1d21SER\r\n")
    s = rec.scan()
    assert s.text == "]C1010950110153000310LOT\x1d21SER"
    assert (s.scanner, s.frame_size, s.error) == ("ser1", 1, None)
    assert reader.last_seen is not None and abs(s.monotonic - time.monotonic()) < WAIT
    ptys[0].write(b"A;B\r")
    a, b = rec.scan(), rec.scan()
    assert (a.text, b.text, a.frame_id, a.frame_size) == ("A", "B", b.frame_id, 2)
    assert a.frame_id == s.frame_id + 1  # type: ignore[operator]
    assert rec.threads == {"serial:ser1"}


def test_idle_timeout_framing_over_serial(
    make_reader: Callable[..., tuple[SerialReader, Recorder, Path]], ptys: list[Pty]
) -> None:
    _, rec, _ = make_reader(FramerConfig(terminator="", idle_timeout=0.05))
    rec.wait_state("connected")
    ptys[0].write(b"ABC")
    ptys[0].write(b"DEF")
    assert rec.scan().text == "ABCDEF"
    assert rec.scans.empty()


def test_send_reaches_the_scanner(
    make_reader: Callable[..., tuple[SerialReader, Recorder, Path]], ptys: list[Pty]
) -> None:
    reader, rec, _ = make_reader(good_read_bytes="\\x07OK", bad_read_bytes="<ESC>")
    rec.wait_state("connected")
    assert reader.send(b"\x1b[beep]")
    assert ptys[0].read(7) == b"\x1b[beep]"
    assert reader.beep(True) and ptys[0].read(3) == b"\x07OK"
    assert reader.beep(False) and ptys[0].read(1) == b"\x1b"


def test_pty_closes_under_the_reader_and_comes_back(
    make_reader: Callable[..., tuple[SerialReader, Recorder, Path]],
    ptys: list[Pty],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="drivers.scanners")
    reader, rec, link = make_reader()
    rec.wait_state("connected")
    ptys[0].write(b"BEFORE\r\n")
    assert rec.scan().text == "BEFORE"
    ptys[0].write(b"PARTIAL")  # lost with the device; must be logged, not emitted
    wait_for(lambda: reader.last_seen is not None, "partial bytes read")
    time.sleep(0.05)
    ptys[0].close()  # the scanner is unplugged ...
    link.unlink()  # ... and udev removes its by-id link (else another pty may reuse the number)
    rec.wait_state("disconnected")
    assert not reader.connected
    assert reader.send(b"x") is False
    time.sleep(0.3)  # many retries fail meanwhile (backoff <= 50 ms)
    assert rec.states() == ["connected", "disconnected"]
    warnings = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not per retry
    assert any("partial frame lost" in r.getMessage() for r in caplog.records)

    ptys.append(Pty())  # plugged in again: a new pty, the stable name points to it
    point(link, ptys[1].name)
    rec.wait_state("connected", 2)
    assert reader.connected
    ptys[1].write(b"AFTER\r\n")
    assert rec.scan().text == "AFTER"
    assert rec.scans.empty()
    assert reader.send(b"ok") and ptys[1].read(2) == b"ok"


def test_port_missing_at_start_then_appears(
    make_reader: Callable[..., tuple[SerialReader, Recorder, Path]], ptys: list[Pty]
) -> None:
    _reader, rec, link = make_reader(with_pty=False)
    rec.wait_state("disconnected")
    assert "cannot open" in rec.statuses[0].detail
    ptys.append(Pty())
    point(link, ptys[0].name)
    rec.wait_state("connected")
    ptys[0].write(b"X1\n")
    assert rec.scan().text == "X1"


def test_heartbeat_lost_and_alive(
    make_reader: Callable[..., tuple[SerialReader, Recorder, Path]], ptys: list[Pty]
) -> None:
    framing = FramerConfig(heartbeat="HB", heartbeat_interval=0.04, no_read="NOREAD")
    _, rec, _ = make_reader(framing)
    rec.wait_state("connected")
    rec.wait_state("heartbeat_lost")  # 2.5 x 40 ms of silence
    ptys[0].write(b"HB\r\n")
    rec.wait_state("alive")
    ptys[0].write(b"NOREAD\r\n")
    nr = rec.scan()
    assert (nr.text, nr.error) == ("", "no_read")
    assert rec.scans.empty()  # the heartbeat itself is not a scan
    assert rec.states()[:3] == ["connected", "heartbeat_lost", "alive"]


def test_too_long_frame_becomes_a_rejected_scan(
    make_reader: Callable[..., tuple[SerialReader, Recorder, Path]], ptys: list[Pty]
) -> None:
    _, rec, _ = make_reader(FramerConfig(max_length=16))
    rec.wait_state("connected")
    ptys[0].write(b"Y" * 100 + b"\r\nOK\r\n")
    tl = rec.scan()
    assert tl.error == "frame_too_long" and tl.text == "Y" * 16
    assert rec.scan().text == "OK"


def test_stop_is_prompt_and_reports(
    make_reader: Callable[..., tuple[SerialReader, Recorder, Path]],
) -> None:
    reader, rec, _ = make_reader()
    rec.wait_state("connected")
    t0 = time.monotonic()
    reader.stop()
    assert time.monotonic() - t0 < 1.0
    assert not reader.connected
    assert reader.send(b"x") is False
    assert rec.states()[-1] == "disconnected"
