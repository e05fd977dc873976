"""Ingest end to end: a real mosquitto, a private PostgreSQL, ``python -m central ingest``.

Waits poll the database with generous deadlines (never timed assertions).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, create_engine, text

from central.custody.model import item_rows, stock_deltas
from central.custody.projection import store_events
from central.db.cluster import PrivateCluster
from central.db.engine import migrate
from mqtt_topics.examples import GATEWAY, SITE, event, example_payloads, scripted_day
from mqtt_topics.topics import CACHE_ACK, CACHE_VERSION, GatewayTopics
from tests.conftest import Broker, make_broker

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "traceway/v1"
SUPPLIER = {"type": "party", "id": "SUPPLIER"}
LOT_GTIN = "04012345000016"
SERIAL_GTIN = "09506000134352"


# -- helpers -----------------------------------------------------------------------------
def wait_for(cond: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll ``cond`` until true (the deadline only guards against a hang)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def write_config(tmp: Path, db_url: str, port: int, max_batch: int = 100) -> Path:
    cfg = tmp / "central.toml"
    cfg.write_text(
        f"""
[database]
url = "{db_url}"
[broker]
host = "127.0.0.1"
port = {port}
client_id = "central-test"
[ingest]
max_batch = {max_batch}
max_wait_ms = 20
"""
    )
    return cfg


class Worker:
    """``python -m central ingest`` as a subprocess; its log in a file."""

    def __init__(self, config: Path, name: str = "1") -> None:
        self.config, self.name = config, name
        self.log = config.parent / f"ingest-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        offset = self.log.stat().st_size if self.log.exists() else 0
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "central", "ingest", "--config", str(self.config),
             "--worker", self.name],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
            stderr=open(self.log, "ab"),  # noqa: SIM115
        )  # fmt: skip
        wait_for(lambda: "subscribed" in self.text()[offset:], f"worker {self.name} subscribed")
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def close(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(30)


class Publisher:
    """A gateway-like test publisher: QoS 1, waits for the broker's PUBACKs."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"pub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.max_inflight_messages_set(200)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes | dict[str, Any]) -> mqtt.MQTTMessageInfo:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.client.publish(topic, data, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def topics(gw: str = GATEWAY, site: str = SITE) -> GatewayTopics:
    return GatewayTopics(site, gw, PREFIX)


def lot_event(
    gw: str, site: str, n: int, minutes: float, lot: str, q: int, src: Any, dst: Any, mv: str
) -> dict[str, Any]:
    """Event ``n`` (seq) of gateway ``gw``: ``q`` of ``lot`` from ``src`` to ``dst``."""
    item: Any = {"gtin": LOT_GTIN, "lot": lot, "quantity": q, "uom": "EA", "from": src, "to": dst}
    ev = event(n, mv, [item], 0)
    return retag(ev, gw, site, n, minutes)


def retag(ev: dict[str, Any], gw: str, site: str, n: int, minutes: float) -> dict[str, Any]:
    from datetime import datetime, timedelta

    t = datetime.fromisoformat(ev["event_time"]) + timedelta(minutes=minutes)
    gi = sum(gw.encode()) % 4096
    return {
        **ev,
        "gateway_id": gw,
        "site": site,
        "seq": n,
        "event_id": f"019aaf00-0000-7000-8{gi:03x}-{n:012x}",
        "event_time": t.isoformat(timespec="milliseconds"),
    }


def stream(n: int, gw: str = "gw-x", site: str = "site-x") -> list[dict[str, Any]]:
    """``n`` events: odd ones receive into DOCK, even ones put away DOCK → A-k."""
    out = []
    for i in range(1, n + 1):
        lot = f"L{i % 7}"
        if i % 2:
            out.append(
                lot_event(gw, site, i, i / 60, lot, i % 5 + 1, SUPPLIER, loc("DOCK"), "receive")
            )
        else:
            out.append(
                lot_event(gw, site, i, i / 60, lot, 1, loc("DOCK"), loc(f"A-{i % 3}"), "putaway")
            )
    return out


def moved(unit: Any, src: Any, dst: Any) -> Any:
    """``unit`` (an item) from ``src`` to ``dst``."""
    return {**unit, "from": src, "to": dst}


def loc(x: str) -> dict[str, str]:
    return {"type": "location", "id": x}


def expected_stock(events: list[dict[str, Any]]) -> dict[tuple[str, str, str], Decimal]:
    """lot_stock as the pure model says it must be."""
    out: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for ev in events:
        for _g, lot, site, where, d in stock_deltas(ev["site"], item_rows(ev)):
            out[(lot, site, where)] += d
    return {k: v for k, v in out.items() if v != 0}


def stock(engine: Engine) -> dict[tuple[str, str, str], Decimal]:
    with engine.connect() as c:
        rows = c.execute(
            text("SELECT lot, site, location, quantity FROM lot_stock WHERE quantity <> 0")
        )
        return {(r[0], r[1], r[2]): Decimal(r[3]) for r in rows}


def count(engine: Engine, table: str) -> int:
    try:
        with engine.connect() as c:
            return int(c.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    except Exception:  # the database may be restarting
        return -1


@contextmanager
def fresh_db(pg_url: str) -> Iterator[Engine]:
    """Another migrated database on the session cluster (for a rebuild)."""
    name = "r_" + uuid.uuid4().hex[:12]
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    eng = create_engine(pg_url.rsplit("/", 1)[0] + "/" + name)
    migrate(eng)
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def assert_projection_equals_rebuild(engine: Engine, pg_url: str) -> None:
    """The projection equals one rebuilt from the stored raw events."""
    with engine.connect() as c:
        payloads = [r[0] for r in c.execute(text("SELECT payload FROM events ORDER BY seq"))]
        serials = sorted(tuple(r) for r in c.execute(text("SELECT * FROM serial_state")))
    with fresh_db(pg_url) as other:
        with other.begin() as c:
            store_events(c, payloads, __import__("datetime").datetime.now().astimezone())
        assert stock(engine) == stock(other)
        with other.connect() as c:
            rebuilt = sorted(tuple(r) for r in c.execute(text("SELECT * FROM serial_state")))
        assert serials == rebuilt


@dataclass
class Rig:
    tmp: Path
    broker: Broker
    engine: Engine
    config: Path
    workers: list[Worker]

    def worker(self, name: str = "1") -> Worker:
        w = Worker(self.config, name)
        self.workers.append(w)
        return w.start()


@pytest.fixture
def rig(tmp_path: Path, engine: Engine) -> Iterator[Rig]:
    d = tmp_path / "broker"
    d.mkdir()
    persist = d / "persist"
    persist.mkdir()
    broker = make_broker(d)
    # a broker that keeps sessions and queued messages across a restart
    broker.conf.write_text(
        broker.conf.read_text().replace("persistence false\n", "")
        + f"persistence true\npersistence_location {persist}/\n"
        + ("user root\n" if os.geteuid() == 0 else "")  # root: keep writing to persist/
    )
    broker.start()
    cfg = write_config(tmp_path, url_of(engine), broker.port)
    r = Rig(tmp_path, broker, engine, cfg, [])
    try:
        yield r
    finally:
        for w in r.workers:
            w.close()
        broker.stop()


def publish_all(port: int, msgs: list[tuple[str, Any]]) -> None:
    pub = Publisher(port)
    try:
        for info in [pub.send(topic, payload) for topic, payload in msgs]:
            info.wait_for_publish(60)
    finally:
        pub.close()


# -- tests -------------------------------------------------------------------------------
def test_every_message_kind_arrives_once_and_sigterm_exits_0(rig: Rig) -> None:
    w = rig.worker()
    day = scripted_day()
    ex = example_payloads()
    t = topics()
    msgs: list[tuple[str, Any]] = [(t.events, e) for e in day + day]  # each twice
    msgs += [
        (t.alerts, ex["traceway.alert"]),
        (t.alerts, ex["traceway.alert"]),
        (t.status, ex["traceway.status"]),
        (t.device("zebra-1"), ex["traceway.device_status"]),
        (t.metrics, ex["traceway.metrics"]),
        (t.topic(CACHE_ACK), ex["traceway.cache_ack"]),
        # a gateway that holds no cache yet reports version null: nothing to record
        (t.topic(CACHE_VERSION), {**ex["traceway.cache_version"], "version": None}),
        (t.topic(CACHE_VERSION), ex["traceway.cache_version"]),
    ]
    publish_all(rig.broker.port, msgs)
    wait_for(lambda: count(rig.engine, "cache_acks") == 1, "the last message")
    wait_for(lambda: count(rig.engine, "events") == len(day), "every event")
    assert w.terminate() == 0
    assert "events stored" in w.text()
    e = rig.engine
    assert (count(e, "events"), count(e, "event_ids"), count(e, "alerts")) == (17, 17, 1)
    assert (count(e, "gateway_devices"), count(e, "quarantine")) == (1, 0)
    with e.connect() as c:
        g = c.execute(
            text(
                "SELECT online, outbox_depth, cache_version, seq_high, status->>'reason' "
                "FROM gateways WHERE gateway_id = :g"
            ),
            {"g": GATEWAY},
        ).one()
    assert tuple(g) == (True, 0, 1208, 18, "birth")  # the alert (seq 18) counts too
    # nothing left unacknowledged: a restarted worker gets nothing again
    w2 = rig.worker()
    publish_all(rig.broker.port, [(t.events, day[0])])
    assert w2.terminate() == 0
    assert count(e, "events") == 17


def test_sigkill_mid_stream_loses_nothing_and_counts_nothing_twice(rig: Rig, pg_url: str) -> None:
    rig.config.write_text(rig.config.read_text().replace("max_batch = 100", "max_batch = 20"))
    w = rig.worker()
    evs = stream(1500)
    t = topics("gw-x", "site-x")
    pub = threading.Thread(target=publish_all, args=(rig.broker.port, [(t.events, e) for e in evs]))
    pub.start()
    wait_for(lambda: count(rig.engine, "events") >= 100, "the stream to start")
    w.kill()
    at_kill = count(rig.engine, "events")
    w.start()
    pub.join()
    wait_for(lambda: count(rig.engine, "events") == len(evs), "every event after the restart")
    assert at_kill < len(evs)
    assert w.terminate() == 0
    assert count(rig.engine, "event_ids") == len(evs)
    assert stock(rig.engine) == {
        (lot, "site-x", where): q for (lot, _, where), q in expected_stock(evs).items()
    }
    assert_projection_equals_rebuild(rig.engine, pg_url)
    with rig.engine.connect() as c:
        open_gaps = c.execute(text("SELECT count(*) FROM seq_gaps WHERE closed_at IS NULL"))
        assert open_gaps.scalar_one() == 0


def test_two_workers_share_the_subscription_without_double_counting(rig: Rig) -> None:
    a, b = rig.worker("a"), rig.worker("b")
    evs = stream(600, "gw-1", "site-1") + stream(600, "gw-2", "site-2")
    msgs = [(topics(e["gateway_id"], e["site"]).events, e) for e in evs]
    publish_all(rig.broker.port, msgs)
    wait_for(lambda: count(rig.engine, "events") == len(evs), "every event")
    assert a.terminate() == 0 and b.terminate() == 0

    def stored(w: Worker) -> int:
        line = [x for x in w.text().splitlines() if "stopped:" in x][-1]
        return int(line.split("messages, ")[1].split(" events stored")[0])

    assert stored(a) > 0 and stored(b) > 0
    assert stored(a) + stored(b) == len(evs)
    assert stock(rig.engine) == expected_stock(evs)


def test_invalid_payloads_are_quarantined_with_the_reason(rig: Rig) -> None:
    w = rig.worker()
    t = topics()
    ex = example_payloads()
    good = scripted_day()[0]
    missing = {k: v for k, v in good.items() if k != "items"}
    nul = {**good, "event_id": "019aaf00-0000-7000-8000-0000000000ff", "seq": 99,
           "scan": {"raw": "A\u0000B", "symbology": "]C1", "scanner": "s1"}}  # fmt: skip
    bad: list[tuple[str, Any]] = [
        (t.events, b"not json {"),
        (t.events, missing),
        (t.events, missing),  # the same message again: one row
        (t.events, ex["traceway.alert"]),
        (topics("dock-b").events, good),
        (t.events, nul),
    ]
    publish_all(rig.broker.port, [*bad, (t.events, good)])
    wait_for(lambda: count(rig.engine, "quarantine") == 5, "five quarantined")
    wait_for(lambda: count(rig.engine, "events") == 1, "the good event")
    assert w.alive()
    with rig.engine.connect() as c:
        reasons = [r[0] for r in c.execute(text("SELECT reason FROM quarantine ORDER BY id"))]
        payloads = [r[0] for r in c.execute(text("SELECT payload FROM quarantine ORDER BY id"))]
    assert reasons[0].startswith("not UTF-8 JSON")
    assert "'items' is a required property" in reasons[1]
    assert "'traceway.alert' on a 'traceway.event' topic" in reasons[2]
    assert "payload names gateway hamburg-1/dock-a on a topic of hamburg-1/dock-b" in reasons[3]
    assert reasons[4].startswith("could not be stored:")
    assert payloads[0] == "not json {"
    assert "A\\u0000B" in payloads[4]
    assert w.terminate() == 0


def test_broker_restart_during_ingest(rig: Rig, pg_url: str) -> None:
    """Queued and in-flight messages survive a broker restart (persistence); ingest resumes.

    mosquitto 2.0 does not restore a shared subscription from its persistence file, so
    messages published after its restart and before a worker reconnects reach nobody
    (see the notes); the second half is published once the worker is back.
    """
    w = rig.worker()
    evs = stream(800)
    t = topics("gw-x", "site-x")
    # the worker is paused while the first half is published: it is queued (or in flight)
    # at the broker when the broker stops, whatever the speed of this machine
    assert w.proc is not None
    w.proc.send_signal(signal.SIGSTOP)
    try:
        publish_all(rig.broker.port, [(t.events, e) for e in evs[:400]])
        at_stop = count(rig.engine, "events")
        rig.broker.stop()
    finally:
        w.proc.send_signal(signal.SIGCONT)
    rig.broker.start()
    wait_for(lambda: w.text().count("subscribed (") == 2, "the worker to reconnect")
    wait_for(lambda: count(rig.engine, "events") == 400, "the first half after the restart")
    publish_all(rig.broker.port, [(t.events, e) for e in evs[400:]])
    wait_for(lambda: count(rig.engine, "events") == len(evs), "every event")
    assert at_stop < 400
    assert w.alive()
    assert "broker connection lost" in w.text() and "(session resumed)" in w.text()
    assert w.terminate() == 0
    assert count(rig.engine, "event_ids") == len(evs)
    assert stock(rig.engine) == expected_stock(evs)
    assert_projection_equals_rebuild(rig.engine, pg_url)


@pytest.fixture
def own_cluster() -> Iterator[PrivateCluster]:
    with tempfile.TemporaryDirectory(prefix="traceway-pg-ingest-") as tmp:
        os.chmod(tmp, 0o755)
        cluster = PrivateCluster(Path(tmp) / "data")
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop()


def test_database_restart_during_ingest(
    tmp_path: Path, broker: Broker, own_cluster: PrivateCluster
) -> None:
    eng = create_engine(own_cluster.url, pool_pre_ping=True)
    migrate(eng)
    cfg = write_config(tmp_path, own_cluster.url, broker.port, max_batch=20)
    w = Worker(cfg).start()
    try:
        evs = stream(600)
        t = topics("gw-x", "site-x")
        publish_all(broker.port, [(t.events, e) for e in evs[:300]])
        wait_for(lambda: count(eng, "events") > 0, "the first events")
        own_cluster.stop()
        publish_all(broker.port, [(t.events, e) for e in evs[300:]])
        wait_for(lambda: "database unavailable" in w.text(), "the worker to notice")
        own_cluster.start()
        wait_for(lambda: count(eng, "events") == len(evs), "every event after the restart")
        assert w.alive()
        assert count(eng, "event_ids") == len(evs)
        assert stock(eng) == expected_stock(evs)
        assert w.terminate() == 0
    finally:
        w.close()
        eng.dispose()


def test_a_gateway_a_day_late_ends_with_the_right_state(rig: Rig) -> None:
    """dock-a (site A) was offline for a day: its older events arrive after site B's."""
    w = rig.worker()
    serial: Any = {"gtin": SERIAL_GTIN, "serial": "S-1", "quantity": 1, "uom": "EA"}
    to_b = {"type": "party", "id": "site-b"}
    # day 0 at site A (offline): receive the serial and a lot, ship both to site B
    a = [
        retag(event(1, "receive", [moved(serial, SUPPLIER, loc("DOCK"))], 0),
              "dock-a", "site-a", 1, 0),
        lot_event("dock-a", "site-a", 2, 1, "L9", 10, SUPPLIER, loc("DOCK"), "receive"),
        retag(event(3, "ship", [moved(serial, loc("DOCK"), to_b)], 0),
              "dock-a", "site-a", 3, 60),
        lot_event("dock-a", "site-a", 4, 61, "L9", 4, loc("DOCK"), to_b, "ship"),
    ]  # fmt: skip
    # day 1 at site B (online): receive both and put them away
    from_a = {"type": "party", "id": "site-a"}
    day = 24 * 60
    b = [
        retag(event(1, "receive", [moved(serial, from_a, loc("IN"))], 0),
              "dock-b", "site-b", 1, day),
        lot_event("dock-b", "site-b", 2, day + 1, "L9", 4, from_a, loc("IN"), "receive"),
        retag(event(3, "putaway", [moved(serial, loc("IN"), loc("B-1"))], 0),
              "dock-b", "site-b", 3, day + 5),
    ]  # fmt: skip
    publish_all(rig.broker.port, [(topics("dock-b", "site-b").events, e) for e in b])
    wait_for(lambda: count(rig.engine, "events") == 3, "site B's events")
    publish_all(rig.broker.port, [(topics("dock-a", "site-a").events, e) for e in a])
    wait_for(lambda: count(rig.engine, "events") == 7, "site A's late events")
    assert w.terminate() == 0
    with rig.engine.connect() as c:
        s = c.execute(text("SELECT site, location, state FROM serial_state")).one()
        gaps = c.execute(text("SELECT count(*) FROM seq_gaps WHERE closed_at IS NULL"))
        assert gaps.scalar_one() == 0
    assert tuple(s) == ("site-b", "B-1", "at_site")
    assert stock(rig.engine) == {("L9", "site-a", "DOCK"): 6, ("L9", "site-b", "IN"): 4}
