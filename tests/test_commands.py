"""Commands: every command against a fake control, refusals that change nothing, and one
round trip through a private mosquitto with MQTT 5 response topic + correlation data."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.mqtt.commands import (
    CommandHandler,
    CommandRejected,
    Reply,
    paho_sender,
    republish_plan,
)
from mqtt_topics.commands import build_command
from mqtt_topics.topics import GatewayTopics
from mqtt_topics.validation import validate
from tests.conftest import Broker

TOPICS = GatewayTopics("s1", "g1")


class FakeControl:
    def __init__(self, fail: Exception | None = None, rows: int = 2) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail = fail
        self.rows = rows

    def _note(self, *call: Any) -> None:
        if self.fail is not None:
            raise self.fail
        self.calls.append(call)

    def set_station_step(self, station: str, step: str) -> None:
        self._note("step", station, step)

    def set_transaction(self, station: str, transactions: list[tuple[str, str]]) -> None:
        self._note("tx", station, transactions)

    def print_label(
        self,
        printer: str | None,
        template: str,
        fields: Mapping[str, str],
        copies: int,
        idempotency_key: str,
    ) -> int:
        self._note("print", printer, template, dict(fields), copies, idempotency_key)
        return 41

    def reprint(
        self, job_id: str | None, event_id: str | None, printer: str | None, copies: int
    ) -> int:
        self._note("reprint", job_id, event_id, printer, copies)
        return 42

    def resync_cache(self, reason: str) -> str:
        self._note("resync", reason)
        return "rid-1"

    def reload_config(self) -> list[str]:
        self._note("reload")
        return ["scanners.sc"]

    def status(self) -> dict[str, Any]:
        self._note("status")
        return {"cache_version": 7, "outbox_depth": 0}

    def stock(self, filters: Mapping[str, str], limit: int) -> list[dict[str, Any]]:
        self._note("stock", dict(filters), limit)
        return [stock_row(f"L{i}") for i in range(min(limit, self.rows))]

    def trace(self, keys: Mapping[str, str], limit: int) -> list[dict[str, Any]]:
        self._note("trace", dict(keys), limit)
        return [trace_row(i + 1) for i in range(min(limit, self.rows))]

    def republish(self, from_seq: int, to_seq: int) -> dict[str, Any]:
        self._note("republish", from_seq, to_seq)
        return republish_plan([(3, "t", "{}", 1.0)], from_seq, to_seq).result(from_seq, to_seq, 1)


GTIN = "09506000134352"


def stock_row(lot: str) -> dict[str, Any]:
    return {
        "gtin": GTIN,
        "lot": lot,
        "serial": None,
        "location": "A-01",
        "quantity": 5,
        "uom": "EA",
        "status": "active",
        "expiry": "2027-01-31",
    }


def trace_row(seq: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "event_id": f"019aaf00-0000-7000-8000-{seq:012d}",
        "event_time": "2026-11-23T09:30:00.000+01:00",
        "movement": "putaway",
        "biz_step": "storing",
        "from": {"type": "location", "id": "DOCK"},
        "to": {"type": "location", "id": "A-01"},
        "gtin": GTIN,
        "lot": "L1",
        "serial": None,
        "sscc": None,
        "quantity": 5,
        "uom": "EA",
        "parent": None,
        "station": "store-1",
        "published": True,
    }


def run(
    handler: CommandHandler, name: str, args: dict[str, Any] | None = None, rid: str = "r1"
) -> Reply:
    raw = json.dumps(build_command(name, args, rid)).encode()
    reply = handler.handle(raw, "reply/here", b"\x01corr")
    assert validate(reply.payload) == [], validate(reply.payload)
    assert (reply.topic, reply.correlation) == ("reply/here", b"\x01corr")
    return reply


CASES: list[tuple[str, dict[str, Any] | None, tuple[Any, ...] | None, dict[str, Any]]] = [
    ("ping", None, None, {"pong": True}),
    ("status", None, ("status",), {"cache_version": 7, "outbox_depth": 0}),
    ("reload_config", None, ("reload",), {"restarted": ["scanners.sc"]}),
    ("resync_cache", {"reason": "op"}, ("resync", "op"), {"request_id": "rid-1"}),
    (
        "set_step",
        {"station": "dock-1", "step": "shipping"},
        ("step", "dock-1", "shipping"),
        {"station": "dock-1", "step": "shipping"},
    ),
    (
        "set_transaction",
        {"station": "dock-1", "biz_transactions": [{"type": "po", "id": "PO-1"}]},
        ("tx", "dock-1", [("po", "PO-1")]),
        {"station": "dock-1", "biz_transactions": [{"type": "po", "id": "PO-1"}]},
    ),
    (
        "print",
        {"template": "pallet", "printer": "zebra-1", "fields": {"lot": "A"}, "copies": 2},
        ("print", "zebra-1", "pallet", {"lot": "A"}, 2, "cmd:r1"),
        {"job_id": "41"},
    ),
    ("reprint", {"job_id": "17"}, ("reprint", "17", None, None, 1), {"job_id": "42"}),
    (
        "stock",
        {"lot": "L1", "location": "A-01"},
        ("stock", {"lot": "L1", "location": "A-01"}, 501),  # one more: is there more?
        {"rows": [stock_row("L0"), stock_row("L1")], "count": 2, "limit": 500, "truncated": False},
    ),
    (
        "trace",
        {"gtin": "09506000134352", "lot": "L1", "limit": 1},
        ("trace", {"gtin": "09506000134352", "lot": "L1"}, 2),
        {"rows": [trace_row(1)], "count": 1, "limit": 1, "truncated": True},
    ),
    (
        "republish",
        {"from_seq": 2, "to_seq": 5},
        ("republish", 2, 5),
        {"from_seq": 2, "to_seq": 5, "republished": 1, "unsent": 0, "gone": [[2, 2], [4, 5]]},
    ),
]


@pytest.mark.parametrize(("name", "args", "call", "result"), CASES)
def test_every_command(
    name: str, args: dict[str, Any] | None, call: tuple[Any, ...] | None, result: dict[str, Any]
) -> None:
    fake = FakeControl()
    reply = run(CommandHandler(TOPICS, fake), name, args)
    assert reply.payload["ok"] is True, reply.payload
    assert (reply.payload["command"], reply.payload["request_id"]) == (name, "r1")
    assert reply.payload["result"] == result
    assert fake.calls == ([call] if call else [])


BAD: list[tuple[bytes, str]] = [
    (b"\xff\xfe", "malformed"),
    (b"[1, 2]", "malformed"),
    (b'{"schema": {"name": "traceway.command", "version": "1.0"}}', "invalid"),
    (json.dumps(build_command("self_destruct")).encode(), "unknown_command"),
    (json.dumps(build_command("set_step", {"station": "dock-1"})).encode(), "invalid_args"),
    (
        json.dumps(build_command("set_step", {"station": "d", "step": "dancing"})).encode(),
        "invalid_args",
    ),
    (json.dumps(build_command("ping", {"x": 1})).encode(), "invalid_args"),
    (
        json.dumps(build_command("reprint", {"job_id": "1", "event_id": "x"})).encode(),
        "invalid_args",
    ),
    (b" " * (64 * 1024 + 1), "too_large"),
    (json.dumps(build_command("stock", {"limit": 5001})).encode(), "invalid_args"),
    (json.dumps(build_command("stock", {"gtin": "123"})).encode(), "invalid_args"),
    (json.dumps(build_command("trace", {"gtin": GTIN})).encode(), "invalid_args"),
    (json.dumps(build_command("trace", {"lot": "L1", "sscc": "0" * 18})).encode(), "invalid_args"),
    (json.dumps(build_command("stock", {"gtin": GTIN[:-1] + "3"})).encode(), "invalid_args"),
    (json.dumps(build_command("trace", {"sscc": "0" * 17 + "1"})).encode(), "invalid_args"),
]


@pytest.mark.parametrize(("raw", "code"), BAD)
def test_malformed_or_unknown_commands_get_an_error_and_change_nothing(
    raw: bytes, code: str
) -> None:
    fake = FakeControl()
    reply = CommandHandler(TOPICS, fake).handle(raw, None, b"c")
    assert validate(reply.payload) == [], validate(reply.payload)
    assert reply.topic == TOPICS.command_replies  # no response topic given
    assert reply.payload["ok"] is False and reply.payload["error"]["code"] == code
    assert fake.calls == []


def test_answers_are_bounded_in_rows_and_bytes() -> None:
    fake = FakeControl(rows=6000)
    handler = CommandHandler(TOPICS, fake)
    full = run(handler, "stock", {"limit": 5000}).payload["result"]  # 5,000 stock rows fit
    assert (full["count"], full["limit"], full["truncated"]) == (5000, 5000, True)
    assert len(full["rows"]) == 5000 and fake.calls[-1][2] == 5001
    fake.rows = 3
    exact = run(handler, "stock", {"limit": 3}).payload["result"]
    assert (exact["count"], exact["truncated"]) == (3, False)  # exactly the limit: not cut
    fake.rows = 6000
    big = run(handler, "trace", {"sscc": "340123450000000000", "limit": 5000})
    result = big.payload["result"]
    assert result["truncated"] is True and 0 < result["count"] < 5000  # the byte bound
    size = len(json.dumps(big.payload, separators=(",", ":")).encode())
    assert size <= 1_000_000 + 1_000, size


def test_republish_plan_sends_published_rows_again_and_names_what_is_gone() -> None:
    rows = [
        (9, "t/e", "p9", 1.0),
        (5, "t/e", "p5", 1.0),
        (6, "t/a", "p6", None),
        (7, "t/e", "p7", 2.0),
    ]
    plan = republish_plan(rows, 4, 8)
    assert plan.send == ((5, "t/e", "p5"), (7, "t/e", "p7"))  # in seq order; 9 is outside
    assert (plan.unsent, plan.gone) == (1, [[4, 4], [8, 8]])
    assert republish_plan([], 1, 3).gone == [[1, 3]]
    many = republish_plan([(s, "t", "p", 1.0) for s in range(2, 600, 2)], 1, 600)
    assert len(many.result(1, 600, 0)["gone"]) == 100  # the reply stays small


def test_wrong_check_digits_are_refused_before_anything_is_read() -> None:
    fake = FakeControl()
    reply = run(CommandHandler(TOPICS, fake), "stock", {"gtin": GTIN[:-1] + "3"})
    assert reply.payload["error"] == {
        "code": "invalid_args",
        "message": "args.gtin: GTIN 09506000134353 has a wrong check digit",
    }
    assert fake.calls == []


def test_control_errors_become_error_replies() -> None:
    rejected = run(CommandHandler(TOPICS, FakeControl(CommandRejected("no station x"))), "status")
    assert rejected.payload["error"] == {"code": "invalid_args", "message": "no station x"}
    boom = run(CommandHandler(TOPICS, FakeControl(RuntimeError("printer gone"))), "reload_config")
    assert boom.payload["ok"] is False
    assert boom.payload["error"] == {"code": "failed", "message": "RuntimeError: printer gone"}


class Msg:
    def __init__(self, topic: str, payload: bytes, retain: bool = False, rt: str = "") -> None:
        self.topic, self.payload, self.retain = topic, payload, retain
        self.properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if rt:
            self.properties.ResponseTopic = rt


def test_only_the_own_topic_and_no_retained_commands() -> None:
    fake, sent = FakeControl(), list[Reply]()
    h = CommandHandler(TOPICS, fake, sent.append)
    raw = json.dumps(build_command("reload_config")).encode()
    assert h.on_message(Msg(GatewayTopics("s1", "other").commands, raw)) is None
    assert h.on_message(Msg(TOPICS.commands + "/x", raw)) is None
    retained = h.on_message(Msg(TOPICS.commands, raw, retain=True))
    assert retained is not None and retained.payload["error"]["code"] == "invalid"
    wild = h.on_message(Msg(TOPICS.commands, raw, rt="replies/#"))
    assert wild is not None and wild.topic == TOPICS.command_replies
    assert fake.calls == [("reload",)] and len(sent) == 2


def test_print_idempotency_key_without_request_id_follows_correlation() -> None:
    fake = FakeControl()
    h = CommandHandler(TOPICS, fake)
    raw = json.dumps(build_command("print", {"template": "t"})).encode()
    h.handle(raw, None, b"A")
    h.handle(raw, None, b"A")
    h.handle(raw, None, b"B")
    keys = [c[-1] for c in fake.calls]
    assert keys[0] == keys[1] != keys[2]


def _client(port: int, cid: str) -> mqtt.Client:
    c = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5
    )
    ok = threading.Event()
    c.on_connect = lambda *_a: ok.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert ok.wait(5)
    return c


def test_round_trip_with_response_topic_and_correlation(broker: Broker) -> None:
    fake = FakeControl()
    gw = _client(broker.port, "gw")
    handler = CommandHandler(TOPICS, fake, paho_sender(gw))
    gw.on_message = lambda _c, _u, msg: (handler.on_message(msg), None)[1]
    op = _client(broker.port, "operator")
    got: list[mqtt.MQTTMessage] = []
    done = threading.Event()

    def on_reply(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        got.append(msg)
        done.set()

    op.on_message = on_reply
    subs = threading.Semaphore(0)
    gw.on_subscribe = op.on_subscribe = lambda *_a: subs.release()
    gw.subscribe(TOPICS.commands, qos=1)
    op.subscribe("ops/replies/7", qos=1)
    assert subs.acquire(timeout=5) and subs.acquire(timeout=5)
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ResponseTopic = "ops/replies/7"
    props.CorrelationData = b"\x00\xffcorr-7"
    cmd = build_command("set_step", {"station": "dock-1", "step": "picking"}, "req-7")
    op.publish(TOPICS.commands, json.dumps(cmd), qos=1, properties=props)
    try:
        assert done.wait(5)
    finally:
        gw.loop_stop()
        op.loop_stop()
    msg = got[0]
    assert msg.topic == "ops/replies/7"
    assert getattr(msg.properties, "CorrelationData", None) == b"\x00\xffcorr-7"
    payload = json.loads(msg.payload)
    assert validate(payload) == []
    assert (payload["ok"], payload["request_id"], payload["result"]["step"]) == (
        True,
        "req-7",
        "picking",
    )
    assert fake.calls == [("step", "dock-1", "picking")]
