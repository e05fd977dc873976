"""Event files: JSON lines of raw key events and HID reports; recorder; errors name the line."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from drivers.scanners.event_log import (
    EventLogError,
    EventRecord,
    EventRecorder,
    ReportRecord,
    decode_key_events,
    format_event,
    format_report,
    parse_line,
    read_records,
)
from drivers.scanners.keyboard_decoder import KeyboardDecoder
from drivers.scanners.keyboard_encoder import encode
from drivers.scanners.keymaps import get_layout

DATA = Path(__file__).parent / "data" / "events"


def test_format_and_parse_roundtrip() -> None:
    rec = EventRecord(1.25, 1, 30, 1)
    assert format_event(rec) == '{"t":1.25,"type":1,"code":30,"value":1}'
    assert parse_line(format_event(rec)) == rec
    dev = EventRecord(0.5, 0, 3, 0, "left")
    assert parse_line(format_event(dev)) == dev
    rep = ReportRecord(2.0, bytes([2, 1, 0x5D, 0x1D]))
    assert parse_line(format_report(rep)) == rep


@pytest.mark.parametrize("line", ["", "   ", "# comment"])
def test_blank_and_comment_lines(line: str) -> None:
    assert parse_line(line) is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"t": 1, "type": "EV_KEY", "code": 30, "value": 1}', "'type' must be an integer"),
        ('{"t": 1, "type": 1, "code": 30}', "'value' must be an integer"),
        ('{"t": 1, "type": 1, "code": true, "value": 1}', "'code' must be an integer"),
        ('{"t": "x", "type": 1, "code": 30, "value": 1}', "'t' must be a number"),
        ('{"t": 1, "type": 1, "code": 30, "value": 1, "dev": 3}', "'dev' must be a string"),
        ('{"t": 1, "report": "zz"}', "hex"),
    ],
)
def test_bad_lines_name_the_problem(line: str, message: str) -> None:
    with pytest.raises(EventLogError, match=message):
        parse_line(line, "f.jsonl:3")


def test_read_records_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"t":0,"type":1,"code":30,"value":1}\n\n{"t":0}\n')
    with pytest.raises(EventLogError, match=r"bad.jsonl:3"):
        read_records(p)


def test_every_data_file_parses() -> None:
    files = sorted(DATA.glob("*.jsonl"))
    assert len(files) >= 7
    for f in files:
        recs = read_records(f)
        assert recs, f
        times = [r.t for r in recs]
        assert times == sorted(times), f"{f.name}: time goes backwards"


def test_recorder_writes_relative_times_that_replay_to_the_same_scan() -> None:
    us = get_layout("us")
    buf = io.StringIO()
    rec = EventRecorder(buf, t0=100.0)
    for e in encode("]C1AB\x1d12", us, t0=100.5):
        rec.event(e.type, e.code, e.value, e.t)
    rec.report(b"\x02\x01", 101.0)
    rec.flush()
    lines = buf.getvalue().splitlines()
    first = parse_line(lines[0])
    assert isinstance(first, EventRecord) and first.t == pytest.approx(0.5)
    assert parse_line(lines[-1]) == ReportRecord(1.0, b"\x02\x01")
    keys = [r for r in map(parse_line, lines) if isinstance(r, EventRecord)]
    out = decode_key_events(keys, lambda: KeyboardDecoder(us))
    assert [s.text for _, s in out] == ["]C1AB\x1d12"]


def test_decode_flushes_pending_idle_scan_at_end_of_file() -> None:
    us = get_layout("us")
    keys = [EventRecord(e.t, e.type, e.code, e.value) for e in encode("123", us, terminator=None)]
    assert decode_key_events(keys, lambda: KeyboardDecoder(us)) == []
    out = decode_key_events(keys, lambda: KeyboardDecoder(us, idle_timeout=0.05))
    assert [s.text for _, s in out] == ["123"]
