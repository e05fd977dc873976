"""Shared pytest fixtures: a private mosquitto broker on a free loopback port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# the one session-wide chromium (Playwright allows one sync instance per thread): defined
# here so that every test module shares it
from tests.browser import chromium  # noqa: F401


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Broker:
    """A private mosquitto: ``start()``/``stop()`` may be called again (restart on the same port)."""

    port: int
    conf: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen(
            [exe, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "ab"),  # noqa: SIM115
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {self.log.read_text()}") from None
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def make_broker(tmp: Path, extra_conf: str = "") -> Broker:
    """A broker config in ``tmp`` listening on a free loopback port (not started)."""
    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        pytest.fail("mosquitto is not installed (.ci/run installs it)")
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence false\n"
        "max_inflight_messages 0\n"
        "max_queued_messages 0\n" + extra_conf
    )
    return Broker(port=port, conf=conf, log=tmp / "mosquitto.log")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A running private mosquitto broker on 127.0.0.1:<free port>."""
    d = tmp_path / "broker"
    d.mkdir()
    b = make_broker(d)
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(autouse=True)
def _published_messages_are_valid() -> Iterator[None]:
    """Fail a test in which any ``Collector`` received a payload that breaks its schema."""
    from tests.gw_util import Collector

    Collector.instances.clear()
    yield
    bad = [m for c in Collector.instances for m in c.invalid]
    Collector.instances.clear()
    assert not bad, "the gateway published invalid payloads:\n" + "\n".join(bad[:20])
