"""Commands from the web UI to a gateway over MQTT (e.g. reprint a unit's label).

The command goes to ``{prefix}/{site}/{gateway}/commands`` (QoS 1) with a fresh
``request_id``; the gateway answers on ``…/commands/reply`` (no response topic is set, so
a broker ACL that lets each gateway write only under its own root still works). The
caller waits a few seconds for the reply and shows it; without one it shows "sent, no
reply yet" — the command stays queued for a gateway that is offline (persistent session).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt

from central.config import BrokerConfig
from central.masterdata.push import make_client
from mqtt_topics.commands import build_command
from mqtt_topics.topics import GatewayTopics

log = logging.getLogger(__name__)


class GatewayCommander:
    """Sends commands to gateways and waits for their replies (one per ``serve``)."""

    def __init__(self, broker: BrokerConfig, *, client_id: str | None = None) -> None:
        self.broker = broker
        self.client = make_client(broker, client_id or f"{broker.client_id}-web")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._waiting: dict[str, tuple[threading.Event, list[dict[str, Any]]]] = {}

    def start(self) -> None:
        """Connect in the background (paho reconnects by itself)."""
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(
        self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any = None
    ) -> None:
        if getattr(reason, "is_failure", False):
            return
        client.subscribe(f"{self.broker.topic_prefix}/+/+/commands/reply", qos=1)
        self._ready.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            reply = json.loads(msg.payload)
        except ValueError:
            return
        rid = reply.get("request_id") if isinstance(reply, dict) else None
        with self._lock:
            waiting = self._waiting.get(rid) if isinstance(rid, str) else None
        if waiting is not None:
            waiting[1].append(reply)
            waiting[0].set()

    def send(
        self, site: str, gateway: str, command: str, args: dict[str, Any], timeout: float = 5.0
    ) -> tuple[str, dict[str, Any] | None]:
        """Publish a command; (request id, the reply or None when none came in ``timeout``)."""
        rid = f"web-{uuid.uuid4()}"
        done = threading.Event()
        box: list[dict[str, Any]] = []
        with self._lock:
            self._waiting[rid] = (done, box)
        try:
            self._ready.wait(min(timeout, 3.0))
            topic = GatewayTopics(site, gateway, self.broker.topic_prefix).commands
            payload = json.dumps(build_command(command, args, request_id=rid))
            self.client.publish(topic, payload, qos=1)
            done.wait(timeout)
            return rid, (box[0] if box else None)
        finally:
            with self._lock:
                self._waiting.pop(rid, None)
