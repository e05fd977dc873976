"""Helpers for end-to-end tests: a gateway subprocess, a TCP scan pusher, an MQTT collector."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from mqtt_topics.topics import spec_for_topic
from mqtt_topics.validation import check_message

SERIAL_GTIN = "09506000134369"


def gateway_config(
    tmp: Path,
    broker_port: int,
    scan_port: int,
    *,
    extra: str = "",
    synchronous: str = "FULL",
) -> Path:
    """A config with one TCP scanner in listen mode on ``scan_port``."""
    cfg = tmp / "gateway.toml"
    cfg.write_text(
        f"""
[gateway]
site = "test-site"
id = "gw1"

[broker]
host = "127.0.0.1"
port = {broker_port}
reconnect_max_delay = 2
keepalive = 5

[storage]
path = "state/gw.db"
synchronous = "{synchronous}"

[stations.dock]
step = "receiving"
unknown_gtin = "accept"
duplicate_window = 0

[scanners.tunnel]
type = "tcp"
station = "dock"
mode = "listen"
host = "127.0.0.1"
port = {scan_port}
{extra}
"""
    )
    return cfg


class GatewayProcess:
    """``traceway run`` as a subprocess; its log goes to a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_port: int | None = None) -> None:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "run", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=Path(__file__).resolve().parent.parent,
            )
        if wait_port is not None:
            wait_listening(wait_port, self)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 15) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    f"gateway did not stop on SIGTERM:\n{self.log.read_text()[-3000:]}"
                ) from None
        return int(self.proc.returncode)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def wait_listening(port: int, gw: GatewayProcess | None = None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gw is not None and not gw.alive():
            raise AssertionError(f"gateway exited:\n{gw.log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listening on {port}")


class Pusher:
    """A fixed-mount reader that connects to the gateway and pushes CR-LF framed codes."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None

    def connect(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
                # the listener may accept a probe connection first; give it a moment
                time.sleep(0.1)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def send(self, code: str) -> None:
        assert self.sock is not None
        self.sock.sendall(code.encode("latin-1") + b"\r\n")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class Collector:
    """Subscribes to a topic filter (QoS 1) and keeps every payload.

    Every message on a topic the gateway publishes is validated against its schema
    (``mqtt_topics.validation``); problems go to ``invalid``, and the autouse fixture
    in ``conftest.py`` fails the test if any collector of it saw one.
    """

    #: every collector created during the current test (the fixture clears it)
    instances: ClassVar[list[Collector]] = []

    def __init__(self, port: int, topic: str = "traceway/v1/#", client_id: str = "") -> None:
        Collector.instances.append(self)
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.invalid: list[str] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"collector-{time.monotonic_ns()}",
            protocol=mqtt.MQTTv5,
        )
        self.topic = topic
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.port = port

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(self.topic, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            payload = {"_raw": msg.payload.decode("latin-1")}
        spec = spec_for_topic(msg.topic)
        errors = [] if spec and spec.direction == "subscribe" else published_errors(msg)
        with self.lock:
            self.messages.append((msg.topic, payload))
            self.invalid.extend(f"{msg.topic}: {e} in {msg.payload[:400]!r}" for e in errors)

    def start(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.client.connect("127.0.0.1", self.port, keepalive=10)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.client.loop_start()
        assert self.subscribed.wait(timeout), "subscription not acknowledged"

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def of(self, suffix: str) -> list[dict[str, Any]]:
        with self.lock:
            return [p for t, p in self.messages if t.endswith("/" + suffix)]

    def wait_for(self, suffix: str, count: int, timeout: float) -> list[dict[str, Any]]:
        """Wait until ``count`` distinct event_ids arrived on ``.../suffix``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.of(suffix)
            if len({p["event_id"] for p in got}) >= count:
                return got
            time.sleep(0.05)
        return self.of(suffix)


def published_errors(msg: mqtt.MQTTMessage) -> list[str]:
    """Schema errors of a message the gateway published (empty when valid)."""
    return check_message(msg.topic, bytes(msg.payload))[1]


def serial_code(i: int) -> str:
    return f"]C101{SERIAL_GTIN}21SN{i:06d}"
