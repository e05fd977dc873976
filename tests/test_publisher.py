"""The publisher's window: at most max_inflight handed to paho, seq order, ack only on success."""

from __future__ import annotations

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
