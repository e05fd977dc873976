"""The MQTT topic tree of traceway (version v1).

Every topic lives under ``{prefix}/{site}/{gateway}/``; ``prefix`` defaults to
``traceway/v1``. Central-side code imports this module to subscribe.
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


EVENTS = TopicSpec("events", "publish", 1, False, "traceway.event", "Movement events (accepted/warned scans).")
ALERTS = TopicSpec("alerts", "publish", 1, False, "traceway.alert", "Rejected scans, no-reads, device and system alarms.")
STATUS = TopicSpec("status", "publish", 1, True, "traceway.status", "Birth/death status (retained; the Will says offline).")

TOPICS: tuple[TopicSpec, ...] = (EVENTS, ALERTS, STATUS)


@dataclass(frozen=True, slots=True)
class GatewayTopics:
    """Concrete topic names for one gateway."""

    site: str
    gateway: str
    prefix: str = DEFAULT_PREFIX

    @property
    def root(self) -> str:
        return f"{self.prefix}/{self.site}/{self.gateway}"

    def topic(self, spec: TopicSpec) -> str:
        return f"{self.root}/{spec.suffix}"

    @property
    def events(self) -> str:
        return self.topic(EVENTS)

    @property
    def alerts(self) -> str:
        return self.topic(ALERTS)

    @property
    def status(self) -> str:
        return self.topic(STATUS)
