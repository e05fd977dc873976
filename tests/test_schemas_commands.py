"""Command payloads: parse_command accepts valid commands and refuses everything else."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mqtt_topics.commands import (
    MAX_COMMAND_BYTES,
    Command,
    CommandError,
    build_command,
    build_reply,
    command_names,
    parse_command,
)
from mqtt_topics.examples import GATEWAY, SITE, T0, example_id
from mqtt_topics.validation import validate

VALID: list[tuple[str, dict[str, Any]]] = [
    ("ping", {}),
    ("status", {}),
    ("reload_config", {}),
    ("resync_cache", {}),
    ("resync_cache", {"reason": "operator"}),
    ("print", {"template": "pallet", "printer": "zebra-1", "fields": {"sscc": "1"}, "copies": 2}),
    ("reprint", {"job_id": "42"}),
    ("reprint", {"event_id": example_id(3), "copies": 1}),
    ("set_step", {"station": "dock-1", "step": "shipping"}),
    ("set_transaction", {"station": "dock-1", "biz_transactions": [{"type": "po", "id": "PO-1"}]}),
    ("set_transaction", {"station": "dock-1", "biz_transactions": []}),
]


def _raw(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def test_every_command_is_covered() -> None:
    assert {n for n, _ in VALID} == set(command_names())


@pytest.mark.parametrize(("name", "args"), VALID)
def test_valid_commands(name: str, args: dict[str, Any]) -> None:
    payload = build_command(name, args, request_id="r1")
    assert validate(payload) == []
    cmd = parse_command(_raw(payload))
    assert isinstance(cmd, Command), cmd
    assert cmd.name == name and cmd.plain_args() == args and cmd.request_id == "r1"
    reply = build_reply(gateway_id=GATEWAY, site=SITE, time=T0, outcome=cmd, result={"x": 1})
    assert validate(reply) == [] and reply["ok"] is True and reply["request_id"] == "r1"


def test_args_are_optional_for_argless_commands_and_read_only() -> None:
    cmd = parse_command(b'{"schema":{"name":"traceway.command","version":"1.0"},"command":"ping"}')
    assert isinstance(cmd, Command) and dict(cmd.args) == {}
    cmd2 = parse_command(_raw(build_command("print", {"template": "t", "fields": {"a": "b"}})))
    assert isinstance(cmd2, Command)
    with pytest.raises(TypeError):
        cmd2.args["fields"]["a"] = "c"  # type: ignore[index]


H = {"name": "traceway.command", "version": "1.0"}
BAD: list[tuple[bytes, str]] = [
    (b"", "malformed"),
    (b"\xff\xfe", "malformed"),
    (b"{not json", "malformed"),
    (b"[]", "malformed"),
    (b'"ping"', "malformed"),
    (_raw({"schema": H}), "invalid"),
    (_raw({"schema": H, "command": 7}), "invalid"),
    (_raw({"schema": H, "command": "format_disk"}), "unknown_command"),
    (_raw({"schema": H, "command": "ping", "args": {"x": 1}}), "invalid_args"),
    (_raw({"schema": H, "command": "ping", "args": []}), "invalid_args"),
    (_raw({"schema": H, "command": "print", "args": {}}), "invalid_args"),
    (_raw({"schema": H, "command": "print", "args": {"template": "t", "copies": 0}}), "invalid_args"),
    (_raw({"schema": H, "command": "print", "args": {"template": "t", "fields": {"a": 1}}}), "invalid_args"),
    (_raw({"schema": H, "command": "reprint", "args": {}}), "invalid_args"),
    (_raw({"schema": H, "command": "reprint", "args": {"job_id": "1", "event_id": example_id(1)}}), "invalid_args"),
    (_raw({"schema": H, "command": "set_step", "args": {"station": "d", "step": "dancing"}}), "invalid_args"),
    (_raw({"schema": H, "command": "set_step", "args": {"station": "a b", "step": "picking"}}), "invalid_args"),
    (_raw({"schema": H, "command": "set_transaction", "args": {"station": "d"}}), "invalid_args"),
    (_raw({"command": "ping"}), "invalid"),
    (_raw({"schema": {"name": "traceway.event", "version": "1.0"}, "command": "ping"}), "invalid"),
    (_raw({"schema": H, "command": "ping", "extra": True}), "invalid"),
    (b" " * (MAX_COMMAND_BYTES + 1), "too_large"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "code"), BAD)
def test_bad_commands_get_an_error(raw: bytes, code: str) -> None:
    err = parse_command(raw)
    assert isinstance(err, CommandError)
    assert err.code == code, err
    reply = build_reply(gateway_id=GATEWAY, site=SITE, time=T0, outcome=err)
    assert validate(reply) == []
    assert reply["ok"] is False and reply["error"]["code"] == code


def test_error_reply_echoes_request_id_and_name() -> None:
    err = parse_command(_raw({"schema": H, "command": "nope", "request_id": "abc"}))
    assert isinstance(err, CommandError)
    reply = build_reply(gateway_id=GATEWAY, site=SITE, time=T0, outcome=err)
    assert reply["command"] == "nope" and reply["request_id"] == "abc"


def test_runtime_failure_reply() -> None:
    cmd = parse_command(_raw(build_command("reload_config")))
    assert isinstance(cmd, Command)
    reply = build_reply(
        gateway_id=GATEWAY, site=SITE, time=T0, outcome=cmd,
        error=CommandError("failed", "config.toml: stations.x.step: bad"),
    )  # fmt: skip
    assert validate(reply) == [] and reply["ok"] is False and "result" not in reply


def test_reply_schema_rejects_inconsistent_replies() -> None:
    cmd = parse_command(_raw(build_command("ping")))
    assert isinstance(cmd, Command)
    ok = build_reply(gateway_id=GATEWAY, site=SITE, time=T0, outcome=cmd)
    assert validate(ok) == []
    assert validate({**ok, "error": {"code": "failed", "message": "x"}}) != []
    assert validate({**ok, "ok": False}) != []
