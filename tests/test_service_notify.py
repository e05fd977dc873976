"""sd_notify and the health-gated watchdog, against a real unix datagram socket."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import service


class Recorder:
    """A ``send`` stand-in that records messages."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def __call__(self, msg: str) -> bool:
        self.sent.append(msg)
        return True


class NotifySink:
    """A unix datagram socket standing in for systemd's notify socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(0.05)

    def drain(self) -> list[str]:
        """Every message received so far."""
        out: list[str] = []
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except (TimeoutError, BlockingIOError):
                return out

    def wait_for(self, pred: str, timeout: float = 3.0) -> list[str]:
        """Messages until one equal to ``pred`` arrives (or the timeout passes)."""
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got += self.drain()
            if pred in got:
                return got
        return got


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySink]:
    """A filesystem notify socket (short path: AF_UNIX paths are limited to 108 bytes)."""
    d = Path(tempfile.mkdtemp(prefix="tw-sd-"))
    path = d / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    try:
        yield NotifySink(sock)
    finally:
        sock.close()
        shutil.rmtree(d, ignore_errors=True)


def test_no_socket_is_a_noop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert service.notify("READY=1") is False
    assert service.ready() is False


def test_unreachable_socket_returns_false(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/traceway/notify")
    assert service.notify("READY=1") is False


def test_messages_arrive(sink: NotifySink) -> None:
    assert service.ready("up: 2 scanners") is True
    assert service.status("printing\nlabel 3") is True
    assert service.extend_timeout(1.5) is True
    assert service.stopping() is True
    assert sink.drain() == [
        "READY=1\nSTATUS=up: 2 scanners",
        "STATUS=printing label 3",
        "EXTEND_TIMEOUT_USEC=1500000",
        "STOPPING=1",
    ]


def test_abstract_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"traceway-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert service.notify("WATCHDOG=1") is True
        assert sock.recv(100) == b"WATCHDOG=1"


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 30.0),
        ("500000", "self", 0.5),
        ("30000000", "other", None),
        ("0", None, None),
        ("junk", None, None),
        (None, None, None),
    ],
)
def test_watchdog_interval(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    for key, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            if value == "self":
                value = str(os.getpid())
            elif value == "other":
                value = str(os.getpid() + 1)
            monkeypatch.setenv(key, value)
    assert service.watchdog_interval() == expected


def test_watchdog_pings_only_while_healthy(sink: NotifySink) -> None:
    healthy = threading.Event()
    healthy.set()
    wd = service.Watchdog(healthy.is_set, interval=0.1)
    with wd:
        got = sink.wait_for("WATCHDOG=1")
        assert "WATCHDOG=1" in got
        time.sleep(0.2)
        assert sink.drain().count("WATCHDOG=1") >= 2  # every ~50 ms

        healthy.clear()
        time.sleep(0.1)  # let an in-flight ping land
        sink.drain()
        time.sleep(0.3)  # ~6 periods
        assert "WATCHDOG=1" not in sink.drain()

        healthy.set()
        assert "WATCHDOG=1" in sink.wait_for("WATCHDOG=1")
    sink.drain()
    time.sleep(0.2)
    assert sink.drain() == []  # stopped


def test_watchdog_from_environment(sink: NotifySink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    with service.Watchdog(lambda: True) as wd:
        assert wd.interval == pytest.approx(0.1)
        assert "WATCHDOG=1" in sink.wait_for("WATCHDOG=1")


def test_watchdog_disabled_without_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    rec = Recorder()
    wd = service.Watchdog(lambda: True, send=rec)
    assert not wd.enabled
    wd.start()
    wd.stop()
    assert rec.sent == []


def test_failing_health_check_counts_as_unhealthy() -> None:
    rec = Recorder()

    def boom() -> bool:
        raise RuntimeError("writer thread died")

    wd = service.Watchdog(boom, interval=1.0, send=rec)
    assert wd.check_once() is False
    assert wd.check_once() is False
    assert rec.sent == ["STATUS=unhealthy: watchdog pings withheld"]  # said once, no ping
