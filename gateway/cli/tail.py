"""``traceway tail``: print a gateway's events and alerts as they arrive, schema-checked.

The reference subscriber of the MQTT contract (paho-mqtt 2.x, MQTT v5).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from drivers.scanners.escapes import make_visible
from mqtt_topics.topics import (
    ALERTS,
    DEFAULT_PREFIX,
    EVENTS,
    TOPICS,
    TopicSpec,
    topic_filter,
)
from mqtt_topics.validation import check_message


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``tail`` sub-command."""
    p = sub.add_parser(
        "tail",
        help="print a gateway's events and alerts as they arrive, validated against the schemas",
        description=(
            "Subscribe to the events and alerts of one gateway (or all: '+') and print each "
            "message on one line with its schema validation result and, for events, the "
            "items (GTIN with serial, or lot and quantity, or SSCC). Exit 0 after --count "
            "messages or on Ctrl-C, 1 on --timeout, 2 when the broker cannot be reached."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="broker host (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=1883, help="broker port (default 1883)")
    p.add_argument("--site", default="+", help="site id (default: every site)")
    p.add_argument("--gateway", default="+", help="gateway id (default: every gateway)")
    p.add_argument(
        "--prefix", default=DEFAULT_PREFIX, help=f"topic prefix (default {DEFAULT_PREFIX})"
    )
    p.add_argument("--all", action="store_true", help="every topic the gateway publishes")
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per message: {topic, valid, errors, payload}; "
        "`traceway epcis` reads these lines",
    )
    p.add_argument("--count", type=int, default=0, metavar="N", help="stop after N messages")
    p.add_argument("--timeout", type=float, default=0, metavar="S", help="give up after S seconds")
    p.set_defaults(func=run)


def check(topic: str, payload: bytes, prefix: str = DEFAULT_PREFIX) -> tuple[Any, list[str]]:
    """(decoded payload or None, validation errors) of one received message."""
    return check_message(topic, payload, prefix)


#: items shown per list on a tail line; the rest are counted (``+N more``)
MAX_ITEMS_SHOWN = 3


def item_text(item: Any) -> str:
    """One item in words: ``GTIN … serial …``, ``GTIN … lot … qty 12 KGM`` or ``SSCC …``."""
    if not isinstance(item, dict):
        return "?"
    if item.get("sscc") is not None:
        return f"SSCC {item['sscc']}"
    parts = [f"GTIN {item.get('gtin')}"]
    if item.get("serial") is not None:
        parts.append(f"serial {item['serial']}")
    if item.get("lot") is not None:
        parts.append(f"lot {item['lot']}")
    q = item.get("quantity")
    if isinstance(q, int | float) and not isinstance(q, bool) and item.get("serial") is None:
        qty = f"qty {q:.15g}" if isinstance(q, float) else f"qty {q}"
        uom = item.get("uom")
        parts.append(f"{qty} {uom}" if uom and uom != "EA" else qty)
    src, dst = _place_text(item.get("from")), _place_text(item.get("to"))
    if src or dst:
        parts.append(f"{src or '-'} -> {dst or '-'}")
    return " ".join(parts)


def _place_text(place: Any) -> str:
    """``A-01`` for a location, ``party 4012345000009`` for a party, "" for none."""
    if not isinstance(place, dict):
        return ""
    return str(place.get("id")) if place.get("type") == "location" else f"party {place.get('id')}"


def items_text(items: Any) -> str:
    """The first items of a list in words, ``; ``-separated, then ``+N more``."""
    if not isinstance(items, list) or not items:
        return ""
    shown = "; ".join(item_text(i) for i in items[:MAX_ITEMS_SHOWN])
    rest = len(items) - MAX_ITEMS_SHOWN
    return f"{shown}; +{rest} more" if rest > 0 else shown


def _event_items(obj: dict[str, Any]) -> str:
    parts = []
    parent = obj.get("parent")
    if isinstance(parent, dict) and parent.get("sscc"):
        parts.append(f"pallet SSCC {parent['sscc']}")
    if obj.get("items"):
        parts.append(items_text(obj["items"]))
    for key in ("inputs", "outputs"):
        if obj.get(key):
            parts.append(f"{key}: {items_text(obj[key])}")
    if isinstance(obj.get("corrects"), list):
        parts.append("corrects " + ", ".join(str(c) for c in obj["corrects"]))
    return " | ".join(parts)


def _scanned(interp: Any) -> str:
    """What an alert's interpretation says was scanned (GTIN/SSCC, serial, lot, count)."""
    if not isinstance(interp, dict) or not (interp.get("gtin") or interp.get("sscc")):
        return ""
    item = {k: interp.get(k) for k in ("sscc", "gtin", "serial", "lot")}
    item["quantity"] = interp.get("count")
    return item_text({k: v for k, v in item.items() if v is not None})


def summary(obj: Any) -> str:
    """A short human description of a payload; events and alerts name their items."""
    if not isinstance(obj, dict):
        return ""
    name = obj.get("schema", {}).get("name") if isinstance(obj.get("schema"), dict) else None
    if name == "traceway.event":
        verdict = (obj.get("decision") or {}).get("verdict")
        head = (f"#{obj.get('seq')} {obj.get('movement')} {obj.get('event_type')} "
                f"{obj.get('biz_step')} {verdict} @{obj.get('station')}")  # fmt: skip
        what = _event_items(obj)
        return f"{head}: {what}" if what else head
    if name == "traceway.alert":
        head = (f"#{obj.get('seq')} {obj.get('severity')} {obj.get('alert')}: "
                f"{obj.get('message')} @{obj.get('station')}")  # fmt: skip
        what = _scanned(obj.get("interpretation"))
        return f"{head}: scanned {what}" if what else head
    if name == "traceway.status":
        return f"{obj.get('state')} boot={obj.get('boot')} version={obj.get('version')}"
    return str(name)


def format_line(topic: str, obj: Any, errors: list[str], as_json: bool, raw: bytes) -> str:
    """One output line for a message."""
    if as_json:
        rec = {"topic": topic, "valid": not errors, "errors": errors}
        rec["payload"] = obj if obj is not None else raw.decode("utf-8", "replace")
        return json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
    verdict = "OK" if not errors else "INVALID(" + "; ".join(errors) + ")"
    # payload text is untrusted: control characters never reach the terminal raw
    return make_visible(f"{topic} {verdict} {summary(obj)}".rstrip())


@dataclass
class _State:
    received: int = 0
    subscribed: bool = False
    error: str = ""
    lines: list[str] = field(default_factory=list)


def _filters(args: argparse.Namespace) -> list[tuple[str, int]]:
    specs: list[TopicSpec] = (
        [s for s in TOPICS if s.direction == "publish"] if args.all else [EVENTS, ALERTS]
    )
    return [
        (topic_filter(s, prefix=args.prefix, site=args.site, gateway=args.gateway), s.qos)
        for s in specs
    ]


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Subscribe and print until --count, --timeout or Ctrl-C."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    stream = out or sys.stdout
    state = _State()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            state.error = f"connect refused: {reason}"
            return
        c.subscribe(_filters(args))

    def on_subscribe(_c: mqtt.Client, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
        state.subscribed = True
        print(f"traceway tail: subscribed to {len(codes)} topic filters", file=sys.stderr)
        sys.stderr.flush()

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if args.count and state.received >= args.count:
            return
        obj, errors = check(msg.topic, bytes(msg.payload), args.prefix)
        print(format_line(msg.topic, obj, errors, args.json, bytes(msg.payload)), file=stream)
        stream.flush()
        state.received += 1

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    try:
        client.connect(args.host, args.port, keepalive=30)
    except OSError as exc:
        print(f"traceway tail: cannot connect to {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    deadline = time.monotonic() + args.timeout if args.timeout > 0 else None
    status = 0
    try:
        while not (args.count and state.received >= args.count):
            rc = client.loop(timeout=0.2)
            if state.error or rc != mqtt.MQTT_ERR_SUCCESS:
                print(f"traceway tail: {state.error or mqtt.error_string(rc)}", file=sys.stderr)
                status = 2
                break
            if deadline is not None and time.monotonic() > deadline:
                print("traceway tail: timeout", file=sys.stderr)
                status = 1
                break
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
    return status
