"""The pure part of ingest: subscriptions and what each received message is."""

from __future__ import annotations

import json

from central.ingest.route import Accepted, Rejected, classify, printable, subscriptions
from mqtt_topics.examples import GATEWAY, SITE, example_payloads
from mqtt_topics.topics import CACHE_ACK, CACHE_VERSION, GatewayTopics

P = "traceway/v1"
T = GatewayTopics(SITE, GATEWAY, P)


def raw(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_shared_subscriptions_cover_every_gateway_topic_ingest_reads() -> None:
    subs = subscriptions(P, "grp")
    assert "$share/grp/traceway/v1/+/+/events" in subs
    assert "$share/grp/traceway/v1/+/+/devices/+" in subs
    assert "$share/grp/traceway/v1/+/+/cache/ack" in subs
    assert len(subs) == 7 and all(s.startswith("$share/grp/traceway/v1/+/+/") for s in subs)


def test_every_example_is_accepted_on_its_topic() -> None:
    ex = example_payloads()
    cases = {
        T.events: ("traceway.event", "event"),
        T.alerts: ("traceway.alert", "alert"),
        T.status: ("traceway.status", "status"),
        T.device("zebra-1"): ("traceway.device_status", "device"),
        T.metrics: ("traceway.metrics", "metrics"),
        T.topic(CACHE_ACK): ("traceway.cache_ack", "cache_ack"),
        T.topic(CACHE_VERSION): ("traceway.cache_version", "cache_version"),
    }
    for topic, (schema, kind) in cases.items():
        got = classify(topic, raw(ex[schema]), P)
        assert isinstance(got, Accepted), (topic, got)
        assert got.kind == kind and got.raw == raw(ex[schema])


def test_what_breaks_the_contract_is_rejected_with_the_reason() -> None:
    ev = example_payloads()["traceway.event"]
    cases = {
        (T.events, b"\xff\xfe"): "not UTF-8 JSON",
        (T.events, b"[1, 2]"): "payload is not a JSON object",
        (T.events, raw({**ev, "seq": -1})): "seq: -1 is less than the minimum",
        (T.alerts, raw(ev)): "'traceway.event' on a 'traceway.alert' topic",
        (GatewayTopics(SITE, "other", P).events, raw(ev)): "on a topic of hamburg-1/other",
        (T.device("printer-9"), raw(example_payloads()["traceway.device_status"])): "device",
        (f"{P}/{SITE}/{GATEWAY}/commands", raw(ev)): "not an ingest topic",
        ("elsewhere/x/y/events", raw(ev)): "not an ingest topic",
    }
    for (topic, payload), reason in cases.items():
        got = classify(topic, payload, P)
        assert isinstance(got, Rejected), (topic, got)
        assert reason in got.reason, got.reason


def test_a_rejection_is_identified_by_topic_and_payload() -> None:
    a, b = Rejected("t", b"x", "r1"), Rejected("t", b"x", "r2")
    assert a.digest == b.digest != Rejected("u", b"x", "r1").digest
    assert printable(b"a\x00b\xff") == "a\\x00b\\xff"
