"""The ingest worker: MQTT (shared subscription, QoS 1) → PostgreSQL, PUBACK after commit.

paho's network thread only puts received messages on a queue. The writer (the thread
that calls :meth:`IngestWorker.run`) gathers a batch (``ingest.max_batch`` messages or
``ingest.max_wait_ms``), validates it, writes it in ONE transaction, commits, and only
then acknowledges every message of it (``manual_ack``). So:

- a crash before the commit loses nothing: the broker redelivers the unacknowledged
  messages (persistent session, ``clean_start=False``) and the writes are idempotent;
- the database down: the batch is retried with backoff, nothing is acknowledged; the
  broker stops sending once ``ReceiveMaximum`` messages are unacknowledged;
- the broker down: paho reconnects with bounded backoff; acknowledgements are only sent
  on the connection a message came on (a packet id is only valid there);
- a payload that breaks the contract, or that the database refuses on its own, goes to
  the quarantine table with the reason and is acknowledged after that commit;
- SIGTERM: the batch in hand and the messages already received are committed and
  acknowledged, then the worker disconnects and ``run`` returns 0.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import Engine, text
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from central.config import CentralConfig
from central.ingest.route import Accepted, Rejected, classify, subscriptions
from central.ingest.store import BatchResult, write_batch
from central.ingest.tls import configure_client

log = logging.getLogger("central.ingest")

#: How long the broker keeps a worker's session (and its queued messages) while it is away.
SESSION_EXPIRY_S = 7 * 24 * 3600
#: Backoff bounds for database retries (seconds).
DB_RETRY_MIN, DB_RETRY_MAX = 0.1, 10.0
#: Backoff bounds for broker reconnects (seconds, paho's own loop).
MQTT_RETRY_MIN, MQTT_RETRY_MAX = 1, 30


@dataclass(frozen=True, slots=True)
class Received:
    """A message as paho delivered it, with the connection it came on."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    conn: int


class IngestWorker:
    """One worker; several may share the subscription (each with its own ``name``)."""

    def __init__(
        self,
        cfg: CentralConfig,
        engine: Engine,
        name: str = "1",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.cfg = cfg
        self.engine = engine
        self.name = name
        self.clock = clock
        self.client_id = f"{cfg.broker.client_id}-ingest-{name}"
        self.totals = BatchResult()
        self.received = 0
        self._queue: queue.Queue[Received] = queue.Queue()
        self._stop = threading.Event()
        self._hard = threading.Event()
        self._ack_lock = threading.Lock()
        self._conn = 0  # bumped on every disconnect: older packet ids are not ours to ack
        self._connected = False
        self._db_down_since: float | None = None
        self.client = self._make_client()

    # -- MQTT (paho's thread) -----------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        c = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        c.reconnect_delay_set(MQTT_RETRY_MIN, MQTT_RETRY_MAX)
        configure_client(c, self.cfg.broker)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_connect_fail = self._on_connect_fail
        c.on_subscribe = self._on_subscribe
        return c

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        # the broker stops sending when this many messages wait for our ack (memory bound)
        props.ReceiveMaximum = min(65535, max(100, 2 * self.cfg.ingest.max_batch))
        return props

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        if rc.is_failure:
            log.error("broker refused the connection: %s", rc)
            return
        with self._ack_lock:
            self._connected = True
        opts = SubscribeOptions(qos=1)
        filters = subscriptions(self.cfg.broker.topic_prefix, self.cfg.broker.share_group)
        client.subscribe([(f, opts) for f in filters])
        log.info(
            "connected to %s:%d as %s (session %s); subscribing to %d shared topics",
            self.cfg.broker.host,
            self.cfg.broker.port,
            self.client_id,
            "resumed" if flags.session_present else "new",
            len(filters),
        )

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, rcs: list[ReasonCode], props: Any
    ) -> None:
        bad = [str(rc) for rc in rcs if rc.is_failure]
        if bad:
            log.error("broker refused subscriptions: %s", ", ".join(bad))
        else:
            log.info("subscribed (group %s)", self.cfg.broker.share_group)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        with self._ack_lock:
            self._connected = False
            self._conn += 1
        if not self._stop.is_set():
            log.warning("broker connection lost (%s); reconnecting", rc)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        log.warning("cannot reach the broker at %s:%d", self.cfg.broker.host, self.cfg.broker.port)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._queue.put(Received(msg.topic, bytes(msg.payload), msg.mid, msg.qos, self._conn))

    def _ack(self, batch: list[Received]) -> None:
        with self._ack_lock:
            for m in batch:
                if m.qos > 0 and m.conn == self._conn and self._connected:
                    self.client.ack(m.mid, m.qos)

    # -- the writer -----------------------------------------------------------------------
    def _gather(self, limit: int, wait_s: float) -> list[Received]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + wait_s
        while len(batch) < limit:
            left = deadline - time.monotonic()
            try:
                batch.append(
                    self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                )
            except queue.Empty:
                break
        return batch

    def _process(self, batch: list[Received]) -> bool:
        """Validate, write and commit a batch (retrying while the database is away); ack it.

        False when stopping before the database came back (nothing acknowledged).
        """
        prefix = self.cfg.broker.topic_prefix
        t0 = time.perf_counter()
        verdicts = [classify(m.topic, m.payload, prefix) for m in batch]
        t1 = time.perf_counter()
        if not self._commit(verdicts):
            return False
        self._ack(batch)
        self.received += len(batch)
        log.debug(
            "batch of %d: validated in %.1f ms, committed in %.1f ms",
            len(batch),
            (t1 - t0) * 1000,
            (time.perf_counter() - t1) * 1000,
        )
        return True

    def _commit(self, verdicts: list[Accepted | Rejected]) -> bool:
        delay = DB_RETRY_MIN
        while True:
            try:
                with self.engine.begin() as conn:
                    res = write_batch(
                        conn,
                        [v for v in verdicts if isinstance(v, Accepted)],
                        [v for v in verdicts if isinstance(v, Rejected)],
                        self.clock(),
                    )
            except (DataError, IntegrityError) as exc:
                # the database refuses something the schemas let through: find it, keep it
                if len(verdicts) > 1:
                    return all(self._commit([v]) for v in verdicts)
                return self._refused(verdicts[0], _first(exc))
            except SQLAlchemyError as exc:
                if self._db_down_since is None:
                    self._db_down_since = time.monotonic()
                    log.error(
                        "database unavailable (%s); retrying, nothing acknowledged", _first(exc)
                    )
                if self._hard.wait(delay):
                    return False
                delay = min(delay * 2, DB_RETRY_MAX)
                continue
            except Exception as exc:  # a payload we cannot store: keep it
                if len(verdicts) > 1:
                    return all(self._commit([v]) for v in verdicts)
                log.exception("cannot store a message; quarantining it")
                return self._refused(verdicts[0], f"{type(exc).__name__}: {exc}")
            if self._db_down_since is not None:
                log.warning("database back after %.1f s", time.monotonic() - self._db_down_since)
                self._db_down_since = None
            self.totals.add(res)
            return True

    def _refused(self, verdict: Accepted | Rejected, why: str) -> bool:
        if isinstance(verdict, Rejected):
            raise RuntimeError(f"cannot write to the quarantine table: {why}")
        payload = verdict.raw
        return self._commit([Rejected(verdict.topic, payload, f"could not be stored: {why}")])

    def stop(self, hard: bool = False) -> None:
        """Finish the batch in hand and the messages received, then return from ``run``.

        ``hard``: also give up waiting for an unavailable database (nothing more is acked).
        """
        if hard:
            self._hard.set()
        self._stop.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: stop cleanly; a second one stops even while the database is away."""

        def handler(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d: finishing the batch in hand", signum)
            self.stop(hard=self._stop.is_set() or self._db_down_since is not None)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def check_schema(self) -> None:
        """Refuse to start on a database that is not migrated (waits while it is down)."""
        delay = DB_RETRY_MIN
        while True:
            try:
                with self.engine.connect() as conn:
                    ok = conn.execute(text("SELECT to_regclass('cache_acks')")).scalar()
                break
            except SQLAlchemyError as exc:
                log.error("database unavailable (%s); waiting", _first(exc))
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, DB_RETRY_MAX)
        if ok is None:
            raise SchemaError("the database is not migrated: run 'traceway-central migrate'")

    def run(self) -> int:
        """Connect, ingest until stopped, commit and acknowledge what was received, exit 0."""
        self.check_schema()
        b = self.cfg.broker
        self.client.connect_async(
            b.host, b.port, keepalive=30, clean_start=False, properties=self._connect_properties()
        )
        self.client.loop_start()
        try:
            limit, wait = self.cfg.ingest.max_batch, self.cfg.ingest.max_wait_ms / 1000
            while not self._stop.is_set():
                batch = self._gather(limit, wait)
                if batch and not self._process(batch):
                    break
            # stopping: what was received is committed and acknowledged before leaving
            while not self._hard.is_set():
                batch = self._gather_now(limit)
                if not batch or not self._process(batch):
                    break
        finally:
            self.client.disconnect()
            self.client.loop_stop()
        t = self.totals
        log.info(
            "ingest worker %s stopped: %d messages, %d events stored, %d duplicates, "
            "%d quarantined",
            self.name,
            self.received,
            t.events,
            t.duplicates,
            t.quarantined,
        )
        return 0

    def _gather_now(self, limit: int) -> list[Received]:
        out: list[Received] = []
        while len(out) < limit:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return out


class SchemaError(RuntimeError):
    """The database has not been migrated."""


def _first(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    s = str(orig if orig is not None else exc).strip()
    return s.splitlines()[0] if s else type(exc).__name__
