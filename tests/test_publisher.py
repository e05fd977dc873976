"""The publisher's window: at most max_inflight handed to paho, seq order, ack only on success."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from gateway.config import BrokerConfig
from gateway.mqtt.publisher import Publisher
from gateway.store.db import open_database
from gateway.store.hot import HotStore, connect


class FakeInfo:
    def __init__(self, mid: int) -> None:
        self.mid, self.rc = mid, 0


class FakeClient:
    """Stands in for paho: records what was handed over, assigns message ids."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.mid = 0

    def publish(self, topic: str, payload: Any, qos: int = 0, **_: Any) -> FakeInfo:
        assert qos == 1
        self.mid += 1
        self.sent.append((topic, payload))
        return FakeInfo(self.mid)


def make(
    tmp_path: Path, rows: int, window: int
) -> tuple[Publisher, FakeClient, list[int], sqlite3.Connection]:
    db = tmp_path / "gw.db"
    open_database(db).dispose()
    store = HotStore(connect(db))
    store.begin()
    for seq in range(1, rows + 1):
        store.insert_outbox(seq, f"e{seq}", "event", "t/events", f'{{"seq":{seq}}}', 1.0)
    store.commit()
    marked: list[int] = []
    pub = Publisher(BrokerConfig(max_inflight=window), "test", db, marked.extend)
    fake = FakeClient()
    pub.client = fake  # type: ignore[assignment]
    pub._connected.set()
    return pub, fake, marked, sqlite3.connect(db)


def ack(pub: Publisher, mid: int, ok: bool = True) -> None:
    rc = ReasonCode(PacketTypes.PUBACK, identifier=0 if ok else 0x80)
    pub._on_publish(pub.client, None, mid, rc, None)  # type: ignore[arg-type]


def seqs(fake: FakeClient) -> list[int]:
    return [int(p.split(":")[1].rstrip("}")) for _, p in fake.sent]


def test_window_order_and_failed_puback(tmp_path: Path) -> None:
    pub, fake, marked, conn = make(tmp_path, rows=10, window=3)
    pub._fill_window(conn)
    assert seqs(fake) == [1, 2, 3]  # never more than the window
    pub._fill_window(conn)
    assert seqs(fake) == [1, 2, 3]  # full: nothing more until acks come
    ack(pub, 1)
    ack(pub, 2, ok=False)  # the broker refused it: not marked, sent again
    pub._drain_acks()
    assert marked == [1]
    pub._fill_window(conn)
    assert seqs(fake) == [1, 2, 3, 2, 4]  # the failed one first, then in seq order
    assert pub.inflight == 3
    for mid in (3, 4, 5):
        ack(pub, mid)
    pub._drain_acks()
    assert sorted(marked) == [1, 2, 3, 4]


def test_fresh_rows_from_memory_then_gap_from_the_outbox(tmp_path: Path) -> None:
    pub, fake, marked, conn = make(tmp_path, rows=6, window=10)
    pub.feed([(4, "t/events", '{"seq":4}'), (5, "t/events", '{"seq":5}')])
    pub._fill_window(conn)
    # 1–3 are only in the outbox: read from it; 4–6 follow in order, each once
    assert seqs(fake) == [1, 2, 3, 4, 5, 6]
    pub.feed([(7, "t/events", '{"seq":7}')])
    pub._fill_window(conn)
    assert seqs(fake)[-1] == 7  # the contiguous next row comes straight from memory
    assert marked == []  # nothing counts as published without a PUBACK


def test_resending_is_said_only_after_a_reconnect(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows handed over on the first connection are not 're-sent after reconnect'."""
    from types import SimpleNamespace

    pub, fake, _marked, conn = make(tmp_path, rows=5, window=3)
    pub._connected.clear()
    ok = ReasonCode(PacketTypes.CONNACK, identifier=0)
    flags = SimpleNamespace(session_present=False)
    caplog.set_level("INFO", logger="gateway.mqtt.publisher")
    pub._on_connect(fake, None, flags, ok, None)  # type: ignore[arg-type]
    pub._fill_window(conn)  # the publishing thread may run before it sees the reconnect flag
    pub._after_reconnect()
    assert "resending" not in caplog.text
    pub._on_disconnect(fake, None, flags, ok, None)  # type: ignore[arg-type]
    pub._on_connect(fake, None, flags, ok, None)  # type: ignore[arg-type]
    pub._after_reconnect()
    assert "resending 3 unacknowledged event(s) after reconnect" in caplog.text


# -- reconnecting (issue 11): prompt when the broker returns, never hammering ----------------


def test_retry_window_caps_waiting_for_a_silent_broker_not_for_a_refusing_one() -> None:
    from gateway.mqtt.publisher import UNREACHABLE_RETRY_MAX, retry_window

    assert retry_window("unreachable", 1.0, 30.0) == (1.0, UNREACHABLE_RETRY_MAX)
    assert retry_window("unreachable", 0.2, 30.0) == (0.2, UNREACHABLE_RETRY_MAX)
    assert retry_window("unreachable", 5.0, 30.0) == (UNREACHABLE_RETRY_MAX,) * 2
    assert retry_window("refused", 1.0, 30.0) == (1.0, 30.0)  # it answers: back off fully
    assert retry_window("refused", 2.0, 1.0) == (2.0, 2.0)  # max below min: min wins


def _attempts(pub: Publisher, n: int, timeout: float = 30.0) -> list[float]:
    """Start ``pub`` and return the monotonic times of its first ``n`` failed connects."""
    import threading
    import time

    times: list[float] = []
    got = threading.Event()
    inner = pub.client.on_connect_fail

    def counting(client: Any, userdata: Any) -> None:
        times.append(time.monotonic())
        inner(client, userdata)  # type: ignore[misc]
        if len(times) >= n:
            got.set()

    pub.client.on_connect_fail = counting
    pub.start()
    try:
        got.wait(timeout)
    finally:
        pub.stop(timeout=1.0)
    return times


def test_a_closed_port_gets_a_bounded_number_of_attempts(tmp_path: Path) -> None:
    """Nothing listens: retried promptly, but never more than about once a second."""
    from tests.conftest import free_port

    db = tmp_path / "gw.db"
    open_database(db).dispose()
    cfg = BrokerConfig(port=free_port(), reconnect_min_delay=0.1, reconnect_max_delay=30)
    pub = Publisher(cfg, "closed-port", db, lambda seqs: None)
    times = _attempts(pub, 6)
    assert len(times) >= 6
    assert pub._retry_kind == "unreachable"
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # 0.1, 0.2, 0.4, 0.8 then 1.0 s (UNREACHABLE_RETRY_MAX): a lower bound only (a busy
    # machine makes gaps longer, never shorter), so at most ~60 attempts a minute
    assert all(g >= 0.09 for g in gaps), gaps
    assert gaps[-1] >= 0.75, gaps


def test_a_broker_that_answers_but_refuses_is_backed_off(tmp_path: Path) -> None:
    """TCP accepted, TLS fails: a set-up problem, retried with the configured back-off."""
    import socket
    import threading

    from gateway.config import TlsConfig
    from tests.tls_util import make_pki

    pki = make_pki(tmp_path)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    port = srv.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.close()  # not a broker: the TLS handshake fails

    threading.Thread(target=serve, daemon=True).start()
    db = tmp_path / "gw.db"
    open_database(db).dispose()
    cfg = BrokerConfig(
        port=port,
        tls=TlsConfig(enabled=True, ca_file=pki.ca.cert_file),
        reconnect_min_delay=0.1,
        reconnect_max_delay=30,
    )
    pub = Publisher(cfg, "refused", db, lambda seqs: None)
    try:
        times = _attempts(pub, 4)
    finally:
        srv.close()
    assert pub._retry_kind == "refused"
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) >= 3 and gaps[2] >= 0.35, gaps  # 0.1, 0.2, 0.4: doubling, not capped


# -- the plain PUBACK without paho's per-packet objects (issue 11) ------------------------


def test_lean_client_answers_a_plain_puback_and_leaves_others_to_paho() -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from gateway.mqtt.publisher import LeanClient

    c = LeanClient(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    got: list[tuple[int, bool, str]] = []
    c.on_publish = lambda client, ud, mid, rc, props: got.append((mid, rc.is_failure, str(rc)))
    ok = c.publish("t", b"x", qos=1)  # not connected: kept in flight by paho
    bad = c.publish("t", b"y", qos=1)
    c._in_packet = {"command": 0x40, "packet": bytes([0, ok.mid])}
    c._handle_pubackcomp("PUBACK")
    c._in_packet = {"command": 0x40, "packet": bytes([0, bad.mid, 0x87, 0])}
    c._handle_pubackcomp("PUBACK")
    c._in_packet = {"command": 0x40, "packet": bytes([0, ok.mid])}
    c._handle_pubackcomp("PUBACK")  # a stale id: ignored, as paho does
    assert got == [(ok.mid, False, "Success"), (bad.mid, True, "Not authorized")]
    assert ok.mid not in c._out_messages and bad.mid not in c._out_messages  # window freed


# -- inline: the publisher process's mode (rounds in paho's network thread) -------------------


@pytest.mark.parametrize("inline", [True, False])
def test_publishing_to_a_real_broker_inline_and_threaded(
    tmp_path: Path, broker: Any, inline: bool
) -> None:
    """Rows in the outbox and rows fed from memory reach a real mosquitto in seq order and
    are marked once acknowledged; inline mode starts no thread of its own."""
    import threading
    import time

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    db = tmp_path / "gw.db"
    open_database(db).dispose()
    store = HotStore(connect(db))
    store.begin()
    for seq in range(1, 4):  # committed before the publisher starts: read from the outbox
        store.insert_outbox(seq, f"e{seq}", "event", "t/events", f'{{"seq":{seq}}}', 1.0)
    store.commit()
    got: list[int] = []
    sub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = lambda _c, _u, m: got.append(int(m.payload.decode().split(":")[1][:-1]))
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("t/events", qos=1)
    sub.loop_start()
    marked: list[int] = []
    lock = threading.Lock()

    def mark(seqs: list[int]) -> None:
        with lock:
            marked.extend(seqs)

    cfg = BrokerConfig(host="127.0.0.1", port=broker.port)
    pub = Publisher(cfg, f"inline-{inline}", db, mark, inline=inline)
    try:
        pub.start()
        deadline = time.monotonic() + 10
        while not pub.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # the subscriber's SUBACK
        store.begin()
        rows = []
        for seq in range(4, 51):
            payload = f'{{"seq":{seq}}}'
            store.insert_outbox(seq, f"e{seq}", "event", "t/events", payload, 1.0)
            rows.append((seq, "t/events", payload))
        store.commit()
        pub.feed(rows[:20])
        pub.feed(rows[20:])
        while (len(marked) < 50 or len(got) < 50) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(marked) == list(range(1, 51))
        assert got == list(range(1, 51))  # each once, in seq order
        names = {t.name for t in threading.enumerate()}
        assert ("publisher" in names) is not inline
        assert pub.alive
    finally:
        pub.stop()
        sub.loop_stop()
        sub.disconnect()
    assert pub._db is None  # the inline round's connection is closed with it
