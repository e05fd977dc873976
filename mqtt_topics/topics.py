"""The MQTT topic tree of traceway (version v1).

Every topic lives under ``{prefix}/{site}/{gateway}/``; ``prefix`` defaults to
``traceway/v1``. ``direction`` is seen from the gateway: ``publish`` = the
gateway publishes, ``subscribe`` = the gateway subscribes (the central side or an
operator publishes). Central-side code imports this module to subscribe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DEFAULT_PREFIX = "traceway/v1"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic: its suffix under the gateway root, direction, QoS, retain and schema name."""

    suffix: str
    direction: Literal["publish", "subscribe"]
    qos: int
    retain: bool
    schema: str
    description: str


EVENTS = TopicSpec(
    "events",
    "publish",
    1,
    False,
    "traceway.event",
    "Movement events (accepted/warned scans and non-scan movements).",
)
ALERTS = TopicSpec(
    "alerts",
    "publish",
    1,
    False,
    "traceway.alert",
    "Rejected scans, no-reads, device and system alarms.",
)
STATUS = TopicSpec(
    "status",
    "publish",
    1,
    True,
    "traceway.status",
    "Birth status (retained); the Will and a clean shutdown say offline.",
)
DEVICE_STATUS = TopicSpec(
    "devices/{device}",
    "publish",
    1,
    True,
    "traceway.device_status",
    "Scanner / printer status change, retained per device.",
)
METRICS = TopicSpec(
    "metrics", "publish", 0, False, "traceway.metrics", "Periodic counters and gauges."
)
COMMANDS = TopicSpec(
    "commands",
    "subscribe",
    1,
    False,
    "traceway.command",
    "Commands to this gateway (MQTT 5 response topic + correlation data).",
)
COMMAND_REPLIES = TopicSpec(
    "commands/reply",
    "publish",
    1,
    False,
    "traceway.command_reply",
    "Replies when a command carried no response topic; otherwise the reply goes to the response topic.",
)
CACHE_SNAPSHOT = TopicSpec(
    "cache/snapshot",
    "subscribe",
    1,
    False,
    "traceway.cache_snapshot",
    "Full cache snapshot (chunked) from the central side.",
)
CACHE_DELTA = TopicSpec(
    "cache/delta",
    "subscribe",
    1,
    False,
    "traceway.cache_delta",
    "Ordered cache deltas from the central side.",
)
CACHE_RESYNC = TopicSpec(
    "cache/resync",
    "publish",
    1,
    False,
    "traceway.cache_resync_request",
    "The gateway asks for a snapshot (empty cache, gap, command).",
)
CACHE_ACK = TopicSpec(
    "cache/ack",
    "publish",
    1,
    False,
    "traceway.cache_ack",
    "The gateway acknowledges an applied snapshot or delta.",
)
CACHE_VERSION = TopicSpec(
    "cache/version",
    "publish",
    1,
    True,
    "traceway.cache_version",
    "The cache version the gateway holds (retained).",
)

TOPICS: tuple[TopicSpec, ...] = (
    EVENTS,
    ALERTS,
    STATUS,
    DEVICE_STATUS,
    METRICS,
    COMMANDS,
    COMMAND_REPLIES,
    CACHE_SNAPSHOT,
    CACHE_DELTA,
    CACHE_RESYNC,
    CACHE_ACK,
    CACHE_VERSION,
)


def topic_filter(
    spec: TopicSpec, *, prefix: str = DEFAULT_PREFIX, site: str = "+", gateway: str = "+"
) -> str:
    """A subscription filter for ``spec`` across sites/gateways (``+`` wildcards by default)."""
    return f"{prefix}/{site}/{gateway}/{spec.suffix.replace('{device}', '+')}"


def spec_for_topic(topic: str, prefix: str = DEFAULT_PREFIX) -> TopicSpec | None:
    """The spec a concrete topic belongs to, or None if it is not in the tree."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head) :].split("/")
    if len(parts) < 3:
        return None
    rest = parts[2:]
    for spec in TOPICS:
        want = spec.suffix.split("/")
        if len(want) == len(rest) and all(
            w == r or w == "{device}" for w, r in zip(want, rest, strict=True)
        ):
            return spec
    return None


@dataclass(frozen=True, slots=True)
class GatewayTopics:
    """Concrete topic names for one gateway."""

    site: str
    gateway: str
    prefix: str = DEFAULT_PREFIX

    @property
    def root(self) -> str:
        """``{prefix}/{site}/{gateway}``."""
        return f"{self.prefix}/{self.site}/{self.gateway}"

    def topic(self, spec: TopicSpec, **params: str) -> str:
        """The concrete topic of ``spec`` (``device=`` fills ``devices/{device}``)."""
        suffix = spec.suffix.format(**params) if "{" in spec.suffix else spec.suffix
        return f"{self.root}/{suffix}"

    @property
    def events(self) -> str:
        return self.topic(EVENTS)

    @property
    def alerts(self) -> str:
        return self.topic(ALERTS)

    @property
    def status(self) -> str:
        return self.topic(STATUS)

    def device(self, device: str) -> str:
        """``.../devices/{device}``."""
        return self.topic(DEVICE_STATUS, device=device)

    @property
    def metrics(self) -> str:
        return self.topic(METRICS)

    @property
    def commands(self) -> str:
        return self.topic(COMMANDS)

    @property
    def command_replies(self) -> str:
        return self.topic(COMMAND_REPLIES)

    @property
    def cache_snapshot(self) -> str:
        return self.topic(CACHE_SNAPSHOT)

    @property
    def cache_delta(self) -> str:
        return self.topic(CACHE_DELTA)

    @property
    def cache_resync(self) -> str:
        return self.topic(CACHE_RESYNC)

    @property
    def cache_ack(self) -> str:
        return self.topic(CACHE_ACK)

    @property
    def cache_version(self) -> str:
        return self.topic(CACHE_VERSION)

    def subscriptions(self) -> list[tuple[str, int]]:
        """(topic, qos) for everything the gateway subscribes to."""
        return [(self.topic(s), s.qos) for s in TOPICS if s.direction == "subscribe"]
