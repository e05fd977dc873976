"""Commands on the gateway's own command topic, answered over MQTT 5.

:meth:`CommandHandler.handle` validates with :func:`mqtt_topics.commands.parse_command`,
runs the command against an injected :class:`GatewayControl` and builds the reply. A
malformed, unknown or retained command is refused before anything runs; a control
that raises gets an error reply. :meth:`CommandHandler.on_message` is the paho shell:
it reads the response topic and correlation data and publishes the reply with them
(no response topic: ``.../commands/reply``).

``stock`` and ``trace`` answer with the rows ``traceway stock/trace --json`` print, at
most ``limit`` of them and at most ``MAX_RESULT_BYTES`` of JSON, ``truncated`` when
rows were left out (the control is asked for one row more than the limit to know).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from gs1.keys import is_valid_gtin, is_valid_sscc
from mqtt_topics.commands import (
    DEFAULT_ROWS,
    Command,
    CommandError,
    ErrorCode,
    bound_rows,
    build_reply,
    parse_command,
    seq_ranges,
)
from mqtt_topics.topics import GatewayTopics

log = logging.getLogger(__name__)


class CommandRejected(Exception):
    """Raised by a control when the arguments make no sense here (unknown station, job)."""


class GatewayControl(Protocol):
    """What commands may do to a running gateway (the daemon implements it)."""

    def set_station_step(self, station: str, step: str) -> None: ...

    def set_transaction(self, station: str, transactions: list[tuple[str, str]]) -> None: ...

    def print_label(
        self,
        printer: str | None,
        template: str,
        fields: Mapping[str, str],
        copies: int,
        idempotency_key: str,
    ) -> int: ...

    def reprint(
        self, job_id: str | None, event_id: str | None, printer: str | None, copies: int
    ) -> int: ...

    def resync_cache(self, reason: str) -> str: ...

    def reload_config(self) -> list[str]: ...

    def status(self) -> dict[str, Any]: ...

    def stock(self, filters: Mapping[str, str], limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` rows of ``traceway stock --json`` (filters: gtin, lot, serial, location)."""
        ...

    def trace(self, keys: Mapping[str, str], limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` rows of ``traceway trace --json`` (gtin + lot | gtin + serial | sscc)."""
        ...

    def republish(self, from_seq: int, to_seq: int) -> dict[str, Any]:
        """Send published outbox rows ``from_seq..to_seq`` again; :func:`republish_plan` says what."""
        ...


@dataclass(frozen=True, slots=True)
class RepublishPlan:
    """What ``republish`` does with the outbox rows of a seq range."""

    send: tuple[tuple[int, str, str], ...]  # (seq, topic, payload) published before: again
    unsent: int  # not published yet: the publisher sends them anyway
    gone: list[list[int]]  # seqs the outbox no longer holds, as [first, last] runs

    def result(self, from_seq: int, to_seq: int, republished: int) -> dict[str, Any]:
        """The command's ``result``."""
        return {
            "from_seq": from_seq,
            "to_seq": to_seq,
            "republished": republished,
            "unsent": self.unsent,
            "gone": self.gone[:100],
        }


def republish_plan(
    rows: Iterable[tuple[int, str, str, float | None]], from_seq: int, to_seq: int
) -> RepublishPlan:
    """Outbox rows ``(seq, topic, payload, published_at)`` of the range → what to send again."""
    send: list[tuple[int, str, str]] = []
    held: set[int] = set()
    unsent = 0
    for seq, topic, payload, published_at in sorted(rows):
        if not from_seq <= seq <= to_seq:
            continue
        held.add(seq)
        if published_at is None:
            unsent += 1
        else:
            send.append((seq, topic, payload))
    gone = seq_ranges(s for s in range(from_seq, to_seq + 1) if s not in held)
    return RepublishPlan(tuple(send), unsent, gone)


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply to publish: topic, payload, and the request's correlation data."""

    topic: str
    payload: dict[str, Any]
    correlation: bytes | None = None


def idempotency_key(cmd: Command, correlation: bytes | None, payload: bytes) -> str:
    """The same request (request id, else correlation data, else bytes) prints only once."""
    if cmd.request_id is not None:
        return f"cmd:{cmd.request_id}"
    basis = correlation if correlation else payload
    return "cmd:" + hashlib.sha256(basis).hexdigest()[:32]


class CommandHandler:
    """Runs commands against a :class:`GatewayControl` and builds MQTT 5 replies."""

    def __init__(
        self,
        topics: GatewayTopics,
        control: GatewayControl,
        send: Callable[[Reply], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now().astimezone(),
    ) -> None:
        self.topics = topics
        self.control = control
        self.send = send
        self.clock = clock

    def _reply(
        self,
        outcome: Command | CommandError,
        response_topic: str | None,
        correlation: bytes | None,
        result: Mapping[str, Any] | None = None,
        error: CommandError | None = None,
    ) -> Reply:
        payload = build_reply(
            gateway_id=self.topics.gateway,
            site=self.topics.site,
            time=self.clock(),
            outcome=outcome,
            result=result,
            error=error,
        )
        return Reply(response_topic or self.topics.command_replies, payload, correlation)

    def handle(
        self,
        payload: bytes,
        response_topic: str | None = None,
        correlation: bytes | None = None,
        *,
        retained: bool = False,
    ) -> Reply:
        """Validate and run one command; always returns the reply (never raises)."""
        parsed = parse_command(payload)
        if isinstance(parsed, Command) and retained:
            parsed = CommandError(
                "invalid", "retained commands are refused", parsed.name, parsed.request_id
            )
        if isinstance(parsed, CommandError):
            log.warning("command refused: %s: %s", parsed.code, parsed.message)
            return self._reply(parsed, response_topic, correlation)
        try:
            result = self._run(parsed, correlation, payload)
        except CommandRejected as exc:
            err = CommandError("invalid_args", str(exc)[:2048], parsed.name, parsed.request_id)
            return self._reply(parsed, response_topic, correlation, error=err)
        except Exception as exc:
            log.exception("command %s failed", parsed.name)
            code: ErrorCode = "failed"
            msg = f"{type(exc).__name__}: {exc}"[:2048]
            err = CommandError(code, msg, parsed.name, parsed.request_id)
            return self._reply(parsed, response_topic, correlation, error=err)
        log.info("command %s done: %s", parsed.name, result)
        return self._reply(parsed, response_topic, correlation, result=result)

    def _run(self, cmd: Command, correlation: bytes | None, payload: bytes) -> dict[str, Any]:
        args = cmd.plain_args()
        c = self.control
        if cmd.name == "ping":
            return {"pong": True}
        if cmd.name == "status":
            return c.status()
        if cmd.name == "reload_config":
            return {"restarted": c.reload_config()}
        if cmd.name == "resync_cache":
            return {"request_id": c.resync_cache(str(args.get("reason", "")))}
        if cmd.name == "set_step":
            c.set_station_step(args["station"], args["step"])
            return {"station": args["station"], "step": args["step"]}
        if cmd.name == "set_transaction":
            txs = [(t["type"], t["id"]) for t in args["biz_transactions"]]
            c.set_transaction(args["station"], txs)
            return {"station": args["station"], "biz_transactions": args["biz_transactions"]}
        if cmd.name == "print":
            key = idempotency_key(cmd, correlation, payload)
            job = c.print_label(
                args.get("printer"),
                args["template"],
                dict(args.get("fields", {})),
                int(args.get("copies", 1)),
                key,
            )
            return {"job_id": str(job)}
        if cmd.name == "reprint":
            job = c.reprint(
                args.get("job_id"),
                args.get("event_id"),
                args.get("printer"),
                int(args.get("copies", 1)),
            )
            return {"job_id": str(job)}
        if cmd.name in ("stock", "trace"):
            return self._answer(cmd.name, args)
        if cmd.name == "republish":
            return c.republish(int(args["from_seq"]), int(args["to_seq"]))
        raise CommandRejected(f"command {cmd.name!r} is not handled")  # schema and code disagree

    def _answer(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """``stock``/``trace``: the CLI's rows, bounded in count and bytes (``truncated``)."""
        limit = int(args.pop("limit", DEFAULT_ROWS))
        if "gtin" in args and not is_valid_gtin(args["gtin"]):
            raise CommandRejected(f"args.gtin: GTIN {args['gtin']} has a wrong check digit")
        if "sscc" in args and not is_valid_sscc(args["sscc"]):
            raise CommandRejected(f"args.sscc: SSCC {args['sscc']} has a wrong check digit")
        ask = self.control.stock if name == "stock" else self.control.trace
        return bound_rows(ask(args, limit + 1), limit)  # one more: is there more?

    def on_message(self, msg: Any) -> Reply | None:
        """paho ``on_message`` hook: only this gateway's command topic; the reply is sent."""
        if msg.topic != self.topics.commands:
            return None
        props = getattr(msg, "properties", None)
        response_topic = getattr(props, "ResponseTopic", None) or None
        if response_topic is not None and ("+" in response_topic or "#" in response_topic):
            response_topic = None  # cannot publish to a filter: answer on commands/reply
        correlation = getattr(props, "CorrelationData", None) or None
        reply = self.handle(
            bytes(msg.payload),
            response_topic,
            bytes(correlation) if correlation is not None else None,
            retained=bool(getattr(msg, "retain", False)),
        )
        if self.send is not None:
            self.send(reply)
        return reply


def paho_sender(client: Any, qos: int = 1) -> Callable[[Reply], None]:
    """Publishes a :class:`Reply` with a paho client, correlation data as an MQTT 5 property."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    def send(reply: Reply) -> None:
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if reply.correlation is not None:
            props.CorrelationData = reply.correlation
        data = json.dumps(reply.payload, separators=(",", ":"), ensure_ascii=False)
        client.publish(reply.topic, data, qos=qos, properties=props)

    return send
