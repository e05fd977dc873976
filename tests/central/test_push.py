"""Holds and recalls become ordered cache deltas per site; an offline gateway catches up."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, text

from central.config import BrokerConfig
from central.custody.projection import store_events
from central.masterdata.holds import (
    Unit,
    deltas_since,
    record_gateway_version,
    release_block,
    site_snapshot,
    start_block,
)
from central.masterdata.push import CachePusher
from mqtt_topics.cache import (
    build_ack,
    build_cache_version,
    build_resync_request,
    validate_delta,
    validate_snapshot,
)
from mqtt_topics.examples import event
from mqtt_topics.topics import GatewayTopics
from tests.conftest import Broker

GTIN = "04012345000016"
RID = "019aaf00-0000-7000-8000-0000000000c8"
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def receive(engine: Engine, lot: str) -> None:
    item: Any = {
        "gtin": GTIN,
        "lot": lot,
        "quantity": 5,
        "uom": "EA",
        "expiry": "2027-01-31",
        "from": {"type": "party", "id": "SUP"},
        "to": {"type": "location", "id": "DOCK"},
    }
    with engine.begin() as c:
        store_events(c, [event(1, "receive", [item], 0)], NOW)  # site hamburg-1


def outbox(engine: Engine) -> list[tuple[str, int, dict[str, Any]]]:
    with engine.connect() as c:
        rows = c.execute(text("SELECT site, version, payload FROM cache_outbox ORDER BY id"))
        return [(r[0], r[1], r[2]) for r in rows]


def test_a_lot_recall_goes_to_every_site_and_follows_the_contract(
    engine: Engine,
) -> None:
    """A recall reaches every site (the lot may still arrive where it has never been)."""
    receive(engine, "L1")
    with engine.begin() as c:
        record_gateway_version(c, "gw-b", "berlin", 1, NOW)
        res = start_block(c, "recall", Unit.parse(GTIN, "L1"), reason="glass", who="qa", now=NOW)
    assert (res.block_id, res.sites, res.all_sites) == ("R-1", {"berlin": 2, "hamburg-1": 2}, True)
    deltas = {site: delta for site, _v, delta in outbox(engine)}
    assert set(deltas) == {"berlin", "hamburg-1"}
    delta = deltas["hamburg-1"]
    assert validate_delta(delta) == [] and (delta["from_version"], delta["version"]) == (1, 2)
    by_entity = {c["entity"]: c for c in delta["changes"]}
    assert by_entity["recall"]["record"]["lots"] == ["L1"]
    assert by_entity["lot"]["record"] == {
        "gtin": GTIN,
        "lot": "L1",
        "expiry": "2027-01-31",  # from the receiving event
        "status": "recalled",
    }
    with engine.begin() as c:
        rel = release_block(c, "R-1", reason="false alarm", who="qa", now=NOW)
    assert rel.sites == {"berlin": 3, "hamburg-1": 3}
    lifted = outbox(engine)[-1][2]
    assert validate_delta(lifted) == []
    assert {(c["op"], c["entity"]) for c in lifted["changes"]} == {
        ("delete", "recall"),
        ("upsert", "lot"),
    }
    assert next(c for c in lifted["changes"] if c["entity"] == "lot")["record"]["status"] == (
        "released"
    )


def test_an_unknown_unit_goes_to_every_known_site(engine: Engine) -> None:
    with engine.begin() as c:
        record_gateway_version(c, "gw-a", "hamburg-1", None, NOW)
        record_gateway_version(c, "gw-b", "berlin", 1, NOW)
        res = start_block(c, "hold", Unit.parse(GTIN, serial="S9"), reason="lab", who="qa", now=NOW)
        sscc = start_block(
            c, "recall", Unit.parse(sscc="340123450000000017"), reason="x", who="qa", now=NOW
        )
    assert res.all_sites and res.sites == {"berlin": 2, "hamburg-1": 2}
    assert sscc.sites == {"berlin": 3, "hamburg-1": 3}
    for _, _, d in outbox(engine):
        assert validate_delta(d) == []
    last = outbox(engine)[-1][2]["changes"]
    assert last[0]["record"]["scope"] == {"sscc": "340123450000000017"}  # a pallet is held


def test_missed_deltas_or_a_snapshot_for_a_gateway_that_was_away(engine: Engine) -> None:
    receive(engine, "L1")
    with engine.begin() as c:
        start_block(c, "hold", Unit.parse(GTIN, "L1"), reason="lab", who="qa", now=NOW)
        start_block(c, "recall", Unit.parse(GTIN, serial="S1"), reason="x", who="qa", now=NOW)
        start_block(c, "recall", Unit.parse(GTIN, "L1"), reason="x", who="qa", now=NOW)
    with engine.begin() as c:
        got = deltas_since(c, "hamburg-1", 1)
        assert got is not None
        assert [(d["from_version"], d["version"]) for d in got] == [(1, 2), (2, 3), (3, 4)]
        assert deltas_since(c, "hamburg-1", 4) == []
        assert deltas_since(c, "hamburg-1", 9) is None
        snap = site_snapshot(c, "hamburg-1", "req-1", NOW)
        c.execute(text("DELETE FROM cache_outbox WHERE version = 2"))
        assert deltas_since(c, "hamburg-1", 1) is None  # pruned: only a snapshot will do
    [chunk] = snap
    assert validate_snapshot(chunk) == []
    assert (chunk["version"], chunk["request_id"]) == (4, "req-1")
    assert [h["hold_id"] for h in chunk["holds"]] == ["H-1"]
    assert [r["recall_id"] for r in chunk["recalls"]] == ["R-3"]
    assert chunk["serials"] == [{"gtin": GTIN, "serial": "S1", "state": "recalled"}]
    assert chunk["lots"][0]["status"] == "recalled"


class FakeGateway:
    """An MQTT client in a gateway's place: records snapshots and deltas sent to it."""

    def __init__(self, port: int, topics: GatewayTopics) -> None:
        self.topics = topics
        self.got: list[tuple[str, dict[str, Any]]] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        done = threading.Event()
        self.client.on_subscribe = lambda *_a: done.set()
        self.client.subscribe([(topics.cache_delta, 1), (topics.cache_snapshot, 1)])
        assert done.wait(5)

    def _on(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.got.append((msg.topic.rsplit("/", 1)[1], json.loads(msg.payload)))
            self.cond.notify_all()

    def wait(self, n: int) -> list[tuple[str, dict[str, Any]]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.got) >= n, 20), self.got
            return list(self.got)

    def publish(self, topic: str, payload: dict[str, Any], retain: bool = False) -> None:
        self.client.publish(topic, json.dumps(payload), qos=1, retain=retain).wait_for_publish(5)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_pusher_publishes_catches_up_answers_resyncs_and_records_acks(
    engine: Engine, broker: Broker
) -> None:
    topics = GatewayTopics("s1", "g1")
    with engine.begin() as c:
        record_gateway_version(c, "g1", "s1", 1, NOW)
        start_block(c, "hold", Unit.parse(GTIN, "L1"), reason="lab", who="qa", now=NOW)  # 1→2
    fake = FakeGateway(broker.port, topics)
    pusher = CachePusher(engine, BrokerConfig(port=broker.port, client_id="c-test"), poll_s=0.2)
    pusher.start()
    try:
        now = datetime.now(UTC)
        # back from a day offline at version 1: gets the delta it missed
        report = build_cache_version(gateway_id="g1", site="s1", time=now, version=1, counts={})
        fake.publish(topics.cache_version, report, retain=True)
        kind, d = fake.wait(1)[0]
        assert (kind, d["from_version"], d["version"]) == ("delta", 1, 2)
        # a new recall while online: published at commit (NOTIFY)
        with engine.begin() as c:
            start_block(c, "recall", Unit.parse(GTIN, "L1"), reason="x", who="qa", now=NOW)
        kind, d = fake.wait(2)[1]
        assert (kind, d["from_version"], d["version"]) == ("delta", 2, 3)
        # an empty cache asks for a snapshot: it carries the request id
        req = build_resync_request(
            gateway_id="g1",
            site="s1",
            time=now,
            request_id=RID,
            have_version=None,
            reason="empty",
        )
        fake.publish(topics.cache_resync, req)
        kind, s = fake.wait(3)[2]
        assert (kind, s["version"], s["request_id"]) == ("snapshot", 3, RID)
        fake.publish(
            topics.cache_ack,
            build_ack(gateway_id="g1", site="s1", time=now, kind="delta", version=3),
        )

        def acked() -> Any:
            with engine.connect() as c:
                return c.execute(text("SELECT gateway_id, version FROM cache_acks")).all()

        deadline = time.monotonic() + 10
        while not acked() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [tuple(r) for r in acked()] == [("g1", 3)]
    finally:
        fake.client.publish(topics.cache_version, b"", qos=1, retain=True).wait_for_publish(5)
        pusher.stop()
        fake.stop()
