"""Command payloads: parse_command accepts valid commands and refuses everything else."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mqtt_topics.commands import (
    MAX_COMMAND_BYTES,
    Command,
    CommandError,
    bound_rows,
    build_command,
    build_reply,
    command_names,
    parse_command,
    seq_ranges,
)
from mqtt_topics.examples import GATEWAY, GTIN_A, SITE, T0, example_id
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
    ("stock", {}),
    ("stock", {"gtin": GTIN_A, "lot": "L1", "location": "A-01", "limit": 5000}),
    ("stock", {"serial": "SN1", "limit": 1}),
    ("trace", {"gtin": GTIN_A, "lot": "L1"}),
    ("trace", {"gtin": GTIN_A, "serial": "SN1", "limit": 10}),
    ("trace", {"sscc": "340123450000000000"}),
    ("republish", {"from_seq": 1, "to_seq": 1}),
    ("republish", {"from_seq": 5, "to_seq": 10_004}),
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
    result = bound_rows([], 1) if name in ("stock", "trace") else {"x": 1}
    reply = build_reply(gateway_id=GATEWAY, site=SITE, time=T0, outcome=cmd, result=result)
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
    (_raw({"schema": H, "command": "stock", "args": {"limit": 0}}), "invalid_args"),
    (_raw({"schema": H, "command": "stock", "args": {"limit": 5001}}), "invalid_args"),
    (_raw({"schema": H, "command": "stock", "args": {"sscc": "340123450000000000"}}), "invalid_args"),
    (_raw({"schema": H, "command": "stock", "args": {"location": "A 1"}}), "invalid_args"),
    (_raw({"schema": H, "command": "trace", "args": {}}), "invalid_args"),
    (_raw({"schema": H, "command": "trace", "args": {"lot": "L1"}}), "invalid_args"),
    (_raw({"schema": H, "command": "trace", "args": {"gtin": GTIN_A}}), "invalid_args"),
    (_raw({"schema": H, "command": "trace", "args": {"gtin": GTIN_A, "lot": "L", "serial": "S"}}), "invalid_args"),
    (_raw({"schema": H, "command": "trace", "args": {"gtin": GTIN_A, "sscc": "340123450000000000"}}), "invalid_args"),
    (_raw({"schema": H, "command": "trace", "args": {"sscc": "340123450000000000", "limit": 1.5}}), "invalid_args"),
    (_raw({"schema": H, "command": "republish"}), "invalid_args"),
    (_raw({"schema": H, "command": "republish", "args": {"from_seq": 1}}), "invalid_args"),
    (_raw({"schema": H, "command": "republish", "args": {"from_seq": 0, "to_seq": 3}}), "invalid_args"),
    (_raw({"schema": H, "command": "republish", "args": {"from_seq": 4, "to_seq": 3}}), "invalid_args"),
    (_raw({"schema": H, "command": "republish", "args": {"from_seq": 1, "to_seq": 10_001}}), "invalid_args"),
    (_raw({"schema": H, "command": "republish", "args": {"from_seq": 1, "to_seq": 2, "x": 1}}), "invalid_args"),
    (_raw({"schema": H, "command": "republish", "args": {"from_seq": "1", "to_seq": 2}}), "invalid_args"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "code"), BAD)
def test_bad_commands_get_an_error(raw: bytes, code: str) -> None:
    err = parse_command(raw)
    assert isinstance(err, CommandError)
    assert err.code == code, err
    reply = build_reply(gateway_id=GATEWAY, site=SITE, time=T0, outcome=err)
    assert validate(reply) == []
    assert reply["ok"] is False and reply["error"]["code"] == code


def test_seq_ranges() -> None:
    assert seq_ranges([]) == []
    assert seq_ranges([7, 3, 4, 5, 9, 8, 3]) == [[3, 5], [7, 9]]
    assert seq_ranges([1]) == [[1, 1]]


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


def test_trace_without_a_key_says_what_to_give() -> None:
    err = parse_command(_raw({"schema": H, "command": "trace", "args": {"gtin": GTIN_A}}))
    assert isinstance(err, CommandError)
    assert err.message == "args: give gtin with lot, gtin with serial, or sscc (only one of them)"


STOCK_ROW = {
    "gtin": GTIN_A, "lot": "L1", "serial": None, "location": "A-01", "quantity": 5,
    "uom": "EA", "status": "active", "expiry": "2027-01-31",
}  # fmt: skip
TRACE_ROW = {
    "seq": 3, "event_id": example_id(3), "event_time": "2026-11-23T09:30:00.000+01:00",
    "movement": "receive", "biz_step": "receiving", "from": {"type": "party", "id": "unknown"},
    "to": {"type": "location", "id": "DOCK"}, "gtin": GTIN_A, "lot": None, "serial": "S1",
    "sscc": None, "quantity": 1, "uom": "EA", "parent": "340123450000000000",
    "station": "dock-1", "published": False,
}  # fmt: skip


def _answer(name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    cmd = parse_command(
        _raw(build_command(name, {"sscc": "340123450000000000"} if name == "trace" else {}))
    )
    assert isinstance(cmd, Command)
    return build_reply(
        gateway_id=GATEWAY, site=SITE, time=T0, outcome=cmd, result=bound_rows(rows, 10)
    )


@pytest.mark.parametrize(
    ("name", "row", "bad"),
    [
        ("stock", STOCK_ROW, {"quantity": 0}),
        ("stock", STOCK_ROW, {"expiry": "2027-02-30"}),
        ("stock", STOCK_ROW, {"gtin": GTIN_A[:-1] + str((int(GTIN_A[-1]) + 1) % 10)}),
        ("stock", STOCK_ROW, {"colour": "red"}),
        ("trace", TRACE_ROW, {"published": "yes"}),
        ("trace", TRACE_ROW, {"from": "DOCK"}),
        ("trace", TRACE_ROW, {"event_time": "2026-11-23 09:30"}),
        ("trace", TRACE_ROW, {"biz_step": "putaway"}),
    ],
)  # fmt: skip
def test_answer_rows_are_checked_by_the_reply_schema(
    name: str, row: dict[str, Any], bad: dict[str, Any]
) -> None:
    assert validate(_answer(name, [row, row])) == []
    assert validate(_answer(name, [row, {**row, **bad}])) != []
    # the result's frame is checked too
    reply = _answer(name, [row])
    del reply["result"]["truncated"]
    assert validate(reply) != []
    # another command's result is free-form
    ping = parse_command(_raw(build_command("ping")))
    assert isinstance(ping, Command)
    free = build_reply(gateway_id=GATEWAY, site=SITE, time=T0, outcome=ping, result={"rows": 1})
    assert validate(free) == []


def test_bound_rows() -> None:
    rows = [{"n": i} for i in range(5)]
    assert bound_rows(rows, 5) == {"rows": rows, "count": 5, "limit": 5, "truncated": False}
    assert bound_rows(rows, 4) == {"rows": rows[:4], "count": 4, "limit": 4, "truncated": True}
    assert bound_rows([], 4) == {"rows": [], "count": 0, "limit": 4, "truncated": False}
    # the byte bound: each row is 8 bytes of JSON plus a separator
    assert bound_rows(rows, 5, max_bytes=18)["rows"] == rows[:2]
    assert bound_rows(rows, 5, max_bytes=18)["truncated"] is True
    assert bound_rows(rows, 5, max_bytes=4)["rows"] == []
