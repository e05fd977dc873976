"""The daemon in-process against a private broker and a fake Zebra printer.

Covers the wiring: MQTT commands with response topic + correlation data, tunnel gates
(multi-code frames, no-reads), print on accept through the durable queue, device status,
metrics and a config reload that restarts only what changed.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from drivers.printers.fake_zebra import FakeZebra
from gateway.config import load_config
from gateway.daemon import Gateway
from mqtt_topics.commands import build_command
from mqtt_topics.validation import validate
from tests.conftest import Broker, free_port
from tests.gw_util import Collector

ROOT = "traceway/v1/s1/gw1"
DEMO = Path(__file__).resolve().parent.parent / "config" / "demo"


def write_cfg(tmp: Path, broker: int, scan_port: int, printer_port: int, extra: str = "") -> Path:
    cfg = tmp / "gw.toml"
    cfg.write_text(
        f"""
[gateway]
site = "s1"
id = "gw1"
[broker]
port = {broker}
reconnect_max_delay = 2
[storage]
path = "state/gw.db"
[metrics]
interval = 0.5
[stations.dock]
step = "receiving"
location = "DOCK"
unknown_gtin = "accept"
duplicate_window = 0
print_on_accept = "lot"
printer = "zebra"
[stations.dock.gate]
enabled = true
window = 0.2
[stations.dock.feedback]
console = false
[scanners.tunnel]
type = "tcp"
station = "dock"
mode = "listen"
port = {scan_port}
[scanners.tunnel.framing]
separator = ";"
no_read = "NOREAD"
[printers.zebra]
transport = "tcp"
port = {printer_port}
status_interval = 0.5
confirm_timeout = 5
[cache]
seed_products = "{DEMO / "products.csv"}"
seed_lots = "{DEMO / "lots.csv"}"
seed_serials = "{DEMO / "serials.csv"}"
{extra}
"""
    )
    return cfg


class Rig:
    def __init__(self, tmp: Path, broker: Broker) -> None:
        self.zebra = FakeZebra().start()
        self.scan_port = free_port()
        self.cfg_path = write_cfg(tmp, broker.port, self.scan_port, self.zebra.port)
        self.col = Collector(broker.port)
        self.col.start()
        self.gw = Gateway(load_config(self.cfg_path), self.cfg_path)
        self.gw.start()
        deadline = time.monotonic() + 10
        assert self.gw.publisher is not None
        while not self.gw.publisher.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.scan_port), timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "the TCP scanner does not listen"
                time.sleep(0.05)
        time.sleep(0.2)
        self.replies: list[tuple[dict[str, Any], bytes | None]] = []
        self.got_reply = threading.Condition()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="central",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_message = self._on_reply
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.client.subscribe(f"{ROOT}/commands/reply/central", qos=1)
        time.sleep(0.2)

    def _on_reply(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        corr = getattr(msg.properties, "CorrelationData", None)
        with self.got_reply:
            self.replies.append((json.loads(msg.payload), corr))
            self.got_reply.notify_all()

    def command(self, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = f"{ROOT}/commands/reply/central"
        corr = f"c-{time.monotonic_ns()}".encode()
        props.CorrelationData = corr
        n = len(self.replies)
        self.client.publish(
            f"{ROOT}/commands", json.dumps(build_command(name, args)), qos=1, properties=props
        )
        with self.got_reply:
            assert self.got_reply.wait_for(lambda: len(self.replies) > n, 10), "no reply"
            reply, got_corr = self.replies[n]
        assert got_corr == corr
        assert validate(reply) == [], reply
        return reply

    def send(self, frame: str) -> None:
        self.sock.sendall(frame.encode("latin-1") + b"\r\n")

    def close(self) -> None:
        self.sock.close()
        self.client.loop_stop()
        self.client.disconnect()
        self.gw.stop()
        self.col.stop()
        self.zebra.stop()


@pytest.fixture
def rig(tmp_path: Path, broker: Broker) -> Iterator[Rig]:
    r = Rig(tmp_path, broker)
    yield r
    r.close()


def wait(pred: Any, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_gate_package_print_and_status(rig: Rig) -> None:
    # one package: a pallet label (00) beside a content label (02)(37)(10), read in one frame
    rig.send("]C100095060001234567893;]C10209506000134352370012\x1d10LOTA;]C100095060001234567893")
    rig.send("NOREAD")
    rig.send("]C1010950600013436821SN1;]C100095060001234567890")  # wrong check digits
    rig.send("]C1010950600013436910LOT\x1d17270231")  # 31 February
    assert wait(lambda: len(rig.col.of("events")) >= 1 and len(rig.col.of("alerts")) >= 3)
    ev = rig.col.of("events")[0]
    assert validate(ev) == []
    assert ev["movement"] == "receive"
    assert "\n" in ev["scan"]["raw"]  # the package's codes together
    alerts = [a["alert"] for a in rig.col.of("alerts")]
    assert "no_read" in alerts
    assert alerts.count("invalid_barcode") == 3, alerts
    # print on accept: the lot label reached the printer
    assert wait(lambda: len(rig.zebra.state.printed) >= 1, 15), rig.zebra.state
    # device status for the scanner and the printer, retained
    assert wait(lambda: any(t.endswith("/devices/tunnel") for t, _ in rig.col.messages))
    assert wait(lambda: any(t.endswith("/devices/zebra") for t, _ in rig.col.messages))
    for t, p in rig.col.messages:
        if "/devices/" in t or t.endswith("/metrics"):
            assert validate(p) == [], p
    assert wait(lambda: len(rig.col.of("metrics")) >= 1)


def test_commands(rig: Rig) -> None:
    assert rig.command("ping")["ok"] is True
    status = rig.command("status")
    assert status["ok"] is True
    publisher = status["result"]["publisher"]
    assert publisher["restarts"] == 0 and publisher["connected"] is True
    assert publisher["pid"] == rig.gw.publisher.pid  # type: ignore[union-attr]
    r = rig.command("set_step", {"station": "dock", "step": "shipping"})
    assert r["ok"] is True
    assert rig.gw.processor.stations["dock"].step == "shipping"
    bad = rig.command("set_step", {"station": "nowhere", "step": "shipping"})
    assert bad["ok"] is False
    unknown = rig.command("self_destruct")
    assert unknown["ok"] is False
    assert rig.gw.processor.stations["dock"].step == "shipping"  # nothing changed
    printed = rig.command(
        "print",
        {
            "template": "lot",
            "fields": {"gtin": "09506000134352", "lot": "L1", "expiry": "2030-01-31"},
        },
    )
    assert printed["ok"] is True, printed
    assert wait(lambda: len(rig.zebra.state.printed) >= 1, 15)
    tx = rig.command(
        "set_transaction", {"station": "dock", "biz_transactions": [{"type": "po", "id": "4711"}]}
    )
    assert tx["ok"] is True, tx
    assert rig.gw.processor.stations["dock"].transaction == ("po", "4711")


def test_reload_restarts_only_what_changed(rig: Rig) -> None:
    assert rig.command("reload_config")["ok"] is True  # nothing changed
    text = rig.cfg_path.read_text().replace('location = "DOCK"', 'location = "DOCK2"')
    rig.cfg_path.write_text(text)
    reader_before = rig.gw.readers["tunnel"]
    r = rig.command("reload_config")
    assert r["ok"] is True, r
    assert rig.gw.readers["tunnel"] is reader_before  # the scanner was not restarted
    assert rig.gw.processor.cfg.stations["dock"].location == "DOCK2"
    broken = rig.cfg_path.read_text().replace("[broker]\n", "[broker]\nkeepalive = 99\n")
    rig.cfg_path.write_text(broken)
    r = rig.command("reload_config")
    assert r["ok"] is False  # broker changes need a restart; refused, nothing changed


def test_published_events_are_pruned_unsent_never(rig: Rig) -> None:
    def seed(store: Any) -> None:
        # what the rig published so far is old too (pruning walks in seq order)
        store.conn.execute("UPDATE outbox SET published_at = 1.0 WHERE published_at IS NOT NULL")
        for seq, published in ((1001, 1.0), (1002, None), (1003, time.time()), (1004, 1.0)):
            store.conn.execute(
                "INSERT INTO outbox(seq, event_id, kind, topic, payload, created_at, published_at) "
                "VALUES (?, ?, 'event', 't', '{}', 1.0, ?)",
                (seq, f"e{seq}", published),
            )

    rig.gw.writer.call(seed)
    assert rig.gw.prune_once().result(timeout=10) is False  # nothing more waiting
    left = rig.gw.writer.call(
        lambda s: [r[0] for r in s.conn.execute("SELECT seq FROM outbox WHERE published_at < 2")]
    )
    # old published rows gone up to the first recent one; the walk stops there (1004 waits
    # for a later run); unsent and recent rows kept
    assert left == [1004]
    unsent = rig.gw.writer.call(
        lambda s: [r[0] for r in s.conn.execute("SELECT seq FROM outbox WHERE seq > 1000")]
    )
    assert unsent == [1002, 1003, 1004]
