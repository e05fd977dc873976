"""Commands on the gateway's command topic: a pure validator and the reply builder.

The daemon answers on the MQTT 5 response topic with the request's correlation
data; a malformed or unknown command gets an error reply and changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

from mqtt_topics.events import format_time
from mqtt_topics.validation import load_schema, validator

COMMAND_SCHEMA = {"name": "traceway.command", "version": "1.2"}
REPLY_SCHEMA = {"name": "traceway.command_reply", "version": "1.1"}
MAX_COMMAND_BYTES = 64 * 1024
#: ``stock``/``trace`` replies: rows when the command gives no ``limit``, and the most it may ask.
DEFAULT_ROWS = 500
MAX_ROWS = 5000
#: ``stock``/``trace`` replies: the rows of one reply serialise to at most this many bytes.
MAX_RESULT_BYTES = 1_000_000
#: ``republish``: the most seqs one command may ask for again.
MAX_REPUBLISH = 10_000

ErrorCode = Literal[
    "too_large", "malformed", "invalid", "unknown_command", "invalid_args", "failed", "busy"
]


def command_names() -> tuple[str, ...]:
    """Every command the gateway understands."""
    enum: list[str] = load_schema("traceway.command")["properties"]["command"]["enum"]
    return tuple(enum)


@dataclass(frozen=True, slots=True)
class Command:
    """A valid command: name, arguments (read-only), and the caller's optional request id."""

    name: str
    args: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    request_id: str | None = None

    def plain_args(self) -> dict[str, Any]:
        """The arguments as plain (mutable) dicts and lists."""
        thawed: dict[str, Any] = _thaw(self.args)
        return thawed


@dataclass(frozen=True, slots=True)
class CommandError:
    """Why a command payload was refused; ``command``/``request_id`` when they could be read."""

    code: ErrorCode
    message: str
    command: str | None = None
    request_id: str | None = None


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def parse_command(payload: bytes) -> Command | CommandError:
    """Validate a command payload (UTF-8 JSON, schema ``traceway.command``); never raises."""
    if len(payload) > MAX_COMMAND_BYTES:
        return CommandError("too_large", f"command payload over {MAX_COMMAND_BYTES} bytes")
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return CommandError("malformed", f"not UTF-8 JSON: {exc}")
    if not isinstance(data, dict):
        return CommandError("malformed", "command payload is not a JSON object")
    rid = data.get("request_id")
    request_id = rid if isinstance(rid, str) and 0 < len(rid) <= 128 else None
    name = data.get("command")
    cmd = name if isinstance(name, str) and len(name) <= 64 else None
    if "command" not in data or cmd is None:
        return CommandError("invalid", "missing or non-string 'command'", None, request_id)
    if cmd not in command_names():
        return CommandError("unknown_command", f"unknown command {cmd!r}", cmd, request_id)
    normal = {**data, "args": data.get("args", {})}
    errors = _errors(normal)
    if errors:
        code: ErrorCode = "invalid_args" if all(e.startswith("args") for e in errors) else "invalid"
        return CommandError(code, "; ".join(errors), cmd, request_id)
    problem = _range_problem(normal["args"]) if cmd == "republish" else None
    if problem:
        return CommandError("invalid_args", problem, cmd, request_id)
    return Command(cmd, _freeze(normal["args"]), request_id)


def _range_problem(args: Mapping[str, Any]) -> str | None:
    """``republish``: ``from_seq`` ≤ ``to_seq``, at most ``MAX_REPUBLISH`` seqs."""
    lo, hi = int(args["from_seq"]), int(args["to_seq"])
    if hi < lo:
        return f"args: to_seq {hi} is below from_seq {lo}"
    if hi - lo + 1 > MAX_REPUBLISH:
        return f"args: at most {MAX_REPUBLISH} seqs at once (asked {hi - lo + 1})"
    return None


def seq_ranges(seqs: Iterable[int]) -> list[list[int]]:
    """Consecutive runs of seqs as ``[first, last]`` pairs, ascending."""
    out: list[list[int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return out


def _errors(payload: Mapping[str, Any]) -> list[str]:
    """Schema errors, ``path: message``, sorted; a schema node's ``errorMessage`` replaces
    jsonschema's wording for its own keyword failures (e.g. trace's "gtin with lot, …")."""
    out: set[str] = set()
    for e in validator("traceway.command").iter_errors(payload):
        own = e.schema.get("errorMessage") if isinstance(e.schema, Mapping) else None
        text = own if isinstance(own, str) and e.validator == "oneOf" else e.message
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path)
        out.add(f"{path.lstrip('.') or '(root)'}: {text}")
    return sorted(out)


def bound_rows(
    rows: list[dict[str, Any]], limit: int, max_bytes: int = MAX_RESULT_BYTES
) -> dict[str, Any]:
    """The ``result`` of a ``stock``/``trace`` reply: at most ``limit`` rows whose JSON fits
    in ``max_bytes``; ``truncated`` when rows were left out (pass up to ``limit + 1`` rows,
    so that one more than the limit shows that there is more)."""
    kept: list[dict[str, Any]] = []
    size = 0
    for row in rows[:limit]:
        size += len(json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode()) + 1
        if size > max_bytes:
            break
        kept.append(row)
    return {"rows": kept, "count": len(kept), "limit": limit, "truncated": len(kept) < len(rows)}


def build_command(
    name: str, args: Mapping[str, Any] | None = None, request_id: str | None = None
) -> dict[str, Any]:
    """A command payload (for operators, the central side and tests)."""
    payload: dict[str, Any] = {
        "schema": dict(COMMAND_SCHEMA),
        "command": name,
        "args": dict(args or {}),
    }
    if request_id is not None:
        payload["request_id"] = request_id
    return payload


def build_reply(
    *,
    gateway_id: str,
    site: str,
    time: datetime,
    outcome: Command | CommandError,
    result: Mapping[str, Any] | None = None,
    error: CommandError | None = None,
) -> dict[str, Any]:
    """The reply to a command.

    ``outcome`` is what :func:`parse_command` returned. For a valid command pass
    ``result`` (success) or ``error`` (it failed while running, e.g. code ``failed``).
    """
    name = outcome.name if isinstance(outcome, Command) else outcome.command
    payload: dict[str, Any] = {
        "schema": dict(REPLY_SCHEMA),
        "gateway_id": gateway_id,
        "site": site,
        "time": format_time(time),
        "command": name,
        "request_id": outcome.request_id,
    }
    err = outcome if isinstance(outcome, CommandError) else error
    if err is not None:
        payload["ok"] = False
        payload["error"] = {"code": err.code, "message": err.message}
    else:
        payload["ok"] = True
        payload["result"] = dict(result or {})
    return payload
