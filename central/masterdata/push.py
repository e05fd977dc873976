"""The recall pusher: publishes cache deltas to the gateways and answers their resyncs.

Thin shell over :mod:`central.masterdata.holds`. It subscribes to every gateway's
``cache/version`` (retained), ``cache/resync`` and ``cache/ack``, and ``LISTEN``s on the
database so a hold or recall committed by the API or the CLI is published at once:

- a new outbox delta goes to every gateway known at its site (``cache/delta``, QoS 1);
  a snapshot marker (a large master-data import) sends them a snapshot instead;
- a gateway that reports an older version (it was offline) gets the deltas it missed,
  or a snapshot when they are no longer contiguous in the outbox;
- a resync request is answered with the missing deltas (reason ``gap``) or a snapshot
  carrying the request id;
- acks are recorded in ``cache_acks`` (idempotent; ingest may record them too);
- a gateway's seq gap that stays open is asked for with ``republish``
  (:mod:`central.ingest.gapfill`, ``ingest.republish_after_s``).

Gateway and site are taken from the topic, never from the payload.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, text

from central.config import BrokerConfig
from central.ingest.gapfill import GapFiller
from central.masterdata.holds import (
    NOTIFY_CHANNEL,
    SNAPSHOT_ACTION,
    deltas_since,
    record_ack,
    record_gateway_version,
    site_snapshot,
    site_version,
)
from mqtt_topics.topics import GatewayTopics
from mqtt_topics.validation import validate

log = logging.getLogger(__name__)


def broker_password(cfg: BrokerConfig) -> str | None:
    """The MQTT password from its file or environment variable (never logged)."""
    if cfg.password_file is not None:
        return cfg.password_file.read_text(encoding="utf-8").strip()
    if cfg.password_env:
        return os.environ.get(cfg.password_env, "")
    return None


def make_client(cfg: BrokerConfig, client_id: str) -> mqtt.Client:
    """A paho MQTT 5 client with TLS and credentials from the config."""
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
    )
    if cfg.use_tls:
        client.tls_set(
            ca_certs=str(cfg.tls.ca_file) if cfg.tls.ca_file else None,
            certfile=str(cfg.tls.cert_file) if cfg.tls.cert_file else None,
            keyfile=str(cfg.tls.key_file) if cfg.tls.key_file else None,
        )
    password = broker_password(cfg)
    if cfg.username or password:
        client.username_pw_set(cfg.username or None, password)
    client.reconnect_delay_set(1, 10)
    return client


class CachePusher:
    """Publishes the cache outbox and serves resyncs (one per central ``serve``)."""

    def __init__(
        self,
        engine: Engine,
        broker: BrokerConfig,
        *,
        client_id: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        poll_s: float = 1.0,
        republish_after_s: float = 0.0,
    ) -> None:
        self.engine = engine
        self.broker = broker
        self.prefix = broker.topic_prefix
        self.clock = clock
        self.poll_s = poll_s
        self.client = make_client(broker, client_id or f"{broker.client_id}-push")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._cursor = 0
        self._sent: dict[str, tuple[int, float]] = {}  # gateway -> (version sent, when)
        self._thread: threading.Thread | None = None
        #: asks gateways to republish seq gaps that stay open (``ingest.republish_after_s``)
        self.gaps = GapFiller(
            engine,
            self._publish,
            prefix=self.prefix,
            after_s=republish_after_s,
            clock=clock,
        )

    # -- life cycle -------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        """Connect, subscribe and start publishing (waits for the subscription)."""
        with self.engine.connect() as c:
            self._cursor = int(
                c.execute(text("SELECT COALESCE(max(id), 0) FROM cache_outbox")).scalar_one()
            )
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._listen, name="cache-push", daemon=True)
        self._thread.start()
        self.gaps.start()
        if not self._subscribed.wait(timeout):
            log.warning(
                "cache pusher: broker %s:%d not reachable yet", self.broker.host, self.broker.port
            )

    def stop(self) -> None:
        self.gaps.stop()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.client.disconnect()
        self.client.loop_stop()

    def _filter(self, suffix: str) -> str:
        return f"{self.prefix}/+/+/{suffix}"

    def _on_connect(
        self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any = None
    ) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("cache pusher: connect refused: %s", reason)
            return
        client.subscribe(
            [(self._filter(s), 1) for s in ("cache/version", "cache/resync", "cache/ack")]
        )
        self._subscribed.set()
        log.info("cache pusher connected to %s:%d", self.broker.host, self.broker.port)

    # -- outbound ---------------------------------------------------------------------------
    def _topics(self, site: str, gateway: str) -> GatewayTopics:
        return GatewayTopics(site, gateway, self.prefix)

    def _publish(self, topic: str, payload: dict[str, Any]) -> None:
        self.client.publish(topic, json.dumps(payload, separators=(",", ":")), qos=1)

    def publish_pending(self) -> int:
        """Publish outbox deltas written since the last call; returns how many messages.

        A snapshot marker (a large import) sends the site's gateways a snapshot instead,
        after the deltas before it; the site's later rows of the same pass are in it."""
        snapshots: dict[tuple[str, str], None] = {}
        with self._lock, self.engine.connect() as c:
            rows = c.execute(
                text(
                    "SELECT o.id, o.site, o.version, o.payload, g.gateway_id, o.action "
                    "FROM cache_outbox o "
                    "LEFT JOIN (SELECT gateway_id, site FROM cache_gateways UNION "
                    "SELECT gateway_id, site FROM gateways) g ON g.site = o.site "
                    "WHERE o.id > :c ORDER BY o.id, g.gateway_id"
                ),
                {"c": self._cursor},
            ).all()
            sent = 0
            for oid, site, version, payload, gateway, action in rows:
                self._cursor = max(self._cursor, int(oid))
                if gateway is None or (site, gateway) in snapshots:
                    continue
                if action == SNAPSHOT_ACTION:
                    snapshots[(site, gateway)] = None
                    continue
                self._publish(self._topics(site, gateway).cache_delta, payload)
                self._sent[gateway] = (int(version), time.monotonic())
                sent += 1
        for site, gateway in snapshots:
            self._send_snapshot(site, gateway, None)
            sent += 1
        return sent

    def _listen(self) -> None:
        import psycopg

        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as pg:
                    pg.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    while not self._stop.is_set():
                        self.publish_pending()
                        for _ in pg.notifies(timeout=self.poll_s, stop_after=1):
                            pass
            except Exception:
                log.exception("cache pusher: database listener failed; retrying")
                self._stop.wait(2)

    # -- inbound ----------------------------------------------------------------------------
    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self.handle(msg.topic, bytes(msg.payload))
        except Exception:
            log.exception("cache pusher: handling %s failed", msg.topic)

    def handle(self, topic: str, raw: bytes) -> str:
        """Dispatch one message; returns what was done (for tests and logs)."""
        parts = topic.split("/")
        head = self.prefix.split("/")
        if len(parts) != len(head) + 4 or parts[: len(head)] != head:
            return "ignored"
        site, gateway, suffix = parts[len(head)], parts[len(head) + 1], "/".join(parts[-2:])
        if not raw:
            return "ignored"  # a cleared retained message
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return "invalid"
        errors = validate(payload)
        if errors:
            log.warning("cache pusher: invalid %s from %s/%s: %s", suffix, site, gateway, errors[0])
            return "invalid"
        now = self.clock()
        if suffix == "cache/ack":
            with self.engine.begin() as c:
                record_ack(c, {**payload, "gateway_id": gateway, "site": site}, now)
            return "ack"
        if suffix == "cache/version":
            version = payload.get("version")
            with self.engine.begin() as c:
                record_gateway_version(c, gateway, site, version, now)
            if version is None:
                return "empty"  # the gateway asks for a snapshot itself
            return self._catch_up(site, gateway, int(version), None, report=True)
        if suffix == "cache/resync":
            have = payload.get("have_version")
            rid = payload.get("request_id")
            if payload.get("reason") == "gap" and have is not None:
                return self._catch_up(site, gateway, int(have), rid, report=False)
            return self._send_snapshot(site, gateway, rid)
        return "ignored"

    def _catch_up(
        self, site: str, gateway: str, have: int, request_id: str | None, *, report: bool
    ) -> str:
        with self._lock, self.engine.begin() as c:
            current = site_version(c, site)
            if have == current:
                return "current"
            sent = self._sent.get(gateway)
            if (
                report
                and sent is not None
                and sent[0] >= current
                and time.monotonic() - sent[1] < 10
            ):
                return "in_flight"  # deltas up to now were just published; let them land
            if have > current:
                # versions from elsewhere: move the site past them, then a snapshot
                c.execute(
                    text("UPDATE cache_sites SET version = :v WHERE site = :s"),
                    {"v": have + 1, "s": site},
                )
                deltas = None
            else:
                deltas = deltas_since(c, site, have)
            if deltas is not None:
                topic = self._topics(site, gateway).cache_delta
                for d in deltas:
                    self._publish(topic, d)
                self._sent[gateway] = (current, time.monotonic())
                log.info(
                    "cache: %s/%s caught up %d → %d (%d deltas)",
                    site,
                    gateway,
                    have,
                    current,
                    len(deltas),
                )
                return "deltas"
        return self._send_snapshot(site, gateway, request_id)

    def _send_snapshot(self, site: str, gateway: str, request_id: str | None) -> str:
        with self._lock, self.engine.begin() as c:
            chunks = site_snapshot(c, site, request_id, self.clock())
            topic = self._topics(site, gateway).cache_snapshot
            for chunk in chunks:
                self._publish(topic, chunk)
            self._sent[gateway] = (int(chunks[0]["version"]), time.monotonic())
        log.info("cache: snapshot %d to %s/%s", chunks[0]["version"], site, gateway)
        return "snapshot"
