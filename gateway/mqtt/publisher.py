"""Publishing the outbox over MQTT 5 (paho-mqtt 2.x), at least once, in ``seq`` order.

- Fixed client id, ``clean_start=False`` and an explicit session expiry: the broker
  keeps our session (and our command subscription) across reconnects.
- At most ``max_inflight`` messages are handed to paho at once: paho refuses publishes
  when its 16-bit message ids run out, and its queue is lost on restart anyway. The
  outbox is the queue; paho is only the window.
- A row is marked published only when its PUBACK reason code is a success. The mark is
  written by the single writer (a ``Task``), never from here.
- paho calls ``on_publish`` under its own lock: the callback only puts into a
  ``SimpleQueue``; no lock of ours is ever held around ``publish()``.
- After every (re)connect, unacknowledged rows are sent again in ``seq`` order; the
  consumer deduplicates by ``event_id``.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.config import BrokerConfig

log = logging.getLogger(__name__)


@dataclass
class PublisherStats:
    """Counters for health and metrics."""

    published: int = 0
    failed: int = 0
    connects: int = 0
    connected_since: float | None = None
    latencies: list[float] = field(default_factory=list)  # hand-off → PUBACK, seconds

    def note_latency(self, value: float) -> None:
        self.latencies.append(value)
        if len(self.latencies) > 2048:
            del self.latencies[:1024]


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """A retained message published directly (birth status), not through the outbox."""

    topic: str
    payload: dict[str, Any]


class Publisher:
    """Moves outbox rows to the broker. Reads with its own connection, acks via ``mark``."""

    def __init__(
        self,
        cfg: BrokerConfig,
        client_id: str,
        db_path: Path,
        mark: Callable[[list[int]], None],
        *,
        birth: Callable[[], StatusMessage] | None = None,
        will: StatusMessage | None = None,
        subscriptions: Iterable[tuple[str, int]] = (),
        on_message: Callable[[mqtt.MQTTMessage], None] | None = None,
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.client_id = client_id
        self.db_path = db_path
        self.mark = mark
        self.birth = birth
        self.subscriptions = list(subscriptions)
        self.on_message_cb = on_message
        self.on_connected = on_connected
        self.stats = PublisherStats()
        self._acks: queue.SimpleQueue[tuple[int, bool, str]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._reconnected = threading.Event()
        self._inflight: OrderedDict[int, tuple[int, float]] = OrderedDict()  # mid -> (seq, t)
        self._cursor = 0  # highest seq handed to paho in this process
        self._retry: list[int] = []  # seqs whose PUBACK failed, to send again
        #: Rows the writer just committed (seq, topic, payload): published from memory, so
        #: the steady state needs no database read; the outbox covers anything beyond it.
        self._fresh: deque[tuple[int, str, str]] = deque()
        self.fresh_limit = 20_000
        self._said_unreachable = False
        self._said_tls = ""  # the last TLS failure logged
        self._connected_at = 0.0  # monotonic time of the latest connect
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self.client = self._make_client(will)
        self.last_progress = time.monotonic()

    # -- paho set-up --------------------------------------------------------------------
    def _make_client(self, will: StatusMessage | None) -> mqtt.Client:
        c = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
        )
        c.max_inflight_messages_set(self.cfg.max_inflight)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(
            min_delay=int(max(1, self.cfg.reconnect_min_delay)),
            max_delay=int(max(1, self.cfg.reconnect_max_delay)),
        )
        from gateway.mqtt.tls import configure_client

        configure_client(c, self.cfg)  # TLS (verified) and credentials; no plaintext fallback
        if will is not None:
            c.will_set(will.topic, json.dumps(will.payload), qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        c.on_connect_fail = self._on_connect_fail
        return c

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        if rc.is_failure:
            log.error("broker refused the connection: %s", rc)
            return
        self.stats.connects += 1
        self.stats.connected_since = time.time()
        log.info(
            "connected to broker %s:%d (session present: %s)",
            self.cfg.host,
            self.cfg.port,
            bool(getattr(flags, "session_present", False)),
        )
        self._said_unreachable = False
        self._said_tls = ""
        for topic, qos in self.subscriptions:
            client.subscribe(topic, qos=qos)
        if self.birth is not None:
            msg = self.birth()
            client.publish(msg.topic, json.dumps(msg.payload), qos=1, retain=True)
        self._connected_at = time.monotonic()
        self._connected.set()
        if self.on_connected is not None:
            try:
                self.on_connected()
            except Exception:
                log.exception("on_connected hook failed")
        self._reconnected.set()
        self._wake.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        if self._connected.is_set() and not self._stop.is_set():
            log.warning("disconnected from broker (%s); events stay in the outbox", rc)
        self._connected.clear()
        self.stats.connected_since = None

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho calls this inside its ``except OSError`` around the connect: the exception
        # being handled is the reason (TLS verification, refused, unknown host).
        from gateway.mqtt.tls import connect_error_reason

        reason = connect_error_reason(sys.exc_info()[1])
        if reason.startswith("TLS"):  # a setup problem, not an outage: say each new one
            if reason != self._said_tls:
                log.error(
                    "cannot connect to broker %s:%d: %s; events are kept in the outbox",
                    self.cfg.host,
                    self.cfg.port,
                    reason,
                )
                self._said_tls = reason
        elif not self._said_unreachable:
            log.warning(
                "broker %s:%d not reachable (%s); events are kept in the outbox and sent "
                "when it is",
                self.cfg.host,
                self.cfg.port,
                reason,
            )
            self._said_unreachable = True

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, rc: ReasonCode, props: Any
    ) -> None:
        # Called under paho's lock: only hand the ack over, never take our own lock here.
        self._acks.put((mid, not rc.is_failure, str(rc)))
        self._wake.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self.on_message_cb is not None:
            try:
                self.on_message_cb(msg)
            except Exception:
                log.exception("handling a message on %s failed", msg.topic)

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background (no broker is fine) and start publishing."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.cfg.session_expiry
        self.client.connect_async(
            self.cfg.host,
            self.cfg.port,
            keepalive=self.cfg.keepalive,
            clean_start=False,
            properties=props,
        )
        self.client.loop_start()
        self._thread.start()

    def stop(self, offline: StatusMessage | None = None, timeout: float = 3.0) -> None:
        """Publish ``offline`` (if connected), disconnect and stop."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        if offline is not None and self._connected.is_set():
            try:
                info = self.client.publish(
                    offline.topic, json.dumps(offline.payload), qos=1, retain=True
                )
                info.wait_for_publish(min(timeout, 2.0))
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    def publish_direct(
        self, topic: str, payload: dict[str, Any], *, qos: int = 1, retain: bool = False
    ) -> bool:
        """Publish a status-like message now, outside the outbox (False when offline)."""
        if not self._connected.is_set():
            return False
        info = self.client.publish(topic, json.dumps(payload), qos=qos, retain=retain)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def feed(self, rows: list[tuple[int, str, str]]) -> None:
        """Committed outbox rows, in seq order (called by the writer; never blocks)."""
        if len(self._fresh) < self.fresh_limit:
            self._fresh.extend(rows)  # deque.extend is thread-safe; no lock of ours
        self._wake.set()

    def wake(self) -> None:
        """New outbox rows were committed."""
        self._wake.set()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    # -- the publishing loop --------------------------------------------------------------
    def _run(self) -> None:
        conn = sqlite3.connect(str(self.db_path), check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
        try:
            while not self._stop.is_set():
                self._wake.wait(0.5)
                self._wake.clear()
                self.last_progress = time.monotonic()
                self._drain_acks()
                if self._reconnected.is_set():
                    self._reconnected.clear()
                    self._after_reconnect()
                if self._connected.is_set():
                    self._fill_window(conn)
        finally:
            conn.close()

    def _after_reconnect(self) -> None:
        # paho re-sends what it holds in flight (same mids, DUP flag); anything it lost
        # (a failed PUBACK) is in _retry. Rows never handed over are picked up by cursor.
        # Only rows handed over before this connection are re-sent (none on the first one).
        stale = sum(1 for _seq, t0 in self._inflight.values() if t0 < self._connected_at)
        if stale:
            log.info("resending %d unacknowledged event(s) after reconnect", stale)

    def _drain_acks(self) -> None:
        done: list[int] = []
        now = time.monotonic()
        while True:
            try:
                mid, ok, why = self._acks.get_nowait()
            except queue.Empty:
                break
            entry = self._inflight.pop(mid, None)
            if entry is None:
                continue  # birth/offline status or a stale mid
            seq, t0 = entry
            if ok:
                done.append(seq)
                self.stats.published += 1
                self.stats.note_latency(now - t0)
            else:
                self.stats.failed += 1
                log.warning("broker rejected event seq=%d (%s); will retry", seq, why)
                self._retry.append(seq)
        if done:
            self.mark(done)

    def _fill_window(self, conn: sqlite3.Connection) -> None:
        room = self.cfg.max_inflight - len(self._inflight)
        if room <= 0:
            return
        rows: list[tuple[int, str, str]] = []
        if self._retry:
            retry, self._retry = self._retry[:room], self._retry[room:]
            marks = ",".join("?" * len(retry))
            rows.extend(
                conn.execute(
                    f"SELECT seq, topic, payload FROM outbox WHERE seq IN ({marks}) "
                    "AND published_at IS NULL ORDER BY seq",
                    retry,
                ).fetchall()
            )
            room -= len(rows)
        while room > 0 and self._fresh:
            seq, topic, payload = self._fresh[0]
            if seq <= self._cursor:
                self._fresh.popleft()  # already sent from the database
                continue
            if seq != self._cursor + 1 or rows:
                break  # a gap (rows not in memory): read them from the outbox
            self._fresh.popleft()
            self._publish_row(seq, topic, payload)
            room -= 1
        if room > 0 and not self._fresh_covers_cursor():
            rows.extend(
                conn.execute(
                    "SELECT seq, topic, payload FROM outbox "
                    "WHERE published_at IS NULL AND seq > ? ORDER BY seq LIMIT ?",
                    (self._cursor, room),
                ).fetchall()
            )
        for seq, topic, payload in rows:
            if not self._connected.is_set():
                if seq > self._cursor:
                    break
                self._retry.insert(0, seq)
                continue
            self._publish_row(seq, topic, payload)
        if rows or (self._fresh and len(self._inflight) < self.cfg.max_inflight):
            self._wake.set()  # more may be waiting

    def _fresh_covers_cursor(self) -> bool:
        """True when the next row to send is waiting in memory."""
        return bool(self._fresh) and self._fresh[0][0] <= self._cursor + 1

    def _publish_row(self, seq: int, topic: str, payload: str) -> None:
        info = self.client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
            log.warning("publish of seq=%d refused by paho (rc=%s)", seq, info.rc)
            self._retry.append(seq)
            return
        self._inflight[info.mid] = (seq, time.monotonic())
        self._cursor = max(self._cursor, seq)
