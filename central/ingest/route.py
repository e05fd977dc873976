"""Pure: what ingest subscribes to and what one received message is (no I/O here).

Every payload is checked with ``mqtt_topics.validation.check_message`` (its schema,
GS1 check digits, and that the schema is the one of its topic) and must name the site
and gateway of the topic it came on. What fails becomes a :class:`Rejected` with the
reason, for the quarantine table; nothing is dropped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mqtt_topics.topics import (
    ALERTS,
    CACHE_ACK,
    CACHE_VERSION,
    DEVICE_STATUS,
    EVENTS,
    METRICS,
    STATUS,
    TopicSpec,
    spec_for_topic,
    topic_filter,
)
from mqtt_topics.validation import check_message

Kind = Literal["event", "alert", "status", "device", "metrics", "cache_ack", "cache_version"]

#: The topics ingest subscribes to (every site, every gateway) and what each carries.
SUBSCRIBED: dict[TopicSpec, Kind] = {
    EVENTS: "event",
    ALERTS: "alert",
    STATUS: "status",
    DEVICE_STATUS: "device",
    METRICS: "metrics",
    CACHE_ACK: "cache_ack",
    CACHE_VERSION: "cache_version",
}

#: At most this many validation errors go into a quarantine reason.
MAX_REASONS = 10


@dataclass(frozen=True, slots=True)
class Accepted:
    """A payload that fits the contract and the topic it came on."""

    kind: Kind
    topic: str
    body: Mapping[str, Any]
    raw: bytes


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message for the quarantine table: topic, payload as received, and why."""

    topic: str
    payload: bytes
    reason: str

    @property
    def digest(self) -> str:
        """sha256 of topic and payload: a redelivered message is quarantined once."""
        h = hashlib.sha256(self.topic.encode("utf-8", "backslashreplace"))
        h.update(b"\x00")
        h.update(self.payload)
        return h.hexdigest()


def subscriptions(prefix: str, group: str) -> list[str]:
    """The shared-subscription filters: ``$share/<group>/<prefix>/+/+/<topic>``."""
    return [f"$share/{group}/{topic_filter(spec, prefix=prefix)}" for spec in SUBSCRIBED]


def classify(topic: str, payload: bytes, prefix: str) -> Accepted | Rejected:
    """Accept a message that fits the contract, or reject it with the reason."""
    spec = spec_for_topic(topic, prefix)
    if spec is None or spec not in SUBSCRIBED:
        return Rejected(topic, payload, "topic: not an ingest topic of the traceway contract")
    try:
        obj, errors = check_message(topic, payload, prefix)
    except Exception as exc:  # a validator crash must not lose the message
        return Rejected(topic, payload, f"validator failed: {type(exc).__name__}: {exc}")
    if errors:
        more = len(errors) - MAX_REASONS
        reason = "; ".join(errors[:MAX_REASONS]) + (f"; … {more} more" if more > 0 else "")
        return Rejected(topic, payload, reason)
    assert isinstance(obj, Mapping)  # validate() refuses anything else
    site, gateway = topic[len(prefix) + 1 :].split("/")[:2]
    if (obj.get("site"), obj.get("gateway_id")) != (site, gateway):
        return Rejected(
            topic,
            payload,
            f"payload names gateway {obj.get('site')}/{obj.get('gateway_id')} "
            f"on a topic of {site}/{gateway}",
        )
    if spec is DEVICE_STATUS and obj.get("device") != topic.rsplit("/", 1)[1]:
        return Rejected(topic, payload, f"payload names device {obj.get('device')!r} on {topic}")
    return Accepted(SUBSCRIBED[spec], topic, obj, payload)


def printable(payload: bytes) -> str:
    """A payload as text for the quarantine table (invalid UTF-8 and NUL escaped)."""
    return payload.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
