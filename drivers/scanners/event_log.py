"""Record and replay raw scanner input as JSON lines (support cases, tests, offline decode).

Key events: ``{"t": 12.345, "type": 1, "code": 30, "value": 1}`` (integers as evdev gives
them; ``t`` in seconds; an optional ``"dev"`` string separates interleaved devices).
HID POS reports: ``{"t": 12.345, "report": "02 38 5d 51 ..."}`` (hex, spaces optional).
Blank lines and lines starting with ``#`` are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from drivers.scanners.hidpos import HidPosAssembler
from drivers.scanners.keyboard_decoder import DecodedScan, KeyboardDecoder


class EventLogError(ValueError):
    """A line of an event file that cannot be read; names the file and line."""


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One raw input event."""

    t: float
    type: int
    code: int
    value: int
    dev: str = ""


@dataclass(frozen=True, slots=True)
class ReportRecord:
    """One raw HID input report."""

    t: float
    report: bytes


def format_event(rec: EventRecord) -> str:
    """One JSON line (without newline) for an event."""
    d: dict[str, Any] = {"t": round(rec.t, 6), "type": rec.type, "code": rec.code}
    d["value"] = rec.value
    if rec.dev:
        d["dev"] = rec.dev
    return json.dumps(d, separators=(",", ":"))


def format_report(rec: ReportRecord) -> str:
    """One JSON line (without newline) for a HID report."""
    return json.dumps({"t": round(rec.t, 6), "report": rec.report.hex(" ")})


def _int(d: dict[str, Any], key: str, where: str) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool):
        raise EventLogError(f"{where}: {key!r} must be an integer, got {v!r}")
    return v


def _t(d: dict[str, Any], where: str) -> float:
    v = d.get("t")
    if not isinstance(v, int | float) or isinstance(v, bool):
        raise EventLogError(f"{where}: 't' must be a number of seconds, got {v!r}")
    return float(v)


def parse_line(line: str, where: str = "") -> EventRecord | ReportRecord | None:
    """Parse one line; None for blank/comment lines; EventLogError on anything else."""
    s = line.strip()
    if not s or s.startswith("#"):
        return None
    try:
        d = json.loads(s)
    except json.JSONDecodeError as exc:
        raise EventLogError(f"{where}: not JSON: {exc.msg}") from None
    if not isinstance(d, dict):
        raise EventLogError(f"{where}: expected a JSON object")
    if "report" in d:
        rep = d["report"]
        try:
            data = bytes.fromhex(rep) if isinstance(rep, str) else None
        except ValueError:
            data = None
        if data is None:
            raise EventLogError(f"{where}: 'report' must be hex bytes")
        return ReportRecord(_t(d, where), data)
    dev = d.get("dev", "")
    if not isinstance(dev, str):
        raise EventLogError(f"{where}: 'dev' must be a string")
    return EventRecord(
        _t(d, where), _int(d, "type", where), _int(d, "code", where), _int(d, "value", where), dev
    )


def read_records(path: str | Path) -> list[EventRecord | ReportRecord]:
    """All records of an event file, in file order."""
    out: list[EventRecord | ReportRecord] = []
    with open(path, encoding="utf-8") as fp:
        for n, line in enumerate(fp, 1):
            rec = parse_line(line, f"{path}:{n}")
            if rec is not None:
                out.append(rec)
    return out


def decode_key_events(
    records: Iterable[EventRecord], make_decoder: Callable[[], KeyboardDecoder]
) -> list[tuple[str, DecodedScan]]:
    """Decode key events with one decoder per ``dev``; returns ``(dev, scan)`` in order.

    At the end every decoder is flushed as if input stayed quiet for ever (this ends a
    scan only when an idle timeout is configured or an overrun discard is pending).
    """
    decoders: dict[str, KeyboardDecoder] = {}
    out: list[tuple[str, DecodedScan]] = []
    for rec in records:
        dec = decoders.get(rec.dev)
        if dec is None:
            dec = decoders[rec.dev] = make_decoder()
        out.extend((rec.dev, s) for s in dec.feed(rec.type, rec.code, rec.value, rec.t))
    for dev, dec in decoders.items():
        out.extend((dev, s) for s in dec.flush_idle(float("inf")))
    return out


def decode_reports(records: Iterable[ReportRecord], asm: HidPosAssembler) -> list[DecodedScan]:
    """Reassemble recorded HID POS reports into scans."""
    out: list[DecodedScan] = []
    for rec in records:
        out.extend(asm.feed(rec.report, rec.t))
    return out


class EventRecorder:
    """Appends raw events to an open text file as JSON lines; ``t`` relative to ``t0``."""

    def __init__(self, fp: IO[str], t0: float) -> None:
        self.fp = fp
        self.t0 = t0

    def event(self, type: int, code: int, value: int, t: float) -> None:
        """Record one input event."""
        self.fp.write(format_event(EventRecord(t - self.t0, type, code, value)) + "\n")

    def report(self, data: bytes, t: float) -> None:
        """Record one HID report."""
        self.fp.write(format_report(ReportRecord(t - self.t0, data)) + "\n")

    def flush(self) -> None:
        """Flush buffered lines to the file."""
        self.fp.flush()
