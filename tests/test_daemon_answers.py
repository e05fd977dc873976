"""The running daemon answers "where is it now" over MQTT and raises expiry alerts.

In-process gateway against a private mosquitto: ``stock``/``trace`` commands answered
with MQTT 5 response topic + correlation data, the same rows ``traceway stock/trace
--json`` print, bounded; the expiry check at start publishes its alerts once per day,
also across a restart.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.config import load_config
from gateway.daemon import Gateway
from gateway.store import queries
from mqtt_topics.commands import build_command
from mqtt_topics.validation import validate
from tests.conftest import Broker, free_port
from tests.gw_util import Collector
from tests.scenarios.site import LOT_GTIN, PRODUCTS, SALINE, lot_code

ROOT = "traceway/v1/s1/gw1"
TODAY = date(2026, 11, 21)
LOTS = f"""gtin,lot,expiry,status,location,quantity
{LOT_GTIN},OLD,2026-11-20,active,A1,10
{LOT_GTIN},SOON,2027-01-10,active,A1,5
{LOT_GTIN},FAR,2029-01-10,active,A2,8
{SALINE},S1,2028-01-10,active,A3,4
"""


def write_cfg(tmp: Path, broker: int, scan_port: int) -> Path:
    (tmp / "products.csv").write_text(PRODUCTS)
    (tmp / "lots.csv").write_text(LOTS)
    (tmp / "serials.csv").write_text("gtin,serial,lot,state,location\n")
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
expiry_check_interval = 3600
[stations.dock]
step = "receiving"
location = "DOCK"
duplicate_window = 0
[stations.dock.feedback]
console = false
[scanners.tunnel]
type = "tcp"
station = "dock"
mode = "listen"
port = {scan_port}
[cache]
seed_products = "products.csv"
seed_lots = "lots.csv"
seed_serials = "serials.csv"
"""
    )
    return cfg


class Rig:
    def __init__(self, tmp: Path, broker: Broker) -> None:
        self.scan_port = free_port()
        self.cfg_path = write_cfg(tmp, broker.port, self.scan_port)
        self.col = Collector(broker.port)
        self.col.start()
        self.gw = self._start()
        self.replies: list[tuple[dict[str, Any], bytes | None]] = []
        self.got_reply = threading.Condition()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="central",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_message = self._on_reply
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.client.subscribe(f"{ROOT}/commands/reply/central", qos=1)
        assert self.subscribed.wait(10)

    def _start(self) -> Gateway:
        gw = Gateway(load_config(self.cfg_path), self.cfg_path)
        gw.processor.today = lambda: TODAY  # the check at start runs in the writer, after this
        gw.start()
        deadline = time.monotonic() + 10
        assert gw.publisher is not None
        while not gw.publisher.connected:
            assert time.monotonic() < deadline, "the gateway does not connect"
            time.sleep(0.02)
        return gw

    def restart(self) -> None:
        self.gw.stop()
        self.gw = self._start()

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
        assert validate(reply) == [], reply  # every row checked by the reply schema
        return reply

    def scan(self, *codes: str) -> None:
        """Send codes over the TCP scanner and wait until their outcomes are committed."""
        before = self.gw.scan_counters.totals()[0]
        done = sum(before.values())
        with socket.create_connection(("127.0.0.1", self.scan_port), timeout=5) as sock:
            for c in codes:
                sock.sendall(c.encode("latin-1") + b"\r\n")
            deadline = time.monotonic() + 10
            while sum(self.gw.scan_counters.totals()[0].values()) < done + len(codes):
                assert time.monotonic() < deadline, "scans not processed"
                time.sleep(0.02)

    def cli_rows(self, fn: Any, **kw: Any) -> list[dict[str, Any]]:
        """What ``traceway stock/trace --json`` prints (same query, read-only file)."""
        import sqlite3

        conn = sqlite3.connect(f"file:{self.gw.cfg.storage.path}?mode=ro", uri=True)
        try:
            return list(fn(conn, **kw))
        finally:
            conn.close()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
        self.gw.stop()
        self.col.stop()


@pytest.fixture
def rig(tmp_path: Path, broker: Broker) -> Iterator[Rig]:
    r = Rig(tmp_path, broker)
    yield r
    r.close()


def expiry_alerts(rig: Rig) -> list[tuple[str, str, str, int]]:
    """Expiry alerts received, once per event_id (delivery is at least once: an alert
    whose PUBACK was not yet recorded at a stop is sent again after the restart)."""
    got = {a["event_id"]: a for a in rig.col.of("alerts") if "stock" in a}
    return sorted(
        (a["alert"], a["stock"]["lot"], a["stock"]["location"], a["stock"]["days_left"])
        for a in got.values()
    )


def wait(pred: Any, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_expiry_alerts_at_start_once_per_day_across_a_restart(rig: Rig) -> None:
    expected = [("expired_in_stock", "OLD", "A1", -1), ("expiry_warning", "SOON", "A1", 50)]
    assert wait(lambda: len(expiry_alerts(rig)) >= 2), rig.col.of("alerts")
    assert expiry_alerts(rig) == expected
    sev = {a["alert"]: a["severity"] for a in rig.col.of("alerts") if "stock" in a}
    assert sev == {"expired_in_stock": "error", "expiry_warning": "warning"}
    assert rig.gw.expiry_check is not None
    assert rig.gw.expiry_check.run_once().result(10) == 0  # the next check: nothing new
    rig.restart()
    assert rig.gw.expiry_check is not None
    assert rig.gw.expiry_check.run_once().result(10) == 0  # restarted the same day: nothing
    assert rig.command("ping")["ok"] is True  # anything published by now has arrived
    assert expiry_alerts(rig) == expected


def test_stock_and_trace_commands_answer_what_the_cli_prints(rig: Rig) -> None:
    rig.scan(lot_code(LOT_GTIN, "NEW", "290101"))
    stock = rig.command("stock")
    assert stock["ok"] is True, stock
    result = stock["result"]
    assert result["rows"] == rig.cli_rows(queries.stock)
    assert (result["count"], result["limit"], result["truncated"]) == (5, 500, False)
    assert {(r["lot"], r["location"], r["quantity"]) for r in result["rows"]} == {
        ("OLD", "A1", 10),
        ("SOON", "A1", 5),
        ("FAR", "A2", 8),
        ("S1", "A3", 4),
        ("NEW", "DOCK", 1),
    }
    at_a1 = rig.command("stock", {"location": "A1", "gtin": LOT_GTIN})["result"]
    assert at_a1["rows"] == rig.cli_rows(queries.stock, location="A1", gtin=LOT_GTIN)
    assert at_a1["count"] == 2
    cut = rig.command("stock", {"limit": 2})["result"]
    assert cut["rows"] == result["rows"][:2] and cut["truncated"] is True
    trace = rig.command("trace", {"gtin": LOT_GTIN, "lot": "NEW"})["result"]
    assert trace["rows"] == rig.cli_rows(queries.trace, gtin=LOT_GTIN, lot="NEW")
    [move] = trace["rows"]
    assert (move["movement"], move["to"], move["quantity"]) == (
        "receive",
        {"type": "location", "id": "DOCK"},
        1,
    )
    nothing = rig.command("trace", {"sscc": "340123450000000000"})["result"]
    assert nothing == {"rows": [], "count": 0, "limit": 500, "truncated": False}
    bad = rig.command("trace", {"gtin": LOT_GTIN})
    assert bad["ok"] is False and bad["error"]["code"] == "invalid_args"
    assert "gtin with lot" in bad["error"]["message"]
