"""Publishing the outbox over MQTT 5 (paho-mqtt 2.x), at least once, in ``seq`` order.

- Fixed client id, ``clean_start=False`` and an explicit session expiry: the broker
  keeps our session (and our command subscription) across reconnects.
- At most ``max_inflight`` messages are handed to paho at once: paho refuses publishes
  when its 16-bit message ids run out, and its queue is lost on restart anyway. The
  outbox is the queue; paho is only the window.
- A row is marked published only when its PUBACK reason code is a success. The mark is
  written by the single writer (a deferred write), never from here.
- paho calls ``on_publish`` under its own lock: the callback only puts into a
  ``SimpleQueue``; no lock of ours is ever held around ``publish()``.
- After every (re)connect, unacknowledged rows are sent again in ``seq`` order; the
  consumer deduplicates by ``event_id``.
- Reconnecting: while nothing answers at the broker's address (connection refused,
  unreachable, timed out) an attempt is only a TCP connect — a closed port answers it
  at once with a reset; TLS and MQTT CONNECT follow only once TCP is accepted — so it is
  the cheap probe, made at least every ``UNREACHABLE_RETRY_MAX`` seconds: a broker that
  comes back is seen within about a second, and a down broker gets at most one SYN a
  second. A broker that answers but refuses us (TLS, credentials, CONNACK error) is
  retried with the configured back-off, up to ``reconnect_max_delay``.
- Importing this module costs no pydantic: the publisher process gets a
  :class:`ClientSettings` (plain data) built from the config by the parent.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import queue
import socket
import sqlite3
import ssl
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

if TYPE_CHECKING:
    from gateway.config import BrokerConfig

log = logging.getLogger(__name__)

#: Longest wait between attempts while the broker's address does not answer (seconds).
UNREACHABLE_RETRY_MAX = 1.0

RetryKind = Literal["unreachable", "refused"]


def retry_window(kind: RetryKind, min_delay: float, max_delay: float) -> tuple[float, float]:
    """paho's (first, longest) reconnect delay after a failure of this kind (pure).

    ``unreachable`` (nothing answers: the retry is a cheap TCP connect): capped at
    ``UNREACHABLE_RETRY_MAX``, so the broker's return is noticed promptly. ``refused``
    (it answers, but TLS, credentials or CONNACK fail): the configured back-off.
    """
    lo, hi = max(0.01, min_delay), max(0.01, min_delay, max_delay)
    if kind == "unreachable":
        return min(lo, UNREACHABLE_RETRY_MAX), min(hi, UNREACHABLE_RETRY_MAX)
    return lo, hi


#: What every plain PUBACK (success, no properties: the usual one) reports to on_publish.
_PUBACK_OK = ReasonCode(PacketTypes.PUBACK)  # type: ignore[no-untyped-call]
_NO_PROPERTIES = Properties(PacketTypes.PUBACK)  # type: ignore[no-untyped-call]


class LeanClient(mqtt.Client):
    """paho's client with a cheap path for the plain PUBACK.

    paho 2.x builds a fresh ``ReasonCode`` and ``Properties`` for every PUBACK (their
    constructors fill name tables: ~11 µs, about a seventh of the publisher process at
    full rate). A 2-byte PUBACK (packet id only) means success without properties
    (MQTT 5, 3.4.2.1), so it is answered with shared, read-only objects; anything longer
    takes paho's own path. Our ``on_publish`` only reads ``is_failure`` from them.
    """

    #: Called at the end of every round of paho's network loop (``inline`` publishers).
    pump: Callable[[], None] | None = None

    def loop_misc(self) -> MQTTErrorCode:
        """paho's housekeeping, then our publishing round, in the network thread."""
        rc = super().loop_misc()
        if self.pump is not None and rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.pump()
        return rc

    def nudge(self) -> None:
        """Wake the network loop from another thread (what paho's publish does)."""
        w = self._sockpairW
        if w is not None:
            with contextlib.suppress(OSError):  # a wake-up is pending already / loop gone
                w.send(b"0")

    def _handle_pubackcomp(self, cmd: Literal["PUBACK", "PUBCOMP"]) -> MQTTErrorCode:
        packet = self._in_packet["packet"]
        if cmd != "PUBACK" or len(packet) != 2:
            return super()._handle_pubackcomp(cmd)
        mid = (packet[0] << 8) | packet[1]
        with self._out_message_mutex:
            if mid in self._out_messages:
                return self._do_on_publish(mid, _PUBACK_OK, _NO_PROPERTIES)
        return MQTTErrorCode.MQTT_ERR_SUCCESS


_UNREACHABLE_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}
)


def nothing_answers(exc: BaseException | None) -> bool:
    """True when a connect failed before anything answered (refused, unreachable, timed
    out): the next try is again only a TCP connect. False when something answered and
    said no (TLS, a reset, a CONNACK error) or the name is unknown: no TLS handshake or
    DNS query every second."""
    if isinstance(exc, (ConnectionRefusedError, TimeoutError)):
        return True
    if isinstance(exc, (ssl.SSLError, socket.gaierror)):
        return False
    return isinstance(exc, OSError) and exc.errno in _UNREACHABLE_ERRNOS


@dataclass(frozen=True, slots=True)
class TlsPaths:
    """The TLS files of ``[broker.tls]`` (plain data, for the publisher process)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    server_hostname: str = ""


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """What the MQTT client needs from ``[broker]``, checked; picklable without pydantic."""

    host: str = "127.0.0.1"
    port: int = 1883
    keepalive: int = 30
    session_expiry: int = 7 * 24 * 3600
    max_inflight: int = 100
    reconnect_min_delay: float = 1.0
    reconnect_max_delay: float = 30.0
    tls: TlsPaths | None = None  # None: plain MQTT (a loopback broker)
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:  # never show the password
        return f"ClientSettings({self.host}:{self.port}, tls={self.tls is not None})"


class _Recorder:
    """A stand-in paho client: records what ``configure_client`` would apply."""

    def __init__(self) -> None:
        self.tls = False
        self.credentials: tuple[str | None, str | None] | None = None

    def tls_set_context(self, context: Any = None) -> None:
        self.tls = True

    def username_pw_set(self, username: str | None, password: str | None = None) -> None:
        self.credentials = (username, password)


def client_settings(cfg: BrokerConfig) -> ClientSettings:
    """Check ``[broker]`` as the client would (raises ``TlsError``) and copy what it needs."""
    from gateway.mqtt.tls import configure_client

    rec = _Recorder()
    configure_client(rec, cfg)  # TLS (verified) and credentials; no plaintext fallback
    t = cfg.tls
    username, password = rec.credentials if rec.credentials is not None else (None, None)
    return ClientSettings(
        host=cfg.host,
        port=cfg.port,
        keepalive=cfg.keepalive,
        session_expiry=cfg.session_expiry,
        max_inflight=cfg.max_inflight,
        reconnect_min_delay=cfg.reconnect_min_delay,
        reconnect_max_delay=cfg.reconnect_max_delay,
        tls=TlsPaths(t.ca_file, t.cert_file, t.key_file, t.server_hostname) if rec.tls else None,
        username=username,
        password=password,
    )


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
    """Moves outbox rows to the broker. Reads with its own connection, acks via ``mark``.

    Threaded (the default): a publisher thread runs the publishing rounds and paho's
    thread the network. ``inline`` (the publisher process): the rounds run in paho's
    network thread itself, at the end of each loop (``LeanClient.pump``), so a commit
    costs one wake-up of one thread and a PUBACK is handled where it is read.
    """

    def __init__(
        self,
        cfg: BrokerConfig | ClientSettings,
        client_id: str,
        db_path: Path,
        mark: Callable[[list[int]], None],
        *,
        birth: Callable[[], StatusMessage] | None = None,
        will: StatusMessage | None = None,
        subscriptions: Iterable[tuple[str, int]] = (),
        on_message: Callable[[mqtt.MQTTMessage], None] | None = None,
        on_connected: Callable[[], None] | None = None,
        inline: bool = False,
    ) -> None:
        self.cfg = cfg if isinstance(cfg, ClientSettings) else client_settings(cfg)
        self.inline = inline
        self.client_id = client_id
        self.db_path = db_path
        self.mark = mark
        self.birth = birth
        self.subscriptions = list(subscriptions)
        self.on_message_cb = on_message
        self.on_connected = on_connected
        self.stats = PublisherStats()
        self._acks: queue.SimpleQueue[tuple[int, ReasonCode]] = queue.SimpleQueue()
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
        self.fresh_limit = 5_000  # ~5 MB; beyond it the outbox is read
        self._said_unreachable = False
        self._said_tls = ""  # the last TLS failure logged
        self._connected_at = 0.0  # monotonic time of the latest connect
        self._retry_kind: RetryKind = "unreachable"
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._db: sqlite3.Connection | None = None  # inline: opened in the network thread
        self.client = self._make_client(will)
        if inline:
            self.client.pump = self._pump
        self.last_progress = time.monotonic()

    # -- paho set-up --------------------------------------------------------------------
    def _make_client(self, will: StatusMessage | None) -> LeanClient:
        c = LeanClient(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
        )
        c.max_inflight_messages_set(self.cfg.max_inflight)
        c.max_queued_messages_set(0)
        self._set_retry(c, "unreachable")
        if self.cfg.tls is not None:  # checked by client_settings(); verification always on
            from gateway.mqtt.tls import tls_context

            c.tls_set_context(tls_context(self.cfg.tls))
        if self.cfg.username is not None:
            c.username_pw_set(self.cfg.username, self.cfg.password)
        if will is not None:
            c.will_set(will.topic, json.dumps(will.payload), qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        c.on_connect_fail = self._on_connect_fail
        return c

    def _set_retry(self, client: mqtt.Client, kind: RetryKind) -> None:
        """Use the reconnect delays for this kind of failure (paho starts over at the first)."""
        self._retry_kind = kind
        lo, hi = retry_window(kind, self.cfg.reconnect_min_delay, self.cfg.reconnect_max_delay)
        client.reconnect_delay_set(min_delay=lo, max_delay=hi)  # type: ignore[arg-type]

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        if rc.is_failure:
            log.error("broker refused the connection: %s", rc)
            if self._retry_kind != "refused":
                self._set_retry(client, "refused")  # back off: it answers, but says no
            return
        if self._retry_kind != "unreachable":
            self._set_retry(client, "unreachable")
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

        exc = sys.exc_info()[1]
        reason = connect_error_reason(exc)
        kind: RetryKind = "unreachable" if nothing_answers(exc) else "refused"
        if kind != self._retry_kind:
            self._set_retry(client, kind)
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
        self._acks.put((mid, rc))  # words (str(rc)) only for a failure, later
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
        if not self.inline:
            self._thread.start()

    def stop(self, offline: StatusMessage | None = None, timeout: float = 3.0) -> None:
        """Publish ``offline`` (if connected), disconnect and stop."""
        self._stop.set()
        self._wake.set()
        if not self.inline:
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
        if self._db is not None:
            self._db.close()
            self._db = None

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
        self._again()

    def wake(self) -> None:
        """New outbox rows were committed."""
        self._again()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def alive(self) -> bool:
        if self.inline:
            thread = self.client._thread
            return thread is not None and thread.is_alive()
        return self._thread.is_alive()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    # -- the publishing loop --------------------------------------------------------------
    def _open_db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.db_path), check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def _run(self) -> None:
        conn = self._open_db()
        try:
            while not self._stop.is_set():
                self._wake.wait(0.5)
                self._wake.clear()
                self._round(conn)
        finally:
            conn.close()

    def _pump(self) -> None:
        """One publishing round in paho's network thread (``inline``)."""
        if self._stop.is_set():
            return
        if self._db is None:
            self._db = self._open_db()
        self._wake.clear()
        try:
            self._round(self._db)
        except Exception:  # never let it take paho's network thread down
            log.exception("publishing round failed")

    def _round(self, conn: sqlite3.Connection) -> None:
        """Hand over acknowledged seqs, then fill paho's window from memory or the outbox."""
        self.last_progress = time.monotonic()
        self._drain_acks()
        if self._reconnected.is_set():
            self._reconnected.clear()
            self._after_reconnect()
        if self._connected.is_set():
            self._fill_window(conn)

    def _again(self) -> None:
        """Run another round soon (more rows may be waiting)."""
        self._wake.set()
        if self.inline:
            self.client.nudge()

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
                mid, rc = self._acks.get_nowait()
            except queue.Empty:
                break
            entry = self._inflight.pop(mid, None)
            if entry is None:
                continue  # birth/offline status or a stale mid
            seq, t0 = entry
            if not rc.is_failure:
                done.append(seq)
                self.stats.published += 1
                self.stats.note_latency(now - t0)
            else:
                self.stats.failed += 1
                log.warning("broker rejected event seq=%d (%s); will retry", seq, rc)
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
            self._again()  # more may be waiting

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
